#include "identity.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpd/httpd.h"

const char *plat_identity_bearer(const char *authorization, size_t *len)
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
int plat_identity_internal_ok(const struct plat_identity_cfg *cfg,
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

enum plat_identity_result
plat_identity_resolve(const struct plat_identity_cfg *cfg,
                      const struct plat_identity_headers *h, time_t now,
                      struct plat_identity *out, enum tok_err *tok_err)
{
    struct tok_claims claims;
    const char *tok;
    size_t toklen = 0;
    enum tok_err te;

    if (tok_err != NULL)
        *tok_err = TOK_OK;
    memset(out, 0, sizeof(*out));

    if (plat_identity_internal_ok(cfg, h->internal_token) &&
        h->user_id != NULL && h->user_id[0] != '\0') {
        /*
         * The gateway vouches for these; reject rather than truncate
         * values that do not fit, so one user never reads as another.
         */
        if (copy_field(out->user_id, sizeof(out->user_id), h->user_id) ||
            copy_field(out->email, sizeof(out->email), h->user_email) ||
            copy_field(out->roles_csv, sizeof(out->roles_csv),
                       h->user_roles))
            return PLAT_IDENTITY_INVALID;
        out->source = PLAT_IDENTITY_GATEWAY;
        return PLAT_IDENTITY_OK;
    }

    if (h->authorization == NULL || h->authorization[0] == '\0')
        return PLAT_IDENTITY_MISSING;
    tok = plat_identity_bearer(h->authorization, &toklen);
    if (tok == NULL)
        return PLAT_IDENTITY_INVALID;
    te = tok_verify(cfg->keyset, &cfg->policy, tok, toklen, now, &claims);
    if (te != TOK_OK) {
        if (tok_err != NULL)
            *tok_err = te;
        return PLAT_IDENTITY_INVALID;
    }
    out->source = PLAT_IDENTITY_BEARER;
    snprintf(out->user_id, sizeof(out->user_id), "%s", claims.sub);
    snprintf(out->email, sizeof(out->email), "%s", claims.email);
    snprintf(out->roles_csv, sizeof(out->roles_csv), "%s", claims.roles_csv);
    snprintf(out->jti, sizeof(out->jti), "%s", claims.jti);
    out->exp = claims.exp;
    return PLAT_IDENTITY_OK;
}

enum plat_identity_result
plat_identity_from_req(const struct plat_identity_cfg *cfg,
                       struct httpd_req *r, struct plat_identity *out)
{
    struct plat_identity_headers h;
    enum plat_identity_result res;
    enum tok_err te = TOK_OK;

    h.authorization = httpd_header(r, "Authorization");
    h.internal_token = httpd_header(r, "X-Internal-Token");
    h.user_id = httpd_header(r, "X-User-Id");
    h.user_email = httpd_header(r, "X-User-Email");
    h.user_roles = httpd_header(r, "X-User-Roles");
    res = plat_identity_resolve(cfg, &h, time(NULL), out, &te);
    if (res == PLAT_IDENTITY_INVALID)
        log_kv(LOG_LVL_INFO, &r->log, "identity rejected", "reason",
               te != TOK_OK ? tok_strerror(te) : "malformed credentials",
               NULL);
    return res;
}
