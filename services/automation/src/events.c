/*
 * events — job and run state changes, best effort, over Redis pub/sub.
 *
 *   producers (workers, scheduler, API) --auto_events_emit--> bounded queue
 *     --publisher thread--> PUBLISH automation:events
 *   SUBSCRIBE automation:events --subscriber thread--> ring of recent
 *     events --> every SSE stream of this replica (GET /automation/events)
 *
 * Going through Redis (rather than straight to local streams) lets a
 * client on any replica see what every replica does. Producers never
 * block: a full queue or an unreachable Redis drops events (state is in
 * PostgreSQL). The publisher also turns a finished step job into a run
 * event (one batched lookup), off the workers' path.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "workflows.h"

#define QUEUE_CAP 4096
#define RING_CAP 1024
#define BATCH_MAX 256

struct ring_ev {
    char *text;            /* event JSON */
    char kind[16];         /* "job" / "run" / "workflow" */
    char owner[64];
};

struct auto_events {
    char *url;
    struct pgpool *pg;
    int keepalive_s;
    pthread_mutex_t mu;
    pthread_cond_t qcv;         /* publisher wake-up (CLOCK_MONOTONIC) */
    pthread_cond_t rcv;         /* SSE streams wake-up (CLOCK_MONOTONIC) */
    json_t *queue[QUEUE_CAP];   /* guarded by mu */
    size_t qhead, qlen;
    struct ring_ev ring[RING_CAP];
    unsigned long long rseq;    /* events ever put in the ring */
    int stop, closing, started;
    long dropped;
    pthread_t pub, sub;
};

static void deadline_ms(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static char *rfc3339_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06dZ", (int)(ts.tv_nsec / 1000));
    return buf;
}

struct auto_events *auto_events_new(const char *redis_url, struct pgpool *pg,
                                    int keepalive_s)
{
    struct auto_events *e;
    pthread_condattr_t a;
    char host[256], pass[256];
    int port, db;

    if (!redis_url || redispool_parse_url(redis_url, host, sizeof host,
                                          &port, pass, sizeof pass,
                                          &db) != 0)
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e || !(e->url = strdup(redis_url))) {
        free(e);
        return NULL;
    }
    e->pg = pg;
    e->keepalive_s = keepalive_s > 0 ? keepalive_s : 15;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&e->qcv, &a);
    pthread_cond_init(&e->rcv, &a);
    pthread_condattr_destroy(&a);
    return e;
}

void auto_events_emit(struct auto_events *e, json_t *ev)
{
    if (!e || !ev) {
        json_decref(ev);
        return;
    }
    pthread_mutex_lock(&e->mu);
    if (e->qlen == QUEUE_CAP || e->stop) {
        e->dropped++;
        pthread_mutex_unlock(&e->mu);
        json_decref(ev);
        return;
    }
    e->queue[(e->qhead + e->qlen++) % QUEUE_CAP] = ev;
    pthread_cond_signal(&e->qcv);
    pthread_mutex_unlock(&e->mu);
}

void auto_events_on_job(void *arg, const struct auto_job *j,
                        const char *state)
{
    char at[40];

    auto_events_emit(arg, json_pack("{sssIsssssssiss}", "kind", "job", "id",
                                    (json_int_t)j->id, "job_type", j->type,
                                    "state", state, "owner_id", j->owner_id,
                                    "attempts", j->attempts, "at",
                                    rfc3339_now(at, sizeof at)));
}

/* The event view of a run (no step results: they can be large). */
static json_t *run_event(const json_t *run)
{
    static const char *const keys[] = {"id", "workflow_id", "state",
                                       "trigger", "scheduled_at",
                                       "current_step", "error", "owner_id",
                                       NULL};
    json_t *ev = json_pack("{ss}", "kind", "run");
    char at[40];

    for (int i = 0; ev && keys[i]; i++) {
        json_t *v = json_object_get(run, keys[i]);

        json_object_set(ev, keys[i], v ? v : json_null());
    }
    if (ev)
        json_object_set_new(ev, "at", json_string(rfc3339_now(at,
                                                              sizeof at)));
    return ev;
}

void auto_events_emit_run(struct auto_events *e, const json_t *run)
{
    if (e && json_is_object(run))
        auto_events_emit(e, run_event(run));
}

/* ---- publisher ---------------------------------------------------------- */

static redisContext *connect_redis(const char *url, int timeout_ms)
{
    char host[256], pass[256];
    int port, db;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c;
    redisReply *r;

    if (redispool_parse_url(url, host, sizeof host, &port, pass, sizeof pass,
                            &db) != 0)
        return NULL;
    c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (*pass) {
        r = redisCommand(c, "AUTH %s", pass);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

/* Run events for finished step jobs in `jobs` (ids), appended to out. */
static void step_runs(struct auto_events *e, const char *ids, json_t *out)
{
    static const char *sql =
        "SELECT automation.run_json(r)::text FROM automation.run_steps rs"
        " JOIN automation.runs r ON r.id = rs.run_id"
        " WHERE rs.job_id = ANY($1::bigint[])";
    const char *p[1] = {ids};
    PGconn *c;
    PGresult *r;

    if (!e->pg || !(c = pgpool_acquire(e->pg, 1000)))
        return;
    r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *run = json_loads(PQgetvalue(r, i, 0), 0, NULL);

            if (run)
                json_array_append_new(out, run_event(run));
            json_decref(run);
        }
    }
    PQclear(r);
    pgpool_release(e->pg, c, 0);
}

static int terminal(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "dead") == 0 ||
           strcmp(state, "cancelled") == 0;
}

static void *pub_main(void *arg)
{
    struct auto_events *e = arg;
    redisContext *rc = NULL;
    double retry_at = 0;

    pthread_mutex_lock(&e->mu);
    for (;;) {
        json_t *batch = json_array();
        char ids[BATCH_MAX * 22 + 3];
        size_t idl = 0;
        struct timespec now;

        while (!e->stop && e->qlen == 0)
            pthread_cond_wait(&e->qcv, &e->mu);
        if (e->stop && e->qlen == 0) {
            json_decref(batch);
            break;
        }
        while (e->qlen > 0 && json_array_size(batch) < BATCH_MAX) {
            json_array_append_new(batch, e->queue[e->qhead]);
            e->qhead = (e->qhead + 1) % QUEUE_CAP;
            e->qlen--;
        }
        pthread_mutex_unlock(&e->mu);

        ids[idl++] = '{';
        for (size_t i = 0; i < json_array_size(batch); i++) {
            json_t *ev = json_array_get(batch, i);
            const char *st = json_string_value(json_object_get(ev, "state"));

            if (strcmp(json_string_value(json_object_get(ev, "kind")),
                       "job") == 0 && st && terminal(st))
                idl += (size_t)snprintf(
                    ids + idl, sizeof ids - idl, "%s%lld", idl > 1 ? "," : "",
                    (long long)json_integer_value(json_object_get(ev, "id")));
        }
        snprintf(ids + idl, sizeof ids - idl, "}");
        if (idl > 1)
            step_runs(e, ids, batch);

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!rc && now.tv_sec >= retry_at) {
            rc = connect_redis(e->url, 500);
            if (!rc)
                retry_at = now.tv_sec + 1;   /* Redis away: drop for 1 s */
        }
        for (size_t i = 0; rc && i < json_array_size(batch); i++) {
            char *text = json_dumps(json_array_get(batch, i), JSON_COMPACT);

            if (text)
                redisAppendCommand(rc, "PUBLISH %s %s", AUTO_EVENTS_CHANNEL,
                                   text);
            free(text);
        }
        for (size_t i = 0; rc && i < json_array_size(batch); i++) {
            void *reply = NULL;

            if (redisGetReply(rc, &reply) != REDIS_OK) {
                redisFree(rc);
                rc = NULL;
                retry_at = now.tv_sec + 1;
                break;
            }
            freeReplyObject(reply);
        }
        json_decref(batch);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc)
        redisFree(rc);
    return NULL;
}

/* ---- subscriber --------------------------------------------------------- */

static void ring_put(struct auto_events *e, const char *text)
{
    json_t *ev = json_loads(text, 0, NULL);
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    const char *owner = json_string_value(json_object_get(ev, "owner_id"));
    struct ring_ev *slot;
    char *copy;

    if (!kind || !owner || !(copy = strdup(text))) {
        json_decref(ev);
        return;
    }
    pthread_mutex_lock(&e->mu);
    slot = &e->ring[e->rseq % RING_CAP];
    free(slot->text);
    slot->text = copy;
    snprintf(slot->kind, sizeof slot->kind, "%s", kind);
    snprintf(slot->owner, sizeof slot->owner, "%s", owner);
    e->rseq++;
    pthread_cond_broadcast(&e->rcv);
    pthread_mutex_unlock(&e->mu);
    json_decref(ev);
}

static int stopping(struct auto_events *e)
{
    int s;

    pthread_mutex_lock(&e->mu);
    s = e->stop;
    pthread_mutex_unlock(&e->mu);
    return s;
}

static void *sub_main(void *arg)
{
    struct auto_events *e = arg;

    while (!stopping(e)) {
        redisContext *c = connect_redis(e->url, 1000);
        redisReply *r;

        if (!c) {
            struct timespec nap = {1, 0};

            nanosleep(&nap, NULL);
            continue;
        }
        r = redisCommand(c, "SUBSCRIBE %s", AUTO_EVENTS_CHANNEL);
        if (r)
            freeReplyObject(r);
        while (r && !stopping(e)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            void *reply = NULL;

            if (poll(&pfd, 1, 250) <= 0)
                continue;
            if (redisBufferRead(c) != REDIS_OK)
                break;
            while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
                redisReply *m = reply;

                if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
                    m->element[0]->type == REDIS_REPLY_STRING &&
                    strcmp(m->element[0]->str, "message") == 0 &&
                    m->element[2]->type == REDIS_REPLY_STRING)
                    ring_put(e, m->element[2]->str);
                freeReplyObject(reply);
                reply = NULL;
            }
            if (c->err)
                break;
        }
        redisFree(c);
    }
    return NULL;
}

int auto_events_start(struct auto_events *e)
{
    if (pthread_create(&e->pub, NULL, pub_main, e) != 0)
        return -1;
    if (pthread_create(&e->sub, NULL, sub_main, e) != 0) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_broadcast(&e->qcv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->pub, NULL);
        return -1;
    }
    e->started = 1;
    return 0;
}

void auto_events_shutdown(struct auto_events *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->closing = 1;
    pthread_cond_broadcast(&e->rcv);
    pthread_mutex_unlock(&e->mu);
}

void auto_events_free(struct auto_events *e)
{
    if (!e)
        return;
    auto_events_shutdown(e);
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) {
        pthread_join(e->pub, NULL);
        pthread_join(e->sub, NULL);
    }
    for (size_t i = 0; i < e->qlen; i++)
        json_decref(e->queue[(e->qhead + i) % QUEUE_CAP]);
    for (size_t i = 0; i < RING_CAP; i++)
        free(e->ring[i].text);
    pthread_cond_destroy(&e->qcv);
    pthread_cond_destroy(&e->rcv);
    pthread_mutex_destroy(&e->mu);
    free(e->url);
    free(e);
}

/* ---- SSE ---------------------------------------------------------------- */

struct sse {
    struct auto_events *e;
    struct httpd_server *srv;
    unsigned long long seq;     /* next ring event to look at */
    char user[64];
    int admin;
    int hello;
};

struct sse_route {
    struct auto_events *e;
    const struct auto_auth *auth;
};

/* Blocks until an event this user may see, a keep-alive is due or the
 * server drains. */
static long sse_read(void *arg, char *buf, size_t max)
{
    struct sse *s = arg;
    struct auto_events *e = s->e;
    struct timespec until;
    long n = 0;

    if (!s->hello) {
        s->hello = 1;
        return snprintf(buf, max, "retry: 2000\n: connected\n\n");
    }
    deadline_ms(&until, (long)e->keepalive_s * 1000);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        struct timespec slice, now;

        if (e->closing || httpd_draining(s->srv)) {
            n = HTTPD_READ_END;
            break;
        }
        if (s->seq + RING_CAP < e->rseq)
            s->seq = e->rseq - RING_CAP;   /* too slow: skip the oldest */
        while (s->seq < e->rseq) {
            struct ring_ev *ev = &e->ring[s->seq % RING_CAP];
            int len;

            s->seq++;
            if (!s->admin && strcmp(ev->owner, s->user) != 0)
                continue;
            len = snprintf(buf, max, "id: %llu\nevent: %s\ndata: %s\n\n",
                           s->seq, ev->kind, ev->text);
            if (len > 0 && (size_t)len < max) {
                n = len;
                break;
            }
        }
        if (n > 0)
            break;
        /* wake at least once a second to notice a drain */
        deadline_ms(&slice, 1000);
        if (slice.tv_sec > until.tv_sec ||
            (slice.tv_sec == until.tv_sec && slice.tv_nsec > until.tv_nsec))
            slice = until;
        pthread_cond_timedwait(&e->rcv, &e->mu, &slice);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > until.tv_sec ||
            (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec)) {
            n = snprintf(buf, max, ": keep-alive\n\n");
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

static void h_events(struct httpd_req *r, void *arg)
{
    struct sse_route *sr = arg;
    struct auto_identity who;
    struct sse *s;

    if (auto_identity_require(sr->auth, r, &who) != 0)
        return;
    s = calloc(1, sizeof *s);
    if (!s) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return;
    }
    s->e = sr->e;
    s->srv = r->srv;
    snprintf(s->user, sizeof s->user, "%s", who.user_id);
    s->admin = who.admin;
    pthread_mutex_lock(&sr->e->mu);
    s->seq = sr->e->rseq;   /* only what happens from now on */
    pthread_mutex_unlock(&sr->e->mu);
    httpd_add_header(r, "Cache-Control", "no-cache");
    httpd_add_header(r, "X-Accel-Buffering", "no");
    httpd_reply_stream(r, 200, "text/event-stream", sse_read, s, free);
}

int auto_events_routes(struct httpd_server *s, struct auto_events *e,
                       const struct auto_auth *auth)
{
    /* lives as long as the process, like the route table */
    static struct sse_route sr;

    sr.e = e;
    sr.auth = auth;
    return httpd_route(s, "GET", "/automation/events", h_events, &sr, 0);
}
