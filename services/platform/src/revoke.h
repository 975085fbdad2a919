/*
 * revoke — the platform's writer side of access-token revocation
 * (libs/identity/revocation.h has the key and message formats): denylist
 * jtis and set per-user markers in Redis, announce them on the pub/sub
 * channel, and tell this process's own verifier cache at once.
 *
 * PostgreSQL keeps what is needed to rebuild Redis (revoked rows with
 * their access_jti/access_exp, users.tokens_valid_after), so
 * plat_revoke_republish() at start restores a lost Redis.
 *
 * Redis errors are logged at error level and returned; the caller has
 * already committed the database side (refresh tokens are dead either
 * way), so only access tokens live on until their exp.
 *
 * Thread-safety: any request thread.
 */
#ifndef PLAT_REVOKE_H
#define PLAT_REVOKE_H

#include "log/log.h"
#include "users_db.h"

struct plat_ctx;

/* Denylists every jti of `j`. 0, or -1 when Redis failed. */
int plat_revoke_jtis(struct plat_ctx *ctx, const struct log_ctx *lc,
                     const struct plat_jtis *j);

/* Denylists one access token until `exp`. 0 or -1. */
int plat_revoke_jti(struct plat_ctx *ctx, const struct log_ctx *lc,
                    const char *jti, long long exp);

/* Refuses every token of `user_id` issued before `t` (epoch s). 0/-1. */
int plat_revoke_user(struct plat_ctx *ctx, const struct log_ctx *lc,
                     const char *user_id, long long t);

/* Start-up: re-writes everything still relevant from PostgreSQL. */
int plat_revoke_republish(struct plat_ctx *ctx);

#endif
