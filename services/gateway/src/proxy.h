/*
 * proxy — forwarding a request to its upstream and relaying the answer.
 *
 * Two layers. The pure part (proxy_headers.c) decides what goes upstream:
 * the URL (target base + path + re-encoded query) and the header list
 * (client headers minus hop-by-hop and minus identity headers the client
 * may not set, plus X-User-*, X-Request-Id, traceparent, X-Forwarded-*,
 * X-Internal-Token), and which upstream response headers come back. The
 * engine (proxy.c) runs the exchange; this first cut blocks the request
 * thread with a libcurl easy handle (one per thread, connections shared
 * through a CURLSH cache), buffering the whole response. A later engine can
 * keep this interface and the pure layer.
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
#include <stddef.h>

#include "httpd/httpd.h"
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

struct gw_proxy_opts {
    long connect_timeout_ms;    /* per target connect */
    const char *internal_token; /* NULL: none sent; copied */
};

/*
 * New engine. Calls curl_global_init, so create it from main before other
 * threads start. NULL on failure.
 */
struct gw_proxy *gw_proxy_new(const struct gw_proxy_opts *o);

/*
 * Frees the engine. Every thread that used gw_proxy_forward must have
 * exited (their easy handles are released by a thread-exit destructor).
 */
void gw_proxy_free(struct gw_proxy *p);

/*
 * Forwards request `r` matched to `route` and answers it (always exactly
 * one reply). `claims` NULL on public routes. Blocks the calling thread
 * for at most about route->timeout_ms (a retry gets what is left of it).
 * Any request thread may call it.
 */
void gw_proxy_forward(struct gw_proxy *p, struct httpd_req *r,
                      const struct gw_route *route,
                      const struct tok_claims *claims);

#endif
