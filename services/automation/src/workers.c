/*
 * workers — the worker pool: WORKERS threads that claim jobs and run their
 * handlers, woken by the LISTEN thread (listener.c) so an idle worker
 * starts a new job within milliseconds on any replica; a maintenance
 * thread that renews leases and samples the queue depth; and the bounded
 * drain on SIGTERM.
 *
 * Hot path (see "Performance" in the README): a worker claims as many
 * jobs as there are idle workers in one statement and hands the extra
 * ones to them through a small buffer; successes are stored in batches
 * (the first finisher writes every success waiting, one UPDATE); the
 * worker statements run on their own connections with
 * synchronous_commit = off. A commit lost in a PostgreSQL crash only
 * makes a job run again (leases already give at-least-once), while
 * enqueues stay durable on the service's main pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "pool.h"

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- pool --------------------------------------------------------------- */

static const double wait_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                      30, 60};

/*
 * A pool on `conninfo` whose sessions run with synchronous_commit = off
 * (a libpq URI gets it as the `options` parameter, a key=value string as
 * a key).
 */
static struct pgpool *async_pool(const char *conninfo, int size)
{
    size_t len = strlen(conninfo) + 64;
    char *ci = malloc(len);
    struct pgpool *pg;

    if (!ci)
        return NULL;
    if (strncmp(conninfo, "postgresql://", 13) == 0 ||
        strncmp(conninfo, "postgres://", 11) == 0)
        snprintf(ci, len, "%s%coptions=-c%%20synchronous_commit%%3Doff",
                 conninfo, strchr(conninfo, '?') ? '&' : '?');
    else
        snprintf(ci, len, "%s options='-c synchronous_commit=off'",
                 conninfo);
    pg = pgpool_new(ci, size, 5);
    free(ci);
    return pg;
}

/* auto_queue's kick: an enqueue on this replica wakes one idle worker. */
static void kick_local(void *arg)
{
    struct auto_pool *p = arg;

    auto_waker_kick(&p->waker, 0);
}

struct auto_pool *auto_pool_new(const struct auto_pool_opts *o)
{
    struct auto_pool *p;
    struct metrics_registry *reg = o->metrics ? o->metrics
                                              : metrics_default();
    static const char *const tl[] = {"type", "state"};
    char host[64] = "";
    pthread_condattr_t a;

    if (o->workers < 1 || o->workers > 256 || !o->queue || !o->conninfo)
        return NULL;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->o = *o;
    p->conninfo = strdup(o->conninfo);
    p->slots = calloc((size_t)o->workers, sizeof *p->slots);
    if (!p->conninfo || !p->slots) {
        free(p->conninfo);
        free(p->slots);
        free(p);
        return NULL;
    }
    if (o->replica_id) {
        snprintf(p->prefix, sizeof p->prefix, "%s/", o->replica_id);
    } else {
        gethostname(host, sizeof host - 1);
        snprintf(p->prefix, sizeof p->prefix, "%s:%ld/", host,
                 (long)getpid());
    }
    p->o.replica_id = NULL;
    p->o.conninfo = p->conninfo;
    if (p->o.poll_ms < 1)
        p->o.poll_ms = 1000;
    if (p->o.heartbeat_s < 1)
        p->o.heartbeat_s = 10;
    if (p->o.depth_s < 1)
        p->o.depth_s = 5;
    for (int i = 0; i < o->workers; i++) {
        p->slots[i].pool = p;
        snprintf(p->slots[i].worker_id, sizeof p->slots[i].worker_id,
                 "%s%d", p->prefix, i);
    }
    p->fast_pg = async_pool(o->conninfo, o->workers + 3);
    if (!p->fast_pg) {
        free(p->conninfo);
        free(p->slots);
        free(p);
        return NULL;
    }
    p->fastq = *o->queue;
    p->fastq.pg = p->fast_pg;
    p->fastq.kick = NULL;
    o->queue->kick = kick_local;
    o->queue->kick_arg = p;
    pthread_mutex_init(&p->bmu, NULL);
    pthread_mutex_init(&p->dmu, NULL);
    auto_waker_init(&p->waker);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &a);
    pthread_condattr_destroy(&a);
    p->m_total = metrics_family(reg, METRICS_COUNTER, "automation_jobs_total",
                                "Job attempts finished, by final state",
                                2, tl, NULL, 0);
    p->m_duration = metrics_family(reg, METRICS_HISTOGRAM,
                                   "automation_job_duration_seconds",
                                   "Handler run time", 1, tl, NULL, 0);
    p->m_depth = metrics_family(reg, METRICS_GAUGE, "automation_queue_depth",
                                "Jobs due to run and not yet claimed", 0,
                                NULL, NULL, 0);
    p->m_wait = metrics_family(reg, METRICS_HISTOGRAM,
                               "automation_enqueue_to_start_seconds",
                               "Time from due (enqueue or run_at) to claim",
                               0, NULL, wait_buckets,
                               sizeof wait_buckets / sizeof wait_buckets[0]);
    return p;
}

struct auto_waker *auto_pool_waker(struct auto_pool *p)
{
    return &p->waker;
}

const char *auto_pool_prefix(const struct auto_pool *p)
{
    return p->prefix;
}

static void set_cancel(void *arg, long long id)
{
    struct auto_pool *p = arg;

    for (int i = 0; i < p->o.workers; i++)
        if (atomic_load(&p->slots[i].job_id) == id)
            atomic_store(&p->slots[i].cancel, 1);
    pthread_mutex_lock(&p->bmu);
    for (size_t i = 0; i < p->blen; i++)
        if (p->buf[i].job.id == id)
            p->buf[i].cancel = 1;
    pthread_mutex_unlock(&p->bmu);
}

static void on_notify(void *arg, const char *payload)
{
    struct auto_pool *p = arg;
    char *end;

    if (payload && strncmp(payload, "cancel:", 7) == 0) {
        long long id = strtoll(payload + 7, &end, 10);

        if (end != payload + 7 && *end == '\0')
            set_cancel(p, id);
        return;
    }
    /* NULL: (re)connected, notifications may have been missed */
    auto_waker_kick(&p->waker, payload == NULL);
}

int auto_job_should_stop(struct auto_job_ctx *ctx)
{
    if (atomic_load(&ctx->slot->cancel))
        return AUTO_JOB_CANCELLED;
    if (atomic_load(&ctx->pool->abort_jobs) || atomic_load(&ctx->slot->lost))
        return AUTO_JOB_ABORTED;
    return 0;
}

int auto_job_progress(struct auto_job_ctx *ctx, int pct, const char *msg)
{
    int cancel = 0;
    enum auto_res rc = auto_queue_progress(ctx->pool->o.queue, ctx->job,
                                           ctx->slot->lock_id, pct, msg,
                                           &cancel);

    if (rc == AUTO_ELOST)
        atomic_store(&ctx->slot->lost, 1);
    if (cancel)
        atomic_store(&ctx->slot->cancel, 1);
    return auto_job_should_stop(ctx) ? -1 : 0;
}

static void run_job(struct auto_slot *s, struct auto_job *job, int cancel)
{
    struct auto_pool *p = s->pool;
    struct auto_queue *q = &p->fastq;
    const struct auto_job_type *t = auto_job_type_find(job->type);
    struct auto_job_ctx ctx = {.pool = p, .slot = s, .job = job};
    enum auto_outcome out;
    enum auto_res rc = AUTO_OK;
    const char *state = "succeeded";
    double t0;
    int dead = 0;

    atomic_store(&s->cancel, cancel);
    atomic_store(&s->lost, 0);
    atomic_store(&s->attempts, job->attempts);
    atomic_store(&s->job_id, job->id);
    t0 = mono_now();
    if (t) {
        out = t->run(&ctx, job->args);
    } else {
        auto_job_set_error(&ctx, "unknown job type \"%s\"", job->type);
        out = AUTO_JOB_FAIL;
    }
    if (p->m_duration) {
        const char *lv[1] = {t ? job->type : "unknown"};

        metrics_observe_labels(p->m_duration, lv, mono_now() - t0);
    }
    switch (out) {
    case AUTO_JOB_OK:
        if (auto_pool_queue_done(p, job, s->lock_id, ctx.result) == 0) {
            atomic_store(&s->job_id, 0);
            json_decref(ctx.result);
            auto_pool_flush_done(p);
            return;
        }
        rc = auto_queue_complete(q, job, s->lock_id, ctx.result);
        break;
    case AUTO_JOB_FAIL:
        rc = auto_queue_fail(q, job, s->lock_id, ctx.error, &dead);
        state = dead ? "dead" : "retryable";
        break;
    case AUTO_JOB_FAIL_PERMANENT:
        rc = auto_queue_fail_permanent(q, job, s->lock_id, ctx.error);
        state = "dead";
        break;
    case AUTO_JOB_CANCELLED:
        rc = auto_queue_cancelled(q, job, s->lock_id);
        state = "cancelled";
        break;
    case AUTO_JOB_ABORTED:
        rc = auto_queue_release(q, job, s->lock_id);
        state = "released";
        break;
    }
    if (rc == AUTO_OK)
        auto_pool_recorded(p, job, s->lock_id, out, state, ctx.error);
    else
        auto_pool_not_recorded(job, s->lock_id, rc);
    atomic_store(&s->job_id, 0);
    json_decref(ctx.result);
}

static void *worker_main(void *arg)
{
    struct auto_slot *s = arg;
    struct auto_pool *p = s->pool;

    for (;;) {
        unsigned long gen = auto_waker_gen(&p->waker);
        struct auto_job job;
        int cancel = 0;

        /* Buffered jobs are claimed (running, leased): they run even while
         * draining, like jobs already in a handler. */
        if (auto_pool_take_buffered(p, &job, s->lock_id, sizeof s->lock_id,
                                    &cancel)) {
            /* claimed by another worker under its id */
        } else if (atomic_load(&p->stop_claiming)) {
            break;
        } else if (auto_pool_claim(s, &job)) {
            snprintf(s->lock_id, sizeof s->lock_id, "%s", s->worker_id);
        } else {
            auto_waker_wait(&p->waker, gen, p->o.poll_ms);
            continue;
        }
        if (p->o.on_job)
            p->o.on_job(p->o.on_job_arg, &job, "running");
        run_job(s, &job, cancel);
        auto_job_cleanup(&job);
    }
    auto_pool_flush_done(p);
    return NULL;
}

static void heartbeat(struct auto_pool *p)
{
    long long ids[256];
    int att[256];
    size_t n = 0;

    for (int i = 0; i < p->o.workers; i++) {
        long long id = atomic_load(&p->slots[i].job_id);

        if (id) {
            ids[n] = id;
            att[n++] = atomic_load(&p->slots[i].attempts);
        }
    }
    pthread_mutex_lock(&p->bmu);
    for (size_t i = 0; i < p->blen && n < 256; i++) {
        ids[n] = p->buf[i].job.id;
        att[n++] = p->buf[i].job.attempts;
    }
    pthread_mutex_unlock(&p->bmu);
    if (auto_queue_heartbeat(&p->fastq, p->prefix, ids, att, n, set_cancel,
                             p) != AUTO_OK)
        log_kv(LOG_LVL_WARN, NULL, "lease heartbeat failed", NULL);
}

static void *maint_main(void *arg)
{
    struct auto_pool *p = arg;
    double next_hb = mono_now() + p->o.heartbeat_s;
    double next_depth = mono_now();

    pthread_mutex_lock(&p->mu);
    while (!p->maint_stop) {
        double now = mono_now();
        double next = next_hb < next_depth ? next_hb : next_depth;
        struct timespec ts;
        long depth;

        if (now < next) {
            deadline_in(&ts, (int)((next - now) * 1000) + 1);
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        if (now >= next_hb) {
            heartbeat(p);
            next_hb = now + p->o.heartbeat_s;
        }
        if (now >= next_depth) {
            if (auto_queue_depth(p->o.queue, &depth) == AUTO_OK &&
                p->m_depth)
                metrics_set(metrics_series(p->m_depth, NULL), (double)depth);
            next_depth = now + p->o.depth_s;
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int auto_pool_start(struct auto_pool *p)
{
    p->started = 1;
    for (int i = 0; i < p->o.workers; i++) {
        if (pthread_create(&p->slots[i].th, NULL, worker_main,
                           &p->slots[i]) != 0)
            return -1;
        p->slots[i].started = 1;
    }
    if (pthread_create(&p->maint, NULL, maint_main, p) != 0)
        return -1;
    p->maint_started = 1;
    p->listener = auto_listener_start(p->conninfo, on_notify, p);
    if (!p->listener)
        return -1;
    log_kv(LOG_LVL_INFO, NULL, "worker pool started", "replica", p->prefix,
           NULL);
    return 0;
}

void auto_pool_stop_claiming(struct auto_pool *p)
{
    if (atomic_exchange(&p->stop_claiming, 1))
        return;
    pthread_mutex_lock(&p->mu);
    p->deadline = mono_now() + p->o.drain_s;
    pthread_mutex_unlock(&p->mu);
    auto_waker_kick(&p->waker, 1);
}

static size_t buffered(struct auto_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->bmu);
    n = p->blen;
    pthread_mutex_unlock(&p->bmu);
    return n;
}

void auto_pool_drain(struct auto_pool *p)
{
    struct timespec ts;
    double deadline;
    long released = 0;
    char nb[16];

    if (p->drained)
        return;
    p->drained = 1;
    auto_pool_stop_claiming(p);
    pthread_mutex_lock(&p->mu);
    deadline = p->deadline;
    pthread_mutex_unlock(&p->mu);
    while ((auto_pool_busy(p) || buffered(p)) && mono_now() < deadline) {
        struct timespec step = {0, 20 * 1000000L};

        nanosleep(&step, NULL);
    }
    snprintf(nb, sizeof nb, "%d", auto_pool_busy(p));
    if (auto_pool_busy(p))
        log_kv(LOG_LVL_WARN, NULL, "drain bound reached; releasing jobs",
               "running", nb, NULL);
    atomic_store(&p->abort_jobs, 1);
    for (int i = 0; i < p->o.workers; i++) {
        if (!p->slots[i].started)
            continue;
        /* handlers poll auto_job_should_stop: they end within moments */
        clock_gettime(CLOCK_REALTIME, &ts);  /* timedjoin's clock */
        ts.tv_sec += 5;
        if (pthread_timedjoin_np(p->slots[i].th, NULL, &ts) != 0)
            p->stuck = 1;
        else
            p->slots[i].started = 0;
    }
    /* Anything a stuck handler still holds goes back to the queue now;
     * its late outcome is refused by the lease guard. */
    if (p->stuck &&
        auto_queue_release_all(&p->fastq, p->prefix, &released) == AUTO_OK)
        log_kv(LOG_LVL_WARN, NULL, "released jobs of stuck workers", NULL);
    if (p->maint_started) {
        pthread_mutex_lock(&p->mu);
        p->maint_stop = 1;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->maint, NULL);
        p->maint_started = 0;
    }
    auto_listener_stop(p->listener);
    p->listener = NULL;
    /* left by stuck workers: back to the queue */
    auto_pool_release_buffered(p);
    auto_pool_flush_done(p);
    log_kv(LOG_LVL_INFO, NULL, "worker pool drained", NULL);
}

void auto_pool_free(struct auto_pool *p)
{
    if (!p)
        return;
    if (p->started)
        auto_pool_drain(p);
    if (p->stuck)
        return;  /* a thread may still touch p: leak it, we are exiting */
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->bmu);
    pthread_mutex_destroy(&p->dmu);
    pgpool_free(p->fast_pg);
    if (p->o.queue->kick_arg == p) {
        p->o.queue->kick = NULL;
        p->o.queue->kick_arg = NULL;
    }
    auto_waker_cleanup(&p->waker);
    free(p->slots);
    free(p->conninfo);
    free(p);
}
