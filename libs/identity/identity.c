#include "identity/identity.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpd/httpd.h"
#include "identity/revocation.h"
#include "log/log.h"
#include "token/token_cache.h"

const char *ident_bearer(const char *authorization, size_t *len)
{
    const char *p = authorization;
    size_t n;

    if (p == NULL || strncasecmp(p, "Bearer", 6) != 0 || p[6] != ' ')
        return NULL;
    p += 7;
    while (*p == ' ')
        p++;
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return p;
}

/* Constant time in the token's contents; lengths are not secret. */
int ident_internal_ok(const struct ident_cfg *cfg,
                              const char *got)
{
    const char *want = cfg->internal_token;
    size_t wn, gn;

    if (want == NULL || want[0] == '\0' || got == NULL)
        return 0;
    wn = strlen(want);
    gn = strlen(got);
    if (wn != gn)
        return 0;
    return CRYPTO_memcmp(want, got, wn) == 0;
}

/* Copies src into a fixed buffer; -1 when it does not fit. */
static int copy_field(char *dst, size_t dstlen, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= dstlen)
        return -1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* Redis outage: one warning per 10 s, not one per request. */
static void warn_unavailable(int fail_open, time_t now)
{
    static long last;

    if ((long)now - __atomic_load_n(&last, __ATOMIC_RELAXED) < 10)
        return;
    __atomic_store_n(&last, (long)now, __ATOMIC_RELAXED);
    log_kv(LOG_LVL_WARN, NULL, "revocation check: redis unavailable",
           "policy", fail_open ? "fail_open" : "fail_closed", NULL);
}

enum ident_result
ident_resolve(const struct ident_cfg *cfg,
                      const struct ident_headers *h, time_t now,
                      struct ident *out, enum tok_err *tok_err)
{
    struct tok_claims claims;
    const char *tok;
    size_t toklen = 0;
    enum tok_err te;

    if (tok_err != NULL)
        *tok_err = TOK_OK;
    memset(out, 0, sizeof(*out));

    if (ident_internal_ok(cfg, h->internal_token) &&
        h->user_id != NULL && h->user_id[0] != '\0') {
        /*
         * The gateway vouches for these; reject rather than truncate
         * values that do not fit, so one user never reads as another.
         */
        if (copy_field(out->user_id, sizeof(out->user_id), h->user_id) ||
            copy_field(out->email, sizeof(out->email), h->user_email) ||
            copy_field(out->roles_csv, sizeof(out->roles_csv),
                       h->user_roles))
            return IDENT_INVALID;
        out->source = IDENT_GATEWAY;
        return IDENT_OK;
    }

    if (h->authorization == NULL || h->authorization[0] == '\0')
        return IDENT_MISSING;
    tok = ident_bearer(h->authorization, &toklen);
    if (tok == NULL)
        return IDENT_INVALID;
    if (cfg->keyset == NULL)
        return IDENT_INVALID; /* no verification key configured */
    te = tok_cache_verify(cfg->cache, cfg->keyset, &cfg->policy, tok, toklen,
                          now, &claims);
    if (te != TOK_OK) {
        if (tok_err != NULL)
            *tok_err = te;
        return IDENT_INVALID;
    }
    if (cfg->rev != NULL) {
        enum ident_rev_result rr =
            ident_rev_check(cfg->rev, claims.sub, claims.jti, claims.iat,
                            claims.exp, now);
        if (rr == IDENT_REV_UNAVAILABLE)
            warn_unavailable(cfg->rev_fail_open, now);
        if (rr == IDENT_REV_REVOKED ||
            (rr == IDENT_REV_UNAVAILABLE && !cfg->rev_fail_open))
            return IDENT_INVALID;
    }
    out->source = IDENT_BEARER;
    snprintf(out->user_id, sizeof(out->user_id), "%s", claims.sub);
    snprintf(out->email, sizeof(out->email), "%s", claims.email);
    snprintf(out->roles_csv, sizeof(out->roles_csv), "%s", claims.roles_csv);
    snprintf(out->jti, sizeof(out->jti), "%s", claims.jti);
    out->exp = claims.exp;
    return IDENT_OK;
}

enum ident_result
ident_from_req(const struct ident_cfg *cfg,
                       struct httpd_req *r, struct ident *out)
{
    struct ident_headers h;
    enum ident_result res;
    enum tok_err te = TOK_OK;

    h.authorization = httpd_header(r, "Authorization");
    h.internal_token = httpd_header(r, "X-Internal-Token");
    h.user_id = httpd_header(r, "X-User-Id");
    h.user_email = httpd_header(r, "X-User-Email");
    h.user_roles = httpd_header(r, "X-User-Roles");
    res = ident_resolve(cfg, &h, time(NULL), out, &te);
    if (res == IDENT_INVALID)
        log_kv(LOG_LVL_INFO, &r->log, "identity rejected", "reason",
               te != TOK_OK ? tok_strerror(te) : "malformed credentials",
               NULL);
    return res;
}

int ident_roles_contain(const char *csv, const char *role)
{
    size_t rl = strlen(role);

    while (csv != NULL && *csv != '\0') {
        const char *end = strchr(csv, ',');
        size_t n = end != NULL ? (size_t)(end - csv) : strlen(csv);
        const char *s = csv;

        while (n > 0 && *s == ' ') {
            s++;
            n--;
        }
        while (n > 0 && s[n - 1] == ' ')
            n--;
        if (n == rl && strncmp(s, role, rl) == 0)
            return 1;
        csv = end != NULL ? end + 1 : NULL;
    }
    return 0;
}
