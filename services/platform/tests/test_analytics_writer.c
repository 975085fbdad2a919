/*
 * Analytics writer against a real PostgreSQL: group commit, dedupe
 * within and across batches, rollups, partitions, unavailability.
 * Groups that fail, time out or leave rollups pending:
 * test_analytics_writer_groups.c.
 */
#include "analytics_writer_fixture.h"

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
                 "(platform.analytics_owner_key('o'), 'old-1',"
                 " now() - interval '40 days'), "
                 "(platform.analytics_owner_key('o'), 'new-1',"
                 " now() - interval '1 day')");
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
    /* the writer's keys are the SQL function's (migration 0005) */
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"
                            " WHERE (owner_key, message_id) IN (SELECT"
                            " platform.analytics_owner_key(owner),"
                            " message_id FROM platform.analytics_events WHERE"
                            " message_id LIKE 'r-%' OR"
                            " message_id LIKE 's-%')"),
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
                            "WHERE owner_key = platform.analytics_owner_key("
                            "E'o\"4\\\\') AND "
                            "message_id = E'm\"q\\\\b,{c} NULL'"),
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
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_writer_suite(suite());
}
