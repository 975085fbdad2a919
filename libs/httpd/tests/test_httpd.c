/*
 * httpd tests, requests: routing, bodies, request ids and trace context
 * against an in-process server (httpd_fixture.h) driven by libcurl.
 * The server's lifecycle (built-ins, drain, signals, thread pool) is in
 * test_httpd_lifecycle.c.
 */
#include "httpd_fixture.h"

START_TEST(test_exact_and_params)
{
    struct resp r;
    json_t *j;

    http("GET", "/hello", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "hello");
    json_decref(j);

    http("GET", "/users/me", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "me");
    json_decref(j);

    http("GET", "/users/42", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "user");
    ck_assert_str_eq(jstr(j, "id", NULL), "42");
    json_decref(j);

    http("DELETE", "/users/42", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "user-del");
    json_decref(j);

    http("GET", "/users/7/posts/abc", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "post");
    ck_assert_str_eq(jstr(j, "id", NULL), "7");
    ck_assert_str_eq(jstr(j, "post", NULL), "abc");
    json_decref(j);

    http("GET", "/users/7/", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    http("GET", "/hello/x", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
}
END_TEST

START_TEST(test_prefix)
{
    struct resp r;
    json_t *j;

    http("PUT", "/files/a/b", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "files");
    json_decref(j);

    http("GET", "/files", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "files");
    json_decref(j);

    http("GET", "/files/special/x", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "special");
    json_decref(j);

    /* Longer prefix has the wrong method: the shorter one takes it. */
    http("POST", "/files/special/x", NULL, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "tag", NULL), "files");
    json_decref(j);

    http("GET", "/filesx", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
}
END_TEST

START_TEST(test_404_405)
{
    struct resp r;
    char buf[128];
    json_t *j;

    http("GET", "/nowhere", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "not_found");
    ck_assert_str_eq(jstr(j, "error", "request_id"),
                     resp_header(&r, "X-Request-Id", buf, sizeof(buf)));
    ck_assert_str_eq(resp_header(&r, "Content-Type", buf, sizeof(buf)),
                     "application/json");
    json_decref(j);

    http("POST", "/hello", NULL, "{}", 0, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(resp_header(&r, "Allow", buf, sizeof(buf)),
                     "GET, HEAD");
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "method_not_allowed");
    json_decref(j);

    http("PUT", "/users/9", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(resp_header(&r, "Allow", buf, sizeof(buf)),
                     "GET, HEAD, DELETE");
}
END_TEST

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_body_limits)
{
    struct resp r;
    char *big = repeat('a', 5000);
    char *ok = repeat('b', 4096);
    json_t *j;

    http("POST", "/raw", NULL, ok, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "4096");

    http("POST", "/raw", NULL, ok, 1, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "4096");

    http("POST", "/raw", NULL, big, 0, &r);
    ck_assert_int_eq(r.status, 413);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "payload_too_large");
    json_decref(j);

    http("POST", "/raw", NULL, big, 1, &r);
    ck_assert_int_eq(r.status, 413);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "payload_too_large");
    json_decref(j);

    /* Per-route limit (64 bytes on /echo). */
    http("POST", "/echo", NULL, ok, 0, &r);
    ck_assert_int_eq(r.status, 413);

    http("POST", "/raw", NULL, "", 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "0");

    /* Large enough for curl's "Expect: 100-continue". */
    free(big);
    big = repeat('c', 3 << 20);
    http("POST", "/raw", NULL, big, 0, &r);
    ck_assert_int_eq(r.status, 413);
    http("POST", "/raw", NULL, big, 1, &r);
    ck_assert_int_eq(r.status, 413);
    free(big);
    big = NULL;
    free(ok);
}
END_TEST

START_TEST(test_json_body)
{
    static const char *const ct_text[] = {"Content-Type: text/plain", NULL};
    static const char *const ct_json[] = {
        "Content-Type: application/json; charset=utf-8", NULL};
    struct resp r;
    char rid[128];
    json_t *j;

    http("POST", "/echo", ct_json, "{\"a\":1}", 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"a\":1}");

    http("POST", "/echo", ct_json, "{not json", 0, &r);
    ck_assert_int_eq(r.status, 400);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "invalid_json");
    resp_header(&r, "X-Request-Id", rid, sizeof(rid));
    ck_assert_uint_eq(strlen(rid), 32);
    ck_assert_str_eq(jstr(j, "error", "request_id"), rid);
    ck_assert_ptr_nonnull(jstr(j, "error", "message"));
    json_decref(j);

    http("POST", "/echo", ct_json, "[1,2]", 0, &r);
    ck_assert_int_eq(r.status, 400);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "invalid_json");
    json_decref(j);

    http("POST", "/echo", ct_json, "{\"a\":1,\"a\":2}", 0, &r);
    ck_assert_int_eq(r.status, 400);

    http("POST", "/echo", ct_text, "{}", 0, &r);
    ck_assert_int_eq(r.status, 415);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "error", "code"), "unsupported_media_type");
    json_decref(j);
}
END_TEST

START_TEST(test_request_id)
{
    static const char *const good[] = {"X-Request-Id: abc-123.x:y_Z", NULL};
    static const char *const spaces[] = {"X-Request-Id: has space", NULL};
    char long_hdr[128];
    char max_hdr[128];
    const char *hl[] = {long_hdr, NULL};
    const char *hm[] = {max_hdr, NULL};
    char *id65 = repeat('x', 65);
    char *id64 = repeat('y', 64);
    struct resp r;
    char buf[128];
    json_t *j;

    http("GET", "/ident", good, NULL, 0, &r);
    ck_assert_str_eq(resp_header(&r, "X-Request-Id", buf, sizeof(buf)),
                     "abc-123.x:y_Z");
    ck_assert_str_eq(resp_header(&r, "X-Extra", buf, sizeof(buf)), "yes");
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "request_id", NULL), "abc-123.x:y_Z");
    json_decref(j);

    http("GET", "/ident", spaces, NULL, 0, &r);
    resp_header(&r, "X-Request-Id", buf, sizeof(buf));
    ck_assert_uint_eq(strlen(buf), 32);
    ck_assert_uint_eq(strspn(buf, "0123456789abcdef"), 32);

    snprintf(long_hdr, sizeof(long_hdr), "X-Request-Id: %s", id65);
    http("GET", "/ident", hl, NULL, 0, &r);
    resp_header(&r, "X-Request-Id", buf, sizeof(buf));
    ck_assert_uint_eq(strlen(buf), 32);

    snprintf(max_hdr, sizeof(max_hdr), "X-Request-Id: %s", id64);
    http("GET", "/ident", hm, NULL, 0, &r);
    ck_assert_str_eq(resp_header(&r, "X-Request-Id", buf, sizeof(buf)),
                     id64);

    /* Generated ids differ per request. */
    {
        char a[64], b[64];
        http("GET", "/ident", NULL, NULL, 0, &r);
        resp_header(&r, "X-Request-Id", a, sizeof(a));
        http("GET", "/ident", NULL, NULL, 0, &r);
        resp_header(&r, "X-Request-Id", b, sizeof(b));
        ck_assert_str_ne(a, b);
    }
    free(id65);
    free(id64);
}
END_TEST

START_TEST(test_traceparent)
{
    static const char *const tp[] = {
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        NULL};
    static const char *const zero[] = {
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        NULL};
    static const char *const upper[] = {
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        NULL};
    struct resp r;
    json_t *j;
    char want[64];

    http("GET", "/ident?q=v", tp, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_eq(jstr(j, "trace_id", NULL),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_ne(jstr(j, "span_id", NULL), "00f067aa0ba902b7");
    ck_assert_str_eq(jstr(j, "q", NULL), "v");
    snprintf(want, sizeof(want), "00-4bf92f3577b34da6a3ce929d0e0e4736-%s-01",
             jstr(j, "span_id", NULL));
    ck_assert_str_eq(jstr(j, "traceparent", NULL), want);
    json_decref(j);

    http("GET", "/ident", zero, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_ne(jstr(j, "trace_id", NULL),
                     "00000000000000000000000000000000");
    ck_assert_uint_eq(strlen(jstr(j, "trace_id", NULL)), 32);
    ck_assert_uint_eq(strlen(jstr(j, "traceparent", NULL)), 55);
    json_decref(j);

    http("GET", "/ident", upper, NULL, 0, &r);
    j = resp_json(&r);
    ck_assert_str_ne(jstr(j, "trace_id", NULL),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(j);
}
END_TEST

static Suite *httpd_suite(void)
{
    Suite *s = suite_create("httpd");
    TCase *tc = tcase_create("server");
    TCase *tp = tcase_create("pool");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_exact_and_params);
    tcase_add_test(tc, test_prefix);
    tcase_add_test(tc, test_404_405);
    tcase_add_test(tc, test_body_limits);
    tcase_add_test(tc, test_json_body);
    tcase_add_test(tc, test_request_id);
    tcase_add_test(tc, test_traceparent);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tp, setup_pool, teardown);
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, test_body_limits);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    return httpd_test_run(httpd_suite());
}
