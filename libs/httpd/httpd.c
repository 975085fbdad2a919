#include "httpd/httpd_int.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A client streaming this much past the body limit gets disconnected. */
#define HTTPD_DISCARD_MAX ((size_t)64 << 20)

void httpd_opts_init(struct httpd_opts *o, const char *service)
{
    memset(o, 0, sizeof(*o));
    o->service = service;
    o->host = "127.0.0.1";
    o->port = 0;
    o->threads = 0;
    o->max_body = (size_t)1 << 20;
    o->conn_timeout_s = 60;
    o->max_conns = 10000;
    o->drain_s = 25;
}

/*
 * Blocks the shutdown signals in the calling thread, so every thread it
 * creates afterwards (MHD's included) inherits the mask and httpd_run()'s
 * sigwait() is the only taker. SIGPIPE is ignored process-wide: hiredis
 * writes with plain write(2), and a peer closing must not kill us.
 */
static void httpd_block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

struct httpd_server *httpd_new(const struct httpd_opts *o)
{
    static const char *const req_labels[] = {"method", "route", "status"};
    static const char *const dur_labels[] = {"method", "route"};
    struct httpd_server *s = calloc(1, sizeof(*s));
    struct metrics_registry *reg = metrics_default();

    if (s == NULL)
        return NULL;
    s->opts = *o;
    s->service = strdup(o->service != NULL ? o->service : "unknown");
    s->host = strdup(o->host != NULL ? o->host : "127.0.0.1");
    if (s->service == NULL || s->host == NULL) {
        httpd_free(s);
        return NULL;
    }
    s->opts.service = s->service;
    s->opts.host = s->host;
    if (s->opts.max_body == 0)
        s->opts.max_body = (size_t)1 << 20;
    if (s->opts.conn_timeout_s == 0)
        s->opts.conn_timeout_s = 60;
    if (s->opts.max_conns == 0)
        s->opts.max_conns = 10000;
    if (s->opts.drain_s == 0)
        s->opts.drain_s = 25;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->draining, 0);
    s->m_requests = metrics_family(reg, METRICS_COUNTER, "http_requests_total",
                                   "HTTP requests answered.", 3, req_labels,
                                   NULL, 0);
    s->m_duration = metrics_family(
        reg, METRICS_HISTOGRAM, "http_request_duration_seconds",
        "HTTP request latency in seconds.", 2, dur_labels, NULL, 0);
    httpd_block_signals();
    return s;
}

int httpd_route(struct httpd_server *s, const char *method,
                const char *pattern, httpd_handler_fn fn, void *arg,
                size_t max_body)
{
    return httpd_route_add(s, method, pattern, fn, arg, max_body, 0);
}

/* Placeholder handler of streaming routes; never runs. */
static void httpd_stream_placeholder(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_error(r, 500, "internal_error", "internal error");
}

int httpd_route_stream(struct httpd_server *s, const char *method,
                       const char *pattern, httpd_stream_begin_fn begin,
                       httpd_stream_chunk_fn chunk, httpd_stream_end_fn end,
                       void *arg, size_t max_body)
{
    struct httpd_route *rt;

    if (begin == NULL || chunk == NULL || end == NULL ||
        httpd_route_add(s, method, pattern, httpd_stream_placeholder, arg,
                        max_body, 0) != 0)
        return -1;
    rt = &s->routes[s->nroutes - 1];
    rt->s_begin = begin;
    rt->s_chunk = chunk;
    rt->s_end = end;
    return 0;
}

int httpd_port(const struct httpd_server *s)
{
    return s->port;
}

long httpd_inflight(const struct httpd_server *s)
{
    return atomic_load(&((struct httpd_server *)s)->inflight);
}

static void builtin_healthz(struct httpd_req *r, void *arg)
{
    (void)arg;
    httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void builtin_readyz(struct httpd_req *r, void *arg)
{
    struct httpd_server *s = r->srv;
    char why[256] = "";

    (void)arg;
    if (atomic_load(&s->draining)) {
        httpd_error(r, 503, "not_ready", "shutting down");
        return;
    }
    if (s->opts.ready != NULL &&
        s->opts.ready(s->opts.ready_arg, why, sizeof(why)) != 0) {
        httpd_error(r, 503, "not_ready", "%s",
                    why[0] != '\0' ? why : "not ready");
        return;
    }
    httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void builtin_metrics(struct httpd_req *r, void *arg)
{
    size_t len = 0;
    char *text = metrics_render(metrics_default(), &len);

    (void)arg;
    if (text == NULL) {
        httpd_error(r, 500, "internal_error", "cannot render metrics");
        return;
    }
    httpd_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                    len);
    free(text);
}

/* Bounded label values: unknown methods would grow series without end. */
static const char *httpd_method_label(const char *m)
{
    static const char *const known[] = {"GET",    "HEAD",    "POST",
                                        "PUT",    "PATCH",   "DELETE",
                                        "OPTIONS", NULL};
    size_t i;

    for (i = 0; known[i] != NULL; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static void req_state_free(struct httpd_req_state *st)
{
    size_t i;

    for (i = 0; i < st->r.nparams; i++)
        free(st->r.param_values[i]);
    httpd_req_free_resp_headers(&st->r);
    free(st->r.body);
    free((char *)st->r.method);
    free((char *)st->r.path);
    free(st);
}

static void httpd_on_completed(void *cls, struct MHD_Connection *conn,
                               void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
    struct httpd_server *s = cls;
    struct httpd_req_state *st = *con_cls;
    struct httpd_req *r;
    double dur;
    int status;
    char status_s[16];
    const char *method;

    (void)conn;
    if (st == NULL)
        return;
    *con_cls = NULL;
    r = &st->r;
    if (st->s_open) {
        /* the body never finished: the service cleans up, no reply */
        st->s_open = 0;
        st->rt->s_end(r, st->s_ctx, HTTPD_STREAM_ABORTED);
    }
    dur = httpd_now() - r->start;
    /* Never answered: the client went away first (nginx's 499). */
    status = r->answered ? r->status : 499;
    snprintf(status_s, sizeof(status_s), "%d", status);
    method = httpd_method_label(r->method);
    if (s->m_requests != NULL) {
        const char *lv[] = {method, r->route, status_s};
        metrics_inc_labels(s->m_requests, lv, 1);
    }
    if (s->m_duration != NULL) {
        const char *lv[] = {method, r->route};
        metrics_observe_labels(s->m_duration, lv, dur);
    }
    log_json(st->quiet && status < 500 ? LOG_LVL_DEBUG : LOG_LVL_INFO,
             &r->log, "request",
             json_pack("{s:s,s:s,s:s,s:i,s:f,s:I,s:b}", "method", r->method,
                       "path", r->path, "route", r->route, "status", status,
                       "duration_ms", dur * 1000.0, "bytes",
                       (json_int_t)st->resp_bytes, "completed",
                       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
    req_state_free(st);
    atomic_fetch_sub(&s->inflight, 1);
}

/* First call: identity, routing, and the Content-Length check. */
static enum MHD_Result httpd_begin(struct httpd_req_state *st)
{
    struct httpd_req *r = &st->r;
    const struct httpd_route *rt;
    const char *pattern;
    const char *cl;
    char allow[128];
    int err;

    httpd_identity_init(r);
    rt = httpd_route_match(r->srv, r, allow, sizeof(allow), &pattern, &err);
    if (err != 0)
        return MHD_NO;
    if (rt == NULL) {
        if (pattern != NULL) {
            r->route = pattern;
            httpd_add_header(r, "Allow", allow);
            httpd_error(r, 405, "method_not_allowed",
                        "method %s not allowed here", r->method);
        } else {
            httpd_error(r, 404, "not_found", "no route for %s", r->path);
        }
        return r->answered ? MHD_YES : MHD_NO;
    }
    st->rt = rt;
    st->quiet = rt->quiet;
    st->max_body = rt->max_body;
    r->route = rt->pattern;
    /* The service's hook may answer instead; the body is then dropped. */
    if (!rt->quiet && r->srv->opts.before != NULL &&
        r->srv->opts.before(r, r->srv->opts.before_arg) != 0) {
        if (!r->answered)
            httpd_error(r, 500, "internal_error", "internal error");
        return r->answered ? MHD_YES : MHD_NO;
    }
    cl = httpd_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && n > st->max_body) {
            httpd_error(r, 413, "payload_too_large",
                        "body exceeds %zu bytes", st->max_body);
            return r->answered ? MHD_YES : MHD_NO;
        }
    }
    if (rt->s_begin != NULL) {
        if (rt->s_begin(r, rt->arg, &st->s_ctx) != 0) {
            if (!r->answered)
                httpd_error(r, 500, "internal_error", "internal error");
            return r->answered ? MHD_YES : MHD_NO;
        }
        st->s_open = 1;
    }
    return MHD_YES;
}

/* Streaming route: hands a body piece to the service, or drops it. */
static enum MHD_Result httpd_stream_chunk(struct httpd_req_state *st,
                                          const char *data, size_t len)
{
    struct httpd_req *r = &st->r;

    if (st->too_large || st->s_refused) {
        st->discarded += len;
        return st->discarded > HTTPD_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (len > st->max_body - st->s_bytes) {
        /* clean up at once (e.g. a partial file); 413 at the end */
        st->too_large = 1;
        st->discarded += len;
        st->s_open = 0;
        st->rt->s_end(r, st->s_ctx, HTTPD_STREAM_TOO_LARGE);
        return MHD_YES;
    }
    st->s_bytes += len;
    if (st->rt->s_chunk(r, st->s_ctx, data, len) != 0)
        st->s_refused = 1;
    return MHD_YES;
}

static enum MHD_Result httpd_body_append(struct httpd_req_state *st,
                                         const char *data, size_t len)
{
    struct httpd_req *r = &st->r;

    if (st->too_large || len > st->max_body - r->body_len) {
        /* MHD can't answer mid-upload: drop the rest, answer at the end. */
        if (!st->too_large) {
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
            st->too_large = 1;
        }
        st->discarded += len;
        return st->discarded > HTTPD_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (r->body_len + len + 1 > st->body_cap) {
        size_t cap = st->body_cap != 0 ? st->body_cap : 4096;
        char *nb;

        while (cap < r->body_len + len + 1)
            cap *= 2;
        if (cap > st->max_body + 1)
            cap = st->max_body + 1;
        nb = realloc(r->body, cap);
        if (nb == NULL)
            return MHD_NO;
        r->body = nb;
        st->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return MHD_YES;
}

/* Last call: the whole body is here; run the handler. */
static enum MHD_Result httpd_finish(struct httpd_req_state *st)
{
    struct httpd_req *r = &st->r;

    if (r->answered)
        return MHD_YES;
    if (st->too_large) {
        httpd_error(r, 413, "payload_too_large", "body exceeds %zu bytes",
                    st->max_body);
        return r->answered ? MHD_YES : MHD_NO;
    }
    if (st->rt->s_begin != NULL) {
        if (st->s_open) {
            st->s_open = 0;
            st->rt->s_end(r, st->s_ctx, st->s_refused ? HTTPD_STREAM_REFUSED
                                                      : HTTPD_STREAM_DONE);
        }
    } else {
        if (r->body == NULL) {
            r->body = calloc(1, 1);
            if (r->body == NULL)
                return MHD_NO;
        }
        st->rt->fn(r, st->rt->arg);
    }
    if (!r->answered) {
        log_error(&r->log, "httpd: handler for %s %s did not reply",
                  r->method, r->route);
        httpd_error(r, 500, "internal_error", "internal error");
    }
    return r->answered ? MHD_YES : MHD_NO;
}

static enum MHD_Result httpd_on_access(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version,
                                       const char *upload_data,
                                       size_t *upload_data_size,
                                       void **con_cls)
{
    struct httpd_server *s = cls;
    struct httpd_req_state *st = *con_cls;

    (void)version;
    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        st->r.method = strdup(method);
        st->r.path = strdup(url);
        if (st->r.method == NULL || st->r.path == NULL) {
            req_state_free(st);
            return MHD_NO;
        }
        st->r.srv = s;
        st->r.conn = conn;
        st->r.route = "unmatched";
        st->r.start = httpd_now();
        *con_cls = st;
        atomic_fetch_add(&s->inflight, 1);
        return httpd_begin(st);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (st->r.answered)
            return MHD_YES;
        if (st->rt != NULL && st->rt->s_begin != NULL)
            return httpd_stream_chunk(st, upload_data, n);
        return httpd_body_append(st, upload_data, n);
    }
    return httpd_finish(st);
}

/* Registers /healthz, /readyz, /metrics unless the service owns them. */
static int httpd_add_builtins(struct httpd_server *s)
{
    if (!httpd_route_has_exact(s, "/healthz") &&
        httpd_route_add(s, "GET", "/healthz", builtin_healthz, NULL, 0, 1))
        return -1;
    if (!httpd_route_has_exact(s, "/readyz") &&
        httpd_route_add(s, "GET", "/readyz", builtin_readyz, NULL, 0, 1))
        return -1;
    if (!httpd_route_has_exact(s, "/metrics") &&
        httpd_route_add(s, "GET", "/metrics", builtin_metrics, NULL, 0, 1))
        return -1;
    return 0;
}

int httpd_start(struct httpd_server *s)
{
    struct addrinfo *ai;
    char portstr[16];
    unsigned int flags = MHD_USE_ITC | MHD_USE_ERROR_LOG |
                         MHD_USE_INTERNAL_POLLING_THREAD;
    struct MHD_OptionItem ops[8];
    const union MHD_DaemonInfo *di;
    size_t n = 0;

    if (s->daemon != NULL)
        return 0;
    if (httpd_add_builtins(s) != 0) {
        log_error(NULL, "httpd: out of memory adding routes");
        return -1;
    }
    if ((ai = httpd_listen_addr("httpd", s->host, s->opts.port)) == NULL)
        return -1;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->opts.threads > 0)
        flags |= MHD_USE_EPOLL;
    else
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;

    /* MHD wants the logger first, or it warns through its default one. */
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                       (intptr_t)httpd_mhd_logger, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                       (intptr_t)s->opts.conn_timeout_s, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                       (intptr_t)s->opts.max_conns, NULL};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_on_completed, s};
    if (s->opts.threads > 0)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                           (intptr_t)s->opts.threads, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opts.port, NULL, NULL,
                                 httpd_on_access, s, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (s->daemon == NULL) {
        log_error(NULL, "httpd: cannot listen on %s:%d", s->host,
                  s->opts.port);
        return -1;
    }
    di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL && di->port != 0 ? di->port : s->opts.port;
    snprintf(portstr, sizeof(portstr), "%d", s->port);
    log_kv(LOG_LVL_INFO, NULL, "listening", "host", s->host, "port",
           portstr, NULL);
    return 0;
}

/*
 * Stops accepting and waits up to drain_s for in-flight requests. Replies
 * sent meanwhile carry "Connection: close" so keep-alive clients move on.
 */
static void httpd_drain(struct httpd_server *s, unsigned drain_s)
{
    double deadline = httpd_now() + drain_s;
    struct timespec nap = {0, 20 * 1000 * 1000};

    if (s->daemon == NULL)
        return;
    atomic_store(&s->draining, 1);
    if (s->quiesced_fd == MHD_INVALID_SOCKET) {
        s->quiesced_fd = MHD_quiesce_daemon(s->daemon);
        /*
         * MHD may still touch the fd until MHD_stop_daemon(), so it stays
         * open; shutdown() makes Linux refuse new connections now instead
         * of letting them queue, unanswered, in the backlog.
         */
        if (s->quiesced_fd != MHD_INVALID_SOCKET)
            shutdown(s->quiesced_fd, SHUT_RDWR);
    }
    while (httpd_inflight(s) > 0 && httpd_now() < deadline)
        nanosleep(&nap, NULL);
    if (httpd_inflight(s) > 0)
        log_warn(NULL, "httpd: drain timed out with %ld in flight",
                 httpd_inflight(s));
}

static void httpd_stop(struct httpd_server *s)
{
    if (s->daemon == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    /* MHD leaves a quiesced socket to us, to close after the stop. */
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    s->quiesced_fd = MHD_INVALID_SOCKET;
}

int httpd_wait_shutdown(void (*on_hup)(void *), void *arg)
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
        if (on_hup != NULL)
            on_hup(arg);
    }
    log_kv(LOG_LVL_INFO, NULL, "shutting down", "signal",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    return sig;
}

int httpd_run(struct httpd_server *s, void (*on_signal)(void *),
              void (*on_hup)(void *), void *arg)
{
    httpd_wait_shutdown(on_hup, arg);
    if (on_signal != NULL)
        on_signal(arg);
    httpd_drain(s, s->opts.drain_s);
    httpd_stop(s);
    log_info(NULL, "stopped");
    return 0;
}

void httpd_free(struct httpd_server *s)
{
    if (s == NULL)
        return;
    httpd_stop(s);
    httpd_routes_free(s);
    free(s->service);
    free(s->host);
    free(s);
}
