/*
 * revocation — access tokens that stop working before their "exp":
 * logged-out tokens (a jti denylist) and every token of a user issued
 * before a moment (a per-user marker: disabled users, role changes).
 *
 * Redis holds the shared state; the platform writes it, every verifier
 * (gateway, services through libs/identity) reads it:
 *   basalt:revoked:jti:<jti>   "1", expires at the token's exp
 *   basalt:revoked:user:<sub>  "<T>": tokens with iat < T (epoch seconds)
 *                              are revoked; expires when no token issued
 *                              before T can still be alive
 * and every write is announced on the pub/sub channel basalt:revocations:
 *   "jti <jti> <exp>"          "user <sub> <T> <expire_at>"
 * so verifiers holding a cache drop it at once. Redis may be lost: the
 * platform re-writes what is still relevant from PostgreSQL at start.
 *
 * struct ident_rev is the verifier side: a local cache in front of Redis.
 * A token found not revoked is trusted for `ttl_s` seconds without asking
 * Redis again; revocations learned from Redis or from a pub/sub message
 * (ident_rev_note) win over that at once. Tables are bounded (a collision
 * overwrites), so memory stays fixed; a lost entry only costs a Redis
 * round trip, or, for a lost marker, waiting for the ttl.
 *
 * Thread-safety: after ident_rev_new, every function may be called from
 * any thread (each table has its own mutex).
 */
#ifndef BASALT_IDENT_REVOCATION_H
#define BASALT_IDENT_REVOCATION_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <time.h>

#include "redispool/redispool.h"

#define IDENT_REV_CHANNEL "basalt:revocations"
#define IDENT_REV_JTI_PREFIX "basalt:revoked:jti:"
#define IDENT_REV_USER_PREFIX "basalt:revoked:user:"
/* Longest jti / sub accepted in keys and messages. */
#define IDENT_REV_ID_MAX 63

enum ident_rev_result {
    IDENT_REV_OK = 0,      /* not revoked (as far as we know) */
    IDENT_REV_REVOKED,     /* denylisted jti, or iat before the marker */
    IDENT_REV_UNAVAILABLE, /* Redis could not be asked; caller decides */
};

struct ident_rev;

/*
 * New verifier cache over `pool` (borrowed; NULL: local state only, as in
 * tests). `ttl_s` (1..300) bounds how long a "not revoked" answer is
 * reused. NULL on OOM.
 */
struct ident_rev *ident_rev_new(struct redispool *pool, int ttl_s);
void ident_rev_free(struct ident_rev *rv);

/*
 * Is the token (`sub`, `jti`, issued at `iat`, expiring at `exp`)
 * revoked at `now`? Local state first; Redis only when the cached "not
 * revoked" answer is older than ttl_s. IDENT_REV_UNAVAILABLE when Redis
 * was needed and failed (then no answer is cached; after a failure Redis
 * is skipped for a second so an outage does not cost a timeout per call).
 */
enum ident_rev_result ident_rev_check(struct ident_rev *rv, const char *sub,
                                      const char *jti, long long iat,
                                      long long exp, time_t now);

/*
 * Applies one pub/sub message (see the header comment). 0, or -1 when the
 * message is malformed (ignored).
 */
int ident_rev_note(struct ident_rev *rv, const char *msg, size_t len,
                   time_t now);

/* Forgets every cached "not revoked" answer (after missed messages). */
void ident_rev_forget_ok(struct ident_rev *rv);

/* The bare local-state predicate (pure): marker T revokes iat < T. */
int ident_rev_marker_revokes(long long marker, long long iat);

/*
 * Writer side (the platform), on a connection the caller holds:
 * denylists `jti` until `exp` / sets the marker of `sub` to `t` until
 * `expire_at`, then PUBLISHes it. 0, or -1 on a Redis error (the caller
 * logs it; the context may be broken: release it as broken).
 */
int ident_rev_publish_jti(redisContext *c, const char *jti, long long exp);
int ident_rev_publish_user(redisContext *c, const char *sub, long long t,
                           long long expire_at);

#endif
