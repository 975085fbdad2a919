/*
 * revocation — the gateway refuses access tokens that were revoked
 * before their exp: logged out (jti denylist) or issued before the
 * user's revocation marker (disabled user, role change). Formats and the
 * verifier cache come from libs/identity/revocation.h.
 *
 * Hot path: a local lookup (ident_rev_check); Redis is asked only when
 * a token's "not revoked" answer is older than REVOCATION_CACHE_TTL_S.
 * A subscriber thread listens on basalt:revocations, so a logout or a
 * disable reaches this gateway within milliseconds; when the
 * subscription drops, every cached "not revoked" answer is forgotten
 * (messages may have been missed) and it reconnects every second.
 *
 * Redis unreachable when it must be asked: REVOCATION_FAIL_OPEN (default
 * true) accepts the token (logged at warn, at most every 10 s, and
 * counted in gateway_revocation_unavailable_total); false refuses it.
 * Revocations already learned stay enforced either way.
 *
 * Settings (read by gw_authn_setup_revocation): REDIS_URL (unset: no
 * revocation checks, logged), REVOCATION_CACHE_TTL_S (1..30, 30),
 * REVOCATION_FAIL_OPEN (true), TOKEN_CACHE_SIZE (entries, 0 = off,
 * 10000), TOKEN_CACHE_TTL_S (1..300, 60).
 *
 * Thread-safety: gw_revocation_check from any request thread.
 */
#ifndef GW_REVOCATION_H
#define GW_REVOCATION_H

#include <stddef.h>
#include <time.h>

#include "token/token.h"

struct gw_authn;
struct gw_revocation;

struct gw_revocation_opts {
    const char *redis_url;
    int cache_ttl_s;
    int fail_open;
};

/* New checker (pool, cache, subscriber thread running). NULL + err. */
struct gw_revocation *gw_revocation_new(const struct gw_revocation_opts *o,
                                        char *err, size_t errlen);
/* Stops the subscriber and frees. NULL is fine. */
void gw_revocation_free(struct gw_revocation *rv);

/* 0 when `c` may pass at `now`; -1 when revoked (or Redis is down and
 * fail-closed). */
int gw_revocation_check(struct gw_revocation *rv, const struct tok_claims *c,
                        time_t now);

/* Applies a pub/sub message as if received (tests). */
void gw_revocation_note(struct gw_revocation *rv, const char *msg);

/*
 * Reads the settings above from the environment and attaches a token
 * cache and a revocation checker to `a` (which then owns them). 0, or
 * -1 with one line naming the setting in `err`. Main thread, at start.
 */
int gw_authn_setup_revocation(struct gw_authn *a, char *err, size_t errlen);

#endif
