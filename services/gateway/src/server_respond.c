/*
 * server_respond — the answer of a proxied request: the upstream's status
 * and kept headers with the body streamed out of the down ring (the
 * connection suspended while the ring is empty), or a failed transfer
 * mapped to the error shape (see proxy.h). Runs on the connection's MHD
 * thread; see server_int.h and xfer.h for ownership.
 */
#include "gateway.h"
#include "admin.h"
#include "edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "server_int.h"
#include "xfer.h"

#define GW_BLOCK 32768

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

/*
 * Whether the whole body of a finished, successful transfer sits in the
 * down ring (so it can be answered from memory). HEAD and bodiless
 * statuses keep the callback path, which sends the upstream's
 * Content-Length unchanged. Call with x->mu held.
 */
static int whole_body(const struct gw_xfer *x, int status, int head)
{
    if (!x->done || x->result != CURLE_OK || head)
        return 0;
    if (status < 200 || status == 204 || status == 304)
        return 0;
    return x->resp_length < 0 || (uint64_t)x->resp_length == x->down.len;
}

/* The down ring's bytes as a response MHD owns; NULL when out of memory.
 * Call with x->mu held. */
static struct MHD_Response *body_response(struct gw_xfer *x)
{
    size_t len = x->down.len;
    char *flat = malloc(len > 0 ? len : 1);
    struct MHD_Response *resp;

    if (flat == NULL)
        return NULL;
    x->st.resp_bytes += gw_ring_get(&x->down, flat, len);
    resp = MHD_create_response_from_buffer(len, flat, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL)
        free(flat);
    return resp;
}

/* Status and headers are known (or the transfer failed): answer. */
void gw_serve_respond(struct gw_xfer *x)
{
    struct MHD_Response *resp;
    uint64_t size;
    int status, head = strcmp(x->st.r.method, "HEAD") == 0;
    int stream = 0, whole = 0;
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
    if (whole_body(x, status, head)) {
        /* The upstream has already finished: hand MHD the body itself,
         * so the status line, headers and body leave in one sendmsg()
         * instead of a header send plus one per reader call. */
        resp = body_response(x);
        whole = 1;
    } else {
        /* MHD allocates a block per response: no bigger than the body. */
        resp = MHD_create_response_from_callback(
            size, size != MHD_SIZE_UNKNOWN && size < GW_BLOCK
                      ? (size_t)(size > 0 ? size : 1)
                      : GW_BLOCK,
            reader, x, reader_free);
    }
    if (resp == NULL) {
        pthread_mutex_unlock(&x->mu);
        httpd_error(&x->st.r, 500, "internal_error", "out of memory");
        return;
    }
    if (!whole)
        gw_xfer_retain(x); /* released by reader_free */
    for (i = 0; i < x->nresp_hdrs; i++) {
        const char *name = x->resp_hdrs[i];
        const char *value = name + strlen(name) + 1;

        if (strcasecmp(name, "Content-Type") == 0) {
            MHD_add_response_header(resp, name, value);
            if (strncasecmp(value, "text/event-stream", 17) == 0)
                stream = 1;
        } else if (gw_proxy_response_header_kept(name)) {
            MHD_add_response_header(resp, name, value);
        }
    }
    pthread_mutex_unlock(&x->mu);
    if (stream || (!whole && size == MHD_SIZE_UNKNOWN))
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    send_resp(x, status, resp);
}
