/*
 * The blocking proxy engine: one libcurl easy handle per request thread,
 * kept across requests so its connections to upstreams stay alive. Only
 * the DNS cache is shared between threads; libcurl does not support
 * sharing its connection cache between concurrent threads.
 */
#include "proxy.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"
#include "metrics/metrics.h"

#define GW_MAX_RESPONSE ((size_t)64 << 20)
#define GW_COLOR "blue"

struct gw_proxy {
    CURLSH *share;           /* DNS cache, guarded by dns_mu */
    pthread_mutex_t dns_mu;
    pthread_mutex_t share_mu; /* any other data libcurl asks to lock */
    pthread_key_t key;       /* this thread's CURL *, freed at thread exit */
    long connect_timeout_ms;
    char *internal_token;
    struct metrics_family *requests;
    struct metrics_family *duration;
};

/* Name/value pairs gathered from libmicrohttpd or from upstream headers. */
struct hdr_vec {
    struct gw_header *v;
    char **owned; /* copies we must free (upstream headers), or NULL */
    size_t n, cap;
};

/* One upstream answer, filled by the libcurl callbacks. */
struct upstream_resp {
    char *body;
    size_t len, cap;
    int too_large;
    struct hdr_vec hdrs; /* names/values point into owned copies */
};

static void *xrealloc(void *p, size_t size)
{
    void *np = realloc(p, size);

    if (np == NULL) {
        fputs("gateway: out of memory\n", stderr);
        abort();
    }
    return np;
}

static void hdr_push(struct hdr_vec *h, const char *name, const char *value,
                     char *owned)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
        h->owned = xrealloc(h->owned, h->cap * sizeof(*h->owned));
    }
    h->v[h->n].name = name;
    h->v[h->n].value = value;
    h->owned[h->n] = owned;
    h->n++;
}

static void hdr_clear(struct hdr_vec *h)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        free(h->owned[i]);
    h->n = 0;
}

static void hdr_free(struct hdr_vec *h)
{
    hdr_clear(h);
    free(h->v);
    free(h->owned);
    memset(h, 0, sizeof(*h));
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    (void)kind;
    if (key != NULL)
        hdr_push(cls, key, value, NULL);
    return MHD_YES;
}

static void lock_cb(CURL *h, curl_lock_data data, curl_lock_access access,
                    void *arg)
{
    struct gw_proxy *p = arg;

    (void)h;
    (void)access;
    pthread_mutex_lock(data == CURL_LOCK_DATA_DNS ? &p->dns_mu
                                                  : &p->share_mu);
}

static void unlock_cb(CURL *h, curl_lock_data data, void *arg)
{
    struct gw_proxy *p = arg;

    (void)h;
    pthread_mutex_unlock(data == CURL_LOCK_DATA_DNS ? &p->dns_mu
                                                    : &p->share_mu);
}

static void easy_destroy(void *h)
{
    curl_easy_cleanup(h);
}

struct gw_proxy *gw_proxy_new(const struct gw_proxy_opts *o)
{
    static const char *const req_labels[] = {"upstream", "color", "status"};
    static const char *const dur_labels[] = {"upstream", "color"};
    struct gw_proxy *p;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->dns_mu, NULL);
    pthread_mutex_init(&p->share_mu, NULL);
    p->connect_timeout_ms = o->connect_timeout_ms;
    if (o->internal_token != NULL && o->internal_token[0] != '\0') {
        p->internal_token = strdup(o->internal_token);
        if (p->internal_token == NULL)
            goto fail;
    }
    if (pthread_key_create(&p->key, easy_destroy) != 0)
        goto fail;
    p->share = curl_share_init();
    if (p->share == NULL ||
        curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, lock_cb) ||
        curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, unlock_cb) ||
        curl_share_setopt(p->share, CURLSHOPT_USERDATA, p) ||
        curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS))
        goto fail_key;
    p->requests = metrics_family(
        metrics_default(), METRICS_COUNTER, "gateway_upstream_requests_total",
        "Requests forwarded to upstreams, by answered status.", 3, req_labels,
        NULL, 0);
    p->duration = metrics_family(
        metrics_default(), METRICS_HISTOGRAM,
        "gateway_upstream_duration_seconds",
        "Time from forwarding a request to its upstream answer.", 2,
        dur_labels, NULL, 0);
    return p;

fail_key:
    if (p->share != NULL)
        curl_share_cleanup(p->share);
    pthread_key_delete(p->key);
fail:
    free(p->internal_token);
    pthread_mutex_destroy(&p->dns_mu);
    pthread_mutex_destroy(&p->share_mu);
    free(p);
    return NULL;
}

void gw_proxy_free(struct gw_proxy *p)
{
    CURL *h;

    if (p == NULL)
        return;
    /* The calling thread's handle, if it proxied anything itself. */
    h = pthread_getspecific(p->key);
    if (h != NULL) {
        pthread_setspecific(p->key, NULL);
        curl_easy_cleanup(h);
    }
    pthread_key_delete(p->key);
    curl_share_cleanup(p->share);
    pthread_mutex_destroy(&p->dns_mu);
    pthread_mutex_destroy(&p->share_mu);
    free(p->internal_token);
    free(p);
}

static CURL *thread_handle(struct gw_proxy *p)
{
    CURL *h = pthread_getspecific(p->key);

    if (h != NULL) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (h != NULL && pthread_setspecific(p->key, h) != 0) {
        curl_easy_cleanup(h);
        h = NULL;
    }
    return h;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct upstream_resp *u = arg;
    size_t len = size * n;

    if (len > GW_MAX_RESPONSE - u->len) {
        u->too_large = 1;
        return 0;
    }
    if (u->len + len + 1 > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;

        while (u->len + len + 1 > cap)
            cap *= 2;
        u->body = xrealloc(u->body, cap);
        u->cap = cap;
    }
    memcpy(u->body + u->len, data, len);
    u->len += len;
    u->body[u->len] = '\0';
    return len;
}

/* One header line; a status line starts a new response (after a 1xx). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct upstream_resp *u = arg;
    size_t len = size * n, nl;
    char *line, *colon, *value;

    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        hdr_clear(&u->hdrs);
        return len;
    }
    nl = len;
    while (nl > 0 && (data[nl - 1] == '\r' || data[nl - 1] == '\n'))
        nl--;
    if (nl == 0 || data[0] == ' ' || data[0] == '\t')
        return len; /* end of headers, or obsolete line folding */
    line = xrealloc(NULL, nl + 1);
    memcpy(line, data, nl);
    line[nl] = '\0';
    colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        free(line);
        return len;
    }
    *colon = '\0';
    value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    hdr_push(&u->hdrs, line, value, line);
    return len;
}

/* Sets up `h` for one attempt. Returns 0 or a libcurl error. */
static CURLcode setup(struct gw_proxy *p, CURL *h, struct httpd_req *r,
                      const char *url, struct curl_slist *hdrs,
                      long timeout_ms, struct upstream_resp *u,
                      char *errbuf)
{
    CURLcode rc = CURLE_OK;
    const char *body = r->body != NULL ? r->body : "";
    long connect_ms = p->connect_timeout_ms < timeout_ms
                          ? p->connect_timeout_ms
                          : timeout_ms;

#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(h, opt, val);                              \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_SHARE, p->share);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, u);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, u);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(r->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_POSTFIELDS, body);
    } else if (strcmp(r->method, "GET") != 0) {
        SET(CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body_len > 0 || strcmp(r->method, "PUT") == 0 ||
            strcmp(r->method, "PATCH") == 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            SET(CURLOPT_POSTFIELDS, body);
        }
    }
#undef SET
    return rc;
}

/* 1 when the attempt never reached the upstream (safe to try another). */
static int connect_failed(CURL *h, CURLcode rc)
{
    curl_off_t connect_us = 0;

    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return 1;
    return rc == CURLE_OPERATION_TIMEDOUT &&
           curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us) ==
               CURLE_OK &&
           connect_us == 0;
}

static void count(struct gw_proxy *p, const struct gw_upstream *up,
                  int status, double secs)
{
    char st[8];
    const char *req[3] = {up->name, GW_COLOR, st};
    const char *dur[2] = {up->name, GW_COLOR};

    snprintf(st, sizeof(st), "%d", status);
    if (p->requests != NULL)
        metrics_inc_labels(p->requests, req, 1);
    if (p->duration != NULL)
        metrics_observe_labels(p->duration, dur, secs);
}

/* Relays a complete upstream answer. */
static void relay(struct httpd_req *r, long status, struct upstream_resp *u)
{
    const char *ctype = NULL;
    size_t i;

    for (i = 0; i < u->hdrs.n; i++) {
        const struct gw_header *h = &u->hdrs.v[i];

        if (strcasecmp(h->name, "Content-Type") == 0)
            ctype = h->value;
        else if (gw_proxy_response_header_kept(h->name))
            httpd_add_header(r, h->name, h->value);
    }
    httpd_reply_raw(r, (int)status, ctype, u->body ? u->body : "", u->len);
}

/* Answers a failed exchange; returns the status sent. */
static int fail(struct httpd_req *r, const struct gw_upstream *up,
                const char *target, CURLcode rc, const struct upstream_resp *u,
                const char *errbuf)
{
    int status = 502;
    const char *code = "upstream_error";

    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
        code = "upstream_unavailable";
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        status = 504;
        code = "upstream_timeout";
    }
    log_kv(LOG_LVL_WARN, &r->log, "upstream failed", "upstream", up->name,
           "target", target, "error",
           errbuf[0] ? errbuf : curl_easy_strerror(rc), NULL);
    if (u->too_large)
        httpd_error(r, status, code, "upstream %s answered more than %zu "
                    "bytes", up->name, GW_MAX_RESPONSE);
    else if (status == 504)
        httpd_error(r, status, code, "upstream %s did not answer in time",
                    up->name);
    else
        httpd_error(r, status, code, "upstream %s is unavailable", up->name);
    return status;
}

void gw_proxy_forward(struct gw_proxy *p, struct httpd_req *r,
                      const struct gw_route *route,
                      const struct tok_claims *claims)
{
    struct gw_upstream *up = route->upstream;
    struct hdr_vec in = {0}, args = {0};
    struct upstream_resp u = {0};
    struct curl_slist *hdrs = NULL;
    struct gw_fwd fwd;
    char ip[64], errbuf[CURL_ERROR_SIZE];
    char *path = NULL, *url = NULL;
    size_t pathlen = strlen(r->path) + 2, idx;
    double t0 = httpd_now();
    long status = 0;
    CURLcode rc;
    CURL *h;
    int attempt;

    if (up->ntargets == 0) {
        httpd_error(r, 503, "upstream_unavailable",
                    "upstream %s has no target", up->name);
        count(p, up, 503, 0);
        return;
    }
    path = xrealloc(NULL, pathlen);
    if (gw_route_upstream_path(route, r->path, path, pathlen) != 0)
        goto internal;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect, &in);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect,
                              &args);
    httpd_client_ip(r, ip, sizeof(ip));
    memset(&fwd, 0, sizeof(fwd));
    fwd.client_ip = ip;
    fwd.request_id = r->request_id;
    fwd.traceparent = r->traceparent;
    fwd.proto = "http";
    fwd.internal_token = p->internal_token;
    fwd.claims = claims;
    if (gw_proxy_upstream_headers(in.v, in.n, &fwd, &hdrs) != 0)
        goto internal;
    h = thread_handle(p);
    if (h == NULL)
        goto internal;

    idx = atomic_fetch_add_explicit(&up->rr, 1, memory_order_relaxed) %
          up->ntargets;
    for (attempt = 0;; attempt++) {
        long left = route->timeout_ms - (long)((httpd_now() - t0) * 1000);

        free(url);
        url = gw_proxy_build_url(up->targets[idx], path, args.v, args.n);
        errbuf[0] = '\0';
        u.len = 0;
        u.too_large = 0;
        hdr_clear(&u.hdrs);
        rc = setup(p, h, r, url, hdrs, left > 0 ? left : 1, &u, errbuf);
        if (rc == CURLE_OK)
            rc = curl_easy_perform(h);
        if (attempt == 0 && up->ntargets > 1 && connect_failed(h, rc) &&
            gw_proxy_idempotent(r->method) &&
            httpd_now() - t0 < route->timeout_ms / 1000.0) {
            log_kv(LOG_LVL_WARN, &r->log, "upstream target down, retrying",
                   "upstream", up->name, "target", up->targets[idx], NULL);
            idx = (idx + 1) % up->ntargets;
            continue;
        }
        break;
    }
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status >= 100 && status <= 999) {
        relay(r, status, &u);
    } else {
        if (rc == CURLE_OK)
            rc = CURLE_WEIRD_SERVER_REPLY;
        status = fail(r, up, up->targets[idx], rc, &u, errbuf);
    }
    count(p, up, (int)status, httpd_now() - t0);
    goto cleanup;

internal:
    httpd_error(r, 500, "internal_error", "could not forward the request");
    count(p, up, 500, httpd_now() - t0);

cleanup:
    curl_slist_free_all(hdrs);
    hdr_free(&in);
    hdr_free(&args);
    hdr_free(&u.hdrs);
    free(u.body);
    free(url);
    free(path);
}
