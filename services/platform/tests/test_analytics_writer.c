/*
 * Analytics writer against a real PostgreSQL: group commit, dedupe
 * within and across batches, rollups, partitions, unavailability.
 *
 * Needs BASALT_TEST_DATABASE_URL, a database of its own (it drops and
 * recreates schema platform); fails, not skips, without it. Run from the
 * repository root (migrations from services/platform/migrations, or
 * BASALT_PLATFORM_MIGRATIONS).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/analytics_writer.c"

#include "pgpool/pgpool.h"

static const char *db_url;
static PGconn *conn;
static struct plat_an_settings set;

static const char *migrations_dir(void)
{
    const char *d = getenv("BASALT_PLATFORM_MIGRATIONS");
    return d != NULL && d[0] != '\0' ? d : "services/platform/migrations";
}

static void t_exec(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                      PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static long long scalar(const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    long long v;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(conn));
    ck_assert_int_eq(PQntuples(res), 1);
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Once per process (each test forks): fresh schema, migrations. */
static void setup_db(void)
{
    struct pgpool *pool;
    PGconn *c;
    PGresult *res;

    db_url = getenv("BASALT_TEST_DATABASE_URL");
    if (db_url == NULL || db_url[0] == '\0') {
        fprintf(stderr, "BASALT_TEST_DATABASE_URL is not set; run through "
                        "make unit (scripts/run-unit-tests)\n");
        exit(EXIT_FAILURE);
    }
    c = PQconnectdb(db_url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect: %s", PQerrorMessage(c));
        exit(EXIT_FAILURE);
    }
    res = PQexec(c, "SET client_min_messages = warning; "
                    "DROP SCHEMA IF EXISTS platform CASCADE");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "cannot reset schema: %s", PQerrorMessage(c));
        exit(EXIT_FAILURE);
    }
    PQclear(res);
    PQfinish(c);
    pool = pgpool_new(db_url, 1, 5);
    if (pool == NULL ||
        pgpool_migrate(pool, "platform", migrations_dir()) != 0) {
        fprintf(stderr, "migrations failed\n");
        exit(EXIT_FAILURE);
    }
    pgpool_free(pool);
}

static void setup(void)
{
    conn = PQconnectdb(db_url);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    t_exec(conn, "SET TimeZone = 'UTC'");
    t_exec(conn, "TRUNCATE platform.analytics_events, "
                  "platform.analytics_dedupe, platform.analytics_hourly, "
                  "platform.analytics_hourly_ids, "
                  "platform.analytics_rollup_pending");
    memset(&set, 0, sizeof(set));
    set.max_batch = 1000;
    set.max_body = 1 << 20;
    set.max_properties = 1024;
    set.queue_max = 100000;
    set.commit_max = 20000;
    set.writers = 2;
    set.commit_timeout_ms = 20000;
    set.partitions_ahead = 3;
    set.maintenance_interval_s = 3600;
    set.rollup_interval_ms = 100;
}

static void teardown(void)
{
    PQfinish(conn);
}

/* 2025-01-02T03:00:00Z */
#define BASE_US 1735786800000000LL

/* A malloc'd batch of n events: message ids "<tag>-<i>", user ids
 * "d<i % users>", times BASE_US + i minutes. */
static struct plat_an_event *make_batch(const char *tag, size_t n,
                                        size_t users, const char *owner)
{
    struct plat_an_event *evs = calloc(n, sizeof(*evs));

    ck_assert_ptr_nonnull(evs);
    for (size_t i = 0; i < n; i++) {
        snprintf(evs[i].message_id, sizeof(evs[i].message_id), "%s-%zu", tag,
                 i);
        snprintf(evs[i].event, sizeof(evs[i].event), "%s",
                 i % 2 == 0 ? "view" : "click");
        snprintf(evs[i].distinct_id, sizeof(evs[i].distinct_id), "d%zu",
                 i % users);
        snprintf(evs[i].owner, sizeof(evs[i].owner), "%s", owner);
        evs[i].ts_us = BASE_US + (int64_t)i * 60 * PLAT_AN_US_PER_S;
        evs[i].received_us = BASE_US;
        /* Characters COPY's text format must escape. */
        evs[i].properties = strdup("{\"s\":\"tab\\t nl\\n bs\\\\ q\\\"\"}");
    }
    return evs;
}

static struct plat_an_writer *started(const char *url)
{
    struct plat_an_writer *w = plat_an_writer_new(url, &set);

    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(plat_an_writer_start(w), 0);
    return w;
}

START_TEST(test_store_and_dedupe)
{
    struct plat_an_writer *w = started(db_url);
    size_t stored = 9, dups = 9;

    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("a", 100, 7,
                                                              "o1"),
                                                100, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 100);
    ck_assert_uint_eq(dups, 0);
    /* The same batch again (a client retry): nothing new. */
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("a", 100, 7,
                                                              "o1"),
                                                100, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 0);
    ck_assert_uint_eq(dups, 100);
    plat_an_writer_free(w);

    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     100);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events "
                            "WHERE properties->>'s' = "
                            "E'tab\\t nl\\n bs\\\\ q\"'"),
                     100);
    /* Rollups: every event counted once in its owner's and in "*". */
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = 'o1' AND event <> ''"),
                     100);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event <> ''"),
                     100);
    /* Event "" is every event of the hour. */
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = 'o1' AND event = ''"),
                     100);
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM ("
               " SELECT h.event, h.hour, h.n, h.uniq, x.n AS xn, x.u"
               " FROM (SELECT * FROM platform.analytics_hourly"
               "  WHERE scope = 'o1' AND event <> '') h FULL JOIN ("
               "  SELECT event, date_trunc('hour', ts) AS hour,"
               "  count(*) AS n, count(DISTINCT distinct_id) AS u"
               "  FROM platform.analytics_events GROUP BY 1, 2) x"
               " ON x.event = h.event AND x.hour = h.hour) t"
               " WHERE n IS DISTINCT FROM xn OR uniq IS DISTINCT FROM u"),
        0);
}
END_TEST

START_TEST(test_dedupe_within_batch)
{
    struct plat_an_writer *w = started(db_url);
    struct plat_an_event *evs = make_batch("b", 10, 3, "o1");
    size_t stored = 0, dups = 0;

    /* Rows 3 and 7 repeat row 0's id: the first occurrence wins. */
    snprintf(evs[3].message_id, sizeof(evs[3].message_id), "b-0");
    snprintf(evs[7].message_id, sizeof(evs[7].message_id), "b-0");
    ck_assert_int_eq(plat_an_writer_submit_take(w, evs, 10, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 8);
    ck_assert_uint_eq(dups, 2);
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     8);
    ck_assert_int_eq(scalar("SELECT extract(epoch FROM ts)::bigint FROM "
                            "platform.analytics_events WHERE message_id = "
                            "'b-0'"),
                     BASE_US / PLAT_AN_US_PER_S);
}
END_TEST

struct client {
    struct plat_an_writer *w;
    int id;
    int ok;
    size_t stored;
};

#define CLIENTS 8
#define BATCHES 10
#define PER_BATCH 50

static void *client_main(void *arg)
{
    struct client *c = arg;
    char tag[32];

    for (int b = 0; b < BATCHES; b++) {
        size_t stored = 0, dups = 0;
        /* Overlap: batch b repeats batch b-1's second half. */
        snprintf(tag, sizeof(tag), "c%d-%d", c->id, b);
        if (plat_an_writer_submit_take(c->w, make_batch(tag, PER_BATCH, 13,
                                                        "o2"),
                                       PER_BATCH, &stored,
                                       &dups) == PLAT_AN_OK)
            c->ok++;
        c->stored += stored;
    }
    return NULL;
}

START_TEST(test_concurrent_group_commit)
{
    struct plat_an_writer *w = started(db_url);
    struct client cl[CLIENTS];
    pthread_t th[CLIENTS];

    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){.w = w, .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &cl[i]),
                         0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(cl[i].ok, BATCHES);
        ck_assert_uint_eq(cl[i].stored, BATCHES * PER_BATCH);
    }
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     CLIENTS * BATCHES * PER_BATCH);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"),
                     CLIENTS * BATCHES * PER_BATCH);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = 'o2' AND event <> ''"),
                     CLIENTS * BATCHES * PER_BATCH);
    /* Exact uniques per hour match the raw rows. */
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_hourly h WHERE "
               "scope = '*' AND uniq <> (SELECT count(DISTINCT distinct_id) "
               "FROM platform.analytics_events e WHERE (h.event = '' OR "
               "e.event = h.event) AND date_trunc('hour', e.ts) = h.hour)"),
        0);
}
END_TEST

START_TEST(test_enqueue_detached)
{
    struct plat_an_writer *w = started(db_url);
    struct plat_an_event *ev = make_batch("t", 1, 1, "");
    long long n = 0;

    ck_assert_int_eq(plat_an_writer_enqueue_take(w, ev), PLAT_AN_OK);
    /* stop writes what is queued before returning */
    plat_an_writer_free(w);
    n = scalar("SELECT count(*) FROM platform.analytics_events WHERE "
               "message_id = 't-0' AND owner = ''");
    ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(test_unavailable)
{
    struct plat_an_writer *w =
        started("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    size_t stored = 0, dups = 0;

    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("u", 5, 1, "o"),
                                                5, &stored, &dups),
                     PLAT_AN_UNAVAILABLE);
    /* The writer stays up and keeps answering 503 while PostgreSQL is
     * unreachable (it retries the connection per group). */
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("v", 5, 1, "o"),
                                                5, &stored, &dups),
                     PLAT_AN_UNAVAILABLE);
    plat_an_writer_free(w);
}
END_TEST

START_TEST(test_stopped_and_overloaded)
{
    struct plat_an_writer *w = plat_an_writer_new(db_url, &set);
    size_t stored, dups;

    /* Not started: refused, nothing leaks. */
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("s", 2, 1, "o"),
                                                2, &stored, &dups),
                     PLAT_AN_STOPPED);
    ck_assert_int_eq(plat_an_writer_start(w), 0);
    set.queue_max = 3;
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("s", 4, 1, "o"),
                                                4, &stored, &dups),
                     PLAT_AN_OVERLOADED);
    plat_an_writer_free(w);
}
END_TEST

/* Submits a batch of n events over `users` distinct ids; must be OK. */
static void submit_ok(struct plat_an_writer *w, const char *tag, size_t n,
                      size_t users)
{
    size_t stored = 0, dups = 0;

    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch(tag, n, users,
                                                              "o"),
                                                n, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, n);
}

/* A submit from its own thread (the group-forming tests). */
struct submitter {
    struct plat_an_writer *w;
    struct plat_an_event *evs;
    size_t n, stored;
    enum plat_an_result rc;
};

static void *submit_main(void *arg)
{
    struct submitter *s = arg;
    size_t dups = 0;

    s->rc = plat_an_writer_submit_take(s->w, s->evs, s->n, &s->stored,
                                       &dups);
    return NULL;
}

/* Holds analytics_dedupe locked in an open transaction on its own
 * connection: the writer's next group waits at its first COPY. */
static PGconn *lock_dedupe(void)
{
    PGconn *c = PQconnectdb(db_url);

    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    t_exec(c, "BEGIN");
    t_exec(c, "LOCK TABLE platform.analytics_dedupe IN ACCESS EXCLUSIVE "
              "MODE");
    return c;
}

/* Events queued and not yet taken into a group by a writer. */
static long queued_events(struct plat_an_writer *w)
{
    long n;

    pthread_mutex_lock(&w->mu);
    n = w->queued;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Waits (up to 10 s) until exactly `n` events are queued. */
static void wait_queued(struct plat_an_writer *w, long n)
{
    for (int i = 0; i < 1000 && queued_events(w) != n; i++)
        usleep(10 * 1000);
    ck_assert_int_eq(queued_events(w), n);
}

/* Waits (up to 10 s) until some backend waits for a lock. */
static void wait_lock_waiter(void)
{
    for (int i = 0; i < 1000; i++) {
        if (scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                   "datname = current_database() AND "
                   "wait_event_type = 'Lock'") > 0)
            return;
        usleep(10 * 1000);
    }
    ck_abort_msg("the writer never waited for the lock");
}

/*
 * A group that fails for a reason other than the connection is written
 * again one request at a time: the request that cannot be stored fails
 * alone and its neighbours in the group are stored. (A row trigger
 * stands in for any per-request failure.)
 */
START_TEST(test_failed_group_retried_per_request)
{
    struct submitter a, b, c;
    pthread_t ta, tb, tc;
    PGconn *lk;
    struct plat_an_writer *w;
    struct plat_an_event *poison;

    t_exec(conn, "CREATE OR REPLACE FUNCTION platform.t_poison() RETURNS "
                 "trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event = "
                 "'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                 "RETURN NEW; END $$");
    t_exec(conn, "CREATE TRIGGER t_poison BEFORE INSERT ON "
                 "platform.analytics_events FOR EACH ROW EXECUTE FUNCTION "
                 "platform.t_poison()");
    set.writers = 1;
    w = started(db_url);
    /* the writer is connected and past its start-up maintenance (which
     * also touches analytics_dedupe) once a first batch is stored */
    submit_ok(w, "rw", 1, 1);
    lk = lock_dedupe();
    /* a: alone in a group, which waits for the lock */
    a = (struct submitter){w, make_batch("ra", 3, 3, "o"), 3, 0, -1};
    ck_assert_int_eq(pthread_create(&ta, NULL, submit_main, &a), 0);
    wait_queued(w, 0);
    wait_lock_waiter();
    /* b and c queue meanwhile: the next group is both of them */
    poison = make_batch("rb", 2, 2, "o");
    snprintf(poison[1].event, sizeof(poison[1].event), "poison");
    b = (struct submitter){w, poison, 2, 0, -1};
    c = (struct submitter){w, make_batch("rc", 4, 4, "o"), 4, 0, -1};
    ck_assert_int_eq(pthread_create(&tb, NULL, submit_main, &b), 0);
    ck_assert_int_eq(pthread_create(&tc, NULL, submit_main, &c), 0);
    wait_queued(w, 6);
    t_exec(lk, "COMMIT");
    PQfinish(lk);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    plat_an_writer_free(w);
    t_exec(conn, "DROP TRIGGER t_poison ON platform.analytics_events");
    ck_assert_int_eq(a.rc, PLAT_AN_OK);
    ck_assert_uint_eq(a.stored, 3);
    ck_assert_int_eq(b.rc, PLAT_AN_ERROR);
    ck_assert_int_eq(c.rc, PLAT_AN_OK);
    ck_assert_uint_eq(c.stored, 4);
    /* nothing of b, not even its first (valid) event or its ids */
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     1 + 3 + 4);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe "
                            "WHERE message_id LIKE 'rb-%'"), 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 1 + 3 + 4);
}
END_TEST

/*
 * No commit within commit_timeout_ms: the request gets PLAT_AN_TIMEOUT
 * (outcome unknown, the client retries with the same message_ids); the
 * writer still owns the batch, finishes it once it can and frees it.
 */
START_TEST(test_commit_timeout)
{
    struct plat_an_writer *w;
    PGconn *lk;
    size_t stored = 0, dups = 0;
    long long n = 0;

    set.writers = 1;
    set.commit_timeout_ms = 200;
    w = started(db_url);
    lk = lock_dedupe();
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("to", 5, 5,
                                                              "o"),
                                                5, &stored, &dups),
                     PLAT_AN_TIMEOUT);
    t_exec(lk, "COMMIT");
    PQfinish(lk);
    for (int i = 0; i < 1000 && n < 5; i++) {
        n = scalar("SELECT count(*) FROM platform.analytics_events");
        if (n < 5)
            usleep(10 * 1000);
    }
    ck_assert_int_eq(n, 5);
    /* the retry the client makes stores nothing twice */
    set.commit_timeout_ms = 20000;
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("to", 5, 5,
                                                              "o"),
                                                5, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 0);
    ck_assert_uint_eq(dups, 5);
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     5);
}
END_TEST

/*
 * Rollups are folded in from pending rows (migration 0004): a group's
 * counts wait in analytics_rollup_pending until writer 0's interval
 * passes or a reader applies them, and are then exact; writer 0 applies
 * them by itself when idle too.
 */
START_TEST(test_rollups_pending_until_applied)
{
    struct plat_an_writer *w;
    long long pending = 1;

    set.writers = 1;
    set.rollup_interval_ms = 60000;
    w = started(db_url);
    /* the first group is applied at once (nothing applied yet) */
    submit_ok(w, "p1", 10, 4);
    submit_ok(w, "p2", 6, 6);
    ck_assert_int_eq(scalar("SELECT count(*) FROM "
                            "platform.analytics_rollup_pending"), 1);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 10);
    /* a reader applies what is pending, exactly once */
    ck_assert_int_eq(plat_an_rollup_apply(conn), 1);
    ck_assert_int_eq(plat_an_rollup_apply(conn), 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 16);
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_hourly h WHERE "
               "uniq <> (SELECT count(DISTINCT distinct_id) FROM "
               "platform.analytics_events e WHERE (h.scope = '*' OR "
               "e.owner = h.scope) AND (h.event = '' OR e.event = h.event) "
               "AND date_trunc('hour', e.ts) = h.hour)"),
        0);
    plat_an_writer_free(w);

    /* with a short interval writer 0 applies on its own while idle */
    set.rollup_interval_ms = 50;
    w = started(db_url);
    submit_ok(w, "p3", 3, 3);
    submit_ok(w, "p4", 3, 3);
    for (int i = 0; i < 500 && pending > 0; i++) {
        pending = scalar("SELECT count(*) FROM "
                         "platform.analytics_rollup_pending");
        if (pending > 0)
            usleep(10 * 1000);
    }
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 22);
    plat_an_writer_free(w);
}
END_TEST

START_TEST(test_partitions)
{
    long long months = scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON "
        "c.oid = i.inhrelid WHERE i.inhparent = "
        "'platform.analytics_events'::regclass AND c.relname ~ "
        "'^analytics_events_[0-9]{6}$'");
    char sql[256];
    PGresult *res;

    ck_assert_int_ge(months, 4);
    /* Idempotent. */
    ck_assert_int_eq(plat_an_ensure_partitions(conn, 3), 0);
    /* A missing month ahead is created again. */
    res = PQexec(conn, "SELECT 'analytics_events_' || to_char(date_trunc("
                       "'month', now() AT TIME ZONE 'UTC') + interval "
                       "'2 months', 'YYYYMM')");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(sql, sizeof(sql), "DROP TABLE platform.%s",
             PQgetvalue(res, 0, 0));
    PQclear(res);
    t_exec(conn, sql);
    ck_assert_int_eq(plat_an_ensure_partitions(conn, 3), 1);
    /* Current rows land in their month, not in the default partition. */
    t_exec(conn, "INSERT INTO platform.analytics_events (ts, event, "
                  "distinct_id, message_id) VALUES (now(), 'p', 'd', 'p1')");
    ck_assert_int_eq(scalar("SELECT count(*) FROM "
                            "platform.analytics_events_default"),
                     0);
    /* Old rows go to the default partition instead of failing. */
    t_exec(conn, "INSERT INTO platform.analytics_events (ts, event, "
                  "distinct_id, message_id) VALUES "
                  "('2001-01-01Z', 'p', 'd', 'p2')");
    ck_assert_int_eq(scalar("SELECT count(*) FROM "
                            "platform.analytics_events_default"),
                     1);
}
END_TEST

START_TEST(test_prune_dedupe)
{
    t_exec(conn, "INSERT INTO platform.analytics_dedupe VALUES "
                 "('old-1', now() - interval '40 days'), "
                 "('new-1', now() - interval '1 day')");
    ck_assert_int_eq(plat_an_prune_dedupe(conn, 0), 0);
    ck_assert_int_eq(plat_an_prune_dedupe(conn, 30), 1);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe "
                            "WHERE message_id = 'new-1'"),
                     1);
}
END_TEST

START_TEST(test_known_keys_keep_uniques_exact)
{
    struct plat_an_writer *w;
    size_t stored, dups;
    const char *tags[] = {"k1", "k2", "k3"};

    set.writers = 1; /* one connection: the second batch hits its cache */
    w = started(db_url);
    for (size_t b = 0; b < 3; b++) {
        /* 30 events, users d0..d4 (b = 2: d0..d5), all in one hour. */
        struct plat_an_event *evs = make_batch(tags[b], 30, 5, "o3");

        for (size_t i = 0; i < 30; i++)
            evs[i].ts_us = BASE_US + (int64_t)i * PLAT_AN_US_PER_S;
        if (b == 2)
            snprintf(evs[7].distinct_id, sizeof(evs[7].distinct_id), "d5");
        ck_assert_int_eq(plat_an_writer_submit_take(w, evs, 30, &stored,
                                                    &dups),
                         PLAT_AN_OK);
        ck_assert_uint_eq(stored, 30);
    }
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = 'o3' AND event <> ''"),
                     90);
    ck_assert_int_eq(scalar("SELECT uniq FROM platform.analytics_hourly "
                            "WHERE scope = 'o3' AND event = ''"),
                     6);
    /* Every rollup row agrees with the raw rows... */
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_hourly h WHERE "
               "scope IN ('o3', '*') AND uniq <> (SELECT count(DISTINCT "
               "distinct_id) FROM platform.analytics_events e WHERE "
               "(h.event = '' OR e.event = h.event) AND "
               "date_trunc('hour', e.ts) = h.hour)"),
        0);
    /* ...and clicks (odd rows) saw d0..d4, then d5 in the last batch. */
    ck_assert_int_eq(scalar("SELECT uniq FROM platform.analytics_hourly "
                            "WHERE scope = 'o3' AND event = 'click'"),
                     6);
}
END_TEST

/*
 * A batch half made of ids already stored (a client retrying after a
 * lost reply): the COPY of ids hits the unique index, the group starts
 * over with ON CONFLICT, stores exactly the new half, and the next
 * groups stay on that path for a while.
 */
START_TEST(test_partial_retry_falls_back)
{
    struct plat_an_writer *w;
    struct plat_an_event *all, *evs;
    size_t stored = 0, dups = 0;

    set.writers = 1;
    w = started(db_url);
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("r", 40, 3,
                                                              "o4"),
                                                40, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 40);
    ck_assert_int_eq(w->th[0].db.slow_groups, 0);
    /* r-20..r-39 again, then 20 new ids. */
    all = make_batch("r", 60, 3, "o4");
    evs = calloc(40, sizeof(*evs));
    ck_assert_ptr_nonnull(evs);
    memcpy(evs, all + 20, 40 * sizeof(*evs));
    for (size_t i = 0; i < 20; i++)
        plat_an_event_cleanup(&all[i]);
    free(all);
    ck_assert_int_eq(plat_an_writer_submit_take(w, evs, 40, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 20);
    ck_assert_uint_eq(dups, 20);
    ck_assert_int_eq(w->th[0].db.slow_groups, PLAT_AN_DEDUPE_SLOW_GROUPS);
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("s", 10, 3,
                                                              "o4"),
                                                10, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 10);
    ck_assert_int_eq(w->th[0].db.slow_groups, PLAT_AN_DEDUPE_SLOW_GROUPS - 1);
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"
                            " WHERE owner = 'o4'"),
                     70);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"
                            " WHERE message_id LIKE 'r-%' OR"
                            " message_id LIKE 's-%'"),
                     70);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = 'o4' AND event = ''"),
                     70);
}
END_TEST

/* Text that array literals and COPY must quote: stored exactly. */
START_TEST(test_special_characters)
{
    struct plat_an_writer *w;
    struct plat_an_event *evs = make_batch("sp", 3, 3, "o\"4\\");
    size_t stored, dups;

    snprintf(evs[0].message_id, sizeof(evs[0].message_id),
             "m\"q\\b,{c} NULL");
    snprintf(evs[0].event, sizeof(evs[0].event), "ev \"x\" \\ {a,b}");
    snprintf(evs[0].distinct_id, sizeof(evs[0].distinct_id), " NULL ");
    snprintf(evs[1].distinct_id, sizeof(evs[1].distinct_id), "\xc3\xa9\"");
    w = started(db_url);
    ck_assert_int_eq(plat_an_writer_submit_take(w, evs, 3, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 3);
    plat_an_writer_free(w);
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_events WHERE "
               "message_id = E'm\"q\\\\b,{c} NULL' AND "
               "event = E'ev \"x\" \\\\ {a,b}' AND distinct_id = ' NULL ' "
               "AND owner = E'o\"4\\\\'"),
        1);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe "
                            "WHERE message_id = E'm\"q\\\\b,{c} NULL'"),
                     1);
    ck_assert_int_eq(
        scalar("SELECT n FROM platform.analytics_hourly WHERE "
               "scope = E'o\"4\\\\' AND event = E'ev \"x\" \\\\ {a,b}'"),
        1);
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_hourly_ids WHERE "
               "scope = '*' AND event = '' AND distinct_id IN "
               "(' NULL ', E'\xc3\xa9\"')"),
        2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("analytics_writer");
    TCase *tc = tcase_create("db");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_store_and_dedupe);
    tcase_add_test(tc, test_dedupe_within_batch);
    tcase_add_test(tc, test_concurrent_group_commit);
    tcase_add_test(tc, test_enqueue_detached);
    tcase_add_test(tc, test_unavailable);
    tcase_add_test(tc, test_stopped_and_overloaded);
    tcase_add_test(tc, test_partitions);
    tcase_add_test(tc, test_prune_dedupe);
    tcase_add_test(tc, test_known_keys_keep_uniques_exact);
    tcase_add_test(tc, test_partial_retry_falls_back);
    tcase_add_test(tc, test_special_characters);
    tcase_add_test(tc, test_failed_group_retried_per_request);
    tcase_add_test(tc, test_commit_timeout);
    tcase_add_test(tc, test_rollups_pending_until_applied);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    setup_db();
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
