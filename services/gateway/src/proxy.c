/*
 * proxy — the engine threads (see proxy_int.h for the module map and
 * who owns what). Each engine is one libcurl multi handle driven by one
 * thread with the multi_socket API over epoll (so the cost of a loop turn
 * does not grow with the number of upstream connections). MHD threads
 * hand transfers over through a small command list (start / unpause /
 * cancel) and an eventfd, written only when no wake-up is pending;
 * everything that touches an easy handle happens on this thread, as
 * libcurl requires. The same loop runs the engine's MHD daemon
 * (external epoll mode). This file: commands and wake-ups, the epoll
 * bookkeeping of curl's sockets, the loop, and the engine lifecycle.
 * Upstream connections live in the multi's connection cache and are
 * reused across requests.
 */
#include "proxy_int.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "log/log.h"
#include "metrics/metrics.h"

/* The engine whose thread this is (NULL on other threads). */
static _Thread_local struct gw_proxy *tl_engine;

static void wake(struct gw_proxy *p)
{
    uint64_t one = 1;

    /* On its own thread the loop runs the commands before it waits. */
    if (tl_engine == p)
        return;
    if (atomic_exchange(&p->wake_pending, 1) == 0 &&
        write(p->wake_fd, &one, sizeof(one)) < 0)
        atomic_store(&p->wake_pending, 0);
}

/* Queues command bits for the curl thread and wakes it. */
static void command(struct gw_proxy *p, struct gw_xfer *x, unsigned cmd)
{
    if (x->eng != NULL)
        p = x->eng; /* the engine whose MHD daemon has the connection */
    pthread_mutex_lock(&p->qmu);
    if (x->cmds == 0) {
        gw_xfer_retain(x);
        x->cmd_next = p->queue;
        p->queue = x;
    }
    x->cmds |= cmd;
    pthread_mutex_unlock(&p->qmu);
    wake(p);
}

void gw_proxy_submit(struct gw_proxy *p, struct gw_xfer *x)
{
    command(p, x, GW_CMD_START);
}

void gw_proxy_unpause(struct gw_proxy *p, struct gw_xfer *x)
{
    command(p, x, GW_CMD_UNPAUSE);
}

void gw_proxy_cancel(struct gw_proxy *p, struct gw_xfer *x)
{
    command(p, x, GW_CMD_CANCEL);
}

static void wake_now(struct gw_proxy *p)
{
    uint64_t one = 1;

    atomic_store(&p->wake_pending, 1);
    if (write(p->wake_fd, &one, sizeof(one)) < 0)
        log_warn(NULL, "gateway: eventfd write failed");
}

void gw_proxy_close(struct gw_proxy *p)
{
    for (; p != NULL; p = p->next_engine) {
        atomic_store(&p->closing, 1);
        wake_now(p);
    }
}

struct gw_proxy *gw_proxy_current(void)
{
    return tl_engine;
}

MHD_socket gw_proxy_quiesce(struct gw_proxy *p)
{
    struct timespec nap = {0, 5 * 1000 * 1000};
    MHD_socket fd = MHD_INVALID_SOCKET;
    struct gw_proxy *e;
    double deadline = httpd_now() + 5.0;

    for (e = p; e != NULL; e = e->next_engine) {
        if (e->mhd == NULL || !e->started)
            continue;
        atomic_store(&e->quiesce_req, 1);
        wake_now(e);
    }
    for (e = p; e != NULL; e = e->next_engine) {
        if (e->mhd == NULL || !e->started)
            continue;
        while (atomic_load(&e->quiesce_req) != 2 && httpd_now() < deadline)
            nanosleep(&nap, NULL);
        if (atomic_load(&e->quiesce_req) == 2 &&
            e->quiesced != MHD_INVALID_SOCKET)
            fd = e->quiesced;
    }
    return fd;
}


const char *gw_proxy_internal_token(const struct gw_proxy *p)
{
    return p->internal_token;
}

void gw_proxy_set_pools(struct gw_proxy *p, struct gw_pools *ps)
{
    pthread_mutex_lock(&p->qmu);
    p->pools = ps;
    pthread_mutex_unlock(&p->qmu);
    wake(p);
}

/*
 * Upstream sockets in the engine's epoll set. A socket whose transfer
 * ended (CURL_POLL_REMOVE) stays registered, "parked", instead of being
 * deleted: the next request on that kept-alive connection costs one
 * EPOLL_CTL_MOD instead of a DEL and an ADD. (Not zero: should a socket
 * ever be closed behind gw_proxy_close_socket's back, MOD fails with
 * ENOENT and the new socket with that number is added, where skipping
 * would hang it.) A parked socket that reports an event (the upstream
 * closed it) is deleted then; curl closing a socket goes through
 * gw_proxy_close_socket, which forgets it.
 */
#define GW_FD_PARKED 0x80000000u /* transfer over, still registered */
#define GW_FD_REG 0x40000000u    /* in the epoll set */
#define GW_FD_EVENTS ((unsigned)(EPOLLIN | EPOLLOUT))

static unsigned *fd_slot(struct gw_proxy *p, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if ((size_t)s >= p->nfdev) {
        size_t n = p->nfdev ? p->nfdev : 1024;
        unsigned *nv;

        while (n <= (size_t)s)
            n *= 2;
        nv = realloc(p->fdev, n * sizeof(*nv));
        if (nv == NULL) {
            fputs("gateway: out of memory\n", stderr);
            abort();
        }
        memset(nv + p->nfdev, 0, (n - p->nfdev) * sizeof(*nv));
        p->fdev = nv;
        p->nfdev = n;
    }
    return &p->fdev[s];
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in epoll. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct gw_proxy *p = userp;
    struct epoll_event ev;
    unsigned *slot = fd_slot(p, s), want;

    (void)e;
    (void)socketp;
    if (slot == NULL)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (*slot != 0)
            *slot |= GW_FD_PARKED;
        return 0;
    }
    want = ((what & CURL_POLL_IN) ? (unsigned)EPOLLIN : 0u) |
           ((what & CURL_POLL_OUT) ? (unsigned)EPOLLOUT : 0u);
    if (*slot != 0 && !(*slot & GW_FD_PARKED) &&
        (*slot & GW_FD_EVENTS) == want)
        return 0; /* interest unchanged */
    memset(&ev, 0, sizeof(ev));
    ev.data.fd = s;
    ev.events = want;
    if (*slot == 0) {
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(p->ep, EPOLL_CTL_MOD, s, &ev);
    } else if (epoll_ctl(p->ep, EPOLL_CTL_MOD, s, &ev) != 0 &&
               errno == ENOENT) {
        epoll_ctl(p->ep, EPOLL_CTL_ADD, s, &ev);
    }
    *slot = GW_FD_REG | want;
    return 0;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl closes an upstream socket. */
int gw_proxy_close_socket(void *clientp, curl_socket_t s)
{
    struct gw_proxy *p = clientp;
    unsigned *slot = fd_slot(p, s);

    if (slot != NULL && *slot != 0) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, s, NULL);
        *slot = 0;
    }
    return close(s);
}

/* An event on a parked socket: stop watching it. 1 if it was parked. */
static int fd_unpark_event(struct gw_proxy *p, int fd)
{
    unsigned *slot = fd_slot(p, fd);

    if (slot == NULL || !(*slot & GW_FD_PARKED))
        return 0;
    epoll_ctl(p->ep, EPOLL_CTL_DEL, fd, NULL);
    *slot = 0;
    return 1;
}

/* CURLMOPT_TIMERFUNCTION: when curl next wants socket_action(TIMEOUT). */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct gw_proxy *p = userp;

    (void)m;
    p->timer_at = timeout_ms < 0 ? -1.0 : httpd_now() + timeout_ms / 1000.0;
    return 0;
}

/* Runs the MHD daemon's pending work and notes when it wants the next
 * turn (MHD_get_timeout: idle timeouts, or 0 when connections are still
 * ready after an edge-triggered wake-up). */
static void mhd_turn(struct gw_proxy *p, double *mhd_at)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;

    MHD_run(p->mhd);
    if (MHD_get_timeout(p->mhd, &ms) == MHD_YES)
        *mhd_at = httpd_now() + (double)ms / 1000.0;
    else
        *mhd_at = httpd_now() + 1.0;
}

/* The engine's thread stops: abort what runs (so no MHD connection stays
 * suspended), stop its MHD daemon here, then settle the commands the
 * completion callbacks queued. */
static void loop_exit(struct gw_proxy *p)
{
    if (p->mhd == NULL)
        return;
    gw_xfer_run_commands(p);
    gw_xfer_client_sweep(p, 1);
    MHD_run(p->mhd);
    MHD_stop_daemon(p->mhd);
    p->mhd = NULL;
    gw_xfer_run_commands(p);
}

static void *loop(void *arg)
{
    struct gw_proxy *p = arg;
    struct epoll_event evs[256];
    double next_sweep = 0, next_client_sweep = 0, mhd_at = 0;
    int running = 0;

    tl_engine = p;
    while (!atomic_load(&p->stop)) {
        CURLMsg *m;
        int left, n, i;
        long wait_ms;

        atomic_store(&p->wake_pending, 0);
        if (p->mhd != NULL && atomic_load(&p->quiesce_req) == 1) {
            p->quiesced = MHD_quiesce_daemon(p->mhd);
            atomic_store(&p->quiesce_req, 2);
        }
        gw_xfer_run_commands(p);
        wait_ms = gw_health_round(p);
        if (wait_ms > 1000)
            wait_ms = 1000;
        if (p->fb_running > 0 && wait_ms > 10)
            wait_ms = 10;
        if (p->running != NULL && wait_ms > 500)
            wait_ms = 500; /* the client sweep */
        if (p->timer_at >= 0) {
            long t = (long)((p->timer_at - httpd_now()) * 1000.0);

            if (t < wait_ms)
                wait_ms = t < 0 ? 0 : t;
        }
        if (p->mhd != NULL) {
            long t = (long)((mhd_at - httpd_now()) * 1000.0);

            if (t < wait_ms)
                wait_ms = t < 0 ? 0 : t;
        }
        n = epoll_wait(p->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])),
                       (int)wait_ms);
        for (i = 0; i < n; i++) {
            int fd = evs[i].data.fd, flags = 0;

            if (fd == p->wake_fd) {
                uint64_t v;

                if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    log_warn(NULL, "gateway: eventfd read failed");
                continue;
            }
            if (p->mhd != NULL && fd == p->mhd_fd)
                continue; /* MHD_run below */
            if (fd_unpark_event(p, fd))
                continue;
            if (evs[i].events & EPOLLIN)
                flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(p->multi, fd, flags, &running);
        }
        if (p->timer_at >= 0 && httpd_now() >= p->timer_at) {
            p->timer_at = -1;
            curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0,
                                     &running);
        }
        if (httpd_now() >= next_sweep) {
            next_sweep = httpd_now() + 0.01;
            gw_xfer_first_byte_sweep(p, httpd_now());
        }
        if (atomic_load(&p->closing) && p->running != NULL) {
            gw_xfer_client_sweep(p, 1);
        } else if (httpd_now() >= next_client_sweep) {
            next_client_sweep = httpd_now() + GW_SWEEP_EVERY;
            gw_xfer_client_sweep(p, 0);
        }
        while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
            struct gw_easy_tag *tag = NULL;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
                              (char **)&tag);
            if (tag != NULL && tag->kind == GW_EASY_XFER)
                gw_xfer_done(p, tag->obj, m->data.result);
            else if (tag != NULL && tag->kind == GW_EASY_HEALTH)
                gw_health_done(p, tag->obj, m->data.result, 1);
        }
        /* Every turn, and last: a connection resumed by a curl callback
         * above does not wake MHD's epoll fd (external mode), and the
         * commands MHD's callbacks queue (start, unpause, cancel) then
         * run at the top of the next turn, before any wait. */
        if (p->mhd != NULL)
            mhd_turn(p, &mhd_at);
    }
    loop_exit(p);
    return NULL;
}

struct gw_proxy *gw_proxy_new(const struct gw_proxy_opts *o)
{
    static const char *const req_labels[] = {"upstream", "color", "status"};
    static const char *const dur_labels[] = {"upstream", "color"};
    struct gw_proxy *p;
    sigset_t set;
    long host_conns = o->max_host_conns > 0 ? o->max_host_conns : 256;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->qmu, NULL);
    p->ep = -1;
    p->wake_fd = -1;
    p->mhd_fd = -1;
    p->quiesced = MHD_INVALID_SOCKET;
    p->host_conns = host_conns;
    p->timer_at = -1;
    p->retry_tokens = GW_RETRY_RESERVE / 2;
    p->connect_timeout_ms = o->connect_timeout_ms;
    if (o->internal_token != NULL && o->internal_token[0] != '\0') {
        p->internal_token = strdup(o->internal_token);
        if (p->internal_token == NULL)
            goto fail;
    }
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->ep < 0 || p->wake_fd < 0)
        goto fail;
    {
        struct epoll_event ev;

        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.fd = p->wake_fd;
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wake_fd, &ev) != 0)
            goto fail;
    }
    p->multi = curl_multi_init();
    if (p->multi == NULL ||
        curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_socket) !=
            CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_timer) !=
            CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          host_conns) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS,
                          host_conns * 4) != CURLM_OK)
        goto fail;
    p->requests = metrics_family(
        metrics_default(), METRICS_COUNTER, "gateway_upstream_requests_total",
        "Requests forwarded to upstreams, by answered status.", 3, req_labels,
        NULL, 0);
    p->duration = metrics_family(
        metrics_default(), METRICS_HISTOGRAM,
        "gateway_upstream_duration_seconds",
        "Time from forwarding a request to the end of its upstream answer.",
        2, dur_labels, NULL, 0);
    p->retries = metrics_family(
        metrics_default(), METRICS_COUNTER, "gateway_upstream_retries_total",
        "Requests retried on another target after a connect failure.", 2,
        dur_labels, NULL, 0);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The thread starts in gw_proxy_attach. */
    return p;

fail:
    if (p->multi != NULL)
        curl_multi_cleanup(p->multi);
    if (p->ep >= 0)
        close(p->ep);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    free(p->internal_token);
    pthread_mutex_destroy(&p->qmu);
    free(p);
    return NULL;
}

/* Adds `d`'s epoll fd to the engine's epoll set. 0 or -1. */
static int engine_bind(struct gw_proxy *e, struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event ev;

    if (di == NULL || di->epoll_fd < 0)
        return -1;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = di->epoll_fd;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, di->epoll_fd, &ev) != 0)
        return -1;
    e->mhd = d;
    e->mhd_fd = di->epoll_fd;
    return 0;
}

int gw_proxy_attach(struct gw_proxy *p, struct MHD_Daemon **daemons,
                    int n)
{
    struct gw_proxy_opts o;
    struct gw_proxy **tail = &p->next_engine, *e;
    int i;

    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = p->connect_timeout_ms;
    o.internal_token = p->internal_token;
    o.max_host_conns = p->host_conns;
    for (i = 0; i < n; i++) {
        if (i == 0) {
            e = p;
        } else {
            e = gw_proxy_new(&o);
            if (e == NULL)
                return -1;
            *tail = e;
            tail = &e->next_engine;
        }
        if (engine_bind(e, daemons[i]) != 0)
            return -1;
    }
    for (e = p; e != NULL; e = e->next_engine) {
        if (pthread_create(&e->thread, NULL, loop, e) != 0)
            return -1;
        e->started = 1;
    }
    return 0;
}

void gw_proxy_halt(struct gw_proxy *p)
{
    struct gw_proxy *e;

    for (e = p; e != NULL; e = e->next_engine)
        if (e->started) {
            atomic_store(&e->stop, 1);
            wake_now(e);
        }
    for (e = p; e != NULL; e = e->next_engine)
        if (e->started) {
            pthread_join(e->thread, NULL);
            e->started = 0;
        }
}

static void engine_free(struct gw_proxy *p);

void gw_proxy_free(struct gw_proxy *p)
{
    struct gw_proxy *e, *next;

    if (p == NULL)
        return;
    gw_proxy_halt(p);
    for (e = p; e != NULL; e = next) {
        next = e->next_engine;
        engine_free(e);
        if (e != p)
            curl_global_cleanup(); /* pairs its gw_proxy_new's init */
    }
}

static void engine_free(struct gw_proxy *p)
{
    /* Whatever is left is finished here, on what is now the only thread
     * touching the multi. */
    gw_xfer_run_commands(p);
    while (p->running != NULL)
        gw_xfer_finish(p, p->running, CURLE_ABORTED_BY_CALLBACK, 0);
    while (p->checks != NULL)
        gw_health_done(p, p->checks, CURLE_ABORTED_BY_CALLBACK, 0);
    while (p->nspare > 0)
        curl_easy_cleanup(p->spare[--p->nspare]);
    curl_multi_cleanup(p->multi);
    close(p->ep);
    close(p->wake_fd);
    free(p->internal_token);
    free(p->fdev);
    pthread_mutex_destroy(&p->qmu);
    free(p);
}
