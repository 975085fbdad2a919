/*
 * Shared fixture of the analytics writer tests against a real PostgreSQL
 * (test_analytics_writer.c, test_analytics_writer_groups.c): the writer
 * compiled in, a fresh schema per binary, helpers to build batches.
 *
 * Needs BASALT_TEST_DATABASE_URL, a database of its own (it drops and
 * recreates schema platform); fails, not skips, without it. Run from the
 * repository root (migrations from services/platform/migrations, or
 * BASALT_PLATFORM_MIGRATIONS).
 */
#ifndef PLAT_ANALYTICS_WRITER_FIXTURE_H
#define PLAT_ANALYTICS_WRITER_FIXTURE_H

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/analytics_writer.c"

#include "pgpool/pgpool.h"
#include "platform_schema_fixture.h"

static const char *db_url;
static PGconn *conn;
static struct plat_an_settings set;

static inline void t_exec(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                      PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static inline long long scalar(const char *sql)
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
static inline void setup_db(void)
{
    struct pgpool *pool;

    db_url = reset_platform_schema();
    pool = pgpool_new(db_url, 1, 5);
    if (pool == NULL ||
        pgpool_migrate(pool, "platform", migrations_dir()) != 0) {
        fprintf(stderr, "migrations failed\n");
        exit(EXIT_FAILURE);
    }
    pgpool_free(pool);
}

static inline void setup(void)
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

static inline void teardown(void)
{
    PQfinish(conn);
}

/* 2025-01-02T03:00:00Z */
#define BASE_US 1735786800000000LL

/* A malloc'd batch of n events: message ids "<tag>-<i>", user ids
 * "d<i % users>", times BASE_US + i minutes. */
static inline struct plat_an_event *make_batch(const char *tag, size_t n,
                                               size_t users,
                                               const char *owner)
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

static inline struct plat_an_writer *started(const char *url)
{
    struct plat_an_writer *w = plat_an_writer_new(url, &set);

    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(plat_an_writer_start(w), 0);
    return w;
}

/* Runs suite `s` after setup_db(); the process exit status. */
static inline int run_writer_suite(Suite *s)
{
    SRunner *sr;
    int failed;

    setup_db();
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
