#include "authn.h"
#include "revocation.h"
#include "config/config.h"
#include "token/token_cache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GW_PEM_MAX (64 * 1024)
#define GW_REALM "basalt"

struct gw_authn {
    struct tok_keyset *ks;
    char issuer[256];
    char audience[256];
    struct tok_policy pol; /* points at issuer / audience above */
    struct tok_cache *cache; /* owned, NULL: off (revocation.h) */
    struct gw_revocation *rev;    /* owned, NULL: no revocation checks */
};

void gw_authn_free(struct gw_authn *a)
{
    if (a == NULL)
        return;
    gw_revocation_free(a->rev);
    tok_cache_free(a->cache);
    tok_keyset_free(a->ks);
    free(a);
}

/* Reads a whole (small) file into a malloc'd buffer; NULL + err. */
/* Adds every file of the comma list; 0 or -1 + err. */
static int add_pem_files(struct tok_keyset *ks, const char *list, char *err,
                         size_t errlen)
{
    const char *p = list;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        char path[4096];
        char *pem;
        size_t pemlen = 0;
        int rc;

        while (l > 0 && isspace((unsigned char)*p)) {
            p++;
            l--;
        }
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            l--;
        if (l >= sizeof(path)) {
            snprintf(err, errlen, "JWT_PUBLIC_KEY_FILE: path too long");
            return -1;
        }
        if (l > 0) {
            memcpy(path, p, l);
            path[l] = '\0';
            char why[300];

            pem = cfg_read_file(path, GW_PEM_MAX, &pemlen, why, sizeof(why));
            if (pem == NULL) {
                snprintf(err, errlen, "JWT_PUBLIC_KEY_FILE: %s", why);
                return -1;
            }
            rc = tok_keyset_add_rsa_pem(ks, pem, pemlen, NULL, NULL);
            free(pem);
            if (rc != 0) {
                snprintf(err, errlen, "JWT_PUBLIC_KEY_FILE: %s: not an RSA "
                         "key in PEM, or the same key twice", path);
                return -1;
            }
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

struct gw_authn *gw_authn_new(const struct gw_authn_opts *o, char *err,
                              size_t errlen)
{
    struct gw_authn *a;
    int has_files = o->public_key_files != NULL &&
                    o->public_key_files[0] != '\0';
    int has_secret = o->secret != NULL && o->secret[0] != '\0';

    if (!has_files && !has_secret) {
        snprintf(err, errlen, "JWT_PUBLIC_KEY_FILE: set it (or JWT_SECRET)");
        return NULL;
    }
    if (o->leeway_s < 0 || o->leeway_s > 60) {
        snprintf(err, errlen, "JWT_LEEWAY_S: must be in 0..60");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->ks = tok_keyset_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(a);
        return NULL;
    }
    snprintf(a->issuer, sizeof(a->issuer), "%s", o->issuer);
    snprintf(a->audience, sizeof(a->audience), "%s", o->audience);
    a->pol.issuer = a->issuer;
    a->pol.audience = a->audience;
    a->pol.leeway_s = o->leeway_s;
    if (has_files &&
        add_pem_files(a->ks, o->public_key_files, err, errlen) != 0)
        goto fail;
    if (has_secret &&
        tok_keyset_add_hmac(a->ks, o->secret, strlen(o->secret), NULL) != 0) {
        snprintf(err, errlen, "JWT_SECRET: must be at least 32 bytes");
        goto fail;
    }
    if (tok_keyset_count(a->ks) == 0) {
        snprintf(err, errlen, "JWT_PUBLIC_KEY_FILE: no key in the list");
        goto fail;
    }
    return a;

fail:
    gw_authn_free(a);
    return NULL;
}

/* b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int b64token_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '+' || c == '/';
}

enum gw_bearer_rc gw_authn_bearer(const char *authz, const char **tok,
                                  size_t *len)
{
    const char *p, *start;

    if (authz == NULL)
        return GW_BEARER_MISSING;
    while (*authz == ' ' || *authz == '\t')
        authz++;
    if (strncasecmp(authz, "bearer", 6) != 0 ||
        (authz[6] != ' ' && authz[6] != '\t' && authz[6] != '\0'))
        return GW_BEARER_MISSING;
    p = authz + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    start = p;
    while (b64token_char(*p))
        p++;
    while (*p == '=')
        p++;
    if (p == start)
        return GW_BEARER_MALFORMED;
    *tok = start;
    *len = (size_t)(p - start);
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' ? GW_BEARER_OK : GW_BEARER_MALFORMED;
}

void gw_authn_attach(struct gw_authn *a, struct tok_cache *cache,
                     struct gw_revocation *rev)
{
    a->cache = cache;
    a->rev = rev;
}

enum tok_err gw_authn_verify(const struct gw_authn *a, const char *tok,
                             size_t len, time_t now, struct tok_claims *out)
{
    return tok_cache_verify(a->cache, a->ks, &a->pol, tok, len, now, out);
}

int gw_authn_has_role(const struct gw_route *route,
                      const struct tok_claims *c)
{
    size_t i, j;

    if (route->nroles == 0)
        return 1;
    for (i = 0; i < route->nroles; i++)
        for (j = 0; j < c->nroles && j < TOK_MAX_ROLES; j++)
            if (strcmp(route->roles[i], c->roles[j]) == 0)
                return 1;
    return 0;
}

static void reply_invalid(struct httpd_req *r, const char *why)
{
    char hdr[256];

    snprintf(hdr, sizeof(hdr),
             "Bearer realm=\"" GW_REALM "\", error=\"invalid_token\", "
             "error_description=\"%s\"",
             why);
    httpd_add_header(r, "WWW-Authenticate", hdr);
    httpd_error(r, 401, "invalid_token", "access token is invalid: %s", why);
}

int gw_authn_check(const struct gw_authn *a, struct httpd_req *r,
                   const struct gw_route *route, struct tok_claims *out,
                   int *has_claims)
{
    const char *tok = NULL;
    size_t len = 0;
    enum tok_err e;
    time_t now;

    *has_claims = 0;
    if (route->auth == GW_AUTH_NONE)
        return 0;
    switch (gw_authn_bearer(httpd_header(r, "Authorization"), &tok, &len)) {
    case GW_BEARER_OK:
        break;
    case GW_BEARER_MISSING:
        httpd_add_header(r, "WWW-Authenticate", "Bearer realm=\"" GW_REALM
                                                "\"");
        httpd_error(r, 401, "missing_token",
                    "this route needs an Authorization: Bearer token");
        return -1;
    case GW_BEARER_MALFORMED:
        reply_invalid(r, "malformed Authorization header");
        return -1;
    }
    now = time(NULL);
    e = gw_authn_verify(a, tok, len, now, out);
    if (e != TOK_OK) {
        log_kv(LOG_LVL_INFO, &r->log, "token rejected", "route",
               route->name, "reason", tok_strerror(e), NULL);
        reply_invalid(r, tok_strerror(e));
        return -1;
    }
    if (a->rev != NULL && gw_revocation_check(a->rev, out, now) != 0) {
        log_kv(LOG_LVL_INFO, &r->log, "token rejected", "route",
               route->name, "reason", "revoked", NULL);
        reply_invalid(r, "revoked");
        return -1;
    }
    if (!gw_authn_has_role(route, out)) {
        httpd_add_header(r, "WWW-Authenticate",
                         "Bearer realm=\"" GW_REALM "\", "
                         "error=\"insufficient_scope\"");
        httpd_error(r, 403, "forbidden",
                    "this route needs one of the roles of route %s",
                    route->name);
        return -1;
    }
    *has_claims = 1;
    return 0;
}
