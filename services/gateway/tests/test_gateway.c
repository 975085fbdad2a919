/*
 * In-process tests of gateway.c with the real engine: an upstream httpd
 * server that echoes what it received, the gateway in front of it, and a
 * libcurl client. Covers proxied round trips, identity headers, auth
 * answers, 404/405/413/400, 502/503/504, target retry, reload, metrics.
 */
#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../src/gateway.h"
#include "metrics/metrics.h"

#define SECRET "0123456789abcdef0123456789abcdef-gw-test"

static struct httpd_server *upstream;
static struct gw gw;
static int dead_port;

static enum MHD_Result add_kv(void *cls, enum MHD_ValueKind kind,
                              const char *key, const char *value)
{
    json_t *obj = cls;
    char name[128];
    const char *prev;
    size_t i;

    (void)kind;
    for (i = 0; key[i] != '\0' && i + 1 < sizeof(name); i++)
        name[i] = (char)tolower((unsigned char)key[i]);
    name[i] = '\0';
    prev = json_string_value(json_object_get(obj, name));
    if (prev != NULL) {
        char joined[1024];

        snprintf(joined, sizeof(joined), "%s, %s", prev, value ? value : "");
        json_object_set_new(obj, name, json_string(joined));
    } else {
        json_object_set_new(obj, name, value ? json_string(value)
                                              : json_null());
    }
    return MHD_YES;
}

/* The upstream: echoes method, path, query, headers and body as JSON. */
static void up_echo(struct httpd_req *r, void *arg)
{
    json_t *o = json_object(), *h = json_object(), *q = json_object();
    int status = 200;

    (void)arg;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_kv, h);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_kv, q);
    json_object_set_new(o, "method", json_string(r->method));
    json_object_set_new(o, "path", json_string(r->path));
    json_object_set_new(o, "headers", h);
    json_object_set_new(o, "query", q);
    json_object_set_new(o, "body", json_stringn(r->body ? r->body : "",
                                                r->body_len));
    if (strncmp(r->path, "/slow", 5) == 0)
        usleep(1000 * 1000);
    if (strcmp(r->path, "/pub/created") == 0) {
        httpd_add_header(r, "X-Upstream", "yes");
        httpd_add_header(r, "Set-Cookie", "a=1");
        httpd_add_header(r, "Set-Cookie", "b=2");
        status = 201;
    }
    httpd_reply_json(r, status, o);
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static char *routes_json(const char *extra_route)
{
    char *buf = malloc(8192);
    int up = httpd_port(upstream);

    snprintf(
        buf, 8192,
        "{\"upstreams\":{"
        " \"live\":{\"targets\":[\"http://127.0.0.1:%d\"]},"
        " \"dead\":{\"targets\":[\"http://127.0.0.1:%d\"]},"
        " \"mixed\":{\"targets\":[\"http://127.0.0.1:%d\","
        "                         \"http://127.0.0.1:%d\"]},"
        " \"none\":{\"targets\":[]}},"
        "\"routes\":["
        " {\"name\":\"pub\",\"prefix\":\"/pub\",\"upstream\":\"live\","
        "  \"auth\":\"none\"},"
        " {\"name\":\"svc\",\"prefix\":\"/svc\",\"upstream\":\"live\","
        "  \"strip_prefix\":true,\"auth\":\"none\"},"
        " {\"name\":\"priv\",\"prefix\":\"/priv\",\"upstream\":\"live\"},"
        " {\"name\":\"adm\",\"prefix\":\"/admin-only\",\"upstream\":\"live\","
        "  \"roles\":[\"admin\"]},"
        " {\"name\":\"form\",\"path\":\"/form\",\"methods\":[\"POST\"],"
        "  \"upstream\":\"live\",\"auth\":\"none\"},"
        " {\"name\":\"dead\",\"prefix\":\"/dead\",\"upstream\":\"dead\","
        "  \"auth\":\"none\"},"
        " {\"name\":\"mixed\",\"prefix\":\"/mixed\",\"upstream\":\"mixed\","
        "  \"auth\":\"none\"},"
        " {\"name\":\"none\",\"prefix\":\"/none\",\"upstream\":\"none\","
        "  \"auth\":\"none\"},"
        " {\"name\":\"slow\",\"prefix\":\"/slow\",\"upstream\":\"live\","
        "  \"auth\":\"none\",\"timeout_ms\":200},"
        " {\"name\":\"small\",\"prefix\":\"/small\",\"upstream\":\"live\","
        "  \"auth\":\"none\",\"max_body\":4},"
        " {\"name\":\"fb\",\"prefix\":\"/slowfb\",\"upstream\":\"live\","
        "  \"auth\":\"none\",\"first_byte_timeout_ms\":200,"
        "  \"connect_timeout_ms\":300}%s]}",
        up, dead_port, dead_port, up, extra_route);
    return buf;
}

static void setup(void)
{
    static const struct gw_route_defaults def = {5000, 1 << 20};
    struct httpd_opts o;
    struct gw_serve_opts so;
    struct gw_authn_opts ao = {0};
    struct gw_proxy_opts po = {0};
    struct gw_routes *rt;
    struct gw_authn *authn;
    struct gw_proxy *proxy;
    char err[256] = "", *json;

    log_init("gateway-test", "error");
    httpd_opts_init(&o, "upstream");
    o.port = 0;
    upstream = httpd_new(&o);
    ck_assert_ptr_nonnull(upstream);
    ck_assert_int_eq(httpd_route(upstream, "*", "/*", up_echo, NULL, 0), 0);
    ck_assert_int_eq(httpd_start(upstream), 0);
    dead_port = free_port();

    json = routes_json("");
    rt = gw_routes_parse(json, strlen(json), &def, err, sizeof(err));
    free(json);
    ck_assert_msg(rt != NULL, "%s", err);
    ao.secret = SECRET;
    ao.issuer = "basalt";
    ao.audience = "basalt";
    ao.leeway_s = 30;
    authn = gw_authn_new(&ao, err, sizeof(err));
    ck_assert_msg(authn != NULL, "%s", err);
    po.connect_timeout_ms = 500;
    po.internal_token = "itok";
    proxy = gw_proxy_new(&po);
    ck_assert_ptr_nonnull(proxy);
    gw_init(&gw, rt, authn, proxy, NULL, &def, 1 << 20);

    gw_serve_opts_init(&so);
    so.port = 0;
    so.threads = 2;
    ck_assert_int_eq(gw_serve_start(&gw, &so), 0);
}

static void teardown(void)
{
    gw_cleanup(&gw);
    httpd_free(upstream);
}

struct resp {
    long status;
    char body[65536];
    size_t len;
    char headers[8192];
    size_t hlen;
    double secs;
};

static size_t on_data(char *d, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;

    if (len > sizeof(r->body) - 1 - r->len)
        len = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, d, len);
    r->len += len;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_hdr(char *d, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;

    if (len > sizeof(r->headers) - 1 - r->hlen)
        len = sizeof(r->headers) - 1 - r->hlen;
    memcpy(r->headers + r->hlen, d, len);
    r->hlen += len;
    r->headers[r->hlen] = '\0';
    return size * n;
}

/* Sends one request to the gateway; `hdrs` is NULL-terminated or NULL. */
static void request(const char *method, const char *path,
                    const char *const *hdrs, const char *body,
                    struct resp *out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *list = NULL;
    char url[1024];
    double t0 = httpd_now();

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", gw_serve_port(&gw),
             path);
    for (; hdrs != NULL && *hdrs != NULL; hdrs++)
        list = curl_slist_append(list, *hdrs);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_hdr);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    out->secs = httpd_now() - t0;
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
}

static json_t *body_json(const struct resp *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);

    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

static const char *jstr(json_t *root, const char *a, const char *b)
{
    json_t *v = json_object_get(root, a);

    if (b != NULL)
        v = json_object_get(v, b);
    return json_string_value(v);
}

static void assert_error(const struct resp *r, long status, const char *code)
{
    json_t *j;

    ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status,
                  status, r->body);
    j = body_json(r);
    ck_assert_str_eq(jstr(j, "error", "code"), code);
    ck_assert_ptr_nonnull(jstr(j, "error", "request_id"));
    json_decref(j);
}

static char *token(const char *const *roles, size_t nroles)
{
    struct tok_signer *s = tok_signer_new_hmac(SECRET, strlen(SECRET), NULL);
    struct tok_issue in = {0};
    char *t;

    in.issuer = "basalt";
    in.audience = "basalt";
    in.sub = "user-1";
    in.email = "u@example.com";
    in.roles = roles;
    in.nroles = nroles;
    in.ttl_s = 300;
    in.now = time(NULL);
    t = tok_sign(s, &in, NULL);
    tok_signer_free(s);
    ck_assert_ptr_nonnull(t);
    return t;
}

START_TEST(test_get_roundtrip)
{
    static const char *const hdrs[] = {
        "X-User-Id: evil",        "X-User-Roles: admin",
        "X-Internal-Token: nope", "X-Forwarded-For: 10.1.1.1",
        "X-Request-Id: req-abc-123", "Connection: keep-alive",
        NULL,
    };
    struct resp r;
    json_t *j;

    request("GET", "/pub/x?a=1&b=two%20words&flag&p=a+b&q=c%2Bd&e=%26%3D",
            hdrs, NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "method", NULL), "GET");
    ck_assert_str_eq(jstr(j, "path", NULL), "/pub/x");
    ck_assert_str_eq(jstr(j, "query", "a"), "1");
    ck_assert_str_eq(jstr(j, "query", "b"), "two words");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "query"),
                                          "flag"));
    ck_assert_str_eq(jstr(j, "query", "p"), "a b");
    ck_assert_str_eq(jstr(j, "query", "q"), "c+d");
    ck_assert_str_eq(jstr(j, "query", "e"), "&=");
    ck_assert_ptr_null(jstr(j, "headers", "x-user-id"));
    ck_assert_ptr_null(jstr(j, "headers", "x-user-roles"));
    ck_assert_str_eq(jstr(j, "headers", "x-internal-token"), "itok");
    ck_assert_str_eq(jstr(j, "headers", "x-forwarded-for"),
                     "10.1.1.1, 127.0.0.1");
    ck_assert_str_eq(jstr(j, "headers", "x-forwarded-proto"), "http");
    ck_assert_str_eq(jstr(j, "headers", "x-request-id"), "req-abc-123");
    ck_assert_ptr_nonnull(jstr(j, "headers", "traceparent"));
    ck_assert_ptr_null(jstr(j, "headers", "expect"));
    ck_assert_msg(strstr(r.headers, "X-Request-Id: req-abc-123") != NULL,
                  "%s", r.headers);
    json_decref(j);
}
END_TEST

START_TEST(test_body_methods)
{
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       NULL};
    static const char *const methods[] = {"POST", "PUT", "PATCH"};
    struct resp r;
    json_t *j;
    size_t i;

    for (i = 0; i < 3; i++) {
        request(methods[i], "/pub/echo", hdrs, "{\"k\":\"v\"}", &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        j = body_json(&r);
        ck_assert_str_eq(jstr(j, "method", NULL), methods[i]);
        ck_assert_str_eq(jstr(j, "body", NULL), "{\"k\":\"v\"}");
        ck_assert_str_eq(jstr(j, "headers", "content-type"),
                         "application/json");
        ck_assert_str_eq(jstr(j, "headers", "content-length"), "9");
        json_decref(j);
    }
    request("DELETE", "/pub/thing/1", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "method", NULL), "DELETE");
    ck_assert_str_eq(jstr(j, "body", NULL), "");
    json_decref(j);
    /* A larger body: no Expect: 100-continue round trip upstream. */
    {
        char big[20000];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        request("POST", "/pub/big", NULL, big, &r);
        ck_assert_int_eq(r.status, 200);
        j = body_json(&r);
        ck_assert_uint_eq(strlen(jstr(j, "body", NULL)), sizeof(big) - 1);
        json_decref(j);
    }
}
END_TEST

START_TEST(test_strip_prefix_and_relay)
{
    struct resp r;
    json_t *j;

    request("GET", "/svc/v1/chat", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "path", NULL), "/v1/chat");
    json_decref(j);
    request("GET", "/svc", NULL, NULL, &r);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "path", NULL), "/");
    json_decref(j);

    request("GET", "/pub/created", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_msg(strstr(r.headers, "X-Upstream: yes") != NULL, "%s",
                  r.headers);
    ck_assert_msg(strstr(r.headers, "Set-Cookie: a=1") != NULL &&
                      strstr(r.headers, "Set-Cookie: b=2") != NULL,
                  "%s", r.headers);
    ck_assert_msg(strstr(r.headers, "Content-Type: application/json") !=
                      NULL,
                  "%s", r.headers);
}
END_TEST

START_TEST(test_auth)
{
    static const char *const user[] = {"user"};
    static const char *const admin[] = {"user", "admin"};
    char *ut = token(user, 1), *at = token(admin, 2);
    char uh[1024], ah[1024];
    const char *uhdrs[] = {uh, "X-User-Id: evil", NULL};
    const char *ahdrs[] = {ah, NULL};
    static const char *const bad[] = {"Authorization: Bearer a.b.c", NULL};
    static const char *const basic[] = {"Authorization: Basic eDp5", NULL};
    struct resp r;
    json_t *j;

    snprintf(uh, sizeof(uh), "Authorization: Bearer %s", ut);
    snprintf(ah, sizeof(ah), "authorization: bearer %s", at);

    request("GET", "/priv/me", NULL, NULL, &r);
    assert_error(&r, 401, "missing_token");
    ck_assert_msg(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL,
                  "%s", r.headers);
    request("GET", "/priv/me", basic, NULL, &r);
    assert_error(&r, 401, "missing_token");
    request("GET", "/priv/me", bad, NULL, &r);
    assert_error(&r, 401, "invalid_token");
    ck_assert_msg(strstr(r.headers, "error=\"invalid_token\"") != NULL, "%s",
                  r.headers);

    request("GET", "/priv/me", uhdrs, NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "headers", "x-user-id"), "user-1");
    ck_assert_str_eq(jstr(j, "headers", "x-user-email"), "u@example.com");
    ck_assert_str_eq(jstr(j, "headers", "x-user-roles"), "user");
    ck_assert_ptr_nonnull(jstr(j, "headers", "authorization"));
    json_decref(j);

    request("GET", "/admin-only/x", uhdrs, NULL, &r);
    assert_error(&r, 403, "forbidden");
    request("GET", "/admin-only/x", ahdrs, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    j = body_json(&r);
    ck_assert_str_eq(jstr(j, "headers", "x-user-roles"), "user,admin");
    json_decref(j);
    free(ut);
    free(at);
}
END_TEST

START_TEST(test_gateway_answers)
{
    struct resp r;
    char small[] = "0123456789";

    request("GET", "/nope", NULL, NULL, &r);
    assert_error(&r, 404, "not_found");
    request("GET", "/pubx", NULL, NULL, &r);
    assert_error(&r, 404, "not_found");
    request("GET", "/form", NULL, NULL, &r);
    assert_error(&r, 405, "method_not_allowed");
    ck_assert_msg(strstr(r.headers, "Allow: POST") != NULL, "%s", r.headers);
    request("GET", "/pub/../priv/x", NULL, NULL, &r);
    assert_error(&r, 400, "invalid_path");
    request("GET", "/pub/%2e%2e/priv", NULL, NULL, &r);
    assert_error(&r, 400, "invalid_path");
    request("POST", "/small", NULL, small, &r);
    assert_error(&r, 413, "payload_too_large");
    request("POST", "/small", NULL, "012", &r);
    ck_assert_int_eq(r.status, 200);
    request("GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
}
END_TEST

START_TEST(test_upstream_failures)
{
    struct resp r;

    request("GET", "/dead/x", NULL, NULL, &r);
    assert_error(&r, 502, "upstream_unavailable");
    ck_assert_msg(r.secs < 1.0, "took %.3f s", r.secs);
    request("GET", "/none/x", NULL, NULL, &r);
    assert_error(&r, 503, "upstream_unavailable");
    request("GET", "/slow/x", NULL, NULL, &r);
    assert_error(&r, 504, "upstream_timeout");
    ck_assert_msg(r.secs < 0.9, "took %.3f s", r.secs);
    /* First-byte timeout (route timeout 5 s, status due within 200 ms). */
    request("GET", "/slowfb/x", NULL, NULL, &r);
    assert_error(&r, 504, "upstream_timeout");
    ck_assert_msg(r.secs < 0.9, "took %.3f s", r.secs);
}
END_TEST

START_TEST(test_retry_next_target)
{
    struct resp r;
    int i, ok = 0, bad = 0;

    /* GET is retried on the live target whichever comes first. */
    for (i = 0; i < 4; i++) {
        request("GET", "/mixed/x", NULL, NULL, &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    }
    /* POST is not: round robin sends one of two to the dead target. */
    for (i = 0; i < 2; i++) {
        request("POST", "/mixed/x", NULL, "{}", &r);
        if (r.status == 200)
            ok++;
        else if (r.status == 502)
            bad++;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(bad, 1);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    fclose(f);
}

START_TEST(test_reload)
{
    char path[] = "/tmp/gw_reload_XXXXXX";
    int fd = mkstemp(path);
    char *json;
    struct resp r;

    ck_assert_int_ge(fd, 0);
    close(fd);
    gw.routes_file = path;
    write_file(path, "{\"upstreams\":{},\"routes\":[{\"bad\":1}]}");
    ck_assert_int_eq(gw_reload(&gw), -1);
    request("GET", "/pub/x", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);

    json = routes_json(",{\"name\":\"new\",\"prefix\":\"/new\","
                       "\"upstream\":\"live\",\"auth\":\"none\"}");
    write_file(path, json);
    free(json);
    ck_assert_int_eq(gw_reload(&gw), 0);
    request("GET", "/new/y", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    unlink(path);
}
END_TEST

START_TEST(test_metrics)
{
    struct resp r;
    size_t len;
    char *text;

    request("GET", "/pub/x", NULL, NULL, &r);
    request("GET", "/dead/x", NULL, NULL, &r);
    text = metrics_render(metrics_default(), &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "gateway_upstream_requests_total{upstream="
                               "\"live\",color=\"blue\",status=\"200\"} ") !=
                      NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "gateway_upstream_requests_total{upstream="
                               "\"dead\",color=\"blue\",status=\"502\"} ") !=
                      NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "gateway_upstream_duration_seconds_count{"
                               "upstream=\"live\",color=\"blue\"} ") != NULL,
                  "%s", text);
    free(text);
}
END_TEST

START_TEST(test_dot_segment_fn)
{
    ck_assert_int_eq(gw_path_has_dot_segment("/a/b"), 0);
    ck_assert_int_eq(gw_path_has_dot_segment("/.well-known/jwks.json"), 0);
    ck_assert_int_eq(gw_path_has_dot_segment("/a/..b/c."), 0);
    ck_assert_int_eq(gw_path_has_dot_segment("/"), 0);
    ck_assert_int_eq(gw_path_has_dot_segment("/a/../b"), 1);
    ck_assert_int_eq(gw_path_has_dot_segment("/a/./b"), 1);
    ck_assert_int_eq(gw_path_has_dot_segment("/a/.."), 1);
    ck_assert_int_eq(gw_path_has_dot_segment("/."), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway");
    TCase *tc = tcase_create("in_process");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_roundtrip);
    tcase_add_test(tc, test_body_methods);
    tcase_add_test(tc, test_strip_prefix_and_relay);
    tcase_add_test(tc, test_auth);
    tcase_add_test(tc, test_gateway_answers);
    tcase_add_test(tc, test_upstream_failures);
    tcase_add_test(tc, test_retry_next_target);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_dot_segment_fn);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
