/*
 * proxy_xfer — the upstream side of one exchange, on its engine's thread:
 * the libcurl callbacks that stream both bodies through the xfer's rings
 * (pausing and resuming either side), building the easy handle for each
 * attempt, retrying a failed connect on another target, finishing a
 * transfer (breaker outcome, metrics, waking the MHD connection), the
 * command list MHD threads fill (start / unpause / cancel), and the
 * sweeps for first-byte timeouts and clients that left. See
 * proxy_int.h for which thread owns what.
 */
#include "proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log/log.h"
#include "metrics/metrics.h"

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
    line = gw_xmalloc(nl + 1);
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

/* A new easy handle with the options every proxied transfer shares;
 * NULL when out of memory. */
static CURL *easy_new(struct gw_proxy *p)
{
    CURL *h = curl_easy_init();
    CURLcode rc = CURLE_OK;

    if (h == NULL)
        return NULL;
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(h, opt, val);                              \
    } while (0)
    SET(CURLOPT_CLOSESOCKETFUNCTION, gw_proxy_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, p);
    SET(CURLOPT_BUFFERSIZE, GW_CURL_BUFFER);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_TCP_NODELAY, 1L);
#undef SET
    if (rc != CURLE_OK) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
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
    url = gw_xmalloc(tlen + plen + 1);
    memcpy(url, x->tgt->url, tlen);
    memcpy(url + tlen, x->path_query, plen + 1);
    h = x->easy;
    if (h == NULL && p->nspare > 0)
        h = p->spare[--p->nspare];
    if (h == NULL && (h = easy_new(p)) == NULL) {
        free(url);
        return -1;
    }
    x->easy = h;
    x->errbuf[0] = '\0';
    /* No curl_easy_reset(): the constant options stay as easy_new() set
     * them, and everything a previous transfer on this handle may have
     * changed is set again below. */
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(h, opt, val);                              \
    } while (0)
    SET(CURLOPT_HTTPGET, 1L); /* clears NOBODY and UPLOAD */
    SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, &x->tag);
    SET(CURLOPT_HTTPHEADER, x->req_headers);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_READDATA, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || x->has_body) {
        /* CURLOPT_UPLOAD alone would send PUT. */
        SET(CURLOPT_CUSTOMREQUEST, method);
        if (x->has_body || strcmp(method, "POST") == 0 ||
            strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
            SET(CURLOPT_UPLOAD, 1L);
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
void gw_xfer_finish(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc,
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

void gw_xfer_done(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc)
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
    gw_xfer_finish(p, x, rc, 1);
}

void gw_xfer_run_commands(struct gw_proxy *p)
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
            x->t_start = httpd_now();
            if (atomic_load(&p->closing))
                gw_xfer_finish(p, x, CURLE_ABORTED_BY_CALLBACK, 1);
            else if (attempt_setup(p, x) != 0)
                gw_xfer_finish(p, x, CURLE_OUT_OF_MEMORY, 1);
        }
        if ((cmds & GW_CMD_CANCEL) && x->easy != NULL)
            gw_xfer_finish(p, x, CURLE_ABORTED_BY_CALLBACK, 1);
        else if ((cmds & GW_CMD_UNPAUSE) && x->easy != NULL)
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        gw_xfer_release(x); /* the command's reference */
    }
}

/*
 * First-byte timeouts: a transfer whose route sets one and that has no
 * status line yet after it is finished as a timeout (504). Scanned at most
 * every 10 ms, so a timeout fires within 10 ms of its deadline.
 */
void gw_xfer_first_byte_sweep(struct gw_proxy *p, double now)
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
        gw_xfer_finish(p, x, CURLE_OPERATION_TIMEDOUT, 1);
    }
}

/* 1 when the client of a suspended connection has closed or reset its
 * socket. A suspended connection is not polled by MHD, so without this an
 * idle stream (SSE waiting for its next event) would keep its upstream
 * transfer, and the gateway's drain, waiting after the client left.
 * Pipelined bytes (recv > 0) mean the client is still there. */
static int peer_closed(int fd)
{
    char c;
    ssize_t n;

    if (fd < 0)
        return 0;
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 ||
           (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR);
}

/*
 * Aborts transfers whose client left while its connection was suspended
 * waiting for the upstream (headers or body bytes); with `all` (closing)
 * every running transfer. The abort wakes the connection: MHD then fails
 * the write and completes the request (status 499 in the access log).
 * Transfers younger than GW_SWEEP_AGE are skipped: most finish before
 * any check would pay off, and at 1,000 in flight a peek each would cost
 * more syscalls than it saves.
 */
void gw_xfer_client_sweep(struct gw_proxy *p, int all)
{
    struct gw_xfer *x = p->running, *next;
    double old = httpd_now() - GW_SWEEP_AGE;

    for (; x != NULL; x = next) {
        int gone;

        next = x->run_next;
        if (!all && x->t_start > old)
            continue;
        pthread_mutex_lock(&x->mu);
        gone = !all && (x->wait == GW_WAIT_DATA ||
                        x->wait == GW_WAIT_HEADERS) &&
               peer_closed(x->client_fd);
        if (gone)
            x->client_gone = 1;
        pthread_mutex_unlock(&x->mu);
        if (gone || all)
            gw_xfer_finish(p, x, CURLE_ABORTED_BY_CALLBACK, 1);
    }
}
