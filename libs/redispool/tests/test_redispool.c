/*
 * redispool tests. URL parsing needs nothing; the rest runs against a real
 * Redis from BASALT_TEST_REDIS_URL (scripts/run-unit-tests) and fails when
 * it is unset.
 */
#include "redispool/redispool.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

static char r_host[256];
static int r_port;
static char r_pass[256];
static int r_db;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *redis_url(void)
{
    const char *u = getenv("BASALT_TEST_REDIS_URL");

    if (u == NULL || u[0] == '\0')
        ck_abort_msg("BASALT_TEST_REDIS_URL is not set "
                     "(run through scripts/run-unit-tests)");
    return u;
}

static void setup(void)
{
    log_init("test", "error");
    ck_assert_int_eq(redispool_parse_url(redis_url(), r_host, sizeof(r_host),
                                         &r_port, r_pass, sizeof(r_pass),
                                         &r_db),
                     0);
}

/* The test server's URL with another password and/or db. */
static void url_with(char *buf, size_t len, const char *pass, int db)
{
    if (pass != NULL && pass[0] != '\0')
        snprintf(buf, len, "redis://:%s@%s:%d/%d", pass, r_host, r_port, db);
    else
        snprintf(buf, len, "redis://%s:%d/%d", r_host, r_port, db);
}

struct url_case {
    const char *url;
    int ok;
    const char *host;
    int port;
    const char *pass;
    int db;
};

START_TEST(test_parse_url)
{
    static const struct url_case cases[] = {
        {"redis://127.0.0.1:56379/0", 1, "127.0.0.1", 56379, "", 0},
        {"redis://localhost", 1, "localhost", 6379, "", 0},
        {"redis://localhost/", 1, "localhost", 6379, "", 0},
        {"redis://h:1/15", 1, "h", 1, "", 15},
        {"redis://:secret@h:6380/2", 1, "h", 6380, "secret", 2},
        {"redis://default:secret@h", 1, "h", 6379, "secret", 0},
        {"redis://:p%40ss%3Aw@h:7000", 1, "h", 7000, "p@ss:w", 0},
        {"redis://:a@b@h:7000", 1, "h", 7000, "a@b", 0},
        {"redis://[::1]:6390/1", 1, "::1", 6390, "", 1},
        {"redis://[::1]", 1, "::1", 6379, "", 0},
        {"http://h:6379", 0, NULL, 0, NULL, 0},
        {"redis://", 0, NULL, 0, NULL, 0},
        {"redis://:6379", 0, NULL, 0, NULL, 0},
        {"redis://h:0", 0, NULL, 0, NULL, 0},
        {"redis://h:65536", 0, NULL, 0, NULL, 0},
        {"redis://h:12ab", 0, NULL, 0, NULL, 0},
        {"redis://h:", 0, NULL, 0, NULL, 0},
        {"redis://h:6379/x", 0, NULL, 0, NULL, 0},
        {"redis://h:6379/-1", 0, NULL, 0, NULL, 0},
        {"redis://h:6379/1/2", 0, NULL, 0, NULL, 0},
        {"redis://h:6379?db=1", 0, NULL, 0, NULL, 0},
        {"redis://user:pw@h", 0, NULL, 0, NULL, 0},
        {"redis://pw@h", 0, NULL, 0, NULL, 0},
        {"redis://:bad%zz@h", 0, NULL, 0, NULL, 0},
        {"redis://:nul%00@h", 0, NULL, 0, NULL, 0},
        {"redis://[::1", 0, NULL, 0, NULL, 0},
        {"redis://[::1]x", 0, NULL, 0, NULL, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[64], pass[64];
        int port = -1, db = -1;
        int rc = redispool_parse_url(cases[i].url, host, sizeof(host), &port,
                                     pass, sizeof(pass), &db);

        ck_assert_msg((rc == 0) == cases[i].ok, "%s: rc %d", cases[i].url,
                      rc);
        if (!cases[i].ok)
            continue;
        ck_assert_str_eq(host, cases[i].host);
        ck_assert_int_eq(port, cases[i].port);
        ck_assert_str_eq(pass, cases[i].pass);
        ck_assert_int_eq(db, cases[i].db);
    }
    {
        char host[4], pass[64];
        int port, db;
        ck_assert_int_eq(redispool_parse_url("redis://longhost", host,
                                             sizeof(host), &port, pass,
                                             sizeof(pass), &db),
                         -1);
    }
    ck_assert_ptr_null(redispool_new("nope://x", 1, 100));
    ck_assert_ptr_null(redispool_new("redis://h", 0, 100));
}
END_TEST

START_TEST(test_ping_and_select)
{
    struct redispool *p = redispool_new(redis_url(), 2, 1000);
    struct redispool *p3;
    char url[512];
    redisContext *c;
    redisReply *r;
    char key[64];

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(redispool_ping(p), 0);

    url_with(url, sizeof(url), r_pass, 3);
    p3 = redispool_new(url, 1, 1000);
    ck_assert_ptr_nonnull(p3);
    snprintf(key, sizeof(key), "redispool_test:%d", (int)getpid());
    c = redispool_acquire(p3, 100);
    ck_assert_ptr_nonnull(c);
    r = redisCommand(c, "SET %s v EX 60", key);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    redispool_release(p3, c, 0);

    url_with(url, sizeof(url), r_pass, 0);
    {
        struct redispool *p0 = redispool_new(url, 1, 1000);
        c = redispool_acquire(p0, 100);
        r = redisCommand(c, "EXISTS %s", key);
        ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
        ck_assert_int_eq(r->integer, 0); /* the key lives in db 3 */
        freeReplyObject(r);
        redispool_release(p0, c, 0);
        redispool_free(p0);
    }
    c = redispool_acquire(p3, 100);
    r = redisCommand(c, "DEL %s", key);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redispool_release(p3, c, 0);
    redispool_free(p3);
    redispool_free(p);
}
END_TEST

static long long client_id(redisContext *c)
{
    redisReply *r = redisCommand(c, "CLIENT ID");
    long long id;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    id = r->integer;
    freeReplyObject(r);
    return id;
}

struct holder {
    struct redispool *p;
    pthread_barrier_t *bar;
    long long id;
};

static void *hold_conn(void *arg)
{
    struct holder *h = arg;
    redisContext *c = redispool_acquire(h->p, 5000);

    if (c != NULL) {
        redisReply *r = redisCommand(c, "CLIENT ID");
        if (r != NULL && r->type == REDIS_REPLY_INTEGER)
            h->id = r->integer;
        if (r != NULL)
            freeReplyObject(r);
    }
    pthread_barrier_wait(h->bar);
    redispool_release(h->p, c, 0);
    return NULL;
}

START_TEST(test_distinct_concurrent)
{
    struct redispool *p = redispool_new(redis_url(), 3, 1000);
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
    ck_assert(h[0].id > 0 && h[1].id > 0 && h[2].id > 0);
    ck_assert(h[0].id != h[1].id && h[0].id != h[2].id &&
              h[1].id != h[2].id);
    pthread_barrier_destroy(&bar);
    redispool_free(p);
}
END_TEST

START_TEST(test_timeout_and_broken)
{
    struct redispool *p = redispool_new(redis_url(), 1, 1000);
    redisContext *c = redispool_acquire(p, 100);
    redisReply *r;
    long long id;
    double t0;

    ck_assert_ptr_nonnull(c);
    id = client_id(c);
    t0 = now_s();
    ck_assert_ptr_null(redispool_acquire(p, 200));
    ck_assert(now_s() - t0 >= 0.19 && now_s() - t0 < 2.0);
    redispool_release(p, c, 0);

    c = redispool_acquire(p, 100);
    ck_assert_int_eq(client_id(c), id); /* reused */
    redispool_release(p, c, 1);         /* broken: closed */
    c = redispool_acquire(p, 100);
    ck_assert(client_id(c) != id);
    id = client_id(c);

    /* The server drops the connection (as on a restart): ctx->err gets
     * set and release replaces it. */
    {
        struct timeval tv = {1, 0};
        redisContext *k = redisConnectWithTimeout(r_host, r_port, tv);

        ck_assert(k != NULL && k->err == 0);
        if (r_pass[0] != '\0') {
            r = redisCommand(k, "AUTH %s", r_pass);
            freeReplyObject(r);
        }
        r = redisCommand(k, "CLIENT KILL ID %lld", id);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
        ck_assert_int_eq(r->integer, 1);
        freeReplyObject(r);
        redisFree(k);
    }
    r = redisCommand(c, "PING");
    if (r != NULL)
        freeReplyObject(r);
    ck_assert_int_ne(c->err, 0);
    redispool_release(p, c, 0);
    c = redispool_acquire(p, 100);
    ck_assert_ptr_nonnull(c);
    ck_assert(client_id(c) != id);
    redispool_release(p, c, 0);
    redispool_free(p);
}
END_TEST

START_TEST(test_wrong_password)
{
    char url[512];
    struct redispool *p;

    url_with(url, sizeof(url), "definitely-wrong-password", r_db);
    p = redispool_new(url, 1, 1000);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(redispool_acquire(p, 100));
    ck_assert_int_eq(redispool_ping(p), -1);
    redispool_free(p);
}
END_TEST

START_TEST(test_unreachable)
{
    struct redispool *p = redispool_new("redis://127.0.0.1:1/0", 1, 500);
    double t0 = now_s();

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(redispool_acquire(p, 100));
    ck_assert_int_eq(redispool_ping(p), -1);
    ck_assert(now_s() - t0 < 1.5);
    ck_assert_ptr_null(redispool_acquire(p, 0));
    redispool_free(p);
}
END_TEST

static Suite *redispool_suite(void)
{
    Suite *s = suite_create("redispool");
    TCase *tu = tcase_create("url");
    TCase *tc = tcase_create("pool");

    tcase_add_test(tu, test_parse_url);
    suite_add_tcase(s, tu);

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ping_and_select);
    tcase_add_test(tc, test_distinct_concurrent);
    tcase_add_test(tc, test_timeout_and_broken);
    tcase_add_test(tc, test_wrong_password);
    tcase_add_test(tc, test_unreachable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(redispool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
