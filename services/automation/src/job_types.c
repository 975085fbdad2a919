/*
 * job_types — the registry of job types: how each checks its arguments at
 * enqueue (so a bad job is refused with 422 instead of dying later) and
 * how it runs on a worker thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "auto.h"
#include "egress.h"
#include "workflows.h"
#include "files.h"

#define SLEEP_MAX_MS 3600000
#define HTTP_TIMEOUT_DEFAULT_MS 10000
#define HTTP_TIMEOUT_MAX_MS 300000
#define HTTP_BODY_KEEP 65536      /* response bytes kept in the result */

void auto_job_set_result(struct auto_job_ctx *ctx, json_t *result)
{
    json_decref(ctx->result);
    ctx->result = result;
}

void auto_job_set_error(struct auto_job_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
}

static int bad(char *field, size_t fl, char *why, size_t wl, const char *f,
               const char *w)
{
    snprintf(field, fl, "%s", f);
    snprintf(why, wl, "%s", w);
    return -1;
}

/* ---- noop --------------------------------------------------------------- */

static int noop_check(const json_t *args, char *field, size_t fl, char *why,
                      size_t wl)
{
    (void)args, (void)field, (void)fl, (void)why, (void)wl;
    return 0;
}

static enum auto_outcome noop_run(struct auto_job_ctx *ctx,
                                  const json_t *args)
{
    (void)args;
    auto_job_set_result(ctx, json_object());
    return AUTO_JOB_OK;
}

/* ---- sleep -------------------------------------------------------------- */

static int sleep_check(const json_t *args, char *field, size_t fl, char *why,
                       size_t wl)
{
    json_t *ms = json_object_get(args, "ms");

    if (!json_is_integer(ms) || json_integer_value(ms) < 0 ||
        json_integer_value(ms) > SLEEP_MAX_MS)
        return bad(field, fl, why, wl, "args.ms",
                   "must be an integer from 0 to 3600000");
    return 0;
}

static double mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sleeps in short steps so cancel and shutdown are seen within ~20 ms;
 * reports progress about once a second. */
static enum auto_outcome sleep_run(struct auto_job_ctx *ctx,
                                   const json_t *args)
{
    long long ms = json_integer_value(json_object_get(args, "ms"));
    double start = mono_ms(), last = start, now;
    int stop;

    while ((now = mono_ms()) - start < (double)ms) {
        double left = (double)ms - (now - start);
        struct timespec ts = {0, (long)((left < 20 ? left : 20) * 1e6)};

        if ((stop = auto_job_should_stop(ctx)) != 0)
            return (enum auto_outcome)stop;
        nanosleep(&ts, NULL);
        if (now - last >= 1000) {
            last = now;
            if (auto_job_progress(ctx, (int)((now - start) * 100 / ms),
                                  "sleeping") != 0 &&
                (stop = auto_job_should_stop(ctx)) != 0)
                return (enum auto_outcome)stop;
        }
    }
    auto_job_set_result(ctx, json_pack("{sI}", "slept_ms", (json_int_t)ms));
    return AUTO_JOB_OK;
}

/* ---- fail --------------------------------------------------------------- */

static int fail_check(const json_t *args, char *field, size_t fl, char *why,
                      size_t wl)
{
    json_t *m = json_object_get(args, "message");

    if (m && !json_is_string(m))
        return bad(field, fl, why, wl, "args.message", "must be a string");
    return 0;
}

static enum auto_outcome fail_run(struct auto_job_ctx *ctx,
                                  const json_t *args)
{
    const char *m = json_string_value(json_object_get(args, "message"));

    auto_job_set_error(ctx, "%s", m && *m ? m : "failed on purpose");
    return AUTO_JOB_FAIL;
}

/* ---- http --------------------------------------------------------------- */

static int status_ok(const json_t *expect, long status)
{
    size_t i;
    json_t *v;

    if (!expect)
        return status >= 200 && status < 300;
    if (json_is_integer(expect))
        return json_integer_value(expect) == status;
    json_array_foreach(expect, i, v)
        if (json_integer_value(v) == status)
            return 1;
    return 0;
}

static int http_check(const json_t *args, char *field, size_t fl, char *why,
                      size_t wl)
{
    const char *url = json_string_value(json_object_get(args, "url"));
    json_t *m = json_object_get(args, "method");
    json_t *h = json_object_get(args, "headers");
    json_t *t = json_object_get(args, "timeout_ms");
    json_t *e = json_object_get(args, "expect_status");
    const char *k;
    json_t *v;
    size_t i;

    if (!url || (strncmp(url, "http://", 7) != 0 &&
                 strncmp(url, "https://", 8) != 0) || strlen(url) > 2048)
        return bad(field, fl, why, wl, "args.url",
                   "must be an http:// or https:// URL");
    if (m && (!json_is_string(m) || json_string_length(m) == 0 ||
              json_string_length(m) > 16 ||
              strspn(json_string_value(m), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
                  json_string_length(m)))
        return bad(field, fl, why, wl, "args.method",
                   "must be an upper-case HTTP method");
    if (h && !json_is_object(h))
        return bad(field, fl, why, wl, "args.headers",
                   "must be an object of strings");
    json_object_foreach(h, k, v)
        if (!json_is_string(v) || strpbrk(k, ":\r\n") ||
            strpbrk(json_string_value(v), "\r\n"))
            return bad(field, fl, why, wl, "args.headers",
                       "must be an object of strings");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
              json_integer_value(t) > HTTP_TIMEOUT_MAX_MS))
        return bad(field, fl, why, wl, "args.timeout_ms",
                   "must be an integer from 1 to 300000");
    if (e && !json_is_integer(e) && !json_is_array(e))
        return bad(field, fl, why, wl, "args.expect_status",
                   "must be a status code or an array of them");
    json_array_foreach(e, i, v)
        if (!json_is_integer(v))
            return bad(field, fl, why, wl, "args.expect_status",
                       "must be a status code or an array of them");
    return 0;
}

struct http_buf {
    char *data;
    size_t len;
    size_t total;
};

static size_t http_write(char *p, size_t sz, size_t n, void *arg)
{
    struct http_buf *b = arg;
    size_t len = sz * n;
    size_t keep = len;

    b->total += len;
    if (b->len + keep > HTTP_BODY_KEEP)
        keep = HTTP_BODY_KEEP - b->len;
    if (keep) {
        memcpy(b->data + b->len, p, keep);
        b->len += keep;
    }
    return len;
}

/* Aborts the transfer as soon as the job should stop. */
static int http_progress(void *arg, curl_off_t dt, curl_off_t dn,
                         curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return auto_job_should_stop(arg) != 0;
}

static enum auto_outcome http_run(struct auto_job_ctx *ctx,
                                  const json_t *args)
{
    const char *url = json_string_value(json_object_get(args, "url"));
    const char *method = json_string_value(json_object_get(args, "method"));
    json_t *headers = json_object_get(args, "headers");
    json_t *body = json_object_get(args, "body");
    json_t *t = json_object_get(args, "timeout_ms");
    struct curl_slist *hl = NULL;
    struct http_buf buf = {0};
    struct auto_egress eg = {0};
    char *payload = NULL, line[1024], why[320];
    enum auto_outcome out = AUTO_JOB_FAIL;
    const char *k;
    json_t *v;
    long status = 0;
    CURLcode cc;
    CURL *c = curl_easy_init();

    buf.data = malloc(HTTP_BODY_KEEP);
    if (!c || !buf.data) {
        auto_job_set_error(ctx, "out of memory");
        goto cleanup;
    }
    if (auto_egress_apply(&eg, c, url, why, sizeof why) != 0) {
        auto_job_set_error(ctx, "egress refused: %s", why);
        goto cleanup;
    }
    json_object_foreach(headers, k, v) {
        snprintf(line, sizeof line, "%s: %s", k, json_string_value(v));
        hl = curl_slist_append(hl, line);
    }
    if (body && !json_is_null(body)) {
        if (json_is_string(body)) {
            payload = strdup(json_string_value(body));
        } else {
            payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!json_object_get(headers, "Content-Type"))
                hl = curl_slist_append(hl, "Content-Type: application/json");
        }
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    }
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     t ? (long)json_integer_value(t)
                       : (long)HTTP_TIMEOUT_DEFAULT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "basalt-automation/1");
    cc = curl_easy_perform(c);
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        int stop = auto_job_should_stop(ctx);

        out = stop ? (enum auto_outcome)stop : AUTO_JOB_ABORTED;
        goto cleanup;
    }
    if (cc != CURLE_OK && eg.refused[0]) {
        auto_job_set_error(ctx, "egress refused: %s", eg.refused);
        goto cleanup;
    }
    if (cc != CURLE_OK) {
        auto_job_set_error(ctx, "request failed: %s", curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    json_t *res = json_pack("{sIsI}", "status", (json_int_t)status,
                            "body_bytes", (json_int_t)buf.total);
    json_t *text = json_stringn(buf.data, buf.len);  /* NULL if not UTF-8 */

    if (res && text)
        json_object_set_new(res, "body", text);
    else
        json_decref(text);
    if (!status_ok(json_object_get(args, "expect_status"), status)) {
        auto_job_set_error(ctx, "unexpected status %ld", status);
        json_decref(res);
        goto cleanup;
    }
    auto_job_set_result(ctx, res);
    out = AUTO_JOB_OK;
cleanup:
    if (c)
        curl_easy_cleanup(c);
    auto_egress_release(&eg);
    curl_slist_free_all(hl);
    free(payload);
    free(buf.data);
    return out;
}

static const struct auto_job_type types[] = {
    {"noop", noop_check, noop_run},
    {"sleep", sleep_check, sleep_run},
    {"fail", fail_check, fail_run},
    {"http", http_check, http_run},
    {"emit_event", auto_emit_event_check, auto_emit_event_run},
    {"import_file", auto_import_check, auto_import_run},
};

const struct auto_job_type *auto_job_type_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}
