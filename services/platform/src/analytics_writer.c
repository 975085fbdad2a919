#include "analytics_writer.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics_copy.h"
#include "analytics_group.h"
#include "analytics_maint.h"
#include "httpd/httpd.h"
#include "log/log.h"
#include "metrics/metrics.h"


/*
 * One request's batch in the queue. `cv` is signalled (under w->mu) when
 * done. Ownership: a waiting request frees its item after `done`; a
 * detached (self-tracking) or abandoned (waiter timed out) item is freed
 * by the writer when finished.
 */
struct item {
    struct item *next;
    struct plat_an_event *evs;
    size_t n;
    int detached;
    int abandoned;
    int done;
    enum plat_an_result result;
    size_t stored;
    pthread_cond_t cv;
};

/* One writer thread and what only it touches. Thread 0 also runs the
 * partition maintenance. */
struct wthread {
    struct plat_an_writer *w;
    int idx;
    int started;
    pthread_t thread;
    struct plat_an_conn db;
    double next_maint;
    double next_apply;       /* writer 0: pending rollups due */
    double next_vacuum;      /* writer 0: pending table vacuum due */
    int vacuum_owed;         /* writer 0: applied since the last vacuum */
    struct item **group;     /* the group being written */
    size_t group_cap;
};

/*
 * mu guards the queue (head, tail, queued), running/stopping and the
 * items' done/abandoned/result/stored. Each th[i] belongs to its thread.
 */
struct plat_an_writer {
    const struct plat_an_settings *set;
    char *conninfo;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct item *head, *tail;
    long queued;
    int running, stopping;
    atomic_int rollups_pending;  /* a group committed pending rollups */
    struct wthread *th;
    int nth;
};

static struct metrics_family *m_events, *m_commits, *m_commit_s;
static struct metrics_series *m_queue;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_setup(void)
{
    static const char *const result[1] = {"result"};
    static const double buckets[] = {.001, .0025, .005, .01, .025, .05,
                                     .1,   .25,   .5,   1,   2.5,  5};
    struct metrics_registry *reg = metrics_default();
    struct metrics_family *q;

    m_events = metrics_family(reg, METRICS_COUNTER,
                              "analytics_events_total",
                              "Events written by result (stored, "
                              "duplicate, failed).",
                              1, result, NULL, 0);
    m_commits = metrics_family(reg, METRICS_COUNTER,
                               "analytics_group_commits_total",
                               "Group commits by result.", 1, result, NULL,
                               0);
    m_commit_s = metrics_family(reg, METRICS_HISTOGRAM,
                                "analytics_group_commit_duration_seconds",
                                "COPY + insert + commit time per group.", 0,
                                NULL, buckets,
                                sizeof(buckets) / sizeof(buckets[0]));
    q = metrics_family(reg, METRICS_GAUGE, "analytics_queue_events",
                       "Events waiting for the writer.", 0, NULL, NULL, 0);
    m_queue = q != NULL ? metrics_series(q, NULL) : NULL;
}

static void count(struct metrics_family *f, const char *result, double v)
{
    const char *lv[1] = {result};

    if (f != NULL && v > 0)
        metrics_inc_labels(f, lv, v);
}

/* CLOCK_MONOTONIC (the condvars' clock) `s` seconds from now, rounded
 * up to the next nanosecond so a wait never ends early. */
static void deadline_after(double s, struct timespec *dl)
{
    long ns;

    clock_gettime(CLOCK_MONOTONIC, dl);
    dl->tv_sec += (time_t)s;
    ns = dl->tv_nsec + (long)((s - (double)(time_t)s) * 1e9) + 1;
    dl->tv_sec += ns / 1000000000L;
    dl->tv_nsec = ns % 1000000000L;
}

static void item_free(struct item *it)
{
    for (size_t i = 0; i < it->n; i++)
        plat_an_event_cleanup(&it->evs[i]);
    free(it->evs);
    if (!it->detached)
        pthread_cond_destroy(&it->cv);
    free(it);
}

struct plat_an_writer *plat_an_writer_new(const char *conninfo,
                                          const struct plat_an_settings *set)
{
    struct plat_an_writer *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;

    if (w == NULL)
        return NULL;
    pthread_once(&metrics_once, metrics_setup);
    w->set = set;
    w->conninfo = strdup(conninfo);
    w->nth = set->writers > 0 ? (int)set->writers : 1;
    w->th = calloc((size_t)w->nth, sizeof(*w->th));
    if (w->conninfo == NULL || w->th == NULL)
        goto fail;
    for (int i = 0; i < w->nth; i++) {
        struct wthread *t = &w->th[i];

        t->w = w;
        t->idx = i;
        t->db.conninfo = w->conninfo;
        /* Every item holds >= 1 event: commit_max + 1 slots suffice. */
        t->group_cap = (size_t)set->commit_max + 1;
        t->group = calloc(t->group_cap, sizeof(*t->group));
        if (t->group == NULL)
            goto fail;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    return w;
fail:
    for (int i = 0; w->th != NULL && i < w->nth; i++)
        free(w->th[i].group);
    free(w->th);
    free(w->conninfo);
    free(w);
    return NULL;
}

/*
 * Writes the rows of `items` in one transaction. On PLAT_AN_OK every
 * row's `stored` says whether it was new. Writer thread only.
 */
static enum plat_an_result write_items(struct wthread *t,
                                       struct item **items, size_t nitems)
{
    struct plat_an_event **rows;
    size_t n = 0, k = 0;
    enum plat_an_result rc;

    for (size_t i = 0; i < nitems; i++)
        n += items[i]->n;
    rows = malloc((n != 0 ? n : 1) * sizeof(*rows));
    if (rows == NULL)
        return PLAT_AN_ERROR;
    for (size_t i = 0; i < nitems; i++) {
        for (size_t j = 0; j < items[i]->n; j++)
            rows[k++] = &items[i]->evs[j];
    }
    rc = plat_an_conn_write(&t->db, rows, n);
    free(rows);
    return rc;
}

static void maintain(struct wthread *t)
{
    const struct plat_an_settings *set = t->w->set;

    t->next_maint = httpd_now() + (double)set->maintenance_interval_s;
    if (plat_an_conn_open(&t->db) != 0) {
        /* Try again soon rather than in a whole interval. */
        t->next_maint = httpd_now() + 5;
        return;
    }
    if ((plat_an_ensure_partitions(t->db.conn, set->partitions_ahead) < 0 ||
         plat_an_prune_dedupe(t->db.conn, set->dedupe_retention_days) < 0) &&
        PQstatus(t->db.conn) != CONNECTION_OK) {
        plat_an_conn_close(&t->db);
        t->next_maint = httpd_now() + 5;
    }
}

/* Writer 0 vacuums the pending rollup table at most this often. */
#define PENDING_VACUUM_S 5.0

/*
 * Writer 0: folds the pending rollup rows into the rollup tables when
 * some group committed new ones and the interval has passed (or `force`).
 * A failure leaves them pending for the next try (or the next reader).
 */
static void apply_rollups(struct wthread *t, int force)
{
    struct plat_an_writer *w = t->w;
    double now = httpd_now();

    /* Every group leaves a dead pending row behind and readers scan the
     * table before each rollup read: keep it from bloating between
     * autovacuum runs (VACUUM skips a truncation it cannot lock for). */
    if (t->vacuum_owed && now >= t->next_vacuum) {
        t->next_vacuum = now + PENDING_VACUUM_S;
        if (plat_an_conn_open(&t->db) == 0) {
            PQclear(PQexec(t->db.conn,
                           "VACUUM platform.analytics_rollup_pending"));
            t->vacuum_owed = 0;
        }
    }
    if (!force && (now < t->next_apply ||
                   atomic_load(&w->rollups_pending) == 0))
        return;
    t->next_apply = now + (double)w->set->rollup_interval_ms / 1000.0;
    atomic_store(&w->rollups_pending, 0);
    if (plat_an_conn_open(&t->db) == 0 &&
        plat_an_rollup_apply(t->db.conn) >= 0) {
        t->vacuum_owed = 1;
    } else {
        atomic_store(&w->rollups_pending, 1);
        log_kv(LOG_LVL_WARN, NULL, "analytics rollups not applied; retrying",
               "error", t->db.conn != NULL ? PQerrorMessage(t->db.conn)
                                           : "no connection", NULL);
        if (t->db.conn != NULL && PQstatus(t->db.conn) != CONNECTION_OK)
            plat_an_conn_close(&t->db);
    }
}

/* Writes a group; on a non-connection error retries item by item. */
static void process(struct wthread *t, struct item **items,
                    size_t nitems)
{
    double t0 = httpd_now();
    enum plat_an_result rc = write_items(t, items, nitems);

    if (rc == PLAT_AN_ERROR && nitems > 1) {
        for (size_t i = 0; i < nitems; i++)
            items[i]->result = write_items(t, &items[i], 1);
    } else {
        for (size_t i = 0; i < nitems; i++)
            items[i]->result = rc;
    }
    count(m_commits, rc == PLAT_AN_OK ? "ok"
                     : rc == PLAT_AN_UNAVAILABLE ? "unavailable" : "error",
          1);
    if (m_commit_s != NULL && rc == PLAT_AN_OK)
        metrics_observe_labels(m_commit_s, NULL, httpd_now() - t0);
    for (size_t i = 0; i < nitems; i++) {
        struct item *it = items[i];
        size_t stored = 0;

        for (size_t j = 0; j < it->n; j++)
            stored += it->evs[j].stored != 0;
        it->stored = it->result == PLAT_AN_OK ? stored : 0;
        if (it->result == PLAT_AN_OK) {
            /* stored rows committed a pending rollup row with them */
            if (stored > 0)
                atomic_store(&t->w->rollups_pending, 1);
            count(m_events, "stored", (double)stored);
            count(m_events, "duplicate", (double)(it->n - stored));
        } else {
            count(m_events, "failed", (double)it->n);
        }
    }
}

static void *writer_main(void *arg)
{
    struct wthread *t = arg;
    struct plat_an_writer *w = t->w;

    if (t->idx == 0)
        maintain(t);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        size_t ng = 0;
        long rows = 0;
        struct timespec dl;

        while (w->head == NULL && !w->stopping) {
            double due = t->next_maint, wait;

            if (t->idx != 0) {
                pthread_cond_wait(&w->wake, &w->mu);
                continue;
            }
            if (atomic_load(&w->rollups_pending) && t->next_apply < due)
                due = t->next_apply;
            if (t->vacuum_owed && t->next_vacuum < due)
                due = t->next_vacuum;
            wait = due - httpd_now();
            if (wait <= 0)
                break;
            deadline_after(wait, &dl);
            pthread_cond_timedwait(&w->wake, &w->mu, &dl);
        }
        if (w->head == NULL && w->stopping)
            break;
        if (w->head == NULL) {
            pthread_mutex_unlock(&w->mu);
            if (httpd_now() >= t->next_maint)
                maintain(t);
            apply_rollups(t, 0);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        while (w->head != NULL && ng < t->group_cap &&
               (ng == 0 || rows + (long)w->head->n <= w->set->commit_max)) {
            struct item *it = w->head;

            w->head = it->next;
            if (w->head == NULL)
                w->tail = NULL;
            it->next = NULL;
            t->group[ng++] = it;
            rows += (long)it->n;
        }
        w->queued -= rows;
        if (m_queue != NULL)
            metrics_set(m_queue, (double)w->queued);
        /* More work queued than this group took: wake another writer. */
        if (w->head != NULL)
            pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);

        if (t->idx == 0 && httpd_now() >= t->next_maint)
            maintain(t);
        process(t, t->group, ng);
        if (t->idx == 0)
            apply_rollups(t, 0);

        pthread_mutex_lock(&w->mu);
        for (size_t i = 0; i < ng; i++) {
            struct item *it = t->group[i];

            if (it->detached || it->abandoned) {
                item_free(it);
            } else {
                it->done = 1;
                pthread_cond_signal(&it->cv);
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
    plat_an_conn_close(&t->db);
    return NULL;
}

int plat_an_writer_start(struct plat_an_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->running = 1;
    w->stopping = 0;
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nth; i++) {
        if (pthread_create(&w->th[i].thread, NULL, writer_main,
                           &w->th[i]) != 0) {
            log_error(NULL, "cannot start analytics writer thread %d", i);
            plat_an_writer_stop(w);
            return -1;
        }
        w->th[i].started = 1;
    }
    return 0;
}

void plat_an_writer_stop(struct plat_an_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nth; i++) {
        if (w->th[i].started)
            pthread_join(w->th[i].thread, NULL);
        w->th[i].started = 0;
    }
    /* Every group is committed now: leave no rollup pending. */
    if (atomic_load(&w->rollups_pending)) {
        apply_rollups(&w->th[0], 1);
        plat_an_conn_close(&w->th[0].db);
    }
    pthread_mutex_lock(&w->mu);
    w->running = 0;
    pthread_mutex_unlock(&w->mu);
}

void plat_an_writer_free(struct plat_an_writer *w)
{
    if (w == NULL)
        return;
    plat_an_writer_stop(w);
    /* Anything still queued was never taken (start failed). */
    while (w->head != NULL) {
        struct item *it = w->head;

        w->head = it->next;
        item_free(it);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    for (int i = 0; i < w->nth; i++) {
        plat_an_conn_cleanup(&w->th[i].db);
        free(w->th[i].group);
    }
    free(w->th);
    free(w->conninfo);
    free(w);
}

/* Queues `it` (n events); PLAT_AN_OK or why not. Caller holds w->mu. */
static enum plat_an_result push_locked(struct plat_an_writer *w,
                                       struct item *it)
{
    if (!w->running || w->stopping)
        return PLAT_AN_STOPPED;
    if (w->queued + (long)it->n > w->set->queue_max)
        return PLAT_AN_OVERLOADED;
    if (w->tail != NULL)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->queued += (long)it->n;
    if (m_queue != NULL)
        metrics_set(m_queue, (double)w->queued);
    pthread_cond_signal(&w->wake);
    return PLAT_AN_OK;
}

enum plat_an_result plat_an_writer_submit_take(struct plat_an_writer *w,
                                               struct plat_an_event *evs,
                                               size_t n, size_t *stored,
                                               size_t *duplicates)
{
    struct item *it = calloc(1, sizeof(*it));
    pthread_condattr_t ca;
    enum plat_an_result rc;
    struct timespec dl;

    if (it == NULL) {
        for (size_t i = 0; i < n; i++)
            plat_an_event_cleanup(&evs[i]);
        free(evs);
        return PLAT_AN_ERROR;
    }
    it->evs = evs;
    it->n = n;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&it->cv, &ca);
    pthread_condattr_destroy(&ca);

    deadline_after((double)w->set->commit_timeout_ms / 1000.0, &dl);
    pthread_mutex_lock(&w->mu);
    rc = push_locked(w, it);
    if (rc != PLAT_AN_OK) {
        pthread_mutex_unlock(&w->mu);
        item_free(it);
        return rc;
    }
    while (!it->done) {
        if (pthread_cond_timedwait(&it->cv, &w->mu, &dl) == ETIMEDOUT &&
            !it->done) {
            /* The writer still holds the item; it frees it when done. */
            it->abandoned = 1;
            pthread_mutex_unlock(&w->mu);
            return PLAT_AN_TIMEOUT;
        }
    }
    pthread_mutex_unlock(&w->mu);
    rc = it->result;
    if (rc == PLAT_AN_OK) {
        *stored = it->stored;
        *duplicates = it->n - it->stored;
    }
    item_free(it);
    return rc;
}

enum plat_an_result plat_an_writer_enqueue_take(struct plat_an_writer *w,
                                                struct plat_an_event *ev)
{
    struct item *it = calloc(1, sizeof(*it));
    enum plat_an_result rc;

    if (it == NULL) {
        plat_an_event_cleanup(ev);
        free(ev);
        return PLAT_AN_OVERLOADED;
    }
    it->evs = ev;
    it->n = 1;
    it->detached = 1;
    pthread_mutex_lock(&w->mu);
    rc = push_locked(w, it);
    pthread_mutex_unlock(&w->mu);
    if (rc != PLAT_AN_OK)
        item_free(it);
    return rc;
}
