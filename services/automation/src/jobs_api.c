/*
 * jobs_api — the /automation/jobs HTTP API. Handlers run on httpd's
 * per-connection threads (opts.threads 0), so blocking on PostgreSQL is
 * fine. Callers see their own jobs; admins see every job. Another owner's
 * job answers 404, never 403, so ids do not leak.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auto.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 100
#define MAX_ATTEMPTS_MAX 100

static const char *const states[] = {"available", "scheduled", "running",
                                     "retryable", "succeeded", "dead",
                                     "cancelled", NULL};

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int auto_rfc3339_valid(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                31};
    int mon, day;

    if (!s || strlen(s) < 20 || !digits(s, 4) || s[4] != '-' ||
        !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
        !digits(s + 17, 2))
        return 0;
    mon = num(s + 5, 2);
    day = num(s + 8, 2);
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
        num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
        return 0;
    s += 19;
    if (*s == '.') {
        size_t n = strspn(++s, "0123456789");

        if (n == 0 || n > 9)
            return 0;
        s += n;
    }
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
        return 1;
    return (*s == '+' || *s == '-') && digits(s + 1, 2) && s[3] == ':' &&
           digits(s + 4, 2) && s[6] == '\0' && num(s + 1, 2) <= 23 &&
           num(s + 4, 2) <= 59;
}

/* 422 with the offending field named in the error object. */
static void invalid(struct httpd_req *r, const char *field, const char *why)
{
    char msg[512];

    snprintf(msg, sizeof msg, "%s %s", field, why);
    httpd_reply_json(r, 422,
                     json_pack("{s{ssssssss}}", "error", "code",
                               "validation_failed", "message", msg,
                               "field", field, "request_id", r->request_id));
}

/* Answers a failed queue call. */
static void fail(struct httpd_req *r, enum auto_res rc)
{
    switch (rc) {
    case AUTO_ENOTFOUND:
        httpd_error(r, 404, "not_found", "no such job");
        break;
    case AUTO_EUNAVAIL:
        httpd_error(r, 503, "unavailable", "the job store is unavailable");
        break;
    case AUTO_EINVAL:
        invalid(r, "run_at", "is not a valid time");
        break;
    default:
        httpd_error(r, 500, "internal_error", "job store error");
        break;
    }
}

static void reply_job(struct httpd_req *r, int status, json_t *job)
{
    httpd_reply_json(r, status, json_pack("{so}", "job", job));
}

/* Positive id from the path; 0 when malformed (answered 404 then). */
static long long path_id(struct httpd_req *r)
{
    const char *s = httpd_param(r, "id");
    char *end;
    long long id;

    errno = 0;
    id = s && isdigit((unsigned char)*s) ? strtoll(s, &end, 10) : 0;
    if (id <= 0 || errno || *end != '\0') {
        httpd_error(r, 404, "not_found", "no such job");
        return 0;
    }
    return id;
}

/* Optional integer member in [lo, hi]; -1 after answering 422. */
static int opt_int(struct httpd_req *r, json_t *body, const char *name,
                   int lo, int hi, int *out)
{
    json_t *v = json_object_get(body, name);
    char why[64];

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi) {
        snprintf(why, sizeof why, "must be an integer from %d to %d", lo, hi);
        invalid(r, name, why);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static void h_enqueue(struct httpd_req *r, void *arg)
{
    struct auto_api *api = arg;
    struct auto_identity who;
    const struct auto_job_type *t;
    struct auto_enqueue in = {.priority = AUTO_PRIORITY_DEFAULT};
    json_t *body = NULL, *args, *job = NULL, *v;
    char field[64], why[192];
    int created = 0;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        httpd_json_body(r, &body) != 0)
        return;
    in.max_attempts = api->default_max_attempts;
    in.owner_id = who.user_id;
    in.type = json_string_value(json_object_get(body, "type"));
    t = auto_job_type_find(in.type);
    if (!t) {
        invalid(r, "type", in.type ? "is not a known job type"
                                   : "is required");
        goto cleanup;
    }
    args = json_object_get(body, "args");
    if (args && !json_is_null(args) && !json_is_object(args)) {
        invalid(r, "args", "must be an object");
        goto cleanup;
    }
    if (!args || json_is_null(args)) {
        args = json_object();
        json_object_set_new(body, "args", args);
    }
    if (t->check(args, field, sizeof field, why, sizeof why) != 0) {
        invalid(r, field, why);
        goto cleanup;
    }
    in.args = args;
    if (opt_int(r, body, "priority", AUTO_PRIORITY_MIN, AUTO_PRIORITY_MAX,
                &in.priority) ||
        opt_int(r, body, "max_attempts", 1, MAX_ATTEMPTS_MAX,
                &in.max_attempts))
        goto cleanup;
    v = json_object_get(body, "run_at");
    if (v && !json_is_null(v)) {
        in.run_at = json_string_value(v);
        if (!auto_rfc3339_valid(in.run_at)) {
            invalid(r, "run_at", "must be an RFC 3339 date-time");
            goto cleanup;
        }
    }
    v = json_object_get(body, "idempotency_key");
    in.idempotency_key = v && !json_is_null(v) ? json_string_value(v)
                                               : httpd_header(r,
                                                     "Idempotency-Key");
    if ((v && !json_is_null(v) && !json_is_string(v)) ||
        (in.idempotency_key && (!*in.idempotency_key ||
                                strlen(in.idempotency_key) > AUTO_KEY_MAX))) {
        invalid(r, "idempotency_key", "must be a string of 1 to 255 bytes");
        goto cleanup;
    }
    rc = auto_queue_enqueue(api->queue, &in, &job, &created);
    if (rc != AUTO_OK) {
        fail(r, rc);
        goto cleanup;
    }
    reply_job(r, created ? 202 : 200, job);
cleanup:
    json_decref(body);
}

static void h_list(struct httpd_req *r, void *arg)
{
    struct auto_api *api = arg;
    struct auto_identity who;
    struct auto_list_filter f = {.limit = LIST_LIMIT_DEFAULT};
    const char *s;
    json_t *jobs = NULL, *next = json_null();
    char *end;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0)
        return;
    f.owner_id = who.admin ? NULL : who.user_id;
    if ((s = httpd_query(r, "state")) && *s) {
        size_t i = 0;

        while (states[i] && strcmp(states[i], s) != 0)
            i++;
        if (!states[i]) {
            invalid(r, "state", "is not a job state");
            return;
        }
        f.state = s;
    }
    if ((s = httpd_query(r, "type")) && *s) {
        if (strlen(s) > AUTO_TYPE_MAX) {
            invalid(r, "type", "is too long");
            return;
        }
        f.type = s;
    }
    if ((s = httpd_query(r, "limit")) && *s) {
        errno = 0;
        long l = strtol(s, &end, 10);

        if (errno || *end || l < 1 || l > LIST_LIMIT_MAX) {
            invalid(r, "limit", "must be an integer from 1 to 100");
            return;
        }
        f.limit = (int)l;
    }
    if ((s = httpd_query(r, "cursor")) && *s) {
        errno = 0;
        f.before_id = strtoll(s, &end, 10);
        if (errno || *end || f.before_id < 1) {
            invalid(r, "cursor", "is not a cursor from this API");
            return;
        }
    }
    rc = auto_queue_list(api->queue, &f, &jobs);
    if (rc != AUTO_OK) {
        fail(r, rc);
        return;
    }
    if (json_array_size(jobs) == (size_t)f.limit) {
        json_t *last = json_array_get(jobs, json_array_size(jobs) - 1);
        char buf[32];

        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(last, "id")));
        next = json_string(buf);
    }
    httpd_reply_json(r, 200, json_pack("{soso}", "jobs", jobs,
                                       "next_cursor", next));
}

static void h_get(struct httpd_req *r, void *arg)
{
    struct auto_api *api = arg;
    struct auto_identity who;
    json_t *job = NULL;
    long long id;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        (id = path_id(r)) == 0)
        return;
    rc = auto_queue_get(api->queue, id, who.admin ? NULL : who.user_id,
                        &job);
    if (rc != AUTO_OK) {
        fail(r, rc);
        return;
    }
    reply_job(r, 200, job);
}

static void conflict(struct httpd_req *r, json_t *job, const char *what)
{
    const char *state = json_string_value(json_object_get(job, "state"));

    httpd_error(r, 409, "conflict", "a %s job cannot be %s",
                state ? state : "finished", what);
    json_decref(job);
}

static void h_cancel(struct httpd_req *r, void *arg)
{
    struct auto_api *api = arg;
    struct auto_identity who;
    json_t *job = NULL;
    long long id;
    int running = 0;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        (id = path_id(r)) == 0)
        return;
    rc = auto_queue_cancel(api->queue, id, who.admin ? NULL : who.user_id,
                           &job, &running);
    if (rc == AUTO_ECONFLICT) {
        conflict(r, job, "cancelled");
        return;
    }
    if (rc != AUTO_OK) {
        fail(r, rc);
        return;
    }
    /* running: the handler stops asynchronously */
    reply_job(r, running ? 202 : 200, job);
}

static void h_retry(struct httpd_req *r, void *arg)
{
    struct auto_api *api = arg;
    struct auto_identity who;
    json_t *job = NULL;
    long long id;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        (id = path_id(r)) == 0)
        return;
    rc = auto_queue_retry(api->queue, id, who.admin ? NULL : who.user_id,
                          &job);
    if (rc == AUTO_ECONFLICT) {
        conflict(r, job, "retried");
        return;
    }
    if (rc != AUTO_OK) {
        fail(r, rc);
        return;
    }
    reply_job(r, 200, job);
}

int auto_api_routes(struct httpd_server *s, struct auto_api *api)
{
    if (httpd_route(s, "POST", "/automation/jobs", h_enqueue, api, 0) ||
        httpd_route(s, "GET", "/automation/jobs", h_list, api, 0) ||
        httpd_route(s, "GET", "/automation/jobs/{id}", h_get, api, 0) ||
        httpd_route(s, "POST", "/automation/jobs/{id}/cancel", h_cancel, api,
                    0) ||
        httpd_route(s, "POST", "/automation/jobs/{id}/retry", h_retry, api,
                    0))
        return -1;
    return 0;
}
