/*
 * authn — bearer access-token checks at the edge (RFC 6750).
 *
 * The gateway verifies the access token of every "auth": "token" route with
 * the token lib (RS256 public keys and/or an HS256 secret, iss/aud/exp/nbf
 * with leeway) and, when the route lists roles, requires one of them.
 * Failures are answered here in the design's error shape:
 *   401 missing_token  no Authorization header or not the Bearer scheme
 *   401 invalid_token  malformed bearer header or a token that fails
 *                      verification; WWW-Authenticate carries
 *                      error="invalid_token" (RFC 6750 §3)
 *   403 forbidden      verified, but none of the route's roles
 *
 * Thread-safety: a struct gw_authn is built at start-up, then any number of
 * request threads may use it at once (it is only read).
 */
#ifndef GW_AUTHN_H
#define GW_AUTHN_H

#include <stddef.h>
#include <time.h>

#include "httpd/httpd.h"
#include "routes.h"
#include "token/token.h"

struct gw_authn;

struct gw_authn_opts {
    const char *public_key_files; /* comma list of RSA PEM paths, or NULL */
    const char *secret;           /* HS256 secret (>= 32 bytes), or NULL */
    const char *issuer;
    const char *audience;
    int leeway_s;                 /* 0..60 */
};

/*
 * Loads the keys (several PEM files allow key rotation: every one verifies).
 * At least one of public_key_files / secret is required. NULL with one line
 * in `err` naming the file or setting at fault.
 */
struct gw_authn *gw_authn_new(const struct gw_authn_opts *o, char *err,
                              size_t errlen);
void gw_authn_free(struct gw_authn *a);

enum gw_bearer_rc {
    GW_BEARER_OK = 0,
    GW_BEARER_MISSING,   /* no header, or a scheme other than Bearer */
    GW_BEARER_MALFORMED, /* Bearer with no token, two tokens, bad chars */
};

/*
 * Extracts the token from an Authorization header value (may be NULL):
 * scheme "Bearer" in any case, one or more spaces, one b64token (RFC 6750
 * §2.1), optional trailing spaces. On GW_BEARER_OK *tok / *len point into
 * `authz`. Pure; can't fail otherwise.
 */
enum gw_bearer_rc gw_authn_bearer(const char *authz, const char **tok,
                                  size_t *len);

struct tok_cache;
struct gw_revocation;

/*
 * Gives `a` a verified-token cache and a revocation checker (either may
 * be NULL; `a` owns and frees them). With a cache, gw_authn_verify skips
 * the signature check for a token verified moments ago; with a checker,
 * gw_authn_check refuses revoked tokens (401 invalid_token "revoked").
 * Start-up only (see revocation.h, gw_authn_setup_revocation).
 */
void gw_authn_attach(struct gw_authn *a, struct tok_cache *cache,
                     struct gw_revocation *rev);

/* Verifies a token at `now`; see tok_verify(). Cached when attached. */
enum tok_err gw_authn_verify(const struct gw_authn *a, const char *tok,
                             size_t len, time_t now, struct tok_claims *out);

/* 1 when the route lists no roles or the claims hold one of them. */
int gw_authn_has_role(const struct gw_route *route,
                      const struct tok_claims *c);

/*
 * The whole check for one request on `route`: 0 when it may proceed (and
 * *out holds the claims for "token" routes; *has_claims says whether it
 * does), -1 when an error reply (401/403) has been sent.
 */
int gw_authn_check(const struct gw_authn *a, struct httpd_req *r,
                   const struct gw_route *route, struct tok_claims *out,
                   int *has_claims);

#endif
