/*
 * pool.h — internals of the worker pool shared by workers.c (threads,
 * drain, heartbeat) and workers_batch.c (the hot path: batch claim with a
 * hand-over buffer, batched completion). Not part of the service API
 * (auto.h). Threads: every field says what guards it.
 */
#ifndef AUTO_POOL_H
#define AUTO_POOL_H

#include <pthread.h>
#include <stdatomic.h>

#include "auto.h"

#define CLAIM_MAX 32     /* jobs per claim statement */
#define DONE_MAX 256     /* successes per completion statement */

struct auto_buffered {
    struct auto_job job;
    char lock_id[AUTO_WORKER_ID_MAX + 16];
    int cancel;          /* a cancel NOTIFY arrived while buffered */
};

struct auto_done {
    struct auto_job job; /* args NULL */
    char lock_id[AUTO_WORKER_ID_MAX + 16];
    json_t *result;
};

/*
 * One worker thread. job_id/attempts are written by the worker and read by
 * the maintenance and listener threads (atomics); cancel and lost are set
 * by those threads and read by the handler through auto_job_should_stop.
 */
struct auto_slot {
    pthread_t th;
    int started;
    char worker_id[AUTO_WORKER_ID_MAX + 16];
    /* locked_by of the running job: the id of the worker that claimed it
     * (a batch claim locks every job under the claimer's id) */
    char lock_id[AUTO_WORKER_ID_MAX + 16];
    atomic_llong job_id;       /* 0 when idle */
    atomic_int attempts;
    atomic_int cancel;
    atomic_int lost;
    struct auto_pool *pool;
};

struct auto_pool {
    struct auto_pool_opts o;
    char *conninfo;
    char prefix[AUTO_WORKER_ID_MAX];
    struct auto_waker waker;
    struct auto_slot *slots;
    struct auto_listener *listener;
    pthread_t maint;
    int maint_started;
    int started, drained, stuck;
    atomic_int stop_claiming;
    atomic_int abort_jobs;
    pthread_mutex_t mu;        /* guards deadline and maint_stop */
    pthread_cond_t cv;         /* CLOCK_MONOTONIC; wakes maintenance */
    double deadline;           /* monotonic; drain bound */
    int maint_stop;
    struct metrics_family *m_total, *m_duration, *m_depth, *m_wait;
    /* worker statements: own connections, synchronous_commit = off */
    struct pgpool *fast_pg;
    struct auto_queue fastq;
    /* claimed by a batch, not started yet (guarded by bmu) */
    pthread_mutex_t bmu;
    struct auto_buffered buf[CLAIM_MAX];
    size_t blen;
    /* successes waiting for the batched UPDATE (guarded by dmu) */
    pthread_mutex_t dmu;
    struct auto_done done[DONE_MAX];
    size_t dlen;
    int flushing;
};

/* ---- workers_batch.c ---------------------------------------------------- */

/* automation_jobs_total{type,state} += 1. */
void auto_pool_count(struct auto_pool *p, const char *type,
                     const char *state);
/* Workers running a job now. */
int auto_pool_busy(struct auto_pool *p);
/* After an outcome is stored: metrics, the on_job hook, the log. */
void auto_pool_recorded(struct auto_pool *p, const struct auto_job *job,
                        const char *lock_id, enum auto_outcome out,
                        const char *state, const char *error);
/* An outcome that was not stored (rc: AUTO_ELOST or an error): logs. */
void auto_pool_not_recorded(const struct auto_job *job, const char *lock_id,
                            enum auto_res rc);
/* Queues a success for auto_pool_flush_done; 0, or -1 when full (store it
 * directly then). `result` is borrowed (a reference is taken). */
int auto_pool_queue_done(struct auto_pool *p, const struct auto_job *job,
                         const char *lock_id, json_t *result);
/* Stores every queued success (one thread at a time; others return). */
void auto_pool_flush_done(struct auto_pool *p);
/* Takes a job claimed by a batch into *job (its locked_by into lock_id,
 * a cancel that arrived meanwhile into *cancel); 1 when there was one. */
int auto_pool_take_buffered(struct auto_pool *p, struct auto_job *job,
                            char *lock_id, size_t lock_len, int *cancel);
/* Releases every buffered job back to the queue (shutting down). */
void auto_pool_release_buffered(struct auto_pool *p);
/* Claims up to as many jobs as there are idle workers for slot s; the
 * first that may run goes to *job (1), the rest to the buffer. */
int auto_pool_claim(struct auto_slot *s, struct auto_job *job);

#endif
