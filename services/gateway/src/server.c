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
 *
 * This file: the daemons, the access handler's dispatch, the completion
 * callback (access log, metrics, cancel), start / stop / drain. A
 * request's phases are in server_request.c, its answer in
 * server_respond.c (server_int.h).
 */
#include "gateway.h"
#include "admin.h"
#include "edge.h"

#include <fcntl.h>
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
#include "server_int.h"
#include "xfer.h"

/* MHD's per-connection pool holds the request head and then the
 * response head; it is allocated whole (and zeroed) per connection, so
 * it is most of what an idle keep-alive connection costs. The headroom
 * over MAX_HEADER_BYTES is for the parsed header list and the response
 * status line + headers. */
#define GW_POOL_HEADROOM 4096
#define GW_COLOR_BLUE "blue"

void gw_serve_opts_init(struct gw_serve_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8080;
}

static struct gw_xfer *xfer_new(struct gw *g, struct MHD_Connection *conn,
                                const char *url, const char *method)
{
    struct gw_xfer *x = calloc(1, sizeof(*x));
    const union MHD_ConnectionInfo *ci;

    if (x == NULL)
        return NULL;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    x->client_fd = ci != NULL ? ci->connect_fd : -1;
    atomic_init(&x->refs, 1);
    pthread_mutex_init(&x->mu, NULL);
    x->g = g;
    x->conn = conn;
    x->eng = gw_proxy_current();
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
        return gw_serve_begin(g, x);
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
        return gw_serve_upload(g, x, upload_data, upload_data_size);
    if (x->queued)
        return MHD_YES;
    return gw_serve_complete(g, x);
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
    enum log_level lvl;

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
    lvl = x->upstream == NULL && status < 500 && r->route[0] == '/'
              ? LOG_LVL_DEBUG
              : LOG_LVL_INFO;
    /* The access line is built only when it will be written. */
    if (log_enabled(lvl))
        log_json(lvl, &r->log, "request",
                 json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:I,s:b}",
                           "method", r->method, "path", r->path, "route",
                           r->route, "upstream", upstream, "color", color,
                           "status", status, "duration_ms", dur * 1000.0,
                           "bytes", (json_int_t)x->st.resp_bytes,
                           "completed",
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

/* libmicrohttpd's own messages: debug (the gateway logs what matters). */
static const enum log_level mhd_log_level = LOG_LVL_DEBUG;

int gw_serve_start(struct gw *g, const struct gw_serve_opts *o)
{
    static const char *const req_labels[] = {"route", "method", "status",
                                             "upstream", "color"};
    static const char *const dur_labels[] = {"route", "upstream", "color"};
    static const char *const http_labels[] = {"method", "route", "status"};
    static const double buckets[] = {.001, .0025, .005, .01, .025, .05, .1,
                                     .25,  .5,    1,    2.5, 5,   10};
    struct addrinfo *ai;
    struct MHD_OptionItem ops[10];
    const union MHD_DaemonInfo *di;
    struct gw_server *s;
    char portstr[16];
    /* No MHD thread: each engine thread (proxy.c) runs one daemon and
     * its own curl multi in one epoll loop; the daemons share the first
     * one's listening socket. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    MHD_socket lfd;
    int i;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = 0;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->opts = *o;
    if (s->opts.threads <= 0)
        s->opts.threads = ncpu > 0 ? (int)ncpu : 1;
    if (s->opts.threads > GW_MAX_ENGINES)
        s->opts.threads = GW_MAX_ENGINES;
    if (s->opts.conn_timeout_s == 0)
        s->opts.conn_timeout_s = 60;
    if (s->opts.max_conns == 0)
        s->opts.max_conns = 16384;
    if (s->opts.drain_s == 0)
        s->opts.drain_s = 25;
    if (s->opts.max_header_bytes == 0)
        s->opts.max_header_bytes = 8192;
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

    if ((ai = httpd_listen_addr("gateway", o->host, o->port)) == NULL)
        return -1;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                       (intptr_t)httpd_mhd_logger,
                                       (void *)&mhd_log_level};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->opts.conn_timeout_s,
        NULL};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_LIMIT,
        (intptr_t)((s->opts.max_conns + (unsigned)s->opts.threads - 1) /
                   (unsigned)s->opts.threads),
        NULL};
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (intptr_t)(s->opts.max_header_bytes + GW_POOL_HEADROOM), NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                       (intptr_t)on_completed, g};
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
    s->daemons[s->ndaemons++] = s->daemon;
    di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    lfd = di != NULL ? di->listen_fd : MHD_INVALID_SOCKET;
    /* Every daemon wakes on a new connection and one wins the accept:
     * the others must get EAGAIN, never block. */
    if (lfd != MHD_INVALID_SOCKET) {
        int fl = fcntl(lfd, F_GETFL);

        if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) != 0) {
            log_error(NULL, "gateway: cannot make the listening socket "
                      "non-blocking");
            return -1;
        }
    }
    /* The others take the listening socket instead of binding. */
    ops[1] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, (intptr_t)lfd,
                                     NULL};
    for (i = 1; i < s->opts.threads && lfd != MHD_INVALID_SOCKET; i++) {
        struct MHD_Daemon *d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_access, g, MHD_OPTION_ARRAY, ops,
            MHD_OPTION_END);

        if (d == NULL) {
            log_error(NULL, "gateway: cannot start MHD daemon %d", i);
            return -1;
        }
        s->daemons[s->ndaemons++] = d;
    }
    if (gw_proxy_attach(g->proxy, s->daemons, s->ndaemons) != 0) {
        log_error(NULL, "gateway: cannot start the engine threads");
        return -1;
    }
    s->attached = 1;
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

void gw_serve_stop(struct gw *g)
{
    struct gw_server *s = g->srv;

    if (s == NULL)
        return;
    /* The listening socket is shared: only the first daemon may close
     * it, so the others are quiesced (which leaves it open) first. */
    if (s->attached && s->quiesced == MHD_INVALID_SOCKET)
        s->quiesced = gw_proxy_quiesce(g->proxy);
    gw_proxy_halt(g->proxy); /* stops the daemons on their threads */
    if (!s->attached) {
        int i;

        for (i = s->ndaemons - 1; i >= 1; i--)
            MHD_quiesce_daemon(s->daemons[i]);
        for (i = s->ndaemons - 1; i >= 0; i--)
            MHD_stop_daemon(s->daemons[i]);
    }
    if (s->quiesced != MHD_INVALID_SOCKET)
        close(s->quiesced);
    free(s);
    g->srv = NULL;
}

/*
 * Stops accepting; waits up to drain_s for in-flight requests, then
 * aborts the upstream transfers still running so that no connection is
 * left suspended when MHD stops (MHD_stop_daemon panics on those).
 */
static void drain(struct gw *g)
{
    struct gw_server *s = g->srv;
    double deadline = httpd_now() + s->opts.drain_s;
    struct timespec nap = {0, 20 * 1000 * 1000};
    long left;

    atomic_store(&s->shim.draining, 1);
    s->quiesced = gw_proxy_quiesce(g->proxy);
    if (s->quiesced != MHD_INVALID_SOCKET)
        shutdown(s->quiesced, SHUT_RDWR);
    while (atomic_load(&s->inflight) > 0 && httpd_now() < deadline)
        nanosleep(&nap, NULL);
    left = atomic_load(&s->inflight);
    if (left > 0)
        log_warn(NULL, "gateway: drain timed out with %ld in flight, "
                 "aborting them", left);
    gw_proxy_close(g->proxy);
    /* The aborted ones complete as MHD fails their writes. */
    deadline = httpd_now() + 5.0;
    while (atomic_load(&s->inflight) > 0 && httpd_now() < deadline)
        nanosleep(&nap, NULL);
}

int gw_serve_run(struct gw *g)
{
    httpd_wait_shutdown(gw_on_hup, g);
    drain(g);
    gw_serve_stop(g);
    log_info(NULL, "stopped");
    return 0;
}
