/*
 * tokens_db / admin SQL and throttle.c against real PostgreSQL and Redis
 * (BASALT_TEST_DATABASE_URL, BASALT_TEST_REDIS_URL; fails without them).
 * Drops and re-creates schema platform: give it a database of its own.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/plat.h"
#include "../src/refresh.h"
#include "../src/throttle.h"
#include "../src/users_db.h"
#include "platform_schema_fixture.h"

static const char *db_url;
static struct pgpool *pool;
static PGconn *conn;

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "%s is not set; run through make unit\n", name);
        exit(EXIT_FAILURE);
    }
    return v;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                      PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static void setup(void)
{
    pool = pgpool_new(db_url, 4, 5);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(
        pgpool_migrate(pool, "platform", migrations_dir()), 0);
    conn = pgpool_acquire(pool, 2000);
    ck_assert_ptr_nonnull(conn);
    exec_ok(conn, "TRUNCATE platform.users CASCADE");
}

static void teardown(void)
{
    pgpool_release(pool, conn, 0);
    pgpool_free(pool);
}

static void make_user(const char *email, struct plat_user *u)
{
    ck_assert_int_eq(plat_users_create(conn, NULL, email, "$argon2id$x", u),
                     PLAT_DB_OK);
}

/* Inserts a refresh token; returns its hash in h and row id in id. */
static void add_token(const struct plat_user *u, const char *family,
                      const char *parent, const char *jti, long long aexp,
                      unsigned char *h, char *id, char *fam_out)
{
    char text[PLAT_REFRESH_TEXT_LEN + 1];
    struct plat_refresh_new rn;

    ck_assert_int_eq(plat_refresh_generate(text, h), 0);
    memset(&rn, 0, sizeof(rn));
    rn.user_id = u->id;
    rn.token_hash = h;
    rn.family_id = family;
    rn.parent_id = parent;
    rn.ttl_s = 3600;
    rn.user_agent = "ua";
    rn.ip = "10.0.0.1";
    rn.access_jti = jti;
    rn.access_exp = aexp;
    ck_assert_int_eq(plat_refresh_insert(conn, NULL, &rn, id, fam_out),
                     PLAT_DB_OK);
}

START_TEST(lock_mark_and_revoke_family)
{
    struct plat_user u;
    struct plat_refresh_row row;
    struct plat_jtis dead;
    unsigned char h1[32], h2[32], h3[32];
    char id1[37], id2[37], id3[37], fam[37], fam2[37], other[37];
    long long later = (long long)time(NULL) + 900;

    make_user("rot@example.com", &u);
    add_token(&u, NULL, NULL, "jti-1", later, h1, id1, fam);
    ck_assert_int_eq(plat_refresh_lock(conn, NULL, h1, &row), PLAT_DB_OK);
    ck_assert_str_eq(row.family_id, fam);
    ck_assert(!row.used && !row.revoked && !row.expired);
    ck_assert_int_eq(plat_refresh_mark_used(conn, NULL, id1), PLAT_DB_OK);
    add_token(&u, fam, id1, "jti-2", later, h2, id2, fam2);
    ck_assert_str_eq(fam2, fam);
    ck_assert_int_eq(plat_refresh_lock(conn, NULL, h1, &row), PLAT_DB_OK);
    ck_assert(row.used);
    ck_assert(row.since_used >= 0 && row.since_used < 60);
    /* a second session that must survive */
    add_token(&u, NULL, NULL, "jti-3", later, h3, id3, other);
    ck_assert_int_eq(plat_refresh_family_of_jti(conn, NULL, u.id, "jti-2",
                                                fam2),
                     PLAT_DB_OK);
    ck_assert_str_eq(fam2, fam);
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, u.id, fam, NULL,
                                         "reuse", &dead),
                     PLAT_DB_OK);
    ck_assert_uint_eq(dead.nfamilies, 1);
    ck_assert_uint_eq(dead.n, 2); /* both access tokens of the family */
    plat_jtis_cleanup(&dead);
    ck_assert_int_eq(plat_refresh_lock(conn, NULL, h2, &row), PLAT_DB_OK);
    ck_assert(row.revoked);
    ck_assert_int_eq(plat_refresh_lock(conn, NULL, h3, &row), PLAT_DB_OK);
    ck_assert(!row.revoked);
    /* revoking again finds nothing: jtis were denied the first time */
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, u.id, fam, NULL, "x",
                                         &dead),
                     PLAT_DB_OK);
    ck_assert_uint_eq(dead.nfamilies, 0);
    ck_assert_uint_eq(dead.n, 0);
    plat_jtis_cleanup(&dead);
    /* all but one / all */
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, u.id, NULL, other, "x",
                                         &dead),
                     PLAT_DB_OK);
    ck_assert_uint_eq(dead.nfamilies, 0);
    plat_jtis_cleanup(&dead);
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, u.id, NULL, NULL, "x",
                                         &dead),
                     PLAT_DB_OK);
    ck_assert_uint_eq(dead.nfamilies, 1);
    ck_assert_str_eq(dead.v[0].jti, "jti-3");
    ck_assert_int_eq(dead.v[0].exp, later);
    plat_jtis_cleanup(&dead);
    /* malformed ids never reach SQL */
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, "1' OR '1'='1", NULL,
                                         NULL, "x", &dead),
                     PLAT_DB_NOT_FOUND);
    plat_user_cleanup(&u);
}
END_TEST

struct racer {
    unsigned char *hash;
    int used_seen;
};

/* Two transactions lock the same token: the second waits, sees used. */
static void *race(void *arg)
{
    struct racer *rc = arg;
    PGconn *c = pgpool_acquire(pool, 5000);
    struct plat_refresh_row row;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(plat_db_exec(c, NULL, "BEGIN"), PLAT_DB_OK);
    ck_assert_int_eq(plat_refresh_lock(c, NULL, rc->hash, &row), PLAT_DB_OK);
    rc->used_seen = row.used;
    if (!row.used) {
        usleep(200 * 1000); /* hold the lock a while */
        ck_assert_int_eq(plat_refresh_mark_used(c, NULL, row.id),
                         PLAT_DB_OK);
    }
    ck_assert_int_eq(plat_db_exec(c, NULL, "COMMIT"), PLAT_DB_OK);
    pgpool_release(pool, c, 0);
    return NULL;
}

START_TEST(row_lock_serialises_rotation)
{
    struct plat_user u;
    unsigned char h[32];
    char id[37], fam[37];
    struct racer a, b;
    pthread_t ta, tb;

    make_user("race@example.com", &u);
    add_token(&u, NULL, NULL, "jr", (long long)time(NULL) + 900, h, id, fam);
    a.hash = b.hash = h;
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    /* exactly one of them rotated it */
    ck_assert_int_eq(a.used_seen + b.used_seen, 1);
    plat_user_cleanup(&u);
}
END_TEST

START_TEST(sessions_and_admin_sql)
{
    struct plat_user u, v, out;
    unsigned char h[32];
    char id[37], fam[37], next[128];
    json_t *list = NULL;
    long long later = (long long)time(NULL) + 900;

    make_user("s1@example.com", &u);
    make_user("s2@example.com", &v);
    add_token(&u, NULL, NULL, "cur", later, h, id, fam);
    add_token(&u, NULL, NULL, "oth", later, h, id, fam);
    ck_assert_int_eq(plat_sessions_list(conn, NULL, u.id, "cur", &list),
                     PLAT_DB_OK);
    ck_assert_uint_eq(json_array_size(list), 2);
    ck_assert_int_eq(json_is_true(json_object_get(json_array_get(list, 0),
                                                  "current")) +
                         json_is_true(json_object_get(
                             json_array_get(list, 1), "current")),
                     1);
    json_decref(list);
    /* disable: marker time set; enable keeps it; roles replace */
    ck_assert_int_eq(plat_users_update(conn, NULL, v.id, 1, NULL, &out),
                     PLAT_DB_OK);
    ck_assert(out.disabled);
    plat_user_cleanup(&out);
    ck_assert_int_eq(plat_users_update(conn, NULL, v.id, 0, "{user,admin}",
                                       &out),
                     PLAT_DB_OK);
    ck_assert(!out.disabled);
    ck_assert_uint_eq(out.nroles, 2);
    plat_user_cleanup(&out);
    ck_assert_int_eq(plat_users_update(conn, NULL, "nope", 1, NULL, &out),
                     PLAT_DB_NOT_FOUND);
    /* paging: 1 per page, two pages, then done */
    ck_assert_int_eq(plat_users_list(conn, NULL, 1, NULL, &list, next,
                                     sizeof(next)),
                     PLAT_DB_OK);
    ck_assert_uint_eq(json_array_size(list), 1);
    ck_assert_str_ne(next, "");
    json_decref(list);
    ck_assert_int_eq(plat_users_list(conn, NULL, 1, next, &list, next,
                                     sizeof(next)),
                     PLAT_DB_OK);
    ck_assert_uint_eq(json_array_size(list), 1);
    json_decref(list);
    ck_assert_str_eq(next, "");
    ck_assert_int_eq(plat_users_list(conn, NULL, 1, "junk", &list, next,
                                     sizeof(next)),
                     PLAT_DB_NOT_FOUND);
    ck_assert_int_eq(plat_users_grant_admin(conn, NULL, "s1@example.com"),
                     PLAT_DB_OK);
    ck_assert_int_eq(plat_users_by_id(conn, NULL, u.id, &out), PLAT_DB_OK);
    ck_assert_str_eq(out.roles[1], "admin");
    plat_user_cleanup(&out);
    plat_user_cleanup(&u);
    plat_user_cleanup(&v);
}
END_TEST

static void count_jti(void *arg, const char *jti, long long exp)
{
    (void)jti;
    (void)exp;
    ((int *)arg)[0]++;
}

static void count_user(void *arg, const char *id, long long t)
{
    (void)id;
    (void)t;
    ((int *)arg)[1]++;
}

START_TEST(republish_sources)
{
    struct plat_user u, out;
    struct plat_jtis dead;
    unsigned char h[32];
    char id[37], fam[37];
    int n[2] = {0, 0};

    make_user("rp@example.com", &u);
    add_token(&u, NULL, NULL, "live", (long long)time(NULL) + 900, h, id,
              fam);
    add_token(&u, NULL, NULL, "gone", (long long)time(NULL) - 10, h, id,
              fam);
    ck_assert_int_eq(plat_refresh_revoke(conn, NULL, u.id, NULL, NULL, "x",
                                         &dead),
                     PLAT_DB_OK);
    plat_jtis_cleanup(&dead);
    ck_assert_int_eq(plat_users_update(conn, NULL, u.id, 1, NULL, &out),
                     PLAT_DB_OK);
    plat_user_cleanup(&out);
    ck_assert_int_eq(plat_revocations_each(conn, NULL, 960, count_jti,
                                           count_user, n),
                     PLAT_DB_OK);
    ck_assert_int_eq(n[0], 1); /* only the still-alive access token */
    ck_assert_int_eq(n[1], 1);
    plat_user_cleanup(&u);
}
END_TEST

START_TEST(throttle_against_redis)
{
    struct plat_settings set;
    struct plat_ctx ctx;
    long retry = 0;
    char acct[64], ip[32];

    memset(&set, 0, sizeof(set));
    memset(&ctx, 0, sizeof(ctx));
    set.login_free_failures = 3;
    set.login_ip_free_failures = 100;
    set.login_backoff_base_s = 5;
    set.login_backoff_max_s = 60;
    ctx.set = &set;
    ctx.redis = redispool_new(env_or_die("BASALT_TEST_REDIS_URL"), 2, 1000);
    ck_assert_ptr_nonnull(ctx.redis);
    snprintf(acct, sizeof(acct), "t%d@example.com", (int)getpid());
    snprintf(ip, sizeof(ip), "10.9.%d.%d", getpid() % 250, 7);
    ck_assert_int_eq(plat_throttle_login_blocked(&ctx, NULL, acct, ip, &retry),
                     0);
    for (int i = 0; i < 2; i++)
        plat_throttle_login_failed(&ctx, NULL, acct, ip);
    ck_assert_int_eq(plat_throttle_login_blocked(&ctx, NULL, acct, ip, &retry),
                     0);
    plat_throttle_login_failed(&ctx, NULL, acct, ip);
    ck_assert_int_eq(plat_throttle_login_blocked(&ctx, NULL, acct, ip, &retry),
                     1);
    ck_assert_int_ge(retry, 1);
    ck_assert_int_le(retry, 5);
    plat_throttle_login_ok(&ctx, NULL, acct);
    ck_assert_int_eq(plat_throttle_login_blocked(&ctx, NULL, acct, ip, &retry),
                     0);
    /* per-IP rate: limit 3 per minute (unless the minute turns over) */
    {
        int limited = 0;
        for (int i = 0; i < 4; i++)
            limited += plat_throttle_rate(&ctx, NULL, "test", ip, 3, &retry);
        ck_assert_int_le(limited, 1);
        ck_assert_int_ge(retry, 1);
    }
    ck_assert_int_eq(plat_throttle_rate(&ctx, NULL, "test", ip, 0, &retry),
                     0);
    redispool_free(ctx.redis);
    /* Redis down: fail open */
    ctx.redis = redispool_new("redis://127.0.0.1:1/0", 1, 200);
    ck_assert_int_eq(plat_throttle_rate(&ctx, NULL, "test", ip, 1, &retry),
                     0);
    ck_assert_int_eq(plat_throttle_login_blocked(&ctx, NULL, acct, ip, &retry),
                     0);
    plat_throttle_login_failed(&ctx, NULL, acct, ip);
    redispool_free(ctx.redis);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_tokens_db");
    TCase *tc = tcase_create("db");
    SRunner *sr;
    int failed;

    db_url = reset_platform_schema();
    env_or_die("BASALT_TEST_REDIS_URL");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, lock_mark_and_revoke_family);
    tcase_add_test(tc, row_lock_serialises_rotation);
    tcase_add_test(tc, sessions_and_admin_sql);
    tcase_add_test(tc, republish_sources);
    tcase_add_test(tc, throttle_against_redis);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
