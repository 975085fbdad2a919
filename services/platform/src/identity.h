/*
 * identity — who is calling: a bearer access token verified here, or the
 * identity the gateway already verified, passed in X-User-Id /
 * X-User-Email / X-User-Roles.
 *
 * Trust rules (design.md, "Cross-service conventions"):
 *  - the X-User-* headers count only when an internal token is configured
 *    and the request's X-Internal-Token equals it (same length, compared
 *    with CRYPTO_memcmp); otherwise they are ignored, never an error, and
 *    the bearer token decides;
 *  - a bearer token must pass tok_verify() with the configured keyset and
 *    policy (alg bound to kid, iss, aud, exp/nbf with leeway).
 *
 * The core, plat_identity_resolve(), works on plain header strings so it
 * does not depend on httpd and can move to a lib shared with automation.
 *
 * Thread-safety: the config is read-only after set-up; resolve may run on
 * any number of threads at once.
 */
#ifndef PLAT_IDENTITY_H
#define PLAT_IDENTITY_H

#include <stddef.h>
#include <time.h>

#include "token/token.h"

struct httpd_req;

struct plat_identity_cfg {
    const struct tok_keyset *keyset;   /* borrowed */
    struct tok_policy policy;          /* strings borrowed */
    const char *internal_token;        /* NULL or "": trust no headers */
};

enum plat_identity_source {
    PLAT_IDENTITY_BEARER = 1,
    PLAT_IDENTITY_GATEWAY = 2,
};

struct plat_identity {
    enum plat_identity_source source;
    char user_id[64];
    char email[320];          /* "" when the caller did not say */
    char roles_csv[TOK_MAX_ROLES * 33];
    char jti[64];             /* bearer only; "" from the gateway */
    long long exp;            /* bearer only; 0 from the gateway */
};

enum plat_identity_result {
    PLAT_IDENTITY_OK = 0,
    PLAT_IDENTITY_MISSING,    /* no credentials at all */
    PLAT_IDENTITY_INVALID,    /* credentials present but not acceptable */
};

/* The request headers that matter; any may be NULL. */
struct plat_identity_headers {
    const char *authorization;
    const char *internal_token;
    const char *user_id;
    const char *user_email;
    const char *user_roles;
};

/*
 * Decides who is calling at time `now`. Fills *out on PLAT_IDENTITY_OK.
 * On PLAT_IDENTITY_INVALID, `*tok_err` (when not NULL) gets the token
 * error for logging (TOK_OK when the failure was not the token's).
 */
enum plat_identity_result
plat_identity_resolve(const struct plat_identity_cfg *cfg,
                      const struct plat_identity_headers *h, time_t now,
                      struct plat_identity *out, enum tok_err *tok_err);

/* plat_identity_resolve() over an httpd request's headers, now = time(). */
enum plat_identity_result
plat_identity_from_req(const struct plat_identity_cfg *cfg,
                       struct httpd_req *r, struct plat_identity *out);

/*
 * 1 when an internal token is configured and `header` (X-Internal-Token,
 * may be NULL) equals it: same length, CRYPTO_memcmp. Else 0.
 */
int plat_identity_internal_ok(const struct plat_identity_cfg *cfg,
                              const char *header);

/*
 * Extracts the token from "Bearer <token>" (scheme case-insensitive,
 * RFC 6750 §2.1). Returns a pointer into `authorization` and its length
 * in *len, or NULL when the header is not a bearer credential.
 */
const char *plat_identity_bearer(const char *authorization, size_t *len);

#endif
