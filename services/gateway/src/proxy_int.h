/*
 * proxy_int — internals shared by the engine's modules (not for other
 * gateway code; the contract is proxy.h and xfer.h):
 *
 *   proxy.c         the engine: one thread per MHD daemon running one
 *                   epoll loop over the daemon's epoll fd, the curl
 *                   multi's sockets and timer, and an eventfd for
 *                   commands; start / quiesce / halt / free
 *   proxy_xfer.c    a transfer's upstream side: curl callbacks, attempts
 *                   and retries, finishing, the command list, sweeps
 *   proxy_health.c  active health checks
 *   xfer.c          rings, waking and freeing an xfer (both sides)
 *
 * Threads and ownership. Each struct gw_proxy (an "engine") has one
 * thread (its `thread`, running the loop in proxy.c); the first engine
 * owns the others (next_engine) and also runs the health checks. Fields
 * marked (curl thread) are touched only on that engine's thread (or,
 * once the thread has been joined, by gw_proxy_free); (qmu) under the
 * engine's qmu; atomics from any thread; the rest are written before the
 * thread starts and read-only afterwards. Everything that touches an
 * easy handle or the multi runs on the engine's thread, as libcurl
 * requires: other threads only queue commands (gw_proxy_submit /
 * unpause / cancel) and wake it. An xfer is driven by the engine whose
 * MHD daemon accepted its connection (x->eng). A struct gw_hc belongs to
 * the thread of the engine whose `checks` list holds it.
 */
#ifndef GW_PROXY_INT_H
#define GW_PROXY_INT_H

#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "pool.h"
#include "proxy.h"
#include "xfer.h"

/* libcurl's receive buffer per transfer (its default is 16 KiB): body
 * bytes are copied on into the down ring anyway, and 1,000 transfers in
 * flight then hold 8 MiB less. */
#define GW_CURL_BUFFER 8192L

/* Easy handles kept for reuse per engine: their buffers are allocated
 * once (more would hold memory after a burst for little gain). */
#define GW_SPARE_EASY 64

/* Retry budget: each new request earns a fifth of a retry, up to a
 * reserve of GW_RETRY_RESERVE, so retries stay near 20% of the traffic
 * when a target fails instead of doubling the load. */
#define GW_RETRY_EARN 0.2
#define GW_RETRY_RESERVE 20.0
#define GW_MAX_ATTEMPTS 3

/* Client-gone sweep (gw_xfer_client_sweep): transfers younger than
 * GW_SWEEP_AGE seconds are skipped; the loop sweeps every
 * GW_SWEEP_EVERY seconds. */
#define GW_SWEEP_AGE 1.0
#define GW_SWEEP_EVERY 0.5

struct gw_proxy {
    CURLM *multi;
    int ep;                   /* epoll over curl's sockets + wake_fd */
    int wake_fd;              /* eventfd: commands are waiting */
    atomic_int wake_pending;  /* 1: wake_fd written, not yet consumed */
    double timer_at;          /* (curl thread) curl's timeout, <0 none */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int closing;       /* gw_proxy_close: abort all, start none */
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
    /* Engines after the first (gw_proxy_attach); the first owns them. */
    struct gw_proxy *next_engine;
    long host_conns;
    struct MHD_Daemon *mhd;   /* the MHD daemon this thread drives */
    int mhd_fd;               /* its epoll fd, in ep */
    atomic_int quiesce_req;   /* 1: quiesce mhd; 2: done */
    MHD_socket quiesced;      /* what MHD_quiesce_daemon returned */
    unsigned *fdev;           /* (curl thread) epoll state by socket */
    size_t nfdev;
};

/* One active health check of one target. */
struct gw_hc {
    struct gw_easy_tag tag;
    struct gw_target *t;      /* a reference */
    CURL *easy;
    struct gw_hc *next;
};

/* malloc that aborts on OOM (the gateway does not limp on without
 * memory). Never NULL. */
void *gw_xmalloc(size_t n);

/* proxy.c. CURLOPT_CLOSESOCKETFUNCTION for every easy handle of engine
 * `clientp` (forgets the socket in its epoll set, then closes it). */
int gw_proxy_close_socket(void *clientp, curl_socket_t s);

/* proxy_xfer.c; all on p's thread (or from gw_proxy_free). */

/* Takes the queued commands and runs them: START adds the transfer to
 * the running list and the multi, CANCEL finishes it, UNPAUSE resumes
 * its easy handle. */
void gw_xfer_run_commands(struct gw_proxy *p);
/* Drops `x` from the multi and the running list and finishes it with
 * `rc`: breaker outcome, metrics when `counted`, wakes the connection,
 * releases the multi's reference. */
void gw_xfer_finish(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc,
                    int counted);
/* The multi reported `x` done: retries a failed connect on another
 * target when allowed, else finishes it. */
void gw_xfer_done(struct gw_proxy *p, struct gw_xfer *x, CURLcode rc);
/* Finishes (504) transfers past their route's first-byte timeout. */
void gw_xfer_first_byte_sweep(struct gw_proxy *p, double now);
/* Aborts transfers whose client left while suspended; with `all`, every
 * running transfer (closing, exit). */
void gw_xfer_client_sweep(struct gw_proxy *p, int all);

/* proxy_health.c; on p's thread (or from gw_proxy_free). */

/* Starts the check rounds that are due; returns ms until the next. */
long gw_health_round(struct gw_proxy *p);
/* Removes `hc` from the multi and frees it; with `record`, feeds the
 * result (2xx/3xx = healthy) to its target. */
void gw_health_done(struct gw_proxy *p, struct gw_hc *hc, CURLcode rc,
                    int record);

#endif
