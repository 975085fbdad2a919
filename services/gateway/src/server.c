/*
 * The client side of the engine: a libmicrohttpd daemon with an epoll
 * thread pool. Every request gets a struct gw_xfer; local answers (errors,
 * built-ins) are queued at once, proxied ones go to the curl thread while
 * the connection is suspended whenever it would otherwise spin (body ring
 * full, upstream headers or body bytes not there yet).
 *
 * The xfer embeds httpd's per-request state so authn.c and httpd's reply
 * helpers (error shape, X-Request-Id, identity) work unchanged on it;
 * `shim` stands in for the httpd server those helpers look at (only its
 * draining flag is read).
 */
#include "gateway.h"
#include "admin.h"
#include "edge.h"

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "xfer.h"

#define GW_BLOCK 32768
#define GW_COLOR_BLUE "blue"

struct gw_server {
    struct httpd_server shim;
    struct MHD_Daemon *daemon;
    struct gw_serve_opts opts;
    int port;
    MHD_socket quiesced;
    atomic_long inflight;
    struct metrics_family *m_requests;
    struct metrics_family *m_duration;
    struct metrics_family *m_http_requests; /* shared with every service */
    struct metrics_family *m_http_duration;
};

void gw_serve_opts_init(struct gw_serve_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8080;
}

void gw_xfer_retain(struct gw_xfer *x)
{
    atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
}

void gw_xfer_release(struct gw_xfer *x)
{
    size_t i;

    if (x == NULL ||
        atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    if (x->tgt != NULL)
        gw_target_done(x->tgt, -1, httpd_now());
    free(x->admin_body);
    for (i = 0; i < x->nresp_hdrs; i++)
        free(x->resp_hdrs[i]);
    free(x->resp_hdrs);
    gw_ring_free(&x->up);
    gw_ring_free(&x->down);
    curl_slist_free_all(x->req_headers);
    free(x->path_query);
    httpd_req_free_resp_headers(&x->st.r);
    free((char *)x->st.r.method);
    free((char *)x->st.r.path);
    gw_routes_release(x->routes);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static struct gw_xfer *xfer_new(struct gw *g, struct MHD_Connection *conn,
                                const char *url, const char *method)
{
    struct gw_xfer *x = calloc(1, sizeof(*x));

    if (x == NULL)
        return NULL;
    atomic_init(&x->refs, 1);
    pthread_mutex_init(&x->mu, NULL);
    x->g = g;
    x->conn = conn;
    x->color = GW_COLOR_BLUE;
    x->tag.kind = GW_EASY_XFER;
    x->tag.obj = x;
    x->content_length = -1;
    x->resp_length = -1;
    x->st.r.srv = &g->srv->shim;
    x->st.r.conn = conn;
    x->st.r.route = "unmatched";
    x->st.r.start = httpd_now();
    x->st.r.method = strdup(method);
    x->st.r.path = strdup(url);
    if (x->st.r.method == NULL || x->st.r.path == NULL) {
        gw_xfer_release(x);
        return NULL;
    }
    return x;
}

/* Client headers / query args gathered for the pure proxy layer. */
struct kv_vec {
    struct gw_header *v;
    size_t n, cap;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    struct kv_vec *h = cls;

    (void)kind;
    if (key == NULL)
        return MHD_YES;
    if (h->n == h->cap) {
        struct gw_header *nv;

        h->cap = h->cap ? h->cap * 2 : 32;
        nv = realloc(h->v, h->cap * sizeof(*nv));
        if (nv == NULL) {
            fputs("gateway: out of memory\n", stderr);
            abort();
        }
        h->v = nv;
    }
    h->v[h->n].name = key;
    h->v[h->n].value = value;
    h->n++;
    return MHD_YES;
}

/* Upstream path + query and header lines. 0, or -1 (answered). */
static int prepare(struct gw *g, struct gw_xfer *x,
                   const struct tok_claims *claims)
{
    struct httpd_req *r = &x->st.r;
    struct kv_vec in = {0}, args = {0};
    struct gw_fwd fwd;
    size_t pathlen = strlen(r->path) + 2;
    char ip[64], *path = malloc(pathlen);
    int rc = -1;

    if (path == NULL ||
        gw_route_upstream_path(x->route, r->path, path, pathlen) != 0)
        goto cleanup;
    MHD_get_connection_values(x->conn, MHD_HEADER_KIND, collect, &in);
    MHD_get_connection_values(x->conn, MHD_GET_ARGUMENT_KIND, collect,
                              &args);
    httpd_client_ip(r, ip, sizeof(ip));
    memset(&fwd, 0, sizeof(fwd));
    fwd.client_ip = ip;
    fwd.request_id = r->request_id;
    fwd.traceparent = r->traceparent;
    fwd.proto = "http";
    fwd.internal_token = gw_proxy_internal_token(g->proxy);
    fwd.claims = claims;
    if (gw_proxy_upstream_headers(in.v, in.n, &fwd, &x->req_headers) != 0)
        goto cleanup;
    /* The target base is prepended on the curl thread. */
    x->path_query = gw_proxy_build_url("", path, args.v, args.n);
    rc = x->path_query != NULL ? 0 : -1;

cleanup:
    if (rc != 0)
        httpd_error(r, 500, "internal_error", "could not forward the "
                    "request");
    free(in.v);
    free(args.v);
    free(path);
    return rc;
}

static void builtin(struct gw *g, struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;

    r->route = r->path;
    if (strcmp(r->path, "/healthz") == 0) {
        httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(r->path, "/readyz") == 0) {
        struct gw_routes *rt = gw_route_table_get(&g->table);

        if (atomic_load(&g->srv->shim.draining))
            httpd_error(r, 503, "not_ready", "shutting down");
        else if (rt == NULL)
            httpd_error(r, 503, "not_ready", "no routes loaded");
        else
            httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
        gw_routes_release(rt);
    } else {
        size_t len = 0;
        char *text = metrics_render(metrics_default(), &len);

        if (text == NULL) {
            httpd_error(r, 500, "internal_error", "cannot render metrics");
            return;
        }
        httpd_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                        text, len);
        free(text);
    }
}

static int is_builtin(const char *method, const char *path)
{
    return (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
           (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
            strcmp(path, "/metrics") == 0);
}

static enum MHD_Result count_hdr(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    (void)kind;
    (void)key;
    (void)value;
    (*(unsigned *)cls)++;
    return MHD_YES;
}

/* First call: identity, routing, limits, auth; then off to curl. */
static enum MHD_Result begin(struct gw *g, struct gw_xfer *x)
{
    struct gw_server *s = g->srv;
    struct httpd_req *r = &x->st.r;
    struct tok_claims claims;
    unsigned allowed = 0, nhdrs = 0;
    int has_claims = 0;
    const char *cl, *te;
    char allow[96];

    httpd_identity_init(r);
    gw_edge_security_headers(x);
    MHD_get_connection_values(x->conn, MHD_HEADER_KIND, count_hdr, &nhdrs);
    if (nhdrs > s->opts.max_headers) {
        httpd_error(r, 431, "headers_too_large", "more than %u headers",
                    s->opts.max_headers);
        goto out;
    }
    if (is_builtin(r->method, r->path)) {
        builtin(g, x);
        goto out;
    }
    if (gw_admin_path(r->path)) {
        gw_admin_begin(g, x);
        goto out;
    }
    x->routes = gw_route_table_get(&g->table);
    if (x->routes == NULL) {
        httpd_error(r, 503, "not_ready", "no routes loaded");
        goto out;
    }
    if (gw_path_has_dot_segment(r->path)) {
        httpd_error(r, 400, "invalid_path",
                    "path must not contain '.' or '..' segments");
        goto out;
    }
    if (gw_edge_preflight(x, x->routes))
        goto out;
    switch (gw_routes_match(x->routes, r->method, r->path, &x->route,
                            &allowed)) {
    case GW_MATCH_OK:
        break;
    case GW_MATCH_NOT_FOUND:
        httpd_error(r, 404, "not_found", "no route for this path");
        goto out;
    case GW_MATCH_METHOD:
        gw_methods_str(allowed, allow, sizeof(allow));
        httpd_add_header(r, "Allow", allow);
        httpd_error(r, 405, "method_not_allowed",
                    "method %.16s not allowed here; allowed: %s", r->method,
                    allow);
        goto out;
    }
    r->route = x->route->name;
    x->upstream = x->route->upstream;
    gw_edge_cors_headers(x);
    cl = httpd_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = httpd_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl != NULL) {
        char *end;
        long long n = strtoll(cl, &end, 10);

        if (end == cl || *end != '\0' || n < 0) {
            httpd_error(r, 400, "invalid_request", "bad Content-Length");
            goto out;
        }
        x->content_length = n;
        x->has_body = n > 0;
        if ((unsigned long long)n > x->route->max_body) {
            httpd_error(r, 413, "payload_too_large",
                        "request body over %zu bytes", x->route->max_body);
            goto out;
        }
    } else if (te != NULL) {
        x->has_body = 1;
    }
    if (gw_authn_check(g->authn, r, x->route, &claims, &has_claims) != 0)
        goto out;
    if (gw_edge_rate_limit(g, x, has_claims ? claims.sub : NULL) != 0)
        goto out;
    if (prepare(g, x, has_claims ? &claims : NULL) != 0)
        goto out;
    if (has_claims)
        snprintf(x->sticky_key, sizeof(x->sticky_key), "%s", claims.sub);
    switch (gw_pool_pick(x->upstream->pool, x->sticky_key, NULL, httpd_now(),
                         &x->tgt)) {
    case GW_PICK_OK:
        break;
    case GW_PICK_EMPTY:
        httpd_error(r, 503, "upstream_unavailable",
                    "upstream %s has no target", x->upstream->name);
        goto out;
    case GW_PICK_OPEN:
        httpd_error(r, 503, "upstream_unavailable",
                    "no target of upstream %s is available (circuit open)",
                    x->upstream->name);
        goto out;
    }
    x->color = gw_color_name(x->tgt->color);
    x->idempotent = gw_proxy_idempotent(r->method);
    gw_ring_init(&x->up, x->has_body ? GW_RING_UP : 1);
    x->started = 1;
    gw_proxy_submit(g->proxy, x);
out:
    return MHD_YES;
}

/* Request body bytes from the client into the up ring. */
static enum MHD_Result upload(struct gw *g, struct gw_xfer *x,
                              const char *data, size_t *size)
{
    int unpause = 0;
    size_t n;

    pthread_mutex_lock(&x->mu);
    if (x->done) {
        /* The upstream already answered (or failed): drop the rest. */
        x->up_total += *size;
        *size = 0;
        pthread_mutex_unlock(&x->mu);
        return MHD_YES;
    }
    n = gw_ring_put(&x->up, data, *size);
    x->up_total += n;
    *size -= n;
    if (n > 0 && x->read_paused) {
        x->read_paused = 0;
        unpause = 1;
    }
    if (*size > 0) {
        x->wait = GW_WAIT_UP_SPACE;
        MHD_suspend_connection(x->conn);
    }
    pthread_mutex_unlock(&x->mu);
    if (unpause)
        gw_proxy_unpause(g->proxy, x);
    if (x->up_total > x->route->max_body) {
        /* Chunked upload over the limit: nothing sane left to answer. */
        log_kv(LOG_LVL_WARN, &x->st.r.log, "request body over max_body",
               "route", x->route->name, NULL);
        return MHD_NO;
    }
    return MHD_YES;
}

/* Streams the response body out of the down ring. */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct gw_xfer *x = cls;
    int unpause = 0;
    size_t n;

    (void)pos;
    pthread_mutex_lock(&x->mu);
    n = gw_ring_get(&x->down, buf, max);
    if (n > 0) {
        x->st.resp_bytes += n;
        if (x->write_paused) {
            x->write_paused = 0;
            unpause = 1;
        }
        pthread_mutex_unlock(&x->mu);
        if (unpause)
            gw_proxy_unpause(x->g->proxy, x);
        return (ssize_t)n;
    }
    if (x->done) {
        CURLcode rc = x->result;

        pthread_mutex_unlock(&x->mu);
        return rc == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM
                              : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (x->write_paused) {
        x->write_paused = 0;
        unpause = 1;
    }
    x->wait = GW_WAIT_DATA;
    MHD_suspend_connection(x->conn);
    pthread_mutex_unlock(&x->mu);
    if (unpause)
        gw_proxy_unpause(x->g->proxy, x);
    return 0;
}

static void reader_free(void *cls)
{
    gw_xfer_release(cls);
}

/* Queues `resp` (consumed) like httpd's replies do. */
static void send_resp(struct gw_xfer *x, int status, struct MHD_Response *resp)
{
    struct httpd_req *r = &x->st.r;
    struct httpd_resp_header *h;

    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    for (h = r->resp_headers; h != NULL; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    if (atomic_load(&x->g->srv->shim.draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (MHD_queue_response(x->conn, (unsigned)status, resp) == MHD_YES) {
        r->answered = 1;
        r->status = status;
    } else {
        log_error(&r->log, "gateway: MHD_queue_response failed (%d)",
                  status);
    }
    MHD_destroy_response(resp);
}

/* The transfer failed before any upstream status: the error shape. */
static void answer_failure(struct gw_xfer *x, CURLcode rc)
{
    struct httpd_req *r = &x->st.r;
    const char *name = x->upstream->name;

    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        httpd_error(r, 502, "upstream_unavailable",
                    "upstream %s is unavailable", name);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        httpd_error(r, 504, "upstream_timeout",
                    "upstream %s did not answer in time", name);
    else
        httpd_error(r, 502, "upstream_error",
                    "upstream %s broke the exchange", name);
}

/* Status and headers are known (or the transfer failed): answer. */
static void respond(struct gw_xfer *x)
{
    struct MHD_Response *resp;
    uint64_t size;
    int status, head = strcmp(x->st.r.method, "HEAD") == 0;
    int stream = 0;
    size_t i;

    pthread_mutex_lock(&x->mu);
    if (!x->headers_done) {
        CURLcode rc = x->result;

        pthread_mutex_unlock(&x->mu);
        answer_failure(x, rc == CURLE_OK ? CURLE_WEIRD_SERVER_REPLY : rc);
        return;
    }
    status = (int)x->status;
    size = x->resp_length >= 0 ? (uint64_t)x->resp_length : MHD_SIZE_UNKNOWN;
    if (status == 204 || status == 304 || (status < 200 && status >= 100))
        size = 0;
    /* MHD allocates a block per response: no bigger than the body. */
    resp = MHD_create_response_from_callback(
        size, size != MHD_SIZE_UNKNOWN && size < GW_BLOCK
                  ? (size_t)(size > 0 ? size : 1)
                  : GW_BLOCK,
        reader, x, reader_free);
    if (resp == NULL) {
        pthread_mutex_unlock(&x->mu);
        httpd_error(&x->st.r, 500, "internal_error", "out of memory");
        return;
    }
    gw_xfer_retain(x); /* released by reader_free */
    for (i = 0; i < x->nresp_hdrs; i++) {
        const char *name = x->resp_hdrs[i];
        const char *value = name + strlen(name) + 1;

        if (strcasecmp(name, "Content-Type") == 0) {
            MHD_add_response_header(resp, name, value);
            if (strncasecmp(value, "text/event-stream", 17) == 0)
                stream = 1;
        } else if (gw_proxy_response_header_kept(name) &&
                   strcasecmp(name, "X-Content-Type-Options") != 0 &&
                   strcasecmp(name, "X-Frame-Options") != 0 &&
                   strcasecmp(name, "Referrer-Policy") != 0) {
            MHD_add_response_header(resp, name, value);
        }
    }
    pthread_mutex_unlock(&x->mu);
    (void)head;
    if (stream || size == MHD_SIZE_UNKNOWN)
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    send_resp(x, status, resp);
}

/* Last access-handler call: the whole body is in; answer when we can. */
static enum MHD_Result complete(struct gw *g, struct gw_xfer *x)
{
    int unpause = 0, ready;

    pthread_mutex_lock(&x->mu);
    x->up_eof = 1;
    if (x->read_paused) {
        x->read_paused = 0;
        unpause = 1;
    }
    ready = x->headers_done || x->done;
    if (!ready) {
        x->wait = GW_WAIT_HEADERS;
        MHD_suspend_connection(x->conn);
    }
    pthread_mutex_unlock(&x->mu);
    if (unpause)
        gw_proxy_unpause(g->proxy, x);
    if (ready) {
        x->queued = 1;
        respond(x);
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version,
                                 const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct gw *g = cls;
    struct gw_xfer *x = *con_cls;

    (void)version;
    if (x == NULL) {
        x = xfer_new(g, conn, url, method);
        if (x == NULL)
            return MHD_NO;
        *con_cls = x;
        atomic_fetch_add(&g->srv->inflight, 1);
        return begin(g, x);
    }
    if (x->admin) {
        if (*upload_data_size > 0) {
            int rc = gw_admin_body(x, upload_data, *upload_data_size);

            *upload_data_size = 0;
            return rc == 0 ? MHD_YES : MHD_NO;
        }
        gw_admin_finish(g, x);
        return MHD_YES;
    }
    if (x->st.r.answered || !x->started) {
        *upload_data_size = 0; /* answered locally: discard the body */
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return upload(g, x, upload_data, upload_data_size);
    if (x->queued)
        return MHD_YES;
    return complete(g, x);
}

static const char *method_label(const char *m)
{
    return gw_method_bit(m) != 0 ? m : "OTHER";
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct gw *g = cls;
    struct gw_server *s = g->srv;
    struct gw_xfer *x = *con_cls;
    struct httpd_req *r;
    const char *upstream, *color;
    char status_s[16];
    double dur;
    int status, cancel;

    (void)conn;
    if (x == NULL)
        return;
    *con_cls = NULL;
    r = &x->st.r;
    dur = httpd_now() - r->start;
    status = r->answered ? r->status : 499;
    if (r->answered && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
        x->started)
        status = 499; /* the client left mid-stream */
    snprintf(status_s, sizeof(status_s), "%d", status);
    upstream = x->upstream != NULL ? x->upstream->name : "";
    pthread_mutex_lock(&x->mu);
    color = x->upstream != NULL ? x->color : "";
    pthread_mutex_unlock(&x->mu);
    if (s->m_requests != NULL) {
        const char *lv[] = {r->route, method_label(r->method), status_s,
                            upstream, color};

        metrics_inc_labels(s->m_requests, lv, 1);
    }
    if (s->m_duration != NULL) {
        const char *lv[] = {r->route, upstream, color};

        metrics_observe_labels(s->m_duration, lv, dur);
    }
    if (s->m_http_requests != NULL) {
        const char *lv[] = {method_label(r->method), r->route, status_s};

        metrics_inc_labels(s->m_http_requests, lv, 1);
    }
    if (s->m_http_duration != NULL) {
        const char *lv[] = {method_label(r->method), r->route};

        metrics_observe_labels(s->m_http_duration, lv, dur);
    }
    log_json(x->upstream == NULL && status < 500 && r->route[0] == '/'
                 ? LOG_LVL_DEBUG
                 : LOG_LVL_INFO,
             &r->log, "request",
             json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:I,s:b}", "method",
                       r->method, "path", r->path, "route", r->route,
                       "upstream", upstream, "color", color, "status",
                       status, "duration_ms", dur * 1000.0, "bytes",
                       (json_int_t)x->st.resp_bytes, "completed",
                       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
    pthread_mutex_lock(&x->mu);
    x->client_gone = 1;
    x->wait = GW_WAIT_NONE;
    cancel = x->started && !x->done;
    pthread_mutex_unlock(&x->mu);
    if (cancel)
        gw_proxy_cancel(g->proxy, x);
    atomic_fetch_sub(&s->inflight, 1);
    gw_xfer_release(x);
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_kv(LOG_LVL_DEBUG, NULL, "libmicrohttpd", "detail", buf, NULL);
}

int gw_serve_start(struct gw *g, const struct gw_serve_opts *o)
{
    static const char *const req_labels[] = {"route", "method", "status",
                                             "upstream", "color"};
    static const char *const dur_labels[] = {"route", "upstream", "color"};
    static const char *const http_labels[] = {"method", "route", "status"};
    static const double buckets[] = {.001, .0025, .005, .01, .025, .05, .1,
                                     .25,  .5,    1,    2.5, 5,   10};
    struct addrinfo hints, *ai = NULL;
    struct MHD_OptionItem ops[10];
    const union MHD_DaemonInfo *di;
    struct gw_server *s;
    char portstr[16];
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = 0;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->opts = *o;
    if (s->opts.threads <= 0)
        s->opts.threads = ncpu > 0 ? (int)ncpu : 1;
    if (s->opts.conn_timeout_s == 0)
        s->opts.conn_timeout_s = 60;
    if (s->opts.max_conns == 0)
        s->opts.max_conns = 16384;
    if (s->opts.drain_s == 0)
        s->opts.drain_s = 25;
    if (s->opts.max_header_bytes == 0)
        s->opts.max_header_bytes = 16384;
    if (s->opts.max_headers == 0)
        s->opts.max_headers = 100;
    s->quiesced = MHD_INVALID_SOCKET;
    s->shim.quiesced_fd = MHD_INVALID_SOCKET;
    s->m_requests = metrics_family(
        metrics_default(), METRICS_COUNTER, "gateway_requests_total",
        "Requests answered by the gateway.", 5, req_labels, NULL, 0);
    s->m_duration = metrics_family(
        metrics_default(), METRICS_HISTOGRAM,
        "gateway_request_duration_seconds",
        "Time from request headers to the end of the response.", 3,
        dur_labels, buckets, sizeof(buckets) / sizeof(buckets[0]));
    s->m_http_requests = metrics_family(
        metrics_default(), METRICS_COUNTER, "http_requests_total",
        "HTTP requests handled.", 3, http_labels, NULL, 0);
    s->m_http_duration = metrics_family(
        metrics_default(), METRICS_HISTOGRAM, "http_request_duration_seconds",
        "HTTP request duration.", 2, http_labels, NULL, 0);
    g->srv = s;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", o->port);
    rc = getaddrinfo(o->host, portstr, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        log_error(NULL, "gateway: cannot resolve HOST %s: %s", o->host,
                  gai_strerror(rc));
        return -1;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                       (intptr_t)mhd_log, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->opts.conn_timeout_s,
        NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                       (intptr_t)s->opts.max_conns, NULL};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (intptr_t)s->opts.max_header_bytes, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                       (intptr_t)on_completed, g};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)s->opts.threads, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE,
                                       (intptr_t)4096, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL,
                                 on_access, g, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (s->daemon == NULL) {
        log_error(NULL, "gateway: cannot listen on %s:%d", o->host, o->port);
        return -1;
    }
    di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL && di->port != 0 ? di->port : o->port;
    snprintf(portstr, sizeof(portstr), "%d", s->port);
    log_kv(LOG_LVL_INFO, NULL, "listening", "host", o->host, "port",
           portstr, NULL);
    return 0;
}

int gw_serve_port(const struct gw *g)
{
    return g->srv != NULL ? g->srv->port : 0;
}

long gw_serve_inflight(const struct gw *g)
{
    return g->srv != NULL ? atomic_load(&g->srv->inflight) : 0;
}

void gw_serve_stop(struct gw *g)
{
    struct gw_server *s = g->srv;

    if (s == NULL)
        return;
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    if (s->quiesced != MHD_INVALID_SOCKET)
        close(s->quiesced);
    free(s);
    g->srv = NULL;
}

/* Stops accepting; waits up to drain_s for in-flight requests. */
static void drain(struct gw_server *s)
{
    double deadline = httpd_now() + s->opts.drain_s;
    struct timespec nap = {0, 20 * 1000 * 1000};

    atomic_store(&s->shim.draining, 1);
    s->quiesced = MHD_quiesce_daemon(s->daemon);
    if (s->quiesced != MHD_INVALID_SOCKET)
        shutdown(s->quiesced, SHUT_RDWR);
    while (atomic_load(&s->inflight) > 0 && httpd_now() < deadline)
        nanosleep(&nap, NULL);
    if (atomic_load(&s->inflight) > 0)
        log_warn(NULL, "gateway: drain timed out with %ld in flight",
                 atomic_load(&s->inflight));
}

int gw_serve_run(struct gw *g)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        log_info(NULL, "SIGHUP received");
        gw_reload(g);
    }
    log_kv(LOG_LVL_INFO, NULL, "shutting down", "signal",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    drain(g->srv);
    gw_serve_stop(g);
    log_info(NULL, "stopped");
    return 0;
}
