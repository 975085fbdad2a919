/*
 * identity — who is calling, with the platform's rules (see
 * services/platform/src/identity.h; the two are to merge into a lib):
 *  - X-User-Id / X-User-Email / X-User-Roles count only when an internal
 *    token is configured and X-Internal-Token equals it (same length,
 *    CRYPTO_memcmp); otherwise they are ignored and the bearer token
 *    decides;
 *  - a bearer token must pass tok_verify() (alg bound to kid, iss, aud,
 *    exp/nbf with leeway). Values that do not fit are refused, never
 *    truncated, so one user never reads as another.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auto.h"
#include "log/log.h"

/* The token inside "Bearer <token>" (scheme case-insensitive); NULL when
 * the header is no bearer credential. */
static const char *bearer(const char *h, size_t *len)
{
    size_t n;

    if (!h || strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ')
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return h;
}

static int internal_ok(const char *want, const char *got)
{
    size_t n;

    if (!want || !*want || !got)
        return 0;
    n = strlen(want);
    return strlen(got) == n && CRYPTO_memcmp(want, got, n) == 0;
}

static int copy_field(char *dst, size_t len, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= len)
        return -1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    return 0;
}

int auto_roles_contain(const char *csv, const char *role)
{
    size_t rl = strlen(role);

    while (csv && *csv) {
        const char *end = strchr(csv, ',');
        size_t n = end ? (size_t)(end - csv) : strlen(csv);
        const char *s = csv;

        while (n && *s == ' ')
            s++, n--;
        while (n && s[n - 1] == ' ')
            n--;
        if (n == rl && strncmp(s, role, rl) == 0)
            return 1;
        csv = end ? end + 1 : NULL;
    }
    return 0;
}

static int unauthorized(struct httpd_req *r, const char *why)
{
    log_kv(LOG_LVL_INFO, &r->log, "identity rejected", "reason", why, NULL);
    httpd_add_header(r, "WWW-Authenticate", "Bearer");
    httpd_error(r, 401, "unauthorized", "a valid bearer token is required");
    return -1;
}

int auto_identity_require(const struct auto_auth *a, struct httpd_req *r,
                          struct auto_identity *out)
{
    const char *uid = httpd_header(r, "X-User-Id");
    const char *auth = httpd_header(r, "Authorization");
    struct tok_claims c;
    const char *tok;
    size_t len = 0;
    enum tok_err te;

    memset(out, 0, sizeof *out);
    if (internal_ok(a->internal_token, httpd_header(r, "X-Internal-Token")) &&
        uid && *uid) {
        if (copy_field(out->user_id, sizeof out->user_id, uid) ||
            copy_field(out->email, sizeof out->email,
                       httpd_header(r, "X-User-Email")) ||
            copy_field(out->roles, sizeof out->roles,
                       httpd_header(r, "X-User-Roles")))
            return unauthorized(r, "oversized identity headers");
        out->via_gateway = 1;
        out->admin = auto_roles_contain(out->roles, "admin");
        return 0;
    }
    if (!auth || !*auth)
        return unauthorized(r, "no credentials");
    tok = bearer(auth, &len);
    if (!tok)
        return unauthorized(r, "malformed credentials");
    if (!a->keys)
        return unauthorized(r, "no verification key configured");
    te = tok_verify(a->keys, &a->policy, tok, len, time(NULL), &c);
    if (te != TOK_OK)
        return unauthorized(r, tok_strerror(te));
    snprintf(out->user_id, sizeof out->user_id, "%s", c.sub);
    snprintf(out->email, sizeof out->email, "%s", c.email);
    snprintf(out->roles, sizeof out->roles, "%s", c.roles_csv);
    out->admin = auto_roles_contain(out->roles, "admin");
    return 0;
}
