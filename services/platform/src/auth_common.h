/*
 * auth_common — pieces every auth handler shares: pooled connections with
 * the right error replies, the user JSON, the client's address and user
 * agent for session rows, issuing a token pair for a session, and who is
 * calling (with the access token's jti when a bearer token came along).
 *
 * Thread-safety: any request thread.
 */
#ifndef PLAT_AUTH_COMMON_H
#define PLAT_AUTH_COMMON_H

#include <jansson.h>
#include <libpq-fe.h>

#include "httpd/httpd.h"
#include "plat.h"
#include "refresh.h"
#include "users_db.h"

/* How long a request waits for a pooled connection / argon2 slot. */
#define PLAT_PG_WAIT_MS 2000
#define PLAT_ARGON2_WAIT_MS 5000
#define PLAT_USER_AGENT_MAX 512
#define PLAT_IP_MAX 56

/* A connection, or NULL after answering 503 db_unavailable. */
PGconn *plat_auth_pg(struct plat_ctx *ctx, struct httpd_req *r);
/* Releases `c` (NULL is fine), as broken after PLAT_DB_UNAVAILABLE. */
void plat_auth_pg_release(struct plat_ctx *ctx, PGconn *c, enum plat_db rc);
/* Answers 503 db_unavailable or 500 internal_error for a failed call. */
void plat_auth_db_error(struct httpd_req *r, enum plat_db rc);

/* {"id","email","roles","created_at"}; NULL on OOM. */
json_t *plat_auth_user_json(const struct plat_user *u);

/* Session-row metadata; see README "Client IP". */
void plat_auth_client_ip(struct plat_ctx *ctx, struct httpd_req *r,
                         char *buf, size_t len);
void plat_auth_user_agent(struct httpd_req *r, char *buf, size_t len);

/* A freshly issued pair; free with plat_auth_pair_cleanup. */
struct plat_auth_pair {
    char *access;                              /* malloc'd JWT */
    char jti[33];
    long long access_exp;
    char refresh[PLAT_REFRESH_TEXT_LEN + 1];
    char family_id[37];
};
void plat_auth_pair_cleanup(struct plat_auth_pair *p);

/*
 * Signs an access token for `u` and stores a new refresh token for it on
 * `c` (in the caller's transaction, if any): in family `family_id` with
 * parent `parent_id`, or a new family when both are NULL. Fills *out.
 * PLAT_DB_ERROR when signing or the RNG failed (logged).
 */
enum plat_db plat_auth_issue(struct plat_ctx *ctx, struct httpd_req *r,
                             PGconn *c, const struct plat_user *u,
                             const char *family_id, const char *parent_id,
                             struct plat_auth_pair *out);

/* The token response body (see README, POST /auth/login). */
json_t *plat_auth_pair_json(struct plat_ctx *ctx,
                            const struct plat_auth_pair *p,
                            const struct plat_user *u);

/* 401 unauthorized with WWW-Authenticate (error="invalid_token"). */
void plat_auth_unauthorized(struct httpd_req *r, int invalid);

/* The caller; jti / exp of its bearer token when one was sent. */
struct plat_caller {
    struct ident id;
    char jti[64];        /* "" when no bearer token came along */
    long long exp;
    int admin;
};

/*
 * Identifies the caller (ident_from_req) and reads the jti/exp of the
 * bearer token when present and valid for the same user. 0, or -1 after
 * answering 401.
 */
int plat_auth_caller(struct plat_ctx *ctx, struct httpd_req *r,
                     struct plat_caller *out);

/* 429 rate_limited with Retry-After: `secs` (>= 1). */
void plat_auth_too_many(struct httpd_req *r, long secs);

#endif
