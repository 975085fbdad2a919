/*
 * pgpool tests against a real PostgreSQL: BASALT_TEST_DATABASE_URL must
 * be set (scripts/run-unit-tests starts a throwaway cluster); unset fails.
 */
#include "pgpool/pgpool.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

static const char *db_url(void)
{
    const char *u = getenv("BASALT_TEST_DATABASE_URL");

    if (u == NULL || u[0] == '\0')
        ck_abort_msg("BASALT_TEST_DATABASE_URL is not set "
                     "(run through scripts/run-unit-tests)");
    return u;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int backend_pid(PGconn *c)
{
    return PQbackendPID(c);
}

/* Runs sql on a fresh connection; returns the first value as a long. */
static long scalar(const char *sql)
{
    PGconn *c = PQconnectdb(db_url());
    PGresult *res;
    long v = -1;

    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return v;
}

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void exec_ok(const char *sql)
{
    PGconn *c = PQconnectdb(db_url());
    PGresult *res;

    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
}

static void setup(void)
{
    log_init("test", "error");
    db_url();
}

START_TEST(test_ping_and_reuse)
{
    struct pgpool *p = pgpool_new(db_url(), 2, 3);
    PGconn *c;
    int pid;

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pgpool_ping(p), 0);
    c = pgpool_acquire(p, 100);
    ck_assert_ptr_nonnull(c);
    pid = backend_pid(c);
    pgpool_release(p, c, 0);
    c = pgpool_acquire(p, 100);
    ck_assert_int_eq(backend_pid(c), pid); /* idle connection reused */
    pgpool_release(p, c, 0);
    pgpool_free(p);
    ck_assert_ptr_null(pgpool_new(db_url(), 0, 3));
}
END_TEST

struct holder {
    struct pgpool *p;
    pthread_barrier_t *bar;
    int pid;
};

static void *hold_conn(void *arg)
{
    struct holder *h = arg;
    PGconn *c = pgpool_acquire(h->p, 5000);

    if (c != NULL)
        h->pid = backend_pid(c);
    /* Everyone holds a connection at the same moment. */
    pthread_barrier_wait(h->bar);
    pgpool_release(h->p, c, 0);
    return NULL;
}

START_TEST(test_distinct_concurrent)
{
    struct pgpool *p = pgpool_new(db_url(), 3, 3);
    pthread_barrier_t bar;
    struct holder h[3];
    pthread_t t[3];
    int i;

    pthread_barrier_init(&bar, NULL, 3);
    for (i = 0; i < 3; i++) {
        h[i] = (struct holder){p, &bar, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, hold_conn, &h[i]), 0);
    }
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_ne(h[0].pid, 0);
    ck_assert_int_ne(h[1].pid, 0);
    ck_assert_int_ne(h[2].pid, 0);
    ck_assert_int_ne(h[0].pid, h[1].pid);
    ck_assert_int_ne(h[0].pid, h[2].pid);
    ck_assert_int_ne(h[1].pid, h[2].pid);
    pthread_barrier_destroy(&bar);
    pgpool_free(p);
}
END_TEST

START_TEST(test_acquire_timeout)
{
    struct pgpool *p = pgpool_new(db_url(), 1, 3);
    PGconn *a = pgpool_acquire(p, 100);
    double t0;

    ck_assert_ptr_nonnull(a);
    t0 = now_s();
    ck_assert_ptr_null(pgpool_acquire(p, 200));
    ck_assert(now_s() - t0 >= 0.19);
    ck_assert(now_s() - t0 < 2.0);
    ck_assert_ptr_null(pgpool_acquire(p, 0));
    pgpool_release(p, a, 0);
    a = pgpool_acquire(p, 0);
    ck_assert_ptr_nonnull(a);
    pgpool_release(p, a, 0);
    pgpool_free(p);
}
END_TEST

START_TEST(test_broken_replaced)
{
    struct pgpool *p = pgpool_new(db_url(), 2, 3);
    PGconn *a = pgpool_acquire(p, 100);
    PGconn *b = pgpool_acquire(p, 100);
    char sql[128];
    PGresult *res;
    int pid_a = backend_pid(a);

    /* Kill a's backend from b, as a PostgreSQL restart would. */
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid_a);
    res = PQexec(b, sql);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    pgpool_release(p, b, 0);

    res = PQexec(a, "SELECT 1");
    ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(pgpool_is_unavailable(a, res), 1);
    PQclear(res);
    pgpool_release(p, a, 0); /* status is bad: closed, not pooled */

    a = pgpool_acquire(p, 100);
    b = pgpool_acquire(p, 100);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_ne(backend_pid(a), pid_a);
    ck_assert_int_ne(backend_pid(b), pid_a);
    res = PQexec(a, "SELECT 1");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);

    /* Ordinary SQL errors are not "unavailable". */
    res = PQexec(a, "SELECT 1/0");
    ck_assert_int_eq(pgpool_is_unavailable(a, res), 0);
    PQclear(res);
    res = PQexec(a, "SELEC nonsense");
    ck_assert_int_eq(pgpool_is_unavailable(a, res), 0);
    PQclear(res);
    ck_assert_int_eq(pgpool_is_unavailable(a, NULL), 1);
    ck_assert_int_eq(pgpool_is_unavailable(NULL, NULL), 1);

    /* Explicitly broken, and left inside a transaction: both closed. */
    pid_a = backend_pid(a);
    pgpool_release(p, a, 1);
    res = PQexec(b, "BEGIN");
    PQclear(res);
    {
        int pid_b = backend_pid(b);
        pgpool_release(p, b, 0);
        a = pgpool_acquire(p, 100);
        ck_assert_int_ne(backend_pid(a), pid_a);
        ck_assert_int_ne(backend_pid(a), pid_b);
        ck_assert_int_eq(PQtransactionStatus(a), PQTRANS_IDLE);
        pgpool_release(p, a, 0);
    }
    pgpool_free(p);
}
END_TEST

START_TEST(test_unreachable)
{
    /* Port 1: nothing listens; connection refused at once. */
    struct pgpool *p =
        pgpool_new("postgresql://postgres@127.0.0.1:1/postgres", 2, 2);
    double t0 = now_s();

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(pgpool_acquire(p, 100));
    ck_assert_int_eq(pgpool_ping(p), -1);
    ck_assert(now_s() - t0 < 1.5);
    /* Failed connects give their slot back. */
    ck_assert_ptr_null(pgpool_acquire(p, 0));
    ck_assert_ptr_null(pgpool_acquire(p, 0));
    ck_assert_ptr_null(pgpool_acquire(p, 0));
    pgpool_free(p);
}
END_TEST

/* ---- migrations ---- */

static char mig_dir[256];
static char schema[64];

static void write_file(const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", mig_dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void mig_setup(void)
{
    static int n;

    setup();
    snprintf(mig_dir, sizeof(mig_dir), "/tmp/pgpool_mig_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(mig_dir));
    snprintf(schema, sizeof(schema), "t_mig_%d_%d", (int)getpid(), n++);
}

static void mig_teardown(void)
{
    char cmd[600];
    char sql[160];
    int rc;

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", mig_dir);
    rc = system(cmd);
    (void)rc;
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    exec_ok(sql);
}

static void write_ordered_set(void)
{
    write_file("0001_init.sql",
               "CREATE TABLE steps (n serial PRIMARY KEY, v text);\n"
               "INSERT INTO steps (v) VALUES ('one');\n");
    write_file("0002_more.sql", "INSERT INTO steps (v) VALUES ('two');\n"
                                "CREATE TABLE other (x int);\n");
    write_file("0010_last.sql", "INSERT INTO steps (v) VALUES ('ten');");
    write_file("README.md", "not a migration");
    write_file("12_short.sql", "SELECT broken syntax here");
    write_file("0003_wrong.txt", "SELECT broken syntax here");
}

START_TEST(test_migrate_order_and_idempotent)
{
    struct pgpool *p = pgpool_new(db_url(), 1, 3);
    char sql[256];

    write_ordered_set();
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), 0);
    snprintf(sql, sizeof(sql),
             "SELECT (string_agg(v, ',' ORDER BY n) = 'one,two,ten')::int "
             "FROM %s.steps",
             schema);
    ck_assert_int_eq(scalar(sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT (string_agg(version::text, ',' ORDER BY version) = "
             "'1,2,10')::int FROM %s.schema_migrations",
             schema);
    ck_assert_int_eq(scalar(sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.schema_migrations WHERE name = "
             "'0002_more.sql' AND applied_at <= now()",
             schema);
    ck_assert_int_eq(scalar(sql), 1);

    /* Second run applies nothing. */
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.steps", schema);
    ck_assert_int_eq(scalar(sql), 3);

    /* A new file is picked up later. */
    write_file("0011_next.sql", "INSERT INTO steps (v) VALUES ('eleven');");
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), 0);
    ck_assert_int_eq(scalar(sql), 4);
    pgpool_free(p);
}
END_TEST

struct mig_arg {
    struct pgpool *p;
    int rc;
};

static void *mig_thread(void *arg)
{
    struct mig_arg *a = arg;

    a->rc = pgpool_migrate(a->p, schema, mig_dir);
    return NULL;
}

START_TEST(test_migrate_concurrent)
{
    struct pgpool *p = pgpool_new(db_url(), 2, 3);
    struct mig_arg a = {p, -1}, b = {p, -1};
    pthread_t ta, tb;
    char sql[256];

    write_ordered_set();
    /* Slow first step widens the race window. */
    write_file("0000_slow.sql", "SELECT pg_sleep(0.3);");
    ck_assert_int_eq(pthread_create(&ta, NULL, mig_thread, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, mig_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.steps", schema);
    ck_assert_int_eq(scalar(sql), 3);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.schema_migrations",
             schema);
    ck_assert_int_eq(scalar(sql), 4);
    pgpool_free(p);
}
END_TEST

START_TEST(test_migrate_failure_rolls_back)
{
    struct pgpool *p = pgpool_new(db_url(), 1, 3);
    char sql[256];

    write_file("0001_ok.sql", "CREATE TABLE a (x int);");
    write_file("0002_bad.sql", "CREATE TABLE b (x int);\n"
                               "INSERT INTO a VALUES (1);\n"
                               "SELECT no_such_function();\n");
    write_file("0003_after.sql", "CREATE TABLE c (x int);");
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), -1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM information_schema.tables "
             "WHERE table_schema = '%s'",
             schema);
    /* schema_migrations and a; not b (rolled back) nor c (never run). */
    ck_assert_int_eq(scalar(sql), 2);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.a", schema);
    ck_assert_int_eq(scalar(sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT (string_agg(version::text, ',') = '1')::int "
             "FROM %s.schema_migrations",
             schema);
    ck_assert_int_eq(scalar(sql), 1);

    /* Fixed file: the rest applies. */
    write_file("0002_bad.sql", "CREATE TABLE b (x int);");
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.schema_migrations",
             schema);
    ck_assert_int_eq(scalar(sql), 3);

    /* Bad input. */
    ck_assert_int_eq(pgpool_migrate(p, "Bad-Name", mig_dir), -1);
    ck_assert_int_eq(pgpool_migrate(p, schema, "/nonexistent/dir"), -1);
    write_file("0003_dup.sql", "SELECT 1;");
    ck_assert_int_eq(pgpool_migrate(p, schema, mig_dir), -1);
    pgpool_free(p);
}
END_TEST

static Suite *pgpool_suite(void)
{
    Suite *s = suite_create("pgpool");
    TCase *tc = tcase_create("pool");
    TCase *tm = tcase_create("migrate");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ping_and_reuse);
    tcase_add_test(tc, test_distinct_concurrent);
    tcase_add_test(tc, test_acquire_timeout);
    tcase_add_test(tc, test_broken_replaced);
    tcase_add_test(tc, test_unreachable);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tm, mig_setup, mig_teardown);
    tcase_set_timeout(tm, 30);
    tcase_add_test(tm, test_migrate_order_and_idempotent);
    tcase_add_test(tm, test_migrate_concurrent);
    tcase_add_test(tm, test_migrate_failure_rolls_back);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pgpool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
