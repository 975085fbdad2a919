/* Unit tests for proxy_headers.c: the upstream header list, the upstream
 * URL, response-header filtering. (The engine is exercised end to end in
 * test_gateway.c.) */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../src/proxy_headers.c"

/* Number of lines equal (case-insensitively on the name) to "Name: v". */
static int count_line(const struct curl_slist *l, const char *line)
{
    int n = 0;

    for (; l != NULL; l = l->next)
        if (strcasecmp(l->data, line) == 0)
            n++;
    return n;
}

/* Number of lines whose header name is `name`. */
static int count_name(const struct curl_slist *l, const char *name)
{
    size_t n = strlen(name);
    int c = 0;

    for (; l != NULL; l = l->next)
        if (strncasecmp(l->data, name, n) == 0 &&
            (l->data[n] == ':' || l->data[n] == ';'))
            c++;
    return c;
}

static const struct gw_header client[] = {
    {"Host", "gw.example:8080"},
    {"User-Agent", "test/1"},
    {"Accept", "application/json"},
    {"Authorization", "Bearer abc"},
    {"Connection", "keep-alive, X-Secret-Hop"},
    {"Keep-Alive", "timeout=5"},
    {"X-Secret-Hop", "1"},
    {"Proxy-Authorization", "Basic xx"},
    {"TE", "trailers"},
    {"Trailer", "X-T"},
    {"Transfer-Encoding", "chunked"},
    {"Upgrade", "websocket"},
    {"Content-Length", "5"},
    {"Expect", "100-continue"},
    {"X-User-Id", "evil"},
    {"x-user-roles", "admin"},
    {"X-User-Email", "evil@example.com"},
    {"X-Internal-Token", "guess"},
    {"X-Request-Id", "client-chosen"},
    {"traceparent", "00-client-trace"},
    {"X-Forwarded-Proto", "https"},
    {"X-Forwarded-For", "10.0.0.1"},
    {"X-Forwarded-For", "10.0.0.2, 10.0.0.3"},
    {"X-Empty", ""},
    {"tracestate", "k=v"},
};
#define NCLIENT (sizeof(client) / sizeof(client[0]))

START_TEST(test_headers_filter_and_add)
{
    struct tok_claims claims;
    struct gw_fwd fwd = {0};
    struct curl_slist *l = NULL;

    memset(&claims, 0, sizeof(claims));
    snprintf(claims.sub, sizeof(claims.sub), "42");
    snprintf(claims.email, sizeof(claims.email), "a@example.com");
    snprintf(claims.roles_csv, sizeof(claims.roles_csv), "user,admin");
    fwd.client_ip = "192.0.2.7";
    fwd.request_id = "rid-1";
    fwd.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    fwd.proto = "http";
    fwd.internal_token = "s3cret";
    fwd.claims = &claims;
    ck_assert_int_eq(gw_proxy_upstream_headers(client, NCLIENT, &fwd, &l), 0);

    /* Kept as sent. */
    ck_assert_int_eq(count_line(l, "User-Agent: test/1"), 1);
    ck_assert_int_eq(count_line(l, "Accept: application/json"), 1);
    ck_assert_int_eq(count_line(l, "Authorization: Bearer abc"), 1);
    ck_assert_int_eq(count_line(l, "tracestate: k=v"), 1);
    ck_assert_int_eq(count_line(l, "X-Empty;"), 1);
    /* Hop-by-hop, including what Connection names, is gone. */
    ck_assert_int_eq(count_name(l, "Connection"), 0);
    ck_assert_int_eq(count_name(l, "Keep-Alive"), 0);
    ck_assert_int_eq(count_name(l, "X-Secret-Hop"), 0);
    ck_assert_int_eq(count_name(l, "Proxy-Authorization"), 0);
    ck_assert_int_eq(count_name(l, "TE"), 0);
    ck_assert_int_eq(count_name(l, "Trailer"), 0);
    ck_assert_int_eq(count_name(l, "Transfer-Encoding"), 0);
    ck_assert_int_eq(count_name(l, "Upgrade"), 0);
    ck_assert_int_eq(count_name(l, "Host"), 0);
    ck_assert_int_eq(count_name(l, "Content-Length"), 0);
    /* Client identity claims are replaced by the verified ones. */
    ck_assert_int_eq(count_name(l, "X-User-Id"), 1);
    ck_assert_int_eq(count_line(l, "X-User-Id: 42"), 1);
    ck_assert_int_eq(count_name(l, "X-User-Roles"), 1);
    ck_assert_int_eq(count_line(l, "X-User-Roles: user,admin"), 1);
    ck_assert_int_eq(count_line(l, "X-User-Email: a@example.com"), 1);
    ck_assert_int_eq(count_name(l, "X-Internal-Token"), 1);
    ck_assert_int_eq(count_line(l, "X-Internal-Token: s3cret"), 1);
    ck_assert_int_eq(count_name(l, "X-Request-Id"), 1);
    ck_assert_int_eq(count_line(l, "X-Request-Id: rid-1"), 1);
    ck_assert_int_eq(count_name(l, "traceparent"), 1);
    ck_assert_int_eq(count_name(l, "X-Forwarded-Proto"), 1);
    ck_assert_int_eq(count_line(l, "X-Forwarded-Proto: http"), 1);
    ck_assert_int_eq(count_line(l, "X-Forwarded-Host: gw.example:8080"), 1);
    /* X-Forwarded-For: every client value in order, then the peer. */
    ck_assert_int_eq(count_name(l, "X-Forwarded-For"), 1);
    ck_assert_int_eq(
        count_line(l, "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, "
                      "192.0.2.7"),
        1);
    /* libcurl's defaults are suppressed. */
    ck_assert_int_eq(count_line(l, "Expect:"), 1);
    ck_assert_int_eq(count_line(l, "Content-Type:"), 1);
    ck_assert_int_eq(count_line(l, "Accept:"), 0);
    curl_slist_free_all(l);
}
END_TEST

START_TEST(test_headers_public_route)
{
    static const struct gw_header in[] = {
        {"X-User-Id", "evil"},
        {"Content-Type", "application/json"},
    };
    struct gw_fwd fwd = {0};
    struct curl_slist *l = NULL;

    fwd.client_ip = "127.0.0.1";
    ck_assert_int_eq(gw_proxy_upstream_headers(in, 2, &fwd, &l), 0);
    ck_assert_int_eq(count_name(l, "X-User-Id"), 0);
    ck_assert_int_eq(count_name(l, "X-Internal-Token"), 0);
    ck_assert_int_eq(count_line(l, "X-Forwarded-For: 127.0.0.1"), 1);
    ck_assert_int_eq(count_line(l, "Content-Type: application/json"), 1);
    ck_assert_int_eq(count_line(l, "Content-Type:"), 0);
    ck_assert_int_eq(count_line(l, "Accept:"), 1);
    curl_slist_free_all(l);
}
END_TEST

START_TEST(test_headers_reject_crlf)
{
    struct tok_claims claims;
    struct gw_fwd fwd = {0};
    struct curl_slist *l = (struct curl_slist *)1;

    memset(&claims, 0, sizeof(claims));
    snprintf(claims.sub, sizeof(claims.sub), "1\r\nX-Evil: 1");
    fwd.claims = &claims;
    ck_assert_int_eq(gw_proxy_upstream_headers(NULL, 0, &fwd, &l), -1);
    ck_assert_ptr_null(l);
}
END_TEST

START_TEST(test_build_url)
{
    static const struct gw_header args[] = {
        {"a", "1"},
        {"q", "two words&more=x"},
        {"flag", NULL},
        {"plus", "a+b"},
        {"utf", "\xc3\xa9"},
    };
    char *u;

    u = gw_proxy_build_url("http://127.0.0.1:8081", "/v1/chat", NULL, 0);
    ck_assert_str_eq(u, "http://127.0.0.1:8081/v1/chat");
    free(u);
    u = gw_proxy_build_url("http://h", "", NULL, 0);
    ck_assert_str_eq(u, "http://h/");
    free(u);
    u = gw_proxy_build_url("http://h/base", "/a b/%/?#/x@y:z", args, 5);
    ck_assert_str_eq(u, "http://h/base/a%20b/%25/%3F%23/x@y:z"
                        "?a=1&q=two%20words%26more%3Dx&flag&plus=a%2Bb"
                        "&utf=%C3%A9");
    free(u);
}
END_TEST

START_TEST(test_response_headers)
{
    ck_assert_int_eq(gw_proxy_response_header_kept("Set-Cookie"), 1);
    ck_assert_int_eq(gw_proxy_response_header_kept("Location"), 1);
    ck_assert_int_eq(gw_proxy_response_header_kept("Cache-Control"), 1);
    ck_assert_int_eq(gw_proxy_response_header_kept("connection"), 0);
    ck_assert_int_eq(gw_proxy_response_header_kept("Transfer-Encoding"), 0);
    ck_assert_int_eq(gw_proxy_response_header_kept("Content-Length"), 0);
    ck_assert_int_eq(gw_proxy_response_header_kept("Keep-Alive"), 0);
    ck_assert_int_eq(gw_proxy_response_header_kept("x-request-id"), 0);
    /* The edge sets these itself: one copy, the gateway's. */
    ck_assert_int_eq(gw_proxy_response_header_kept("X-Frame-Options"), 0);
    ck_assert_int_eq(gw_proxy_response_header_kept("referrer-policy"), 0);
    ck_assert_int_eq(
        gw_proxy_response_header_kept("X-Content-Type-Options"), 0);
}
END_TEST

START_TEST(test_idempotent)
{
    ck_assert_int_eq(gw_proxy_idempotent("GET"), 1);
    ck_assert_int_eq(gw_proxy_idempotent("PUT"), 1);
    ck_assert_int_eq(gw_proxy_idempotent("DELETE"), 1);
    ck_assert_int_eq(gw_proxy_idempotent("POST"), 0);
    ck_assert_int_eq(gw_proxy_idempotent("PATCH"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_proxy");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_headers_filter_and_add);
    tcase_add_test(tc, test_headers_public_route);
    tcase_add_test(tc, test_headers_reject_crlf);
    tcase_add_test(tc, test_build_url);
    tcase_add_test(tc, test_response_headers);
    tcase_add_test(tc, test_idempotent);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
