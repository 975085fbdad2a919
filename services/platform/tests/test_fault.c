/*
 * Rehearsal fault injection (fault.c) through the httpd `before` hook, over
 * real HTTP against an in-process server: exactly the configured share of
 * service requests answers 500, evenly spaced; the built-in probes and a
 * rate of 0 are never touched; a faulted request never reaches its
 * handler; a bad setting fails the configuration.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/fault.c"

static struct httpd_server *srv;
static struct plat_fault fault;
static atomic_int handled;

static void h_ok(struct httpd_req *r, void *arg)
{
    (void)arg;
    atomic_fetch_add(&handled, 1);
    httpd_reply_json(r, 200, json_pack("{sb}", "ok", 1));
}

static void start(double rate)
{
    struct httpd_opts o;

    log_init("test", "error");
    fault.rate = rate;
    atomic_init(&fault.seen, 0);
    atomic_store(&handled, 0);
    httpd_opts_init(&o, "test");
    o.port = 0;
    o.before = plat_fault_before;
    o.before_arg = &fault;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(httpd_route(srv, "GET", "/x", h_ok, NULL, 0), 0);
    ck_assert_int_eq(httpd_route(srv, "POST", "/y", h_ok, NULL, 0), 0);
    ck_assert_int_eq(httpd_start(srv), 0);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* Status of one request (0 on a transport error). */
static long request(const char *method, const char *path)
{
    CURL *c = curl_easy_init();
    char url[128];
    long status = 0;

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port(srv),
             path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"a\":1}");
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srv = NULL;
}

static void teardown(void)
{
    if (srv != NULL)
        httpd_free(srv);
    curl_global_cleanup();
}

START_TEST(five_percent_is_every_twentieth)
{
    int i, fails = 0;

    start(0.05);
    for (i = 1; i <= 60; i++) {
        long st = request(i % 2 ? "GET" : "POST", i % 2 ? "/x" : "/y");

        /* requests 20, 40, 60 fail: deterministic, evenly spaced */
        if (i % 20 == 0) {
            ck_assert_int_eq(st, 500);
            fails++;
        } else {
            ck_assert_int_eq(st, 200);
        }
        /* probes never count and never fail */
        ck_assert_int_eq(request("GET", "/healthz"), 200);
        ck_assert_int_eq(request("GET", "/readyz"), 200);
    }
    ck_assert_int_eq(fails, 3);
    /* a faulted request never reached its handler */
    ck_assert_int_eq(atomic_load(&handled), 57);
    ck_assert_uint_eq(atomic_load(&fault.seen), 60);
}
END_TEST

START_TEST(rate_zero_is_off)
{
    int i;

    start(0.0);
    for (i = 0; i < 30; i++)
        ck_assert_int_eq(request("GET", "/x"), 200);
    ck_assert_int_eq(atomic_load(&handled), 30);
}
END_TEST

START_TEST(rate_one_fails_everything)
{
    int i;

    start(1.0);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(request("GET", "/x"), 500);
    ck_assert_int_eq(request("GET", "/healthz"), 200);
    ck_assert_int_eq(atomic_load(&handled), 0);
}
END_TEST

START_TEST(setting_is_checked)
{
    struct cfg c;
    struct plat_fault f;

    setenv("FAULT_INJECT_5XX_RATE", "0.25", 1);
    cfg_init(&c, "test");
    plat_fault_load(&c, &f);
    ck_assert_int_eq(cfg_check(&c), 0);
    ck_assert(f.rate == 0.25);
    cfg_cleanup(&c);

    setenv("FAULT_INJECT_5XX_RATE", "1.5", 1);
    cfg_init(&c, "test");
    plat_fault_load(&c, &f);
    ck_assert_int_ne(cfg_check(&c), 0);
    cfg_cleanup(&c);

    unsetenv("FAULT_INJECT_5XX_RATE");
    cfg_init(&c, "test");
    plat_fault_load(&c, &f);
    ck_assert_int_eq(cfg_check(&c), 0);
    ck_assert(f.rate == 0.0);
    cfg_cleanup(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("fault");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, five_percent_is_every_twentieth);
    tcase_add_test(tc, rate_zero_is_off);
    tcase_add_test(tc, rate_one_fails_everything);
    tcase_add_test(tc, setting_is_checked);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
