/*
 * httpd tests, lifecycle: built-in endpoints and readiness, forgotten
 * replies, drain, signals and the thread pool, on the same fixture as
 * test_httpd.c. httpd.c is included to reach httpd_drain().
 */
#include "httpd/httpd.c"

#include <pthread.h>
#include <signal.h>

#include "httpd_fixture.h"

START_TEST(test_builtins)
{
    struct resp r;
    char buf[128];
    json_t *j;
    int i;

    http("GET", "/healthz", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");

    http("GET", "/readyz", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);

    ready_fail = 1;
    http("GET", "/readyz", NULL, NULL, 0, &r);
    ready_fail = 0;
    ck_assert_int_eq(r.status, 503);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "not_ready");
    ck_assert_str_eq(jstr(j, "error", "message"), "postgres unreachable");
    json_decref(j);

    http("GET", "/hello", NULL, NULL, 0, &r);
    /* The completion callback may trail the client by a moment. */
    for (i = 0; i < 50; i++) {
        http("GET", "/metrics", NULL, NULL, 0, &r);
        if (strstr(r.body, "route=\"/hello\"") != NULL)
            break;
        usleep(20000);
    }
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(resp_header(&r, "Content-Type", buf, sizeof(buf)),
                     "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(
        r.body,
        "http_requests_total{method=\"GET\",route=\"/hello\",status=\"200\"}"));
    ck_assert_ptr_nonnull(strstr(r.body, "http_request_duration_seconds"));
    ck_assert_ptr_nonnull(strstr(r.body, "route=\"/readyz\",status=\"503\""));

    http("POST", "/healthz", NULL, "", 0, &r);
    ck_assert_int_eq(r.status, 405);
}
END_TEST

static void h_own_health(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_reply_raw(r, 200, "text/plain", "mine", 4);
}

START_TEST(test_builtin_override_and_catchall)
{
    struct httpd_opts o;
    struct resp r;
    json_t *j;

    teardown();
    httpd_opts_init(&o, "test");
    srv = httpd_new(&o);
    ck_assert_int_eq(httpd_route(srv, "*", "/*", h_tag, "all", 0), 0);
    ck_assert_int_eq(
        httpd_route(srv, "GET", "/healthz", h_own_health, NULL, 0), 0);
    ck_assert_int_eq(httpd_start(srv), 0);

    http("GET", "/healthz", NULL, NULL, 0, &r);
    ck_assert_str_eq(r.body, "mine");
    http("GET", "/readyz", NULL, NULL, 0, &r);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    http("GET", "/anything/else", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "all");
    json_decref(j);
    http("GET", "/", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "all");
    json_decref(j);
}
END_TEST

START_TEST(test_forgotten_reply)
{
    struct resp r;
    json_t *j;

    http("GET", "/forget", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 500);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "internal_error");
    json_decref(j);
}
END_TEST

static void *slow_client(void *arg)
{
    struct resp *r = arg;

    http("GET", "/slow", NULL, NULL, 0, r);
    return NULL;
}

START_TEST(test_drain)
{
    static struct resp slow, late;
    pthread_t t;
    double t0;
    int i;

    ck_assert_int_eq(pthread_create(&t, NULL, slow_client, &slow), 0);
    for (i = 0; i < 200 && httpd_inflight(srv) == 0; i++)
        usleep(5000);
    ck_assert_int_eq(httpd_inflight(srv), 1);
    t0 = httpd_now();
    httpd_drain(srv, 5);
    ck_assert_int_eq(httpd_inflight(srv), 0);
    ck_assert(httpd_now() - t0 < 4.0);
    pthread_join(t, NULL);
    ck_assert_int_eq(slow.rc, CURLE_OK);
    ck_assert_int_eq(slow.status, 200);

    /* No longer accepting. */
    http("GET", "/hello", NULL, NULL, 0, &late);
    ck_assert_int_ne(late.rc, CURLE_OK);
}
END_TEST

static int hups, terms;

static void on_hup(void *arg)
{
    (void)arg;
    hups++;
}

static void on_term(void *arg)
{
    (void)arg;
    terms++;
}

static void *signaller(void *arg)
{
    (void)arg;
    usleep(100000);
    kill(getpid(), SIGHUP);
    usleep(100000);
    kill(getpid(), SIGTERM);
    return NULL;
}

START_TEST(test_run_signals)
{
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, signaller, NULL), 0);
    ck_assert_int_eq(httpd_run(srv, on_term, on_hup, NULL), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(hups, 1);
    ck_assert_int_eq(terms, 1);
    ck_assert_ptr_null(srv->daemon);
}
END_TEST

static void *parallel_client(void *arg)
{
    struct resp *r = arg;

    http("GET", "/users/5", NULL, NULL, 0, r);
    return NULL;
}

START_TEST(test_thread_pool)
{
    static struct resp rs[8];
    pthread_t t[8];
    int i;

    for (i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, parallel_client, &rs[i]),
                         0);
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(rs[i].status, 200);
    }
    {
        struct resp r;
        http("POST", "/raw", NULL, "0123456789", 1, &r);
        ck_assert_str_eq(r.body, "10");
    }
}
END_TEST

static Suite *httpd_suite(void)
{
    Suite *s = suite_create("httpd_lifecycle");
    TCase *tc = tcase_create("server");
    TCase *tp = tcase_create("pool");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_builtins);
    tcase_add_test(tc, test_builtin_override_and_catchall);
    tcase_add_test(tc, test_forgotten_reply);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_run_signals);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tp, setup_pool, teardown);
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, test_thread_pool);
    tcase_add_test(tp, test_drain);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    return httpd_test_run(httpd_suite());
}
