/*
 * Unit tests for httpd_reply_stream (server-sent events and other
 * responses of unknown length): chunks arrive in order as the read
 * callback produces them, the free callback runs exactly once (also when
 * the client leaves early), and httpd_draining() is 0 while serving.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd/httpd.h"

static struct httpd_server *srv;
static atomic_int freed;

struct counter {
    int n, max;
};

static long count_read(void *arg, char *buf, size_t max)
{
    struct counter *c = arg;
    struct timespec nap = {0, 2 * 1000 * 1000};

    if (c->n >= c->max)
        return HTTPD_READ_END;
    nanosleep(&nap, NULL);   /* a producer that blocks between chunks */
    return snprintf(buf, max, "data: %d\n\n", c->n++);
}

static void count_free(void *arg)
{
    free(arg);
    atomic_fetch_add(&freed, 1);
}

static void h_stream(struct httpd_req *r, void *arg)
{
    struct counter *c = calloc(1, sizeof *c);
    const char *n = httpd_query(r, "n");

    (void)arg;
    c->max = n ? (int)strtol(n, NULL, 10) : 5;
    httpd_add_header(r, "Cache-Control", "no-cache");
    httpd_reply_stream(r, 200, "text/event-stream", count_read, c,
                       count_free);
}

struct body {
    char buf[1 << 16];
    size_t len;
    size_t stop_after;   /* 0: read everything */
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t len = sz * n;

    if (len > sizeof b->buf - 1 - b->len)
        len = sizeof b->buf - 1 - b->len;
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    if (b->stop_after && b->len >= b->stop_after)
        return 0;   /* client gives up */
    return sz * n;
}

static long get(const char *path, struct body *b, char *ctype, size_t ctlen)
{
    char url[256];
    CURL *c = curl_easy_init();
    long status = 0;
    char *ct = NULL;

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port(srv), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ctype)
        snprintf(ctype, ctlen, "%s", ct ? ct : "");
    curl_easy_cleanup(c);
    return status;
}

static void wait_freed(int want)
{
    for (int i = 0; i < 500 && atomic_load(&freed) < want; i++) {
        struct timespec nap = {0, 10 * 1000 * 1000};

        nanosleep(&nap, NULL);
    }
}

static void setup(void)
{
    struct httpd_opts o;

    log_init("test", "error");
    httpd_opts_init(&o, "test");
    o.port = 0;
    o.drain_s = 2;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(httpd_route(srv, "GET", "/stream", h_stream, NULL, 0),
                     0);
    ck_assert_int_eq(httpd_start(srv), 0);
    atomic_store(&freed, 0);
}

static void teardown(void)
{
    httpd_free(srv);
    srv = NULL;
}

START_TEST(test_stream_chunks)
{
    static struct body b;
    char ct[64];

    memset(&b, 0, sizeof b);
    ck_assert_int_eq(get("/stream?n=3", &b, ct, sizeof ct), 200);
    ck_assert_str_eq(ct, "text/event-stream");
    ck_assert_str_eq(b.buf, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    wait_freed(1);
    ck_assert_int_eq(atomic_load(&freed), 1);
    ck_assert_int_eq(httpd_draining(srv), 0);
}
END_TEST

START_TEST(test_stream_client_leaves)
{
    static struct body b;

    memset(&b, 0, sizeof b);
    b.stop_after = 20;
    get("/stream?n=100000", &b, NULL, 0);
    /* the next write fails on the closed socket; free runs once */
    wait_freed(1);
    ck_assert_int_eq(atomic_load(&freed), 1);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("httpd_reply_stream");
    TCase *tc = tcase_create("reply_stream");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stream_chunks);
    tcase_add_test(tc, test_stream_client_leaves);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stream_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
