/*
 * ratelimit — per-route request limits shared by every gateway replica
 * through Redis, with GCRA (the generic cell rate algorithm, a token
 * bucket stored as one timestamp): a route allows `limit` requests per
 * `period`, as a burst of at most `limit`, refilling evenly.
 *
 * The decision is one atomic Lua script (EVALSHA, loaded on NOSCRIPT)
 * using Redis' own clock, so replicas on different hosts agree. It runs on
 * the MHD thread handling the request, on a pooled connection with a short
 * command timeout (RATE_LIMIT_TIMEOUT_MS, 50 ms by default): a Redis round
 * trip on loopback costs tens of microseconds, far less than handing the
 * request to another thread and back. When Redis fails, the gateway stops
 * asking it for a second (so a dead Redis costs one timeout per second,
 * not one per request) and answers by the route's fail mode: open (allow)
 * or closed (429... as 503 rate_limit_unavailable).
 *
 * Thread-safety: any thread.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdint.h>

struct gw_ratelimit;

/* The outcome of one decision, in milliseconds. */
struct gw_rl_result {
    int allowed;
    long limit;
    long remaining;      /* requests left in the burst after this one */
    int64_t retry_ms;    /* limited: when the next one would pass */
    int64_t reset_ms;    /* until the bucket is full again */
};

/*
 * GCRA step (the same arithmetic as the Lua script, for tests and
 * reference): `*tat` is the stored theoretical arrival time (0 = none),
 * `now` the clock, `limit` requests per `period_ms`. Updates *tat when
 * the request is allowed. Pure.
 */
void gw_rl_gcra(int64_t *tat, int64_t now, long limit, long period_ms,
                struct gw_rl_result *out);

/* New limiter on REDIS_URL `url` (copied); NULL on a malformed URL. */
struct gw_ratelimit *gw_ratelimit_new(const char *url, int pool_size,
                                      int timeout_ms);
void gw_ratelimit_free(struct gw_ratelimit *rl);

/*
 * Decides one request for `key` (e.g. "route:u:<sub>"). Returns 0 with
 * *out filled, or -1 when Redis could not decide (then the caller applies
 * the fail mode).
 */
int gw_ratelimit_check(struct gw_ratelimit *rl, const char *key, long limit,
                       long period_ms, struct gw_rl_result *out);

#endif
