/*
 * scheduler — every replica runs one scheduler thread. Each pass reads the
 * enabled scheduled workflows with their slot cursor (PostgreSQL's clock,
 * so replicas agree on "now"), plans which slots are due (auto_sched_plan)
 * and calls automation.fire_slot() for each. Replicas race on purpose:
 * the workflow row lock, the cursor check and the unique
 * (workflow_id, scheduled_at) index make each slot fire exactly once, and
 * the run's first step job is enqueued in the same transaction. The
 * thread sleeps until the next slot is due (at most max_wait_ms, so new
 * and edited workflows are seen soon).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "workflows.h"

int auto_sched_plan(const struct auto_cron *c, const char *tz,
                    int64_t cursor_ms, int64_t now_ms, int64_t grace_ms,
                    int run_once, struct auto_sched_plan *out)
{
    int64_t missed_before = now_ms - grace_ms;
    int64_t t = cursor_ms, next;
    int rc;

    memset(out, 0, sizeof *out);
    if (t < 0)
        t = 0;
    for (;;) {
        rc = auto_cron_next(c, tz, t, &next, NULL, 0);
        if (rc == AUTO_CRON_ENONE)
            break;
        if (rc != AUTO_CRON_OK)
            return rc;
        if (next > now_ms) {
            out->next_ms = next;
            break;
        }
        if (next < missed_before) {
            /* Missed (downtime, or every replica stalled): note the first
             * one as the catch-up key and jump to the on-time window
             * instead of walking every missed slot. */
            if (!out->missed_first)
                out->missed_first = next;
            out->missed_cursor = missed_before - 1;
            t = missed_before - 1 > next ? missed_before - 1 : next;
            continue;
        }
        if (out->nfire == AUTO_SCHED_FIRE_MAX) {
            out->next_ms = next;   /* the rest on the next pass */
            break;
        }
        out->fire[out->nfire++] = next;
        t = next;
    }
    out->catch_up = run_once && out->missed_first != 0;
    return 0;
}

/* ---- database side ------------------------------------------------------ */

static PGresult *exec(PGconn *c, const char *sql, int n,
                      const char *const *p)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    /* PostgreSQL away is retried every second: warn, don't shout */
    log_kv(pgpool_is_unavailable(c, r) ? LOG_LVL_WARN : LOG_LVL_ERROR, NULL,
           "scheduler statement failed", "error", PQresultErrorMessage(r),
           NULL);
    PQclear(r);
    return NULL;
}

/* Fires one slot; 1 when a run was created, 0 when not, -1 on error. */
static int fire(PGconn *c, struct auto_events *ev, const char *wid,
                int64_t slot_ms, const char *kind, int64_t cursor_ms)
{
    static const char *sql =
        "SELECT automation.fire_slot($1::bigint,"
        " to_timestamp($2::float8 / 1000), $3,"
        " to_timestamp($4::float8 / 1000))";
    static const char *get =
        "SELECT automation.run_json(r)::text FROM automation.runs r"
        " WHERE id = $1::bigint";
    char slot[32], cur[32];
    const char *p[4] = {wid, slot, kind, cur};
    PGresult *r;
    int created;

    snprintf(slot, sizeof slot, "%lld", (long long)slot_ms);
    snprintf(cur, sizeof cur, "%lld", (long long)cursor_ms);
    r = exec(c, sql, 4, p);
    if (!r)
        return -1;
    created = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
    if (created) {
        const char *p2[1] = {PQgetvalue(r, 0, 0)};
        PGresult *r2 = ev ? exec(c, get, 1, p2) : NULL;

        log_kv(LOG_LVL_INFO, NULL, "workflow run started", "workflow_id",
               wid, "run_id", PQgetvalue(r, 0, 0), "trigger", kind, NULL);
        if (r2 && PQntuples(r2) == 1) {
            json_t *run = json_loads(PQgetvalue(r2, 0, 0), 0, NULL);

            auto_events_emit_run(ev, run);
            json_decref(run);
        }
        PQclear(r2);
    }
    PQclear(r);
    return created;
}

int auto_sched_pass(struct pgpool *pg, struct auto_events *ev, int grace_ms,
                    int64_t *next_ms)
{
    static const char *sql =
        "SELECT id, schedule, timezone, missed_run = 'run_once',"
        " floor(extract(epoch FROM slot_cursor) * 1000)::bigint,"
        " floor(extract(epoch FROM now()) * 1000)::bigint"
        " FROM automation.workflows"
        " WHERE enabled AND schedule IS NOT NULL";
    PGconn *c = pgpool_acquire(pg, 5000);
    PGresult *r;
    int created = 0, n;
    int64_t wait = -1;

    if (next_ms)
        *next_ms = -1;
    if (!c)
        return -1;
    r = exec(c, sql, 0, NULL);
    if (!r) {
        pgpool_release(pg, c, 0);
        return -1;
    }
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *wid = PQgetvalue(r, i, 0);
        const char *tz = PQgetvalue(r, i, 2);
        int run_once = PQgetvalue(r, i, 3)[0] == 't';
        int64_t cursor = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        int64_t now = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        struct auto_sched_plan plan;
        struct auto_cron cron;
        char err[AUTO_CRON_ERR_MAX];

        if (auto_cron_parse(PQgetvalue(r, i, 1), &cron, err, sizeof err) !=
                0 ||
            auto_sched_plan(&cron, tz, cursor, now, grace_ms, run_once,
                            &plan) != 0) {
            log_kv(LOG_LVL_WARN, NULL, "workflow schedule unusable",
                   "workflow_id", wid, NULL);
            continue;
        }
        if (plan.missed_first) {
            int k = fire(c, ev, wid, plan.missed_first,
                         plan.catch_up ? "catch_up" : "skip",
                         plan.missed_cursor);

            created += k > 0;
        }
        for (int f = 0; f < plan.nfire; f++)
            created += fire(c, ev, wid, plan.fire[f], "schedule",
                            plan.fire[f]) > 0;
        if (plan.next_ms && (wait < 0 || plan.next_ms - now < wait))
            wait = plan.next_ms - now;
    }
    PQclear(r);
    pgpool_release(pg, c, 0);
    if (next_ms)
        *next_ms = wait;
    return created;
}

/* ---- thread ------------------------------------------------------------- */

struct auto_sched {
    struct auto_sched_opts o;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* CLOCK_MONOTONIC */
    int stop;                 /* guarded by mu */
};

static void *sched_main(void *arg)
{
    struct auto_sched *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int64_t wait = -1;
        struct timespec ts;
        long ms;

        pthread_mutex_unlock(&s->mu);
        if (auto_sched_pass(s->o.pg, s->o.events, s->o.grace_ms, &wait) < 0)
            wait = 1000;   /* PostgreSQL away: retry soon */
        ms = wait < 0 || wait > s->o.max_wait_ms ? s->o.max_wait_ms
                                                 : (long)wait + 2;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->mu);
        while (!s->stop &&
               pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct auto_sched *auto_sched_start(const struct auto_sched_opts *o)
{
    struct auto_sched *s = calloc(1, sizeof *s);
    pthread_condattr_t a;

    if (!s)
        return NULL;
    s->o = *o;
    if (s->o.max_wait_ms < 10)
        s->o.max_wait_ms = 1000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &a);
    pthread_condattr_destroy(&a);
    if (pthread_create(&s->th, NULL, sched_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

void auto_sched_stop(struct auto_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
