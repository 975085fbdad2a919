/*
 * message_id dedupe per owner (migration 0005) against a real
 * PostgreSQL: one owner's retry is a duplicate, another owner's event with
 * the same message_id is not — across groups (COPY and ON CONFLICT paths)
 * and within one group; the writer's owner key is the SQL function's; an
 * upgrade from global ids keeps every stored id under its owner's key.
 */
#include <limits.h>

#include "analytics_writer_fixture.h"

static size_t submit(struct plat_an_writer *w, struct plat_an_event *evs,
                     size_t n, size_t *dups)
{
    size_t stored = SIZE_MAX;

    ck_assert_int_eq(plat_an_writer_submit_take(w, evs, n, &stored, dups),
                     PLAT_AN_OK);
    return stored;
}

START_TEST(test_same_id_other_owner_is_stored)
{
    struct plat_an_writer *w;
    size_t dups = SIZE_MAX;

    set.writers = 1; /* every group on one connection: paths known */
    w = started(db_url);
    ck_assert_uint_eq(submit(w, make_batch("m", 20, 5, "alice"), 20, &dups),
                      20);
    /* bob numbers his ids like alice: none of his events is a retry */
    ck_assert_uint_eq(submit(w, make_batch("m", 20, 5, "bob"), 20, &dups),
                      20);
    ck_assert_uint_eq(dups, 0);
    /* each one's retry is a duplicate (the first meets a unique violation
     * in the COPY of keys, the second goes the ON CONFLICT way) */
    ck_assert_uint_eq(submit(w, make_batch("m", 20, 5, "alice"), 20, &dups),
                      0);
    ck_assert_uint_eq(dups, 20);
    ck_assert_int_eq(w->th[0].db.slow_groups, PLAT_AN_DEDUPE_SLOW_GROUPS);
    ck_assert_uint_eq(submit(w, make_batch("m", 20, 5, "bob"), 20, &dups),
                      0);
    ck_assert_uint_eq(dups, 20);
    /* on the ON CONFLICT path, a third owner's same ids are still new */
    ck_assert_uint_eq(submit(w, make_batch("m", 20, 5, ""), 20, &dups), 20);
    ck_assert_uint_eq(dups, 0);
    ck_assert_int_eq(w->th[0].db.slow_groups, PLAT_AN_DEDUPE_SLOW_GROUPS - 2);
    plat_an_writer_free(w);

    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events "
                            "WHERE message_id = 'm-7'"),
                     3);
    ck_assert_int_eq(scalar("SELECT count(DISTINCT owner) FROM "
                            "platform.analytics_events"),
                     3);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"),
                     60);
}
END_TEST

START_TEST(test_same_id_two_owners_in_one_group)
{
    struct plat_an_conn c;
    struct plat_an_event *evs = make_batch("g", 4, 2, "alice");
    struct plat_an_event *rows[4];

    /* rows 0 and 1: one id, two owners; row 2 repeats row 0 exactly */
    snprintf(evs[1].message_id, sizeof(evs[1].message_id), "g-0");
    snprintf(evs[1].owner, sizeof(evs[1].owner), "bob");
    snprintf(evs[2].message_id, sizeof(evs[2].message_id), "g-0");
    memset(&c, 0, sizeof(c));
    c.conninfo = db_url;
    for (size_t i = 0; i < 4; i++)
        rows[i] = &evs[i];
    ck_assert_int_eq(plat_an_conn_write(&c, rows, 4), PLAT_AN_OK);
    ck_assert_int_eq(evs[0].stored, 1);
    ck_assert_int_eq(evs[1].stored, 1);
    ck_assert_int_eq(evs[2].stored, 0);
    ck_assert_int_eq(evs[3].stored, 1);
    plat_an_conn_cleanup(&c);
    for (size_t i = 0; i < 4; i++)
        plat_an_event_cleanup(&evs[i]);
    free(evs);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events "
                            "WHERE message_id = 'g-0'"),
                     2);
}
END_TEST

/* The owner key as the SQL function computes it. */
static long long sql_owner_key(const char *owner)
{
    const char *params[1] = {owner};
    PGresult *res = PQexecParams(
        conn, "SELECT platform.analytics_owner_key($1)", 1, NULL, params,
        NULL, NULL, 0);
    long long v;

    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

START_TEST(test_owner_key_matches_sql_function)
{
    /* keys of both signs, the empty owner, bytes beyond ASCII */
    static const char *const owners[] = {
        "3f0c7a52-1111-4222-8333-444455556666", "", "alice", "bob",
        "o\"4\\", "ünïcode ✓"};
    const size_t n = sizeof(owners) / sizeof(owners[0]);
    int negative = 0, positive = 0;

    for (size_t i = 0; i < n; i++) {
        int64_t k = plat_an_owner_key(owners[i]);

        ck_assert_int_eq(k, sql_owner_key(owners[i]));
        negative |= k < 0;
        positive |= k > 0;
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(k, plat_an_owner_key(owners[j]));
    }
    ck_assert(negative && positive);
}
END_TEST

/* A directory holding migrations 0001..last only (symlinks). */
static char *migrations_upto(const char *last)
{
    static char dir[] = "/tmp/basalt-migrations-XXXXXX";
    char src[PATH_MAX], path[PATH_MAX * 2];
    static const char *const files[] = {
        "0001_auth.sql", "0002_auth_sessions.sql", "0003_analytics.sql",
        "0004_analytics_rollup_pending.sql"};

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(realpath(migrations_dir(), src));
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char target[PATH_MAX * 2];

        snprintf(target, sizeof(target), "%s/%s", src, files[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        ck_assert_int_eq(symlink(target, path), 0);
        if (strcmp(files[i], last) == 0)
            break;
    }
    return dir;
}

static void migrate(const char *dir)
{
    struct pgpool *pool = pgpool_new(db_url, 1, 5);

    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(pgpool_migrate(pool, "platform", dir), 0);
    pgpool_free(pool);
}

START_TEST(test_upgrade_keeps_ids_per_owner)
{
    char *old = migrations_upto("0004_analytics_rollup_pending.sql");
    struct plat_an_writer *w;
    size_t dups = SIZE_MAX;
    char cmd[PATH_MAX + 16];

    t_exec(conn, "SET client_min_messages = warning; "
                 "DROP SCHEMA platform CASCADE");
    migrate(old);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", old);
    ck_assert_int_eq(system(cmd), 0);
    /* what 0004's writer left: global ids, one per stored event, and an
     * id whose event is gone */
    t_exec(conn, "INSERT INTO platform.analytics_events (ts, event,"
                 " distinct_id, owner, message_id) VALUES"
                 " ('2025-01-02T03:00:00Z', 'view', 'd0', 'alice', 'm-0'),"
                 " ('2025-01-02T03:01:00Z', 'view', 'd1', 'bob', 'm-1')");
    t_exec(conn, "INSERT INTO platform.analytics_dedupe VALUES"
                 " ('m-0', '2025-01-02T03:00:00Z'),"
                 " ('m-1', '2025-01-02T03:01:00Z'),"
                 " ('gone', '2025-01-02T03:02:00Z')");
    migrate(migrations_dir());

    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"),
                     2);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe "
                            "WHERE owner_key = platform.analytics_owner_key("
                            "'alice') AND message_id = 'm-0' AND "
                            "received_at = '2025-01-02T03:00:00Z'"),
                     1);
    ck_assert_int_eq(scalar("SELECT count(*) FROM pg_tables WHERE "
                            "tablename = 'analytics_dedupe_global'"),
                     0);
    /* alice's m-0 and bob's m-1 are remembered; bob's m-0 is new */
    w = started(db_url);
    {
        struct plat_an_event *evs = make_batch("m", 2, 2, "alice");

        snprintf(evs[1].owner, sizeof(evs[1].owner), "bob");
        ck_assert_uint_eq(submit(w, evs, 2, &dups), 0);
        ck_assert_uint_eq(dups, 2);
    }
    ck_assert_uint_eq(submit(w, make_batch("m", 1, 1, "bob"), 1, &dups), 1);
    plat_an_writer_free(w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("analytics_dedupe");
    TCase *tc = tcase_create("per_owner");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_same_id_other_owner_is_stored);
    tcase_add_test(tc, test_same_id_two_owners_in_one_group);
    tcase_add_test(tc, test_owner_key_matches_sql_function);
    tcase_add_test(tc, test_upgrade_keeps_ids_per_owner);
    suite_add_tcase(s, tc);
    return run_writer_suite(s);
}
