/* job_types.c: argument checks, and the handlers run by a real pool. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "auto_test.h"
#include "../src/egress.h"

static struct pgpool *pg;
static struct auto_queue q;
static struct httpd_server *srv;
static struct auto_pool *pool;
static int port;

static void h_echo(struct httpd_req *r, void *arg)
{
    const char *x = httpd_header(r, "X-Test");

    (void)arg;
    httpd_reply_json(r, 200, json_pack("{ssssss}", "method", r->method,
                                       "x", x ? x : "", "body",
                                       r->body ? r->body : ""));
}

static void h_teapot(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_error(r, 418, "teapot", "short and stout");
}

static void setup(void)
{
    struct httpd_opts o;
    struct auto_pool_opts po = {.queue = &q, .workers = 2, .heartbeat_s = 1,
                                .poll_ms = 100, .drain_s = 2,
                                .replica_id = "types"};

    pg = auto_test_pg(8);
    /* the test upstream listens on loopback */
    ck_assert_int_eq(auto_egress_init("127.0.0.1", 0), 0);
    auto_queue_init(&q, pg, 30, 10, 100);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    httpd_opts_init(&o, "automation-test");
    o.host = "127.0.0.1";
    o.port = 0;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(httpd_route(srv, "*", "/echo", h_echo, NULL, 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/teapot", h_teapot, NULL, 0),
                     0);
    ck_assert_int_eq(httpd_start(srv), 0);
    port = httpd_port(srv);
    po.conninfo = auto_test_db_url();
    pool = auto_pool_new(&po);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(auto_pool_start(pool), 0);
}

static void teardown(void)
{
    auto_pool_free(pool);
    httpd_free(srv);
    pgpool_free(pg);
    auto_egress_cleanup();
    curl_global_cleanup();
}

static int check(const char *type, const char *args_json, char *field,
                 size_t len)
{
    const struct auto_job_type *t = auto_job_type_find(type);
    json_t *args = json_loads(args_json, 0, NULL);
    char why[128];
    int rc;

    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(args);
    field[0] = '\0';
    rc = t->check(args, field, len, why, sizeof why);
    json_decref(args);
    return rc;
}

START_TEST(test_checks)
{
    char f[64];

    ck_assert_ptr_null(auto_job_type_find("nope"));
    ck_assert_ptr_null(auto_job_type_find(NULL));
    ck_assert_int_eq(check("noop", "{}", f, sizeof f), 0);
    ck_assert_int_eq(check("sleep", "{\"ms\":10}", f, sizeof f), 0);
    ck_assert_int_eq(check("sleep", "{\"ms\":-1}", f, sizeof f), -1);
    ck_assert_str_eq(f, "args.ms");
    ck_assert_int_eq(check("fail", "{\"message\":3}", f, sizeof f), -1);
    ck_assert_str_eq(f, "args.message");
    ck_assert_int_eq(check("http", "{\"url\":\"https://x.test/\","
                                   "\"method\":\"POST\",\"headers\":"
                                   "{\"A\":\"b\"},\"expect_status\":[200,"
                                   "201],\"timeout_ms\":100}", f, sizeof f),
                     0);
    ck_assert_int_eq(check("http", "{\"url\":\"ftp://x\"}", f, sizeof f), -1);
    ck_assert_str_eq(f, "args.url");
    ck_assert_int_eq(check("http", "{\"url\":\"http://x\",\"method\":"
                                   "\"get\"}", f, sizeof f), -1);
    ck_assert_str_eq(f, "args.method");
    ck_assert_int_eq(check("http", "{\"url\":\"http://x\",\"headers\":"
                                   "{\"A\":\"b\\r\\nC: d\"}}", f, sizeof f),
                     -1);
    ck_assert_str_eq(f, "args.headers");
    ck_assert_int_eq(check("http", "{\"url\":\"http://x\",\"expect_status\":"
                                   "\"200\"}", f, sizeof f), -1);
    ck_assert_str_eq(f, "args.expect_status");
}
END_TEST

/* Enqueues `type` with args; waits for a final state; returns the job. */
static json_t *run(const char *type, json_t *args, int max_attempts)
{
    struct auto_enqueue in = {.type = type, .args = args, .priority = 2,
                              .max_attempts = max_attempts,
                              .owner_id = "u1"};
    json_t *job = NULL;
    int created;
    long long id;
    double until = auto_test_now() + 10;

    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    id = json_integer_value(json_object_get(job, "id"));
    json_decref(args);
    for (;;) {
        const char *st;

        json_decref(job);
        ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
        st = json_string_value(json_object_get(job, "state"));
        if (!strcmp(st, "succeeded") || !strcmp(st, "dead") ||
            !strcmp(st, "cancelled"))
            return job;
        ck_assert_msg(auto_test_now() < until, "job %lld stuck in %s", id,
                      st);
        auto_test_sleep_ms(20);
    }
}

static const char *jstr(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

START_TEST(test_noop_sleep_fail)
{
    json_t *j = run("noop", json_object(), 1);

    ck_assert_str_eq(jstr(j, "state"), "succeeded");
    json_decref(j);
    j = run("sleep", json_pack("{si}", "ms", 50), 1);
    ck_assert_str_eq(jstr(j, "state"), "succeeded");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(j, "result"), "slept_ms")), 50);
    json_decref(j);
    j = run("fail", json_pack("{ss}", "message", "x"), 2);
    ck_assert_str_eq(jstr(j, "state"), "dead");
    ck_assert_str_eq(jstr(j, "last_error"), "x");
    json_decref(j);
}
END_TEST

START_TEST(test_http)
{
    char url[128];
    json_t *j, *res;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    j = run("http", json_pack("{sssss{ss}ss}", "url", url, "method", "PUT",
                              "headers", "X-Test", "yes", "body", "hello"),
            1);
    ck_assert_str_eq(jstr(j, "state"), "succeeded");
    res = json_object_get(j, "result");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "status")), 200);
    ck_assert_ptr_nonnull(strstr(jstr(res, "body"), "\"method\":\"PUT\""));
    ck_assert_ptr_nonnull(strstr(jstr(res, "body"), "\"x\":\"yes\""));
    ck_assert_ptr_nonnull(strstr(jstr(res, "body"), "hello"));
    json_decref(j);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/teapot", port);
    j = run("http", json_pack("{ss}", "url", url), 1);
    ck_assert_str_eq(jstr(j, "state"), "dead");
    ck_assert_str_eq(jstr(j, "last_error"), "unexpected status 418");
    json_decref(j);
    j = run("http", json_pack("{sssi}", "url", url, "expect_status", 418), 1);
    ck_assert_str_eq(jstr(j, "state"), "succeeded");
    json_decref(j);
    /* nothing listens on port 1 */
    j = run("http", json_pack("{ss}", "url", "http://127.0.0.1:1/"), 1);
    ck_assert_str_eq(jstr(j, "state"), "dead");
    ck_assert_ptr_nonnull(strstr(jstr(j, "last_error"), "request failed"));
    json_decref(j);
}
END_TEST

/* Without the allow-list a loopback target never gets a request. */
START_TEST(test_http_egress_refused)
{
    char url[128];
    json_t *j;

    ck_assert_int_eq(auto_egress_init("", 0), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    j = run("http", json_pack("{ss}", "url", url), 1);
    ck_assert_str_eq(jstr(j, "state"), "dead");
    ck_assert_str_eq(jstr(j, "last_error"),
                     "egress refused: 127.0.0.1 is a loopback address; set "
                     "HTTP_JOB_ALLOW_HOSTS to allow it");
    json_decref(j);
    snprintf(url, sizeof url, "http://localhost:%d/echo", port);
    j = run("http", json_pack("{ss}", "url", url), 1);
    ck_assert_str_eq(jstr(j, "state"), "dead");
    ck_assert_ptr_nonnull(strstr(jstr(j, "last_error"),
                                 "localhost resolves to a loopback"));
    json_decref(j);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("automation_job_types");
    TCase *tc = tcase_create("job_types");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_checks);
    tcase_add_test(tc, test_noop_sleep_fail);
    tcase_add_test(tc, test_http);
    tcase_add_test(tc, test_http_egress_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return auto_test_run(suite());
}
