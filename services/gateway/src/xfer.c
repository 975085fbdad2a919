/*
 * xfer — the pieces of struct gw_xfer both sides of the engine use: the
 * bounded byte rings and waking a suspended MHD connection (xfer.h).
 * Ring calls are made with the owning xfer's `mu` held; the ring itself
 * has no lock.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_int.h"

void *gw_xmalloc(size_t n)
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
    r->buf = gw_xmalloc(cap);
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
    nb = gw_xmalloc(cap);
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
