/*
 * automation — the job queue, its worker pool and the jobs HTTP API.
 *
 * Modules (prefix auto_):
 *   queue.c      SQL on automation.jobs: enqueue, claim under a lease,
 *                complete / fail / cancel / release, heartbeat, API reads
 *   listener.c   the waker and the LISTEN thread (NOTIFY -> wake-ups)
 *   workers.c    the worker pool, lease heartbeat, queue depth, drain
 *   job_types.c  job type registry: argument validation and handlers
 *   jobs_api.c   /automation/jobs HTTP handlers
 *   identity.c   caller identity (gateway headers or bearer token)
 *   workflows.h  workflows, scheduler, emit_event, events (declared there)
 *
 * Job life cycle (state column):
 *
 *   enqueue --> available --+            (run_at in the future: scheduled)
 *               scheduled --+--claim--> running --+--> succeeded
 *                   ^                             +--> retryable --back-off,
 *                   |                             |      then claimed again
 *                   +---- POST .../retry ---------+--> dead (attempts used up)
 *                                                 +--> cancelled
 *
 *   A running job whose lease expires is claimed again (or goes dead when
 *   it has no attempts left); drain on SIGTERM puts it back to available.
 */
#ifndef BASALT_AUTO_H
#define BASALT_AUTO_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "httpd/httpd.h"
#include "metrics/metrics.h"
#include "pgpool/pgpool.h"
#include "token/token.h"

#define AUTO_TYPE_MAX 64
#define AUTO_WORKER_ID_MAX 128
#define AUTO_ERROR_MAX 1024
#define AUTO_KEY_MAX 255
#define AUTO_PRIORITY_MIN 1      /* runs first */
#define AUTO_PRIORITY_MAX 4
#define AUTO_PRIORITY_DEFAULT 2
#define AUTO_NOTIFY_CHANNEL "automation_jobs"

/* Results of queue operations. */
enum auto_res {
    AUTO_OK = 0,
    AUTO_ENOTFOUND,   /* no such job (or another owner's) */
    AUTO_ECONFLICT,   /* job is in a state that forbids the operation */
    AUTO_ELOST,       /* the caller no longer holds the job's lease */
    AUTO_EINVAL,      /* PostgreSQL rejected a value (e.g. run_at) */
    AUTO_EUNAVAIL,    /* PostgreSQL unreachable: answer 503 */
    AUTO_EDB,         /* other SQL error (logged) */
};

/* ---- queue.c ---------------------------------------------------------- */

/* Queue settings; immutable after auto_queue_init, shared by all threads. */
struct auto_queue {
    struct pgpool *pg;       /* borrowed */
    int lease_s;             /* lease granted by claim and heartbeat */
    int retry_base_ms;       /* back-off: base * 2^(attempt-1), +-20% */
    int retry_max_ms;        /* back-off cap */
    int acquire_ms;          /* wait for a pooled connection */
    /* Set by auto_pool_new (NULL until then): wakes that pool's idle
     * workers at once after an enqueue on this replica, without waiting
     * for the NOTIFY round trip. Called on the enqueuing thread. */
    void (*kick)(void *arg);
    void *kick_arg;
};

/* A claimed job. args is a new reference (auto_job_cleanup drops it). */
struct auto_job {
    long long id;
    char type[AUTO_TYPE_MAX + 1];
    json_t *args;
    int attempts;            /* including this one */
    int max_attempts;
    char state[16];          /* "running", or "dead"/"cancelled" when the
                                claim found an expired lease it may not
                                rerun */
    double wait_s;           /* now - run_at at claim (queue latency) */
    char owner_id[64];       /* the job's owner (events, emit_event) */
};

void auto_job_cleanup(struct auto_job *j);

/* Enqueue request; strings borrowed. NULL run_at / key mean none. */
struct auto_enqueue {
    const char *type;
    const json_t *args;      /* object */
    int priority;
    const char *run_at;      /* RFC 3339, validated by the caller */
    int max_attempts;
    const char *idempotency_key;
    const char *owner_id;    /* never NULL ("system" for internal jobs) */
};

/* Filters for listing; NULL / 0 mean "any". */
struct auto_list_filter {
    const char *owner_id;    /* NULL: every owner (admins) */
    const char *state;
    const char *type;
    long long before_id;     /* cursor: ids strictly below; 0 = newest */
    int limit;               /* 1..100 */
};

/* Can't fail. */
void auto_queue_init(struct auto_queue *q, struct pgpool *pg, int lease_s,
                     int retry_base_ms, int retry_max_ms);

/*
 * Inserts a job (state scheduled when run_at is in the future, else
 * available; the table's trigger sends NOTIFY automation_jobs in the same
 * transaction). With an idempotency key already used by this owner no row
 * is added and the existing job is returned with *created = 0.
 * *job_out: new reference to the job's JSON shape (auto_job_json in SQL).
 */
enum auto_res auto_queue_enqueue(struct auto_queue *q,
                                 const struct auto_enqueue *in,
                                 json_t **job_out, int *created);

/*
 * Claims up to `max` jobs (one statement, FOR UPDATE SKIP LOCKED): due
 * available/scheduled/retryable jobs and running jobs whose lease expired,
 * in (priority, run_at, id) order. Claimed jobs become running with
 * attempts + 1, locked_by = worker_id and a lease of lease_s. An expired
 * job with no attempts left becomes dead (cancel requested: cancelled) and
 * is returned with that state so the caller can count it.
 * Fills out[0..*n). Caller cleans each job up.
 */
enum auto_res auto_queue_claim(struct auto_queue *q, const char *worker_id,
                               int max, struct auto_job *out, size_t *n);

/*
 * The finishing operations below change the job only while it is still
 * running under this worker's claim (locked_by and attempts match), so a
 * worker whose lease expired and whose job was claimed again cannot finish
 * it a second time: they return AUTO_ELOST then.
 */

/* running -> succeeded; result may be NULL (stored as null). */
enum auto_res auto_queue_complete(struct auto_queue *q,
                                  const struct auto_job *j,
                                  const char *worker_id, const json_t *result);

/*
 * running -> retryable (run_at = now + back-off) or dead when attempts
 * reached max_attempts. Appends {"attempt","at","error"} to errors.
 * *dead (may be NULL) is set to 1 when the job went dead.
 */
enum auto_res auto_queue_fail(struct auto_queue *q, const struct auto_job *j,
                              const char *worker_id, const char *error,
                              int *dead);

/* running -> cancelled (the handler stopped on a cancel request). */
enum auto_res auto_queue_cancelled(struct auto_queue *q,
                                   const struct auto_job *j,
                                   const char *worker_id);

/*
 * running -> available at once, lease cleared and attempts - 1: the job
 * did not fail, this replica is shutting down, so the interrupted attempt
 * is not counted against max_attempts.
 */
enum auto_res auto_queue_release(struct auto_queue *q,
                                 const struct auto_job *j,
                                 const char *worker_id);

/* Releases (as above) every running job locked by worker ids starting
 * with `prefix`; *n (may be NULL) gets how many. */
enum auto_res auto_queue_release_all(struct auto_queue *q, const char *prefix,
                                     long *n);

/*
 * Extends the leases of the given running jobs (ids[i] claimed with
 * attempts[i]) locked by workers whose id starts with `prefix`.
 * For each id whose cancel was requested, calls on_cancel(arg, id).
 */
enum auto_res auto_queue_heartbeat(struct auto_queue *q, const char *prefix,
                                   const long long *ids, const int *attempts,
                                   size_t n,
                                   void (*on_cancel)(void *, long long),
                                   void *arg);

/* Stores progress (pct 0..100, msg may be NULL). *cancel gets 1 when a
 * cancel was requested. AUTO_ELOST when the lease is gone. */
enum auto_res auto_queue_progress(struct auto_queue *q,
                                  const struct auto_job *j,
                                  const char *worker_id, int pct,
                                  const char *msg, int *cancel);

/* Jobs ready to run now (due and not running). */
enum auto_res auto_queue_depth(struct auto_queue *q, long *depth);

/* One job as JSON; owner NULL means any owner. */
enum auto_res auto_queue_get(struct auto_queue *q, long long id,
                             const char *owner, json_t **out);

/* Newest first; *out is a JSON array. */
enum auto_res auto_queue_list(struct auto_queue *q,
                              const struct auto_list_filter *f, json_t **out);

/*
 * available/scheduled/retryable -> cancelled (*running = 0); running ->
 * cancel_requested, the handler stops soon (*running = 1); finished jobs
 * give AUTO_ECONFLICT. *out: the job after the change (or as it is on
 * conflict).
 */
enum auto_res auto_queue_cancel(struct auto_queue *q, long long id,
                                const char *owner, json_t **out,
                                int *running);

/* dead/cancelled/retryable -> available, attempts 0; else ECONFLICT. */
enum auto_res auto_queue_retry(struct auto_queue *q, long long id,
                               const char *owner, json_t **out);

/*
 * Runs the statement `name`, prepared from `sql` on its first use on each
 * pooled connection (queue_batch.c). Results and errors as every queue
 * call: AUTO_OK with *res set (caller PQclear's), else the mapped error.
 */
enum auto_res auto_queue_run_prepared(struct auto_queue *q, const char *name,
                                      const char *sql, int n,
                                      const char *const *params,
                                      PGresult **res);

/*
 * Worker hot path (queue_batch.c). Stores `succeeded` for n jobs in one
 * statement (same guard as auto_queue_complete). results[i] may be NULL.
 * ok[i] gets 1 when job i was stored, 0 when its lease was gone
 * (AUTO_ELOST for it); any other error leaves every ok[i] 0.
 */
enum auto_res auto_queue_complete_many(struct auto_queue *q,
                                       const struct auto_job *const *jobs,
                                       const char *const *worker_ids,
                                       const json_t *const *results,
                                       size_t n, int *ok);

/* running -> dead at once whatever attempts remain (the handler said a
 * retry cannot help); the error is recorded as by auto_queue_fail. */
enum auto_res auto_queue_fail_permanent(struct auto_queue *q,
                                        const struct auto_job *j,
                                        const char *worker_id,
                                        const char *error);

/* Back-off in ms before retrying after failed attempt `attempt` (1..):
 * base * 2^(attempt-1) capped, then +-20 % jitter. */
long auto_backoff_ms(const struct auto_queue *q, int attempt);

/* ---- job_types.c ------------------------------------------------------ */

enum auto_outcome {
    AUTO_JOB_OK,          /* succeeded; result in ctx */
    AUTO_JOB_FAIL,        /* failed; message in ctx->error */
    AUTO_JOB_CANCELLED,   /* stopped on a cancel request */
    AUTO_JOB_ABORTED,     /* stopped because the replica is shutting down
                             or lost the lease: release, don't count */
    AUTO_JOB_FAIL_PERMANENT, /* failed for good (malformed input a retry
                                cannot fix): dead at once, no retries;
                                message in ctx->error */
};

struct auto_slot;
struct auto_pool;

/* What a handler sees. Owned by the worker thread running it. */
struct auto_job_ctx {
    struct auto_pool *pool;
    struct auto_slot *slot;
    const struct auto_job *job;
    json_t *result;                 /* set by the handler (owned) */
    char error[AUTO_ERROR_MAX];     /* set by the handler on FAIL */
};

typedef enum auto_outcome (*auto_job_run_fn)(struct auto_job_ctx *ctx,
                                             const json_t *args);

/*
 * Checks args at enqueue. 0 when valid; else -1 with the offending field
 * ("args.ms") and a reason written to field/why.
 */
typedef int (*auto_job_check_fn)(const json_t *args, char *field,
                                 size_t fieldlen, char *why, size_t whylen);

struct auto_job_type {
    const char *name;
    auto_job_check_fn check;
    auto_job_run_fn run;
};

/* The registered type `name`, or NULL. */
const struct auto_job_type *auto_job_type_find(const char *name);

/* Sets the result (takes ownership) / the failure message. */
void auto_job_set_result(struct auto_job_ctx *ctx, json_t *result);
void auto_job_set_error(struct auto_job_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- listener.c, workers.c ------------------------------------------- */

/*
 * A waker: idle workers wait on it; NOTIFY, a claim that found work and
 * shutdown kick it. gen counts kicks so a kick between a worker's empty
 * claim and its wait is never lost.
 */
struct auto_waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* CLOCK_MONOTONIC */
    unsigned long gen;           /* guarded by mu */
    unsigned long kicks;         /* guarded by mu; for tests */
};

void auto_waker_init(struct auto_waker *w);
void auto_waker_cleanup(struct auto_waker *w);
unsigned long auto_waker_gen(struct auto_waker *w);
/* Bumps gen and wakes one waiter (all when `all`). Any thread. */
void auto_waker_kick(struct auto_waker *w, int all);
/* Waits until gen != seen or timeout_ms passes: 1 when kicked, 0 on
 * timeout. */
int auto_waker_wait(struct auto_waker *w, unsigned long seen, int timeout_ms);

/*
 * The LISTEN thread: its own PGconn (not pooled: it stays in LISTEN),
 * reconnecting every second while PostgreSQL is away. Every notification
 * on AUTO_NOTIFY_CHANNEL calls on_notify(arg, payload) on the listener
 * thread; after each (re)connect on_notify(arg, NULL) runs once, since
 * notifications sent while disconnected are lost.
 */
struct auto_listener;
struct auto_listener *auto_listener_start(const char *conninfo,
                                          void (*on_notify)(void *,
                                                            const char *),
                                          void *arg);
/* Stops and joins the thread, closes the connection, frees. */
void auto_listener_stop(struct auto_listener *l);

struct auto_pool_opts {
    struct auto_queue *queue;       /* borrowed */
    const char *conninfo;           /* for the listener */
    int workers;                    /* 1..256 */
    int heartbeat_s;                /* lease renewal period */
    int poll_ms;                    /* fallback wake-up (scheduled jobs,
                                       retries, expired leases) */
    int drain_s;                    /* SIGTERM: bound for running jobs */
    int depth_s;                    /* queue depth gauge period */
    const char *replica_id;         /* NULL: "<hostname>:<pid>" */
    struct metrics_registry *metrics; /* NULL: metrics_default() */
    /* Optional (NULL): called on the worker thread after a claim
     * (state "running") and after an outcome is stored ("succeeded",
     * "retryable", "dead", "cancelled", "available" on release). Must not
     * block (events.c only queues). */
    void (*on_job)(void *arg, const struct auto_job *j, const char *state);
    void *on_job_arg;
};

/* New pool (no threads yet); NULL on OOM / bad options. */
struct auto_pool *auto_pool_new(const struct auto_pool_opts *o);
/* Starts workers, the listener and the heartbeat thread. 0 or -1. */
int auto_pool_start(struct auto_pool *p);
/* Stops claiming (signal handler thread safe; idempotent); the drain
 * deadline is now + drain_s. */
void auto_pool_stop_claiming(struct auto_pool *p);
/*
 * Waits for running jobs until the drain deadline, then tells handlers to
 * abort; their workers release the leases (state available) so another
 * replica takes the jobs at once. Joins every thread. Calls
 * auto_pool_stop_claiming first if nobody did.
 */
void auto_pool_drain(struct auto_pool *p);
/* Drains if needed, then frees. */
void auto_pool_free(struct auto_pool *p);
/* Waker shared by the workers (tests). */
struct auto_waker *auto_pool_waker(struct auto_pool *p);
/* "<replica>/" — the prefix of every worker id of this pool. */
const char *auto_pool_prefix(const struct auto_pool *p);

/*
 * For handlers: records progress (pct clamped to 0..100, msg may be NULL)
 * and learns of cancel requests. 0 to go on; -1 when the handler should
 * stop (see auto_job_should_stop for why).
 */
int auto_job_progress(struct auto_job_ctx *ctx, int pct, const char *msg);

/* 0: keep going; AUTO_JOB_CANCELLED or AUTO_JOB_ABORTED: stop now and
 * return that outcome. Cheap (atomics only); call often. */
int auto_job_should_stop(struct auto_job_ctx *ctx);

/* ---- identity.c (over libs/identity) ---------------------------------- */

struct ident_rev;
struct tok_cache;

/* How callers are authenticated; immutable after start-up, shared. */
struct auto_auth {
    const struct tok_keyset *keys;  /* NULL: no bearer tokens accepted */
    struct tok_policy policy;
    const char *internal_token;     /* NULL/"": gateway headers never
                                       trusted */
    struct ident_rev *rev;          /* NULL: no revocation check (libs/
                                       identity/revocation.h) */
    struct tok_cache *cache;        /* NULL: verify every bearer (libs/
                                       token/token_cache.h) */
};

struct auto_identity {
    char user_id[64];
    char email[320];
    char roles[TOK_MAX_ROLES * 33];  /* comma list */
    int admin;                       /* roles contain "admin" */
    int via_gateway;                 /* 1: trusted X-User-* headers */
};

/*
 * Identifies the caller: X-User-Id/-Email/-Roles when X-Internal-Token
 * equals auth->internal_token (constant-time compare), else the
 * Authorization: Bearer token verified with tok_verify. Returns 0 and
 * fills *out, or -1 after answering 401 unauthorized.
 */
int auto_identity_require(const struct auto_auth *a, struct httpd_req *r,
                          struct auto_identity *out);

/* 1 when comma list `csv` contains `role`. */
int auto_roles_contain(const char *csv, const char *role);

/* ---- jobs_api.c ------------------------------------------------------- */

struct auto_api {
    struct auto_queue *queue;       /* borrowed */
    const struct auto_auth *auth;   /* borrowed */
    int default_max_attempts;
};

/* Registers the /automation/jobs routes on s. 0 or -1. */
int auto_api_routes(struct httpd_server *s, struct auto_api *api);

/* 1 when s is an RFC 3339 date-time ("2025-01-02T03:04:05Z",
 * fraction and +hh:mm offset allowed). */
int auto_rfc3339_valid(const char *s);

#endif
