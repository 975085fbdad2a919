/*
 * users_db against a real PostgreSQL: migrations, users, refresh tokens.
 *
 * Needs BASALT_TEST_DATABASE_URL, a database of its own (it drops and
 * recreates schema platform); fails, not skips, without it. Run from the
 * repository root (migrations are read from services/platform/migrations,
 * or BASALT_PLATFORM_MIGRATIONS).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/users_db.c"

#include "log/log.h"
#include "platform_schema_fixture.h"
#include "../src/refresh.h"

static const char *db_url;         /* BASALT_TEST_DATABASE_URL */
static struct pgpool *pool;
static PGconn *conn;

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                      PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

/* Runs a one-value query and returns its text (static buffer). */
static const char *scalar(PGconn *c, const char *sql)
{
    static char out[256];
    PGresult *res = PQexec(c, sql);

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    ck_assert_int_eq(PQntuples(res), 1);
    snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

/* Per test: a pool on the test database, migrated, one connection. */
static void setup(void)
{
    pool = pgpool_new(db_url, 4, 5);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(pgpool_migrate(pool, "platform", migrations_dir()), 0);
    conn = pgpool_acquire(pool, 2000);
    ck_assert_ptr_nonnull(conn);
    exec_ok(conn, "TRUNCATE platform.users CASCADE");
}

static void teardown(void)
{
    if (conn != NULL)
        pgpool_release(pool, conn, 0);
    conn = NULL;
    pgpool_free(pool);
    pool = NULL;
}

START_TEST(migrations_idempotent)
{
    char count[32];

    snprintf(count, sizeof(count), "%s",
             scalar(conn, "SELECT count(*) FROM platform.schema_migrations"));
    /* setup applied them once; twice more changes nothing */
    ck_assert_int_eq(pgpool_migrate(pool, "platform", migrations_dir()), 0);
    ck_assert_int_eq(pgpool_migrate(pool, "platform", migrations_dir()), 0);
    ck_assert_str_eq(
        scalar(conn, "SELECT count(*) FROM platform.schema_migrations"),
        count);
    ck_assert_str_eq(scalar(conn, "SELECT count(*) FROM "
                                  "platform.schema_migrations "
                                  "WHERE version = 1"),
                     "1");
    ck_assert_str_eq(scalar(conn, "SELECT to_regclass('platform.users') "
                                  "IS NOT NULL"),
                     "t");
    ck_assert_str_eq(scalar(conn, "SELECT to_regclass("
                                  "'platform.refresh_tokens') IS NOT NULL"),
                     "t");
}
END_TEST

START_TEST(create_and_lookup)
{
    struct plat_user u, v;

    ck_assert_int_eq(plat_users_create(conn, NULL, "alice@example.com",
                                       "$argon2id$fake", &u),
                     PLAT_DB_OK);
    ck_assert_int_eq(plat_is_uuid(u.id), 1);
    ck_assert_str_eq(u.email, "alice@example.com");
    ck_assert_uint_eq(u.nroles, 1);
    ck_assert_str_eq(u.roles[0], "user");
    ck_assert_int_eq(u.disabled, 0);
    ck_assert_ptr_null(u.password_hash);
    /* 2024-01-02T03:04:05.678Z */
    ck_assert_uint_eq(strlen(u.created_at), 24);
    ck_assert_int_eq(u.created_at[10], 'T');
    ck_assert_int_eq(u.created_at[23], 'Z');

    ck_assert_int_eq(plat_users_by_id(conn, NULL, u.id, &v), PLAT_DB_OK);
    ck_assert_str_eq(v.email, "alice@example.com");
    ck_assert_str_eq(v.password_hash, "$argon2id$fake");
    plat_user_cleanup(&v);

    ck_assert_int_eq(plat_users_by_id(conn, NULL,
                                      "00000000-0000-0000-0000-000000000000",
                                      &v),
                     PLAT_DB_NOT_FOUND);
    ck_assert_int_eq(plat_users_by_id(conn, NULL, "not-a-uuid", &v),
                     PLAT_DB_NOT_FOUND);
    ck_assert_int_eq(plat_users_by_id(conn, NULL, "'; DROP TABLE x; --",
                                      &v),
                     PLAT_DB_NOT_FOUND);
    ck_assert_int_eq(plat_users_by_email(conn, NULL, "bob@example.com", &v),
                     PLAT_DB_NOT_FOUND);
    plat_user_cleanup(&u);
}
END_TEST

START_TEST(duplicate_is_conflict)
{
    struct plat_user u;
    char email[PLAT_EMAIL_MAX + 1], why[128];
    const char *in = "  Carol@Example.COM ";

    ck_assert_int_eq(plat_users_create(conn, NULL, "carol@example.com", "h",
                                       &u),
                     PLAT_DB_OK);
    ck_assert_int_eq(plat_users_create(conn, NULL, "carol@example.com", "h",
                                       &u),
                     PLAT_DB_CONFLICT);
    /* another spelling normalises to the same key */
    ck_assert_int_eq(plat_email_normalize(in, strlen(in), email,
                                          sizeof(email), why, sizeof(why)),
                     0);
    ck_assert_int_eq(plat_users_create(conn, NULL, email, "h", &u),
                     PLAT_DB_CONFLICT);
    /* the connection is still usable after the failed insert */
    ck_assert_str_eq(scalar(conn, "SELECT count(*) FROM platform.users"),
                     "1");
}
END_TEST

START_TEST(lookup_case_insensitive_via_normalisation)
{
    static const char *const spellings[] = {
        "dave@example.com", "DAVE@EXAMPLE.COM", " Dave@Example.Com\n",
    };
    struct plat_user u;
    char email[PLAT_EMAIL_MAX + 1], why[128];

    ck_assert_int_eq(plat_users_create(conn, NULL, "dave@example.com", "h",
                                       &u),
                     PLAT_DB_OK);
    for (size_t i = 0; i < 3; i++) {
        struct plat_user v;
        ck_assert_int_eq(plat_email_normalize(spellings[i],
                                              strlen(spellings[i]), email,
                                              sizeof(email), why,
                                              sizeof(why)),
                         0);
        ck_assert_int_eq(plat_users_by_email(conn, NULL, email, &v),
                         PLAT_DB_OK);
        ck_assert_str_eq(v.id, u.id);
        plat_user_cleanup(&v);
    }
}
END_TEST

START_TEST(disabled_and_updated_at)
{
    struct plat_user u, v;
    char sql[200];

    ck_assert_int_eq(plat_users_create(conn, NULL, "erin@example.com", "h",
                                       &u),
                     PLAT_DB_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE platform.users SET disabled_at = now() + "
             "interval '1 second', roles = '{user,admin}' WHERE id = '%s'",
             u.id);
    usleep(2000);
    exec_ok(conn, sql);
    ck_assert_int_eq(plat_users_by_email(conn, NULL, "erin@example.com", &v),
                     PLAT_DB_OK);
    ck_assert_int_eq(v.disabled, 1);
    ck_assert_uint_eq(v.nroles, 2);
    ck_assert_str_eq(v.roles[1], "admin");
    ck_assert_str_ne(v.updated_at, v.created_at);
    plat_user_cleanup(&v);
}
END_TEST

struct race {
    struct pgpool *pool;
    enum plat_db rc;
};

static void *race_register(void *arg)
{
    struct race *r = arg;
    struct plat_user u;
    PGconn *c = pgpool_acquire(r->pool, 5000);

    if (c == NULL) {
        r->rc = PLAT_DB_UNAVAILABLE;
        return NULL;
    }
    r->rc = plat_users_create(c, NULL, "race@example.com", "h", &u);
    pgpool_release(r->pool, c, 0);
    return NULL;
}

START_TEST(concurrent_registration)
{
    struct race r[3];
    pthread_t t[3];
    int ok = 0, conflict = 0;

    for (int i = 0; i < 3; i++) {
        r[i].pool = pool;
        r[i].rc = PLAT_DB_ERROR;
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_register, &r[i]),
                         0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        ok += r[i].rc == PLAT_DB_OK;
        conflict += r[i].rc == PLAT_DB_CONFLICT;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(conflict, 2);
}
END_TEST

START_TEST(refresh_tokens)
{
    struct plat_user u;
    struct plat_refresh_new rn;
    char tok[PLAT_REFRESH_TEXT_LEN + 1], id1[37], fam1[37], id2[37],
        fam2[37], sql[300];
    unsigned char h1[PLAT_REFRESH_HASH_LEN], h2[PLAT_REFRESH_HASH_LEN];

    ck_assert_int_eq(plat_users_create(conn, NULL, "fay@example.com", "h",
                                       &u),
                     PLAT_DB_OK);
    ck_assert_int_eq(plat_refresh_generate(tok, h1), 0);
    ck_assert_int_eq(plat_refresh_generate(tok, h2), 0);

    memset(&rn, 0, sizeof(rn));
    rn.user_id = u.id;
    rn.token_hash = h1;
    rn.ttl_s = 3600;
    rn.user_agent = "curl/8.0";
    rn.ip = "203.0.113.7";
    ck_assert_int_eq(plat_refresh_insert(conn, NULL, &rn, id1, fam1),
                     PLAT_DB_OK);
    ck_assert_int_eq(plat_is_uuid(id1), 1);
    ck_assert_int_eq(plat_is_uuid(fam1), 1);

    /* a rotation: same family, parent = first token, no ip/agent */
    rn.token_hash = h2;
    rn.family_id = fam1;
    rn.parent_id = id1;
    rn.user_agent = NULL;
    rn.ip = "";
    ck_assert_int_eq(plat_refresh_insert(conn, NULL, &rn, id2, fam2),
                     PLAT_DB_OK);
    ck_assert_str_eq(fam2, fam1);
    ck_assert_str_ne(id2, id1);

    /* the same hash twice is a conflict */
    ck_assert_int_eq(plat_refresh_insert(conn, NULL, &rn, NULL, NULL),
                     PLAT_DB_CONFLICT);

    snprintf(sql, sizeof(sql),
             "SELECT host(ip) || ' ' || user_agent || ' ' || "
             "(expires_at - created_at BETWEEN interval '3599 s' AND "
             "interval '3601 s') FROM platform.refresh_tokens "
             "WHERE id = '%s'", id1);
    ck_assert_str_eq(scalar(conn, sql), "203.0.113.7 curl/8.0 true");
    snprintf(sql, sizeof(sql),
             "SELECT (ip IS NULL AND user_agent IS NULL AND parent_id = "
             "'%s')::text FROM platform.refresh_tokens WHERE id = '%s'",
             id1, id2);
    ck_assert_str_eq(scalar(conn, sql), "true");

    /* deleting the user deletes its sessions */
    snprintf(sql, sizeof(sql), "DELETE FROM platform.users WHERE id = '%s'",
             u.id);
    exec_ok(conn, sql);
    ck_assert_str_eq(
        scalar(conn, "SELECT count(*) FROM platform.refresh_tokens"), "0");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_users_db");
    TCase *tc = tcase_create("db");
    SRunner *sr;
    int failed;

    log_init("platform-test", getenv("LOG_LEVEL"));
    db_url = reset_platform_schema();
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, migrations_idempotent);
    tcase_add_test(tc, create_and_lookup);
    tcase_add_test(tc, duplicate_is_conflict);
    tcase_add_test(tc, lookup_case_insensitive_via_normalisation);
    tcase_add_test(tc, disabled_and_updated_at);
    tcase_add_test(tc, concurrent_registration);
    tcase_add_test(tc, refresh_tokens);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
