/*
 * server_int — internals shared by the client side of the engine (not
 * for other gateway code; the contract is gateway.h and xfer.h):
 *
 *   server.c          the MHD daemons (one per engine thread), the
 *                     access / completion callbacks, access log and
 *                     metrics, start / stop / drain
 *   server_request.c  a request's phases: checks, routing, auth, limits,
 *                     the upstream header list, request body streaming
 *   server_respond.c  the answer: relayed status, headers and streamed
 *                     body, or a transfer failure mapped to the error
 *                     shape
 *
 * Threads and ownership. struct gw_server is written by gw_serve_start
 * before any daemon runs and is read-only afterwards, except the atomics
 * (inflight; shim.draining, set by the drain on the main thread) and
 * `quiesced`/`daemon` (main thread: start, stop, drain). Every function
 * below runs on the MHD thread of the request's connection, which is
 * its engine thread (x->eng); the xfer fields they touch follow the
 * (mu) / (mhd) rules of xfer.h.
 */
#ifndef GW_SERVER_INT_H
#define GW_SERVER_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

#include "gateway.h"
#include "httpd/httpd_int.h"
#include "xfer.h"

#define GW_MAX_ENGINES 64

struct gw_server {
    struct httpd_server shim;
    struct MHD_Daemon *daemon;  /* the first, which bound the socket */
    struct MHD_Daemon *daemons[GW_MAX_ENGINES];
    int ndaemons;
    int attached;               /* engine threads drive the daemons */
    struct gw_serve_opts opts;
    int port;
    MHD_socket quiesced;
    atomic_long inflight;
    struct metrics_family *m_requests;
    struct metrics_family *m_duration;
    struct metrics_family *m_http_requests; /* shared with every service */
    struct metrics_family *m_http_duration;
};

/* server_request.c */

/* First access-handler call: identity, size checks, built-ins, admin,
 * routing, auth, rate limit, upstream headers, target pick; then hands
 * the xfer to its engine. Always MHD_YES (answers are queued). */
enum MHD_Result gw_serve_begin(struct gw *g, struct gw_xfer *x);
/* Request body bytes into the up ring (suspends the connection when the
 * ring is full). MHD_NO aborts the connection (body over max_body). */
enum MHD_Result gw_serve_upload(struct gw *g, struct gw_xfer *x,
                                const char *data, size_t *size);
/* Last access-handler call: the body is complete; answers when the
 * upstream's status is known, else suspends until it is. */
enum MHD_Result gw_serve_complete(struct gw *g, struct gw_xfer *x);

/* server_respond.c */

/* Queues the answer for `x` once its upstream status and headers are
 * known (streamed body), or the error shape when the transfer failed. */
void gw_serve_respond(struct gw_xfer *x);

#endif
