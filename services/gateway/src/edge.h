/*
 * edge — per-request hygiene at the gateway's edge: CORS (preflights
 * answered here, never proxied), security response headers, and the
 * per-route rate limit (ratelimit.h) with its RateLimit-* headers.
 *
 * Thread: the MHD thread handling the request.
 */
#ifndef GW_EDGE_H
#define GW_EDGE_H

struct gw;
struct gw_xfer;
struct gw_routes;

/* Adds the security headers every response carries. */
void gw_edge_security_headers(struct gw_xfer *x);

/*
 * Answers a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) for a path whose route has a CORS
 * policy: 204 with the Access-Control-* headers, or 403 cors_rejected for
 * an origin / method not allowed. Returns 1 when answered, 0 when the
 * request is not a preflight for a CORS route.
 */
int gw_edge_preflight(struct gw_xfer *x, struct gw_routes *rt);

/* Adds Access-Control-Allow-Origin etc. for an allowed Origin. */
void gw_edge_cors_headers(struct gw_xfer *x);

/*
 * Applies x->route's rate limit keyed by `user` (NULL: client IP). 0 to
 * proceed (RateLimit-* headers added), -1 when answered (429, or 503 when
 * Redis is down and the route fails closed).
 */
int gw_edge_rate_limit(struct gw *g, struct gw_xfer *x, const char *user);

#endif
