/*
 * The streaming proxy engine: one libcurl multi handle driven by one
 * thread with the multi_socket API over epoll (so the cost of a loop turn
 * does not grow with the number of upstream connections). MHD threads
 * hand transfers over through a small command list (start / unpause /
 * cancel) and an eventfd, written only when no wake-up is pending;
 * everything that touches an easy handle happens on this thread, as
 * libcurl requires.
 * Upstream connections live in the multi's connection cache and are
 * reused across requests.
 */
#include "proxy.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "log/log.h"
#include "pool.h"
#include "metrics/metrics.h"
#include "xfer.h"

/* Easy handles kept for reuse: their buffers are allocated once. */
#define GW_SPARE_EASY 256

struct gw_proxy {
    CURLM *multi;
    int ep;                   /* epoll over curl's sockets + wake_fd */
    int wake_fd;              /* eventfd: commands are waiting */
    atomic_int wake_pending;  /* 1: wake_fd written, not yet consumed */
    double timer_at;          /* (curl thread) curl's timeout, <0 none */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_long active;
    long connect_timeout_ms;
    char *internal_token;
    pthread_mutex_t qmu;      /* guards queue and every xfer's cmds */
    struct gw_xfer *queue;    /* xfers with pending commands */
    struct gw_xfer *running;  /* (curl thread) xfers in the multi */
    struct gw_pools *pools;   /* (qmu) for health checks, may be NULL */
    struct gw_hc *checks;     /* (curl thread) health checks running */
    double retry_tokens;      /* (curl thread) retry budget */
    CURL *spare[GW_SPARE_EASY]; /* (curl thread) reset handles to reuse */
    int nspare;
    long fb_running;          /* (curl thread) running with a first-byte
                                 timeout: the loop then wakes every 10 ms */
    struct metrics_family *requests;
    struct metrics_family *duration;
    struct metrics_family *retries;
};

/* One active health check of one target. */
struct gw_hc {
    struct gw_easy_tag tag;
    struct gw_target *t;      /* a reference */
    CURL *easy;
    struct gw_hc *next;
};

/* Retry budget: each new request earns a fifth of a retry, up to a
 * reserve of GW_RETRY_RESERVE, so retries stay near 20% of the traffic
 * when a target fails instead of doubling the load. */
#define GW_RETRY_EARN 0.2
#define GW_RETRY_RESERVE 20.0
#define GW_MAX_ATTEMPTS 3

static void *xmalloc(size_t n)
{
    void *p = malloc(n);

    if (p == NULL) {
        fputs("gateway: out of memory\n", stderr);
        abort();
    }
    return p;
}

void gw_ring_init(struct gw_ring *r, size_t cap)
{
    r->buf = xmalloc(cap);
    r->cap = cap;
    r->head = 0;
    r->len = 0;
}

void gw_ring_free(struct gw_ring *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

void gw_ring_grow(struct gw_ring *r, size_t cap)
{
    char *nb;
    size_t len = r->len;

    if (cap <= r->cap)
        return;
    nb = xmalloc(cap);
    gw_ring_get(r, nb, len);
    free(r->buf);
    r->buf = nb;
    r->cap = cap;
    r->head = 0;
    r->len = len;
}

size_t gw_ring_put(struct gw_ring *r, const char *src, size_t n)
{
    size_t done = 0;

    if (n > r->cap - r->len)
        n = r->cap - r->len;
    while (done < n) {
        size_t tail = (r->head + r->len) % r->cap;
        size_t chunk = r->cap - tail;

        if (chunk > n - done)
            chunk = n - done;
        memcpy(r->buf + tail, src + done, chunk);
        r->len += chunk;
        done += chunk;
    }
    return n;
}

size_t gw_ring_get(struct gw_ring *r, char *dst, size_t n)
{
    size_t done = 0;

    if (n > r->len)
        n = r->len;
    while (done < n) {
        size_t chunk = r->cap - r->head;

        if (chunk > n - done)
            chunk = n - done;
        memcpy(dst + done, r->buf + r->head, chunk);
        r->head = (r->head + chunk) % r->cap;
        r->len -= chunk;
        done += chunk;
    }
    if (r->len == 0)
        r->head = 0;
    return n;
}

void gw_xfer_wake_locked(struct gw_xfer *x, enum gw_wait why)
{
    if (x->wait == GW_WAIT_NONE || (why != GW_WAIT_NONE && x->wait != why))
        return;
    x->wait = GW_WAIT_NONE;
    MHD_resume_connection(x->conn);
}

static void wake(struct gw_proxy *p)
{
    uint64_t one = 1;

    if (atomic_exchange(&p->wake_pending, 1) == 0 &&
        write(p->wake_fd, &one, sizeof(one)) < 0)
        atomic_store(&p->wake_pending, 0);
}

/* Queues command bits for the curl thread and wakes it. */
static void command(struct gw_proxy *p, struct gw_xfer *x, unsigned cmd)
{
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

long gw_proxy_active(const struct gw_proxy *p)
{
    return atomic_load(&((struct gw_proxy *)p)->active);
}

const char *gw_proxy_internal_token(const struct gw_proxy *p)
{
    return p->internal_token;
}

/* Response body bytes: into the down ring, or pause when it is full. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct gw_xfer *x = arg;
    size_t len = size * n;

    pthread_mutex_lock(&x->mu);
    if (x->client_gone) {
        pthread_mutex_unlock(&x->mu);
        return 0; /* aborts the transfer */
    }
    if (gw_ring_space(&x->down) < len && x->down.cap < GW_RING_DOWN) {
        size_t cap = x->down.cap ? x->down.cap : GW_RING_DOWN_MIN;

        while (cap < x->down.len + len && cap < GW_RING_DOWN)
            cap *= 2;
        gw_ring_grow(&x->down, cap);
    }
    if (len > x->down.cap && x->down.len == 0) {
        /* A chunk bigger than the ring (libcurl flushing what it held
         * while paused): grow once rather than stall forever. */
        gw_ring_grow(&x->down, len);
    }
    if (gw_ring_space(&x->down) < len) {
        x->write_paused = 1;
        pthread_mutex_unlock(&x->mu);
        return CURL_WRITEFUNC_PAUSE;
    }
    gw_ring_put(&x->down, data, len);
    gw_xfer_wake_locked(x, GW_WAIT_DATA);
    pthread_mutex_unlock(&x->mu);
    return len;
}

/* Request body bytes for the upstream, from the up ring. */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct gw_xfer *x = arg;
    size_t got;

    pthread_mutex_lock(&x->mu);
    if (x->client_gone) {
        pthread_mutex_unlock(&x->mu);
        return CURL_READFUNC_ABORT;
    }
    got = gw_ring_get(&x->up, buf, size * n);
    if (got > 0) {
        x->read_any = 1;
        gw_xfer_wake_locked(x, GW_WAIT_UP_SPACE);
    } else if (!x->up_eof) {
        x->read_paused = 1;
        pthread_mutex_unlock(&x->mu);
        return CURL_READFUNC_PAUSE;
    }
    pthread_mutex_unlock(&x->mu);
    return got;
}

static void hdr_clear_locked(struct gw_xfer *x)
{
    size_t i;

    for (i = 0; i < x->nresp_hdrs; i++)
        free(x->resp_hdrs[i]);
    x->nresp_hdrs = 0;
    x->resp_length = -1;
}

/* One header line; a status line starts a new response (after a 1xx). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct gw_xfer *x = arg;
    size_t len = size * n, nl = len;
    char *line, *colon, *value;

    while (nl > 0 && (data[nl - 1] == '\r' || data[nl - 1] == '\n'))
        nl--;
    pthread_mutex_lock(&x->mu);
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', nl);
        char *end;

        hdr_clear_locked(x);
        x->status = sp != NULL ? strtol(sp + 1, &end, 10) : 0;
        goto out;
    }
    if (nl == 0) {
        if (x->status >= 200) {
            x->headers_done = 1;
            gw_xfer_wake_locked(x, GW_WAIT_HEADERS);
        }
        goto out;
    }
    if (data[0] == ' ' || data[0] == '\t' || x->headers_done)
        goto out; /* obsolete folding, or trailers */
    line = xmalloc(nl + 1);
    memcpy(line, data, nl);
    line[nl] = '\0';
    colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        free(line);
        goto out;
    }
    *colon = '\0';
    value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    memmove(colon + 1, value, strlen(value) + 1);
    if (strcasecmp(line, "Content-Length") == 0) {
        char *end;
        long long cl = strtoll(colon + 1, &end, 10);

        if (end != colon + 1 && *end == '\0' && cl >= 0)
            x->resp_length = cl;
    }
    if (x->nresp_hdrs == x->cap_resp_hdrs) {
        char **nv;

        x->cap_resp_hdrs = x->cap_resp_hdrs ? x->cap_resp_hdrs * 2 : 16;
        nv = realloc(x->resp_hdrs, x->cap_resp_hdrs * sizeof(*nv));
        if (nv == NULL) {
            fputs("gateway: out of memory\n", stderr);
            abort();
        }
        x->resp_hdrs = nv;
    }
    x->resp_hdrs[x->nresp_hdrs++] = line;
out:
    pthread_mutex_unlock(&x->mu);
    return len;
}

/* Builds the easy handle for the next attempt. 0, or -1 (then done). */
static int attempt_setup(struct gw_proxy *p, struct gw_xfer *x)
{
    const char *method = x->st.r.method;
    long timeout_ms = x->route->timeout_ms -
                      (long)((httpd_now() - x->t_start) * 1000.0);
    long connect_ms;
    size_t tlen, plen;
    char *url;
    CURLcode rc = CURLE_OK;
    CURL *h;

    if (timeout_ms < 1)
        timeout_ms = 1;
    connect_ms = x->route->connect_timeout_ms > 0
                     ? x->route->connect_timeout_ms
                     : p->connect_timeout_ms;
    if (connect_ms > timeout_ms)
        connect_ms = timeout_ms;
    tlen = strlen(x->tgt->url);
    plen = strlen(x->path_query);
    url = xmalloc(tlen + plen + 1);
    memcpy(url, x->tgt->url, tlen);
    memcpy(url + tlen, x->path_query, plen + 1);
    h = x->easy;
    if (h == NULL)
        h = p->nspare > 0 ? p->spare[--p->nspare] : curl_easy_init();
    if (h == NULL) {
        free(url);
        return -1;
    }
    curl_easy_reset(h);
    x->easy = h;
    x->errbuf[0] = '\0';
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(h, opt, val);                              \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, &x->tag);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_HTTPHEADER, x->req_headers);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_TCP_NODELAY, 1L);
    if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || x->has_body) {
        /* CURLOPT_UPLOAD alone would send PUT. */
        SET(CURLOPT_CUSTOMREQUEST, method);
        if (x->has_body || strcmp(method, "POST") == 0 ||
            strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
            SET(CURLOPT_UPLOAD, 1L);
            SET(CURLOPT_READFUNCTION, on_read);
            SET(CURLOPT_READDATA, x);
            /* Known length: sent as Content-Length; else chunked. */
            SET(CURLOPT_INFILESIZE_LARGE,
                (curl_off_t)(x->has_body ? x->content_length : 0));
        }
    }
#undef SET
    free(url); /* libcurl keeps its own copy of CURLOPT_URL */
    if (rc != CURLE_OK)
        return -1;
    if (curl_multi_add_handle(p->multi, h) != CURLM_OK)
        return -1;
    x->attempts++;
    return 0;
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

/* Answered status for metrics: the upstream's, or what the error maps to. */
static int answered_status(CURLcode rc, long status, int headers_done)
{
    if (headers_done)
        return (int)status;
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return 502;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return 504;
    return 502;
}

static void count(struct gw_proxy *p, struct gw_xfer *x, int status)
{
    char st[8];
    const char *req[3] = {x->upstream->name, x->color, st};
    const char *dur[2] = {x->upstream->name, x->color};

    snprintf(st, sizeof(st), "%d", status);
    if (p->requests != NULL)
        metrics_inc_labels(p->requests, req, 1);
    if (p->duration != NULL)
        metrics_observe_labels(p->duration, dur,
                               httpd_now() - x->t_start);
}

/* The breaker's view: 1 success, 0 failure, -1 neither (cancelled). */
static int outcome(CURLcode rc, long status, int headers_done, int gone)
{
    if (rc != CURLE_OK)
        return gone ? -1 : 0;
    if (!headers_done)
        return 0;
    return status == 502 || status == 503 || status == 504 ? 0 : 1;
}

/* Drops the transfer from the multi and finishes it with `rc`. */
static void finish(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc,
                   int counted)
{
    struct gw_target *t;
    int headers_done, gone;
    long status;

    if (x->easy != NULL) {
        curl_multi_remove_handle(p->multi, x->easy);
        if (p->nspare < GW_SPARE_EASY && !atomic_load(&p->stop))
            p->spare[p->nspare++] = x->easy;
        else
            curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    if (x->route->first_byte_timeout_ms > 0)
        p->fb_running--;
    if (x->run_prev != NULL)
        x->run_prev->run_next = x->run_next;
    else
        p->running = x->run_next;
    if (x->run_next != NULL)
        x->run_next->run_prev = x->run_prev;
    x->run_prev = x->run_next = NULL;
    pthread_mutex_lock(&x->mu);
    x->done = 1;
    x->result = rc;
    headers_done = x->headers_done;
    status = x->status;
    gone = x->client_gone;
    t = x->tgt;
    x->tgt = NULL;
    gw_xfer_wake_locked(x, GW_WAIT_NONE);
    pthread_mutex_unlock(&x->mu);
    if (t != NULL)
        gw_target_done(t, outcome(rc, status, headers_done, gone),
                       httpd_now());
    if (rc != CURLE_OK && x->errbuf[0] == '\0')
        snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(rc));
    if (counted)
        count(p, x, answered_status(rc, status, headers_done));
    atomic_fetch_sub(&p->active, 1);
    gw_xfer_release(x);
}

/* Moves a transfer whose connect failed to another target. 1 if so. */
static int retry(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc)
{
    const struct gw_upstream *up = x->upstream;
    struct gw_target *next = NULL, *failed = x->tgt;
    double now = httpd_now();

    if (x->attempts >= GW_MAX_ATTEMPTS || !x->idempotent || x->read_any ||
        !connect_failed(x->easy, rc) || failed == NULL ||
        now - x->t_start >= x->route->timeout_ms / 1000.0 ||
        p->retry_tokens < 1.0)
        return 0;
    if (gw_pool_pick(up->pool, x->sticky_key, failed, now, &next) !=
        GW_PICK_OK)
        return 0;
    p->retry_tokens -= 1.0;
    log_kv(LOG_LVL_WARN, &x->st.r.log, "upstream target down, retrying",
           "upstream", up->name, "target", failed->url, "next", next->url,
           NULL);
    if (p->retries != NULL) {
        const char *lv[2] = {up->name, x->color};

        metrics_inc_labels(p->retries, lv, 1);
    }
    curl_multi_remove_handle(p->multi, x->easy);
    pthread_mutex_lock(&x->mu);
    x->tgt = next;
    x->color = gw_color_name(next->color);
    pthread_mutex_unlock(&x->mu);
    gw_target_done(failed, 0, now);
    return attempt_setup(p, x) == 0;
}

static void on_done(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc)
{
    int gone;

    pthread_mutex_lock(&x->mu);
    gone = x->client_gone;
    pthread_mutex_unlock(&x->mu);
    if (rc != CURLE_OK && !gone && retry(p, x, rc))
        return;
    if (rc != CURLE_OK && !gone)
        log_kv(LOG_LVL_WARN, &x->st.r.log, "upstream failed", "upstream",
               x->upstream->name, "target",
               x->tgt != NULL ? x->tgt->url : "", "error",
               x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc), NULL);
    finish(p, x, rc, 1);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Starts a check of `t` (takes over the reference). */
static void health_start(struct gw_proxy *p, struct gw_target *t,
                         const char *path, long timeout_ms)
{
    struct gw_hc *hc = calloc(1, sizeof(*hc));
    size_t len = strlen(t->url) + strlen(path) + 1;
    char *url = malloc(len);
    CURLcode rc = CURLE_OK;

    if (hc == NULL || url == NULL || (hc->easy = curl_easy_init()) == NULL)
        goto fail;
    snprintf(url, len, "%s%s", t->url, path);
    hc->tag.kind = GW_EASY_HEALTH;
    hc->tag.obj = hc;
    hc->t = t;
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(hc->easy, opt, val);                       \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, &hc->tag);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, discard);
#undef SET
    if (rc != CURLE_OK || curl_multi_add_handle(p->multi, hc->easy) !=
                              CURLM_OK)
        goto fail;
    free(url);
    t->hc_busy = 1;
    hc->next = p->checks;
    p->checks = hc;
    return;
fail:
    if (hc != NULL && hc->easy != NULL)
        curl_easy_cleanup(hc->easy);
    free(hc);
    free(url);
    gw_target_release(t);
}

static void health_done(struct gw_proxy *p, struct gw_hc *hc, CURLcode rc,
                        int record)
{
    struct gw_hc **pp;
    long status = 0;

    for (pp = &p->checks; *pp != NULL; pp = &(*pp)->next)
        if (*pp == hc) {
            *pp = hc->next;
            break;
        }
    curl_easy_getinfo(hc->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(p->multi, hc->easy);
    curl_easy_cleanup(hc->easy);
    if (record)
        gw_target_health_result(hc->t, rc == CURLE_OK && status >= 200 &&
                                           status < 400);
    hc->t->hc_busy = 0;
    gw_target_release(hc->t);
    free(hc);
}

/* Starts the check rounds that are due; returns ms until the next one. */
static long health_round(struct gw_proxy *p)
{
    struct gw_pools *ps;
    struct gw_pool *pool;
    double now = httpd_now(), next = now + 1.0;

    pthread_mutex_lock(&p->qmu);
    ps = p->pools;
    pthread_mutex_unlock(&p->qmu);
    if (ps == NULL)
        return 1000;
    pthread_mutex_lock(&ps->mu);
    for (pool = ps->head; pool != NULL; pool = pool->next) {
        struct gw_target *ts[2 * GW_POOL_MAX_TARGETS];
        char path[sizeof(pool->hc_path)];
        long timeout_ms, interval_ms;
        size_t n, i;

        pthread_mutex_lock(&pool->mu);
        snprintf(path, sizeof(path), "%s", pool->hc_path);
        timeout_ms = pool->hc_timeout_ms;
        interval_ms = pool->hc_interval_ms;
        pthread_mutex_unlock(&pool->mu);
        if (path[0] == '\0' || interval_ms <= 0)
            continue;
        if (now < pool->hc_next) {
            if (pool->hc_next < next)
                next = pool->hc_next;
            continue;
        }
        pool->hc_next = now + interval_ms / 1000.0;
        if (pool->hc_next < next)
            next = pool->hc_next;
        n = gw_pool_targets(pool, ts, sizeof(ts) / sizeof(ts[0]));
        for (i = 0; i < n; i++) {
            if (ts[i]->hc_busy)
                gw_target_release(ts[i]);
            else
                health_start(p, ts[i], path,
                             timeout_ms < interval_ms ? timeout_ms
                                                      : interval_ms);
        }
    }
    pthread_mutex_unlock(&ps->mu);
    return (long)((next - now) * 1000.0) + 1;
}

void gw_proxy_set_pools(struct gw_proxy *p, struct gw_pools *ps)
{
    pthread_mutex_lock(&p->qmu);
    p->pools = ps;
    pthread_mutex_unlock(&p->qmu);
    wake(p);
}

static void run_commands(struct gw_proxy *p)
{
    struct gw_xfer *list, *x;

    pthread_mutex_lock(&p->qmu);
    list = p->queue;
    p->queue = NULL;
    pthread_mutex_unlock(&p->qmu);
    while ((x = list) != NULL) {
        unsigned cmds;

        pthread_mutex_lock(&p->qmu);
        list = x->cmd_next;
        cmds = x->cmds;
        x->cmds = 0;
        x->cmd_next = NULL;
        pthread_mutex_unlock(&p->qmu);
        if (cmds & GW_CMD_START) {
            gw_xfer_retain(x); /* the multi's reference */
            if (x->route->first_byte_timeout_ms > 0)
                p->fb_running++;
            p->retry_tokens += GW_RETRY_EARN;
            if (p->retry_tokens > GW_RETRY_RESERVE)
                p->retry_tokens = GW_RETRY_RESERVE;
            x->run_next = p->running;
            if (p->running != NULL)
                p->running->run_prev = x;
            p->running = x;
            atomic_fetch_add(&p->active, 1);
            x->t_start = httpd_now();
            if (attempt_setup(p, x) != 0)
                finish(p, x, CURLE_OUT_OF_MEMORY, 1);
        }
        if ((cmds & GW_CMD_CANCEL) && x->easy != NULL)
            finish(p, x, CURLE_ABORTED_BY_CALLBACK, 1);
        else if ((cmds & GW_CMD_UNPAUSE) && x->easy != NULL)
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        gw_xfer_release(x); /* the command's reference */
    }
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in epoll. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct gw_proxy *p = userp;
    struct epoll_event ev;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (socketp != NULL) {
            epoll_ctl(p->ep, EPOLL_CTL_DEL, s, NULL);
            curl_multi_assign(p->multi, s, NULL);
        }
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.data.fd = s;
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (socketp == NULL) {
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(p->ep, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(p->multi, s, p); /* any non-NULL marker */
    } else {
        epoll_ctl(p->ep, EPOLL_CTL_MOD, s, &ev);
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl next wants socket_action(TIMEOUT). */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct gw_proxy *p = userp;

    (void)m;
    p->timer_at = timeout_ms < 0 ? -1.0 : httpd_now() + timeout_ms / 1000.0;
    return 0;
}

/*
 * First-byte timeouts: a transfer whose route sets one and that has no
 * status line yet after it is finished as a timeout (504). Scanned at most
 * every 10 ms, so a timeout fires within 10 ms of its deadline.
 */
static void first_byte_sweep(struct gw_proxy *p, double now)
{
    struct gw_xfer *x = p->running, *next;

    for (; x != NULL; x = next) {
        long fb = x->route->first_byte_timeout_ms;
        int waiting;

        next = x->run_next;
        if (fb <= 0 || now - x->t_start < fb / 1000.0)
            continue;
        pthread_mutex_lock(&x->mu);
        waiting = !x->headers_done;
        pthread_mutex_unlock(&x->mu);
        if (!waiting)
            continue;
        snprintf(x->errbuf, sizeof(x->errbuf),
                 "no status line within %ld ms", fb);
        log_kv(LOG_LVL_WARN, &x->st.r.log, "upstream first-byte timeout",
               "upstream", x->upstream->name, "target",
               x->tgt != NULL ? x->tgt->url : "", NULL);
        finish(p, x, CURLE_OPERATION_TIMEDOUT, 1);
    }
}

static void *loop(void *arg)
{
    struct gw_proxy *p = arg;
    struct epoll_event evs[256];
    double next_sweep = 0;
    int running = 0;

    while (!atomic_load(&p->stop)) {
        CURLMsg *m;
        int left, n, i;
        long wait_ms;

        atomic_store(&p->wake_pending, 0);
        run_commands(p);
        wait_ms = health_round(p);
        if (wait_ms > 1000)
            wait_ms = 1000;
        if (p->fb_running > 0 && wait_ms > 10)
            wait_ms = 10;
        if (p->timer_at >= 0) {
            long t = (long)((p->timer_at - httpd_now()) * 1000.0);

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
            first_byte_sweep(p, httpd_now());
        }
        while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
            struct gw_easy_tag *tag = NULL;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
                              (char **)&tag);
            if (tag != NULL && tag->kind == GW_EASY_XFER)
                on_done(p, tag->obj, m->data.result);
            else if (tag != NULL && tag->kind == GW_EASY_HEALTH)
                health_done(p, tag->obj, m->data.result, 1);
        }
    }
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
    if (pthread_create(&p->thread, NULL, loop, p) != 0)
        goto fail;
    p->started = 1;
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

void gw_proxy_free(struct gw_proxy *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        uint64_t one = 1;

        atomic_store(&p->stop, 1);
        if (write(p->wake_fd, &one, sizeof(one)) < 0)
            log_warn(NULL, "gateway: eventfd write failed");
        pthread_join(p->thread, NULL);
    }
    /* Whatever is left is finished here, on what is now the only thread
     * touching the multi. */
    run_commands(p);
    while (p->running != NULL)
        finish(p, p->running, CURLE_ABORTED_BY_CALLBACK, 0);
    while (p->checks != NULL)
        health_done(p, p->checks, CURLE_ABORTED_BY_CALLBACK, 0);
    while (p->nspare > 0)
        curl_easy_cleanup(p->spare[--p->nspare]);
    curl_multi_cleanup(p->multi);
    close(p->ep);
    close(p->wake_fd);
    free(p->internal_token);
    pthread_mutex_destroy(&p->qmu);
    free(p);
}
