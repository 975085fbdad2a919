/*
 * pool — the live state of the upstream pools: targets by colour with
 * their weights (changed at run time by the admin API), health (active
 * checks and passive outlier detection), a circuit breaker per target,
 * in-flight counts for least_requests, and target selection.
 *
 * Pools are created from the routes file and live until gw_pools_cleanup,
 * across reloads: a reload re-applies a pool's definition only when the
 * file (plus env) changed it since the last load, so weights set through
 * the admin API survive a SIGHUP that did not touch that pool.
 *
 * Thread-safety: every function may be called from any thread. A pool's
 * mutex guards its colour arrays, weights and settings; a target's mutex
 * guards its breaker; health and in-flight counts are atomics. Targets
 * are reference counted: a request holds its target until it is done.
 */
#ifndef GW_POOL_H
#define GW_POOL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "breaker.h"
#include "routes.h"

#define GW_POOL_MAX_TARGETS 64 /* per colour */

struct gw_target {
    atomic_int refs;
    char *url;                 /* base URL, no trailing slash */
    enum gw_color color;
    struct gw_pool *pool;      /* pools outlive targets */
    atomic_long inflight;
    atomic_int healthy;        /* 0 once ejected */
    pthread_mutex_t mu;        /* guards br, fails */
    struct gw_breaker br;
    int fails;                 /* consecutive failed requests (outlier) */
    int hc_fail;               /* (curl thread) consecutive failed checks */
    int hc_busy;               /* (curl thread) a check is running */
};

struct gw_pool {
    char name[GW_NAME_MAX];
    pthread_mutex_t mu;
    enum gw_balance balance;
    int sticky;
    int weight[GW_NCOLORS];
    struct gw_target **targets[GW_NCOLORS];
    size_t ntargets[GW_NCOLORS];
    char hc_path[256];         /* "" = no active checks */
    long hc_interval_ms;
    long hc_timeout_ms;
    struct gw_breaker_opts bopts;
    char *file_def;            /* definition last applied from the file */
    unsigned rr;
    double hc_next;            /* (curl thread) next check round */
    struct gw_pool *next;
};

struct gw_pools {
    pthread_mutex_t mu;        /* guards the list */
    struct gw_pool *head;
};

void gw_pools_init(struct gw_pools *ps);
/* Frees every pool. No request may be running. */
void gw_pools_cleanup(struct gw_pools *ps);

/*
 * Creates / updates the pools named by `rt`'s upstreams and points each
 * upstream's `pool` at its pool (call before sharing rt). Can't fail
 * (aborts on OOM like the rest of the gateway).
 */
void gw_pools_sync(struct gw_pools *ps, struct gw_routes *rt);

/* The pool called `name`, or NULL. */
struct gw_pool *gw_pools_find(struct gw_pools *ps, const char *name);

enum gw_pick_rc {
    GW_PICK_OK = 0,
    GW_PICK_EMPTY,       /* the pool has no target at all */
    GW_PICK_OPEN,        /* every candidate's breaker is open */
};

/*
 * Picks a target: colour by weight (or by a hash of `sticky_key` when the
 * pool is sticky and the key is not NULL), then a healthy target whose
 * breaker allows a request, round robin or least requests; falls back to
 * the other colour (weight > 0) and then to unhealthy targets (panic)
 * before giving up. `exclude` (may be NULL) is skipped (retries).
 * On GW_PICK_OK *out holds a reference and counts as in flight: finish it
 * with gw_target_done. `now` is monotonic seconds.
 */
enum gw_pick_rc gw_pool_pick(struct gw_pool *pool, const char *sticky_key,
                             const struct gw_target *exclude, double now,
                             struct gw_target **out);

/*
 * Records a request's result on its target (ok 1, failure 0, -1 neither:
 * cancelled), feeds the breaker and passive outlier detection, drops the
 * in-flight count and the reference.
 */
void gw_target_done(struct gw_target *t, int ok, double now);

void gw_target_retain(struct gw_target *t);
void gw_target_release(struct gw_target *t);

/* Active health check result (curl thread). */
void gw_target_health_result(struct gw_target *t, int ok);

/* "blue" / "green". */
const char *gw_color_name(enum gw_color c);

/* Admin view of a pool (the contract in design notes). New reference. */
json_t *gw_pool_json(struct gw_pool *pool, double now);

/*
 * Applies an admin PUT body {"weights":{"blue":n,"green":m},
 * "targets":{"green":[urls]}} atomically. 0, or -1 with a one-line
 * reason in err (nothing changed then).
 */
int gw_pool_update(struct gw_pool *pool, json_t *body, char *err,
                   size_t errlen);

/*
 * Snapshot of every target of the pool with a reference each, for the
 * health checker: returns the count (<= max) written to out.
 */
size_t gw_pool_targets(struct gw_pool *pool, struct gw_target **out,
                       size_t max);

#endif
