/*
 * Helpers shared by the automation unit tests: a migrated, emptied
 * automation.jobs in the PostgreSQL named by BASALT_TEST_DATABASE_URL.
 * A missing URL fails the test (never skips it).
 */
#ifndef AUTO_TEST_H
#define AUTO_TEST_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/auto.h"
#include "log/log.h"

#define AUTO_TEST_MIGRATIONS "services/automation/migrations"

static inline const char *auto_test_db_url(void)
{
    const char *u = getenv("BASALT_TEST_DATABASE_URL");

    ck_assert_msg(u && *u, "BASALT_TEST_DATABASE_URL is not set");
    return u;
}

static inline PGresult *auto_test_sql(struct pgpool *pg, const char *sql)
{
    PGconn *c = pgpool_acquire(pg, 5000);
    PGresult *r;

    ck_assert_ptr_nonnull(c);
    r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK ||
                      PQresultStatus(r) == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    pgpool_release(pg, c, 0);
    return r;
}

/* One value of a one-row query, as a long. */
static inline long auto_test_long(struct pgpool *pg, const char *sql)
{
    PGresult *r = auto_test_sql(pg, sql);
    long v;

    ck_assert_int_eq(PQntuples(r), 1);
    v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* A pool on a migrated database with an empty jobs table. */
static inline struct pgpool *auto_test_pg(int size)
{
    const char *dir = getenv("MIGRATIONS_DIR");
    struct pgpool *pg;

    log_init("automation-test", getenv("LOG_LEVEL") ? getenv("LOG_LEVEL")
                                                     : "error");
    pg = pgpool_new(auto_test_db_url(), size, 5);
    ck_assert_ptr_nonnull(pg);
    ck_assert_int_eq(pgpool_migrate(pg, "automation",
                                    dir ? dir : AUTO_TEST_MIGRATIONS), 0);
    PQclear(auto_test_sql(pg, "TRUNCATE automation.jobs RESTART IDENTITY"));
    return pg;
}

static inline double auto_test_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void auto_test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A response body caught by auto_test_collect (a libcurl write callback;
 * bytes past the buffer are dropped, the transfer goes on). Big: make it
 * static or heap, not a stack variable. */
struct auto_test_buf {
    char data[1 << 20];
    size_t len;
};

static inline size_t auto_test_collect(char *p, size_t sz, size_t n,
                                       void *arg)
{
    struct auto_test_buf *b = arg;
    size_t len = sz * n;

    if (b->len + len < sizeof b->data) {
        memcpy(b->data + b->len, p, len);
        b->len += len;
    }
    return len;
}

/* Runs one suite; the process exit status (0: every test passed). */
static inline int auto_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
