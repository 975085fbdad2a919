/*
 * proxy — forwarding a request to its upstream and relaying the answer.
 *
 * Two layers. The pure part (proxy_headers.c) decides what goes upstream:
 * the URL (target base + path + re-encoded query) and the header list
 * (client headers minus hop-by-hop and minus identity headers the client
 * may not set, plus X-User-*, X-Request-Id, traceparent, X-Forwarded-*,
 * X-Internal-Token), and which upstream response headers come back. The
 * engine (proxy.c) runs every exchange on one libcurl multi handle in its
 * own thread (upstream connections kept alive in the multi's cache),
 * streaming both bodies through the bounded rings of struct gw_xfer.
 *
 * Failures are answered in the error shape:
 *   502 upstream_unavailable  connection refused / host not resolved
 *   502 upstream_error        upstream broke the exchange or sent too much
 *   503 upstream_unavailable  the upstream pool has no target
 *   504 upstream_timeout      no connection within the connect timeout, or
 *                             no complete answer within the route timeout
 * A connect failure (refused, unresolved, connect timeout) of an idempotent
 * request (GET HEAD PUT DELETE OPTIONS) is retried once on the pool's next
 * target, within what is left of the route timeout.
 *
 * Metrics (metrics_default()):
 *   gateway_upstream_requests_total{upstream,color,status}
 *   gateway_upstream_duration_seconds{upstream,color}   (histogram)
 * color is "blue" until blue-green pools arrive.
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <curl/curl.h>
#include <microhttpd.h>
#include <stddef.h>

#include "routes.h"
#include "token/token.h"

/* One header or query argument, borrowed strings (value may be NULL). */
struct gw_header {
    const char *name;
    const char *value;
};

/* What the gateway adds to the upstream request. Strings are borrowed;
 * NULL or "" leaves a header out. */
struct gw_fwd {
    const char *client_ip;
    const char *request_id;
    const char *traceparent;
    const char *proto;                /* X-Forwarded-Proto, "http" */
    const char *internal_token;       /* X-Internal-Token */
    const struct tok_claims *claims;  /* X-User-*; NULL on public routes */
};

/*
 * Builds the upstream header lines ("Name: value") from the client's
 * headers `in[0..nin)` in order: drops hop-by-hop headers (Connection and
 * the ones it names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
 * Upgrade, Host, Content-Length, Expect), client copies of X-User-*,
 * X-Internal-Token, X-Request-Id, traceparent and X-Forwarded-Proto/Host;
 * appends the client IP to X-Forwarded-For (several client X-Forwarded-For
 * headers are joined first); adds the `fwd` headers, and blank lines that
 * keep libcurl from inventing Accept / Content-Type / Expect.
 * Returns 0 with a new list in *out (curl_slist_free_all), or -1 when a
 * value would contain CR/LF (or on OOM).
 */
int gw_proxy_upstream_headers(const struct gw_header *in, size_t nin,
                              const struct gw_fwd *fwd,
                              struct curl_slist **out);

/*
 * The upstream URL: `target` + `path` (percent-encoded where RFC 3986 does
 * not allow the byte in a path) + "?" + the query arguments re-encoded
 * (name[=value] joined by '&'), the latter only when nargs > 0.
 * Returns a malloc'd string (caller frees); NULL on OOM.
 */
char *gw_proxy_build_url(const char *target, const char *path,
                         const struct gw_header *args, size_t nargs);

/* 1 when an upstream response header is relayed to the client (not
 * hop-by-hop, not Content-Length/Type or one the gateway sets itself). */
int gw_proxy_response_header_kept(const char *name);

/* 1 for methods safe to send twice (RFC 9110 §9.2.2). */
int gw_proxy_idempotent(const char *method);

struct gw_proxy;
struct gw_xfer;

struct gw_proxy_opts {
    long connect_timeout_ms;    /* per target connect */
    const char *internal_token; /* NULL: none sent; copied */
    long max_host_conns;        /* upstream connections per host, 0 = 256 */
};

/*
 * New engine: a libcurl multi handle (its thread starts in
 * gw_proxy_attach). Calls curl_global_init and blocks SIGTERM/SIGINT/
 * SIGHUP in the calling thread (so only gw_serve_run's sigwait sees them
 * in the threads started later): create it from main before other
 * threads start. NULL on failure.
 */
struct gw_proxy *gw_proxy_new(const struct gw_proxy_opts *o);

/*
 * Starts one engine thread per daemon: engine i (the first is `p`, the
 * others are created like it) drives daemons[i], an MHD daemon started
 * with MHD_USE_EPOLL and no internal thread, together with its own curl
 * multi in one epoll loop. A request's MHD side and upstream side thus
 * run on one thread: no hand-over between threads. Health checks run on
 * the first engine. 0, or -1 (the caller then stops the daemons itself
 * after gw_proxy_halt).
 */
int gw_proxy_attach(struct gw_proxy *p, struct MHD_Daemon **daemons,
                    int n);

/* Each engine aborts its transfers, stops its daemon (on its own
 * thread) and exits; joins them. Idempotent. */
void gw_proxy_halt(struct gw_proxy *p);

/* Quiesces every engine's daemon on its thread (waits up to 5 s);
 * returns the listen socket they shared, or MHD_INVALID_SOCKET. */
MHD_socket gw_proxy_quiesce(struct gw_proxy *p);

/* The engine whose thread calls this, NULL on other threads. */
struct gw_proxy *gw_proxy_current(void);

/* Halts the threads, cancels what is still running, frees all engines. */
void gw_proxy_free(struct gw_proxy *p);

/* The X-Internal-Token value to send, or NULL. */
const char *gw_proxy_internal_token(const struct gw_proxy *p);

/*
 * Hands `x` to the curl thread (takes a reference). The transfer starts
 * there; its callbacks fill x->down and drain x->up and wake the MHD
 * connection as described in xfer.h. Any thread. Can't fail.
 */
void gw_proxy_submit(struct gw_proxy *p, struct gw_xfer *x);

/* Asks the curl thread to continue a paused transfer. Any thread. */
void gw_proxy_unpause(struct gw_proxy *p, struct gw_xfer *x);

/* Asks the curl thread to abort a transfer (client gone). Any thread. */
void gw_proxy_cancel(struct gw_proxy *p, struct gw_xfer *x);

struct gw_pools;
/* The pools whose active health checks the curl thread runs (NULL: none).
 * The pools must outlive the engine. Any thread. */
void gw_proxy_set_pools(struct gw_proxy *p, struct gw_pools *ps);

/*
 * Drain's last step: aborts every running transfer (waking the MHD
 * connections that wait on one, so none stays suspended) and finishes
 * any later one at once. The thread keeps running until gw_proxy_free.
 * Any thread.
 */
void gw_proxy_close(struct gw_proxy *p);

#endif
