/*
 * xfer — one proxied exchange, shared by the two sides of the engine:
 * the libmicrohttpd callbacks (server.c, server_request.c,
 * server_respond.c) and the libcurl callbacks (proxy_xfer.c, driven by
 * proxy.c). Both run on the same engine thread (the one whose MHD daemon
 * accepted the connection, x->eng), so `mu` is never contended; it stays
 * so the rules below hold should a side ever move threads. Neither side
 * holds a whole body: the request body flows
 * through `up` and the response body through `down`, two bounded rings;
 * a full ring pauses the producer (MHD: connection suspended; curl:
 * CURL_WRITEFUNC_PAUSE / CURL_READFUNC_PAUSE) until the consumer makes
 * room and wakes it.
 *
 * Life: created by the MHD access handler; references are held by the MHD
 * connection (dropped in the completion callback), by the engine
 * while the transfer is in its multi handle, by a pending command, and by
 * the streamed MHD response (dropped in its free callback). Freed at zero.
 *
 * Locking: `mu` guards every field marked (mu). Fields marked (mhd) belong
 * to the connection's MHD thread, (curl) to the curl thread; (const) are
 * written before the xfer is shared. Lock order: x->mu, then MHD's or
 * curl's internal locks (MHD_resume_connection is called under mu); the
 * proxy's command lock is never held together with mu.
 */
#ifndef GW_XFER_H
#define GW_XFER_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "httpd/httpd_int.h"
#include "pool.h"
#include "routes.h"

/* Bounded byte queue. */
struct gw_ring {
    char *buf;
    size_t cap, head, len;
};

/* Why a suspended MHD connection waits (what should resume it). */
enum gw_wait {
    GW_WAIT_NONE = 0,
    GW_WAIT_UP_SPACE, /* request body ring full */
    GW_WAIT_HEADERS,  /* the upstream's status line and headers */
    GW_WAIT_DATA,     /* response body bytes */
};

/* What CURLOPT_PRIVATE points at: an xfer or a health check. */
struct gw_easy_tag {
    int kind; /* GW_EASY_XFER, GW_EASY_HEALTH */
    void *obj;
};
#define GW_EASY_XFER 1
#define GW_EASY_HEALTH 2

struct gw_xfer {
    /* First member: httpd's reply helpers and authn work on &st.r. */
    struct httpd_req_state st;
    atomic_int refs;
    struct gw *g;                     /* (const) */
    struct gw_routes *routes;         /* (const) reference held */
    const struct gw_route *route;     /* (const) */
    struct gw_upstream *upstream;     /* (const) */
    const char *color;                /* (mu) "blue" / "green" of tgt */
    struct gw_target *tgt;            /* (mu) current target, a reference */
    char sticky_key[64];              /* (const) user id, "" if none */
    int idempotent;                   /* (const) */
    int has_body;                     /* (const) request carries a body */
    long long content_length;         /* (const) request's, -1 unknown */
    struct curl_slist *req_headers;   /* (const) upstream header lines */
    char *path_query;                 /* (const) path + "?query" upstream */
    struct MHD_Connection *conn;      /* (const) */
    struct gw_proxy *eng;             /* (const) engine of conn's thread */
    int client_fd;                    /* (const) conn's socket, -1 */

    pthread_mutex_t mu;
    struct gw_ring up;                /* (mu) client -> upstream */
    struct gw_ring down;              /* (mu) upstream -> client */
    int up_eof;                       /* (mu) client body complete */
    enum gw_wait wait;                /* (mu) NONE: MHD side not suspended */
    int read_paused, write_paused;    /* (mu) curl side paused */
    int headers_done;                 /* (mu) status + headers known */
    int done;                         /* (mu) curl transfer over */
    int client_gone;                  /* (mu) MHD completed the request */
    CURLcode result;                  /* (mu) with done */
    long status;                      /* (mu) upstream status */
    long long resp_length;            /* (mu) upstream Content-Length, -1 */
    char **resp_hdrs;                 /* (mu) "Name\0value" pairs */
    size_t nresp_hdrs, cap_resp_hdrs; /* (mu) */

    /* (mhd) */
    int admin;                        /* an /admin/ request */
    char *admin_body;                 /* its body (small, bounded) */
    size_t admin_len;
    unsigned long long up_total;      /* body bytes read from the client */
    int queued;                       /* a response is queued */
    int started;                      /* handed to the curl thread */

    /* (curl) */
    CURL *easy;
    int attempts;
    int read_any;                     /* read callback supplied a byte */
    double t_start;                   /* monotonic, first attempt */
    char errbuf[CURL_ERROR_SIZE];
    struct gw_easy_tag tag;
    struct gw_xfer *run_prev, *run_next; /* proxy's running list */

    /* (proxy command lock) */
    unsigned cmds;                    /* GW_CMD_* bits pending */
    struct gw_xfer *cmd_next;
};

#define GW_CMD_START 1u
#define GW_CMD_UNPAUSE 2u
#define GW_CMD_CANCEL 4u

/* Ring sizes: a few of libcurl's 16 KiB write chunks each way. The down
 * ring starts small (most answers are small) and grows up to its cap. */
#define GW_RING_UP (128u * 1024u)
#define GW_RING_DOWN_MIN (1u * 1024u)
#define GW_RING_DOWN (64u * 1024u)

void gw_ring_init(struct gw_ring *r, size_t cap);
void gw_ring_free(struct gw_ring *r);
/* Grows the capacity to `cap` keeping the bytes. Aborts on OOM. */
void gw_ring_grow(struct gw_ring *r, size_t cap);
/* Copies up to n bytes in; returns how many fit. */
size_t gw_ring_put(struct gw_ring *r, const char *src, size_t n);
/* Copies up to n bytes out; returns how many. */
size_t gw_ring_get(struct gw_ring *r, char *dst, size_t n);
static inline size_t gw_ring_space(const struct gw_ring *r)
{
    return r->cap - r->len;
}

void gw_xfer_retain(struct gw_xfer *x);
/* Drops a reference; frees the xfer at zero. Any thread. */
void gw_xfer_release(struct gw_xfer *x);

/*
 * Resumes the MHD connection if it waits for `why` (or for anything when
 * why is GW_WAIT_NONE). Call with x->mu held.
 */
void gw_xfer_wake_locked(struct gw_xfer *x, enum gw_wait why);

#endif
