/*
 * httpd tests: an in-process server on a free port, driven by libcurl.
 * httpd.c is included to reach httpd_drain().
 */
#include "httpd/httpd.c"

#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct resp {
    long status;
    CURLcode rc;
    char body[65536];
    size_t blen;
    char headers[8192];
    size_t hlen;
};

static struct httpd_server *srv;
static int ready_fail;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    size_t room = sizeof(r->body) - 1 - r->blen;

    if (len > room)
        len = room;
    memcpy(r->body + r->blen, p, len);
    r->blen += len;
    r->body[r->blen] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    size_t room = sizeof(r->headers) - 1 - r->hlen;

    if (len > room)
        len = room;
    memcpy(r->headers + r->hlen, p, len);
    r->hlen += len;
    r->headers[r->hlen] = '\0';
    return sz * n;
}

/* Value of response header `name` into buf ("" when absent). */
static const char *resp_header(const struct resp *r, const char *name,
                               char *buf, size_t len)
{
    const char *p = r->headers;
    size_t nlen = strlen(name);

    buf[0] = '\0';
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            size_t i = 0;
            while (*v == ' ')
                v++;
            while (v[i] != '\0' && v[i] != '\r' && v[i] != '\n' &&
                   i + 1 < len) {
                buf[i] = v[i];
                i++;
            }
            buf[i] = '\0';
            return buf;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return buf;
}

struct upload {
    const char *data;
    size_t len;
    size_t off;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t len = sz * n;

    if (len > 1000)
        len = 1000; /* several chunks */
    if (len > u->len - u->off)
        len = u->len - u->off;
    memcpy(buf, u->data + u->off, len);
    u->off += len;
    return len;
}

/*
 * One request. hdrs is NULL-terminated; body NULL for none; chunked sends
 * the body with Transfer-Encoding: chunked.
 */
static void http(const char *method, const char *path,
                 const char *const *hdrs, const char *body, int chunked,
                 struct resp *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *sl = NULL;
    char url[512];
    struct upload up = {body, body != NULL ? strlen(body) : 0, 0};
    size_t i;

    ck_assert_ptr_nonnull(c);
    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", httpd_port(srv),
             path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    for (i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
        sl = curl_slist_append(sl, hdrs[i]);
    if (body != NULL && chunked) {
        sl = curl_slist_append(sl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    out->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
}

static json_t *resp_json(const struct resp *r)
{
    json_t *v = json_loadb(r->body, r->blen, 0, NULL);

    ck_assert_msg(v != NULL, "not JSON: %s", r->body);
    return v;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);

    if (path2 != NULL)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static void h_tag(struct httpd_req *r, void *arg)
{
    json_t *o = json_pack("{s:s}", "tag", (const char *)arg);
    size_t i;

    for (i = 0; i < r->nparams; i++)
        json_object_set_new(o, r->param_names[i],
                            json_string(r->param_values[i]));
    httpd_reply_json(r, 200, o);
}

static void h_echo(struct httpd_req *r, void *arg)
{
    json_t *in;

    (void)arg;
    if (httpd_json_body(r, &in) != 0)
        return;
    httpd_reply_json(r, 200, in);
}

static void h_raw(struct httpd_req *r, void *arg)
{
    char buf[32];

    (void)arg;
    snprintf(buf, sizeof(buf), "%zu", r->body_len);
    ck_assert_uint_eq(strlen(r->body), r->body_len);
    httpd_reply_raw(r, 200, "text/plain", buf, strlen(buf));
}

static void h_forget(struct httpd_req *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void h_ident(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_add_header(r, "X-Extra", "yes");
    httpd_reply_json(r, 200,
                     json_pack("{s:s,s:s,s:s,s:s,s:s?}", "request_id",
                               r->request_id, "trace_id", r->trace_id,
                               "span_id", r->span_id, "traceparent",
                               r->traceparent, "q", httpd_query(r, "q")));
}

static void h_slow(struct httpd_req *r, void *arg)
{
    struct timespec ts = {0, 800 * 1000 * 1000};

    (void)arg;
    nanosleep(&ts, NULL);
    httpd_reply_json(r, 200, json_pack("{s:b}", "slow", 1));
}

static int ready_fn(void *arg, char *why, size_t len)
{
    (void)arg;
    if (!ready_fail)
        return 0;
    snprintf(why, len, "postgres unreachable");
    return -1;
}

static void setup_threads(int threads)
{
    struct httpd_opts o;

    log_init("test", "error");
    httpd_opts_init(&o, "test");
    o.port = 0;
    o.threads = threads;
    o.max_body = 4096;
    o.ready = ready_fn;
    o.drain_s = 5;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(httpd_route(srv, "GET", "/hello", h_tag, "hello", 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/users/me", h_tag, "me", 0), 0);
    ck_assert_int_eq(
        httpd_route(srv, "GET", "/users/{id}", h_tag, "user", 0), 0);
    ck_assert_int_eq(httpd_route(srv, "DELETE", "/users/{id}", h_tag,
                                 "user-del", 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/users/{id}/posts/{post}",
                                 h_tag, "post", 0), 0);
    ck_assert_int_eq(httpd_route(srv, "*", "/files/*", h_tag, "files", 0), 0);
    ck_assert_int_eq(
        httpd_route(srv, "GET", "/files/special/*", h_tag, "special", 0), 0);
    ck_assert_int_eq(httpd_route(srv, "POST", "/echo", h_echo, NULL, 64), 0);
    ck_assert_int_eq(httpd_route(srv, "POST", "/raw", h_raw, NULL, 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/forget", h_forget, NULL, 0),
                     0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/ident", h_ident, NULL, 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/slow", h_slow, NULL, 0), 0);
    ck_assert_int_eq(httpd_route(srv, "GET", "/bad/{", h_tag, "x", 0), -1);
    ck_assert_int_eq(httpd_route(srv, "GET", "/a/*/b", h_tag, "x", 0), -1);
    ck_assert_int_eq(httpd_route(srv, "GET", "nope", h_tag, "x", 0), -1);
    ck_assert_int_eq(httpd_start(srv), 0);
    ck_assert_int_gt(httpd_port(srv), 0);
}

static void setup(void)
{
    setup_threads(0);
}

static void setup_pool(void)
{
    setup_threads(2);
}

static void teardown(void)
{
    httpd_free(srv);
    srv = NULL;
}

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
    tcase_add_test(tc, test_builtins);
    tcase_add_test(tc, test_builtin_override_and_catchall);
    tcase_add_test(tc, test_forgotten_reply);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_run_signals);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tp, setup_pool, teardown);
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, test_thread_pool);
    tcase_add_test(tp, test_body_limits);
    tcase_add_test(tp, test_drain);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(httpd_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_ALL);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
