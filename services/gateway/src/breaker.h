/*
 * breaker — a circuit breaker per upstream target (pure state machine).
 *
 *   closed --(N consecutive failures, or the failed share of the last
 *             `window` results >= error_rate)--> open
 *   open --(open_ms elapsed)--> half_open: one probe request at a time
 *   half_open --(probe succeeds)--> closed, --(probe fails)--> open
 *
 * A "failure" is decided by the caller (the proxy counts transport errors,
 * timeouts and 502/503/504). Times are monotonic seconds.
 *
 * Thread-safety: none; the caller serialises access (pool.c holds the
 * target's lock).
 */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stdint.h>

#include "routes.h"

enum gw_breaker_state {
    GW_BREAKER_CLOSED = 0,
    GW_BREAKER_OPEN = 1,
    GW_BREAKER_HALF_OPEN = 2,
};

struct gw_breaker {
    enum gw_breaker_state state;
    int consecutive;      /* failures in a row */
    uint64_t window;      /* result bits, 1 = failure, newest at bit 0 */
    int window_n;         /* results recorded in the window (<= size) */
    double opened_at;
    int probe_out;        /* half-open: the probe is in flight */
};

/* A closed breaker. Can't fail. */
void gw_breaker_init(struct gw_breaker *b);

/* 1 when a request may go now, without taking the half-open probe. */
int gw_breaker_would_allow(const struct gw_breaker *b,
                           const struct gw_breaker_opts *o, double now);

/*
 * 1 when a request may go now; in half-open (entered here once open_ms
 * has passed) it takes the single probe slot, so the caller must later
 * call gw_breaker_record for it.
 */
int gw_breaker_allow(struct gw_breaker *b, const struct gw_breaker_opts *o,
                     double now);

/* Records a result: ok 1 success, 0 failure, -1 neither (cancelled). */
void gw_breaker_record(struct gw_breaker *b, const struct gw_breaker_opts *o,
                       int ok, double now);

/* "closed", "open" or "half_open". */
const char *gw_breaker_state_name(enum gw_breaker_state s);

#endif
