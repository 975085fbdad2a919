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
 *    policy (alg bound to kid, iss, aud, exp/nbf with leeway); with a
 *    token cache, a token that verified moments ago is not verified again
 *    (the revocation check below still runs on every request).
 *
 * When the config holds a revocation cache (libs/identity/revocation.h),
 * a bearer token must also not be revoked (logout denylist, per-user
 * marker); Redis trouble then follows `rev_fail_open`. Identities passed
 * by the gateway were checked there already.
 *
 * The core, ident_resolve(), works on plain header strings so it can be
 * tested without a server; ident_from_req() reads an httpd request.
 *
 * Shared by the platform and automation services (prefix ident_).
 *
 * Thread-safety: the config is read-only after set-up; resolve may run on
 * any number of threads at once.
 */
#ifndef BASALT_IDENTITY_H
#define BASALT_IDENTITY_H

#include <stddef.h>
#include <time.h>

#include "token/token.h"

struct httpd_req;
struct ident_rev;
struct tok_cache;

struct ident_cfg {
    const struct tok_keyset *keyset;   /* borrowed; NULL: no bearers */
    struct tok_policy policy;          /* strings borrowed */
    struct tok_cache *cache;           /* borrowed; NULL: verify each
                                          bearer (token/token_cache.h) */
    const char *internal_token;        /* NULL or "": trust no headers */
    struct ident_rev *rev;             /* NULL: no revocation check */
    int rev_fail_open;                 /* Redis down: 1 accept, 0 refuse */
};

enum ident_source {
    IDENT_BEARER = 1,
    IDENT_GATEWAY = 2,
};

struct ident {
    enum ident_source source;
    char user_id[64];
    char email[320];          /* "" when the caller did not say */
    char roles_csv[TOK_MAX_ROLES * 33];
    char jti[64];             /* bearer only; "" from the gateway */
    long long exp;            /* bearer only; 0 from the gateway */
};

enum ident_result {
    IDENT_OK = 0,
    IDENT_MISSING,    /* no credentials at all */
    IDENT_INVALID,    /* credentials present but not acceptable */
};

/* The request headers that matter; any may be NULL. */
struct ident_headers {
    const char *authorization;
    const char *internal_token;
    const char *user_id;
    const char *user_email;
    const char *user_roles;
};

/*
 * Decides who is calling at time `now`. Fills *out on IDENT_OK.
 * On IDENT_INVALID, `*tok_err` (when not NULL) gets the token
 * error for logging (TOK_OK when the failure was not the token's).
 */
enum ident_result
ident_resolve(const struct ident_cfg *cfg,
                      const struct ident_headers *h, time_t now,
                      struct ident *out, enum tok_err *tok_err);

/* ident_resolve() over an httpd request's headers, now = time(). */
enum ident_result
ident_from_req(const struct ident_cfg *cfg,
                       struct httpd_req *r, struct ident *out);

/*
 * 1 when an internal token is configured and `header` (X-Internal-Token,
 * may be NULL) equals it: same length, CRYPTO_memcmp. Else 0.
 */
int ident_internal_ok(const struct ident_cfg *cfg,
                              const char *header);

/*
 * Extracts the token from "Bearer <token>" (scheme case-insensitive,
 * RFC 6750 §2.1). Returns a pointer into `authorization` and its length
 * in *len, or NULL when the header is not a bearer credential.
 */
const char *ident_bearer(const char *authorization, size_t *len);

/*
 * 1 when comma list `csv` (may be NULL; spaces around items ignored)
 * holds exactly `role`. Pure.
 */
int ident_roles_contain(const char *csv, const char *role);

#endif
