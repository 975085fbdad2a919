/*
 * The fixture test_httpd.c and test_httpd_lifecycle.c share: a server on
 * a free port with a fixed route table (setup / setup_pool / teardown),
 * a libcurl client (http(), resp_header(), resp_json()) and
 * httpd_test_run(). Include it once per test program.
 */
#ifndef HTTPD_TEST_FIXTURE_H
#define HTTPD_TEST_FIXTURE_H

#include <check.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "httpd/httpd.h"
#include "log/log.h"

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

static inline size_t on_body(char *p, size_t sz, size_t n, void *ud)
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

static inline size_t on_header(char *p, size_t sz, size_t n, void *ud)
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
static inline const char *resp_header(const struct resp *r, const char *name,
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

static inline size_t on_read(char *buf, size_t sz, size_t n, void *ud)
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
static inline void http(const char *method, const char *path,
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

static inline json_t *resp_json(const struct resp *r)
{
    json_t *v = json_loadb(r->body, r->blen, 0, NULL);

    ck_assert_msg(v != NULL, "not JSON: %s", r->body);
    return v;
}

static inline const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);

    if (path2 != NULL)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static inline void h_tag(struct httpd_req *r, void *arg)
{
    json_t *o = json_pack("{s:s}", "tag", (const char *)arg);
    size_t i;

    for (i = 0; i < r->nparams; i++)
        json_object_set_new(o, r->param_names[i],
                            json_string(r->param_values[i]));
    httpd_reply_json(r, 200, o);
}

static inline void h_echo(struct httpd_req *r, void *arg)
{
    json_t *in;

    (void)arg;
    if (httpd_json_body(r, &in) != 0)
        return;
    httpd_reply_json(r, 200, in);
}

static inline void h_raw(struct httpd_req *r, void *arg)
{
    char buf[32];

    (void)arg;
    snprintf(buf, sizeof(buf), "%zu", r->body_len);
    ck_assert_uint_eq(strlen(r->body), r->body_len);
    httpd_reply_raw(r, 200, "text/plain", buf, strlen(buf));
}

static inline void h_forget(struct httpd_req *r, void *arg)
{
    (void)r;
    (void)arg;
}

static inline void h_ident(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_add_header(r, "X-Extra", "yes");
    httpd_reply_json(r, 200,
                     json_pack("{s:s,s:s,s:s,s:s,s:s?}", "request_id",
                               r->request_id, "trace_id", r->trace_id,
                               "span_id", r->span_id, "traceparent",
                               r->traceparent, "q", httpd_query(r, "q")));
}

static inline void h_slow(struct httpd_req *r, void *arg)
{
    struct timespec ts = {0, 800 * 1000 * 1000};

    (void)arg;
    nanosleep(&ts, NULL);
    httpd_reply_json(r, 200, json_pack("{s:b}", "slow", 1));
}

static inline int ready_fn(void *arg, char *why, size_t len)
{
    (void)arg;
    if (!ready_fail)
        return 0;
    snprintf(why, len, "postgres unreachable");
    return -1;
}

static inline void setup_threads(int threads)
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

static inline void setup(void)
{
    setup_threads(0);
}

static inline void setup_pool(void)
{
    setup_threads(2);
}

static inline void teardown(void)
{
    httpd_free(srv);
    srv = NULL;
}

/* Runs one suite with libcurl set up; the process exit status. */
static inline int httpd_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    curl_global_init(CURL_GLOBAL_ALL);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
