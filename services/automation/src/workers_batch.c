/*
 * workers_batch — the worker pool's hot path (see "Performance" in the
 * README): a claim takes as many jobs as there are idle workers and hands
 * the extra ones over through a small buffer; successes are queued and
 * written in batches by whichever worker gets there first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "pool.h"

void auto_pool_count(struct auto_pool *p, const char *type,
                     const char *state)
{
    const char *lv[2] = {auto_job_type_find(type) ? type : "unknown", state};

    if (p->m_total)
        metrics_inc_labels(p->m_total, lv, 1);
}

int auto_pool_busy(struct auto_pool *p)
{
    int n = 0;

    for (int i = 0; i < p->o.workers; i++)
        n += atomic_load(&p->slots[i].job_id) != 0;
    return n;
}

/* After an outcome is stored: metrics, the on_job hook, the log. */
void auto_pool_recorded(struct auto_pool *p, const struct auto_job *job,
                        const char *lock_id, enum auto_outcome out,
                        const char *state, const char *error)
{
    char ids[32];
    int failed = out == AUTO_JOB_FAIL || out == AUTO_JOB_FAIL_PERMANENT;

    snprintf(ids, sizeof ids, "%lld", job->id);
    if (out != AUTO_JOB_ABORTED)
        auto_pool_count(p, job->type, state);
    if (p->o.on_job)
        p->o.on_job(p->o.on_job_arg, job,
                    out == AUTO_JOB_ABORTED ? "available" : state);
    log_kv(failed ? LOG_LVL_WARN : LOG_LVL_DEBUG, NULL, "job finished",
           "job_id", ids, "type", job->type, "state", state, "worker",
           lock_id, failed ? "error" : NULL, error, NULL);
}

void auto_pool_not_recorded(const struct auto_job *job, const char *lock_id,
                            enum auto_res rc)
{
    char ids[32];

    snprintf(ids, sizeof ids, "%lld", job->id);
    if (rc == AUTO_ELOST)
        log_kv(LOG_LVL_WARN, NULL, "job lease lost; outcome discarded",
               "job_id", ids, "type", job->type, "worker", lock_id, NULL);
    else
        /* The lease will expire and another claim reruns the job. */
        log_kv(LOG_LVL_ERROR, NULL, "job outcome not recorded", "job_id",
               ids, "type", job->type, "worker", lock_id, NULL);
}

/*
 * Stores every success waiting in p->done. One thread at a time does it
 * (the "leader"); others only queue theirs and move on, so successes that
 * finish while a batch is being written go together in the next one.
 */
void auto_pool_flush_done(struct auto_pool *p)
{
    const struct auto_job *jobs[DONE_MAX];
    const char *locks[DONE_MAX];
    const json_t *results[DONE_MAX];
    struct auto_done *b;
    int ok[DONE_MAX];
    size_t n;
    enum auto_res rc;

    pthread_mutex_lock(&p->dmu);
    if (p->flushing || p->dlen == 0) {
        pthread_mutex_unlock(&p->dmu);
        return;
    }
    p->flushing = 1;
    while (p->dlen > 0) {
        n = p->dlen;
        b = malloc(n * sizeof *b);
        if (!b) {
            pthread_mutex_unlock(&p->dmu);
            struct timespec step = {0, 1000000L};

            nanosleep(&step, NULL);
            pthread_mutex_lock(&p->dmu);
            continue;
        }
        memcpy(b, p->done, n * sizeof *b);
        p->dlen = 0;
        pthread_mutex_unlock(&p->dmu);
        for (size_t i = 0; i < n; i++) {
            jobs[i] = &b[i].job;
            locks[i] = b[i].lock_id;
            results[i] = b[i].result;
        }
        rc = auto_queue_complete_many(&p->fastq, jobs, locks, results, n,
                                      ok);
        for (size_t i = 0; i < n; i++) {
            if (ok[i])
                auto_pool_recorded(p, &b[i].job, b[i].lock_id, AUTO_JOB_OK,
                         "succeeded", NULL);
            else
                auto_pool_not_recorded(&b[i].job, b[i].lock_id,
                             rc == AUTO_OK ? AUTO_ELOST : rc);
            json_decref(b[i].result);
        }
        free(b);
        pthread_mutex_lock(&p->dmu);
    }
    p->flushing = 0;
    pthread_mutex_unlock(&p->dmu);
}

/* Queues a success for flush_done; 0, or -1 when the batch is full. */
int auto_pool_queue_done(struct auto_pool *p, const struct auto_job *job,
                         const char *lock_id, json_t *result)
{
    struct auto_done *d;

    pthread_mutex_lock(&p->dmu);
    if (p->dlen == DONE_MAX) {
        pthread_mutex_unlock(&p->dmu);
        return -1;
    }
    d = &p->done[p->dlen++];
    d->job = *job;
    d->job.args = NULL;
    snprintf(d->lock_id, sizeof d->lock_id, "%s", lock_id);
    d->result = json_incref(result);
    pthread_mutex_unlock(&p->dmu);
    return 0;
}


/* Takes a job claimed by a batch; 1 when there was one. */
int auto_pool_take_buffered(struct auto_pool *p, struct auto_job *job,
                            char *lock_id, size_t lock_len, int *cancel)
{
    int got = 0;

    pthread_mutex_lock(&p->bmu);
    if (p->blen > 0) {
        struct auto_buffered *b = &p->buf[--p->blen];

        *job = b->job;
        snprintf(lock_id, lock_len, "%s", b->lock_id);
        *cancel = b->cancel;
        got = 1;
    }
    pthread_mutex_unlock(&p->bmu);
    return got;
}

/* Jobs claimed and not started go back to the queue (shutting down). */
void auto_pool_release_buffered(struct auto_pool *p)
{
    struct auto_buffered b;

    for (;;) {
        pthread_mutex_lock(&p->bmu);
        if (p->blen == 0) {
            pthread_mutex_unlock(&p->bmu);
            return;
        }
        b = p->buf[--p->blen];
        pthread_mutex_unlock(&p->bmu);
        if (auto_queue_release(&p->fastq, &b.job, b.lock_id) == AUTO_OK &&
            p->o.on_job)
            p->o.on_job(p->o.on_job_arg, &b.job, "available");
        auto_job_cleanup(&b.job);
    }
}

/*
 * Claims up to as many jobs as there are idle workers: keeps the first
 * that may run in *job, buffers the others for idle workers and wakes
 * them. 1 when *job is set.
 */
int auto_pool_claim(struct auto_slot *s, struct auto_job *job)
{
    struct auto_pool *p = s->pool;
    struct auto_job got[CLAIM_MAX];
    size_t n = 0, blen;
    int want, have = 0;

    pthread_mutex_lock(&p->bmu);
    blen = p->blen;
    pthread_mutex_unlock(&p->bmu);
    want = p->o.workers - auto_pool_busy(p) - (int)blen;
    want = want < 1 ? 1 : want > CLAIM_MAX ? CLAIM_MAX : want;
    if (auto_queue_claim(&p->fastq, s->worker_id, want, got, &n) != AUTO_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(got[i].state, "running") == 0 &&
            atomic_load(&p->stop_claiming)) {
            /* the claim raced with SIGTERM: nothing new starts while
             * draining, so the job goes straight back */
            if (auto_queue_release(&p->fastq, &got[i], s->worker_id) ==
                    AUTO_OK && p->o.on_job)
                p->o.on_job(p->o.on_job_arg, &got[i], "available");
            auto_job_cleanup(&got[i]);
            continue;
        }
        if (strcmp(got[i].state, "running") != 0) {
            /* an expired lease that may not run again */
            auto_pool_count(p, got[i].type, got[i].state);
            if (p->o.on_job)
                p->o.on_job(p->o.on_job_arg, &got[i], got[i].state);
            auto_job_cleanup(&got[i]);
            continue;
        }
        if (p->m_wait)
            metrics_observe_labels(p->m_wait, NULL, got[i].wait_s);
        if (!have) {
            *job = got[i];
            have = 1;
            continue;
        }
        pthread_mutex_lock(&p->bmu);
        if (p->blen < CLAIM_MAX) {
            struct auto_buffered *b = &p->buf[p->blen++];

            b->job = got[i];
            snprintf(b->lock_id, sizeof b->lock_id, "%s", s->worker_id);
            b->cancel = 0;
            got[i].args = NULL;
        }
        pthread_mutex_unlock(&p->bmu);
        if (got[i].args) {   /* cannot happen: want bounds the buffer */
            auto_queue_release(&p->fastq, &got[i], s->worker_id);
            auto_job_cleanup(&got[i]);
            continue;
        }
        auto_waker_kick(&p->waker, 0);
    }
    /* A full batch: more may be waiting (one NOTIFY can stand for many
     * jobs), so pass the baton to one more idle worker. */
    if ((int)n == want)
        auto_waker_kick(&p->waker, 0);
    return have;
}
