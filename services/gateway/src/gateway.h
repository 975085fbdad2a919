/*
 * gateway — the request handler that ties routes, authn and proxy
 * together, and the SIGHUP reload of the routes file.
 *
 * For every request: pick the route (404 not_found / 405
 * method_not_allowed with Allow), reject dot segments in the path
 * (400 invalid_path: an upstream that normalises "/a/../b" would see a
 * different path than the one matched), enforce the route's body limit
 * (413 payload_too_large), check the bearer token and roles (401/403), then
 * forward. Each request holds a reference to the routes it matched, so a
 * reload never pulls a route from under it.
 *
 * Thread-safety: gw_handle runs on any request thread; gw_reload may run
 * concurrently with it (from the signal-handling thread).
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "authn.h"
#include "httpd/httpd.h"
#include "proxy.h"
#include "routes.h"

struct gw {
    struct gw_route_table table;
    struct gw_authn *authn;          /* owned */
    struct gw_proxy *proxy;          /* owned */
    const char *routes_file;         /* borrowed, lives as long as gw */
    struct gw_route_defaults defaults;
    size_t body_cap;                 /* httpd's body limit, fixed at start */
};

/*
 * Takes ownership of `routes`, `authn` and `proxy`. `body_cap` is the body
 * limit httpd enforces before any route is known; a reloaded route asking
 * for more is warned about. Can't fail.
 */
void gw_init(struct gw *g, struct gw_routes *routes, struct gw_authn *authn,
             struct gw_proxy *proxy, const char *routes_file,
             const struct gw_route_defaults *def, size_t body_cap);

/* Frees what gw_init took. Call after the HTTP server has stopped. */
void gw_cleanup(struct gw *g);

/* The httpd handler for the catch-all route; `arg` is the struct gw. */
void gw_handle(struct httpd_req *r, void *arg);

/*
 * Re-reads routes_file; on success swaps the new routes in and returns 0.
 * On a bad file logs the error, keeps the current routes and returns -1.
 */
int gw_reload(struct gw *g);

/* httpd_run's on_hup: gw_reload(arg). */
void gw_on_hup(void *arg);

/* 1 when the decoded path has a "." or ".." segment. */
int gw_path_has_dot_segment(const char *path);

#endif
