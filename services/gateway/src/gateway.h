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
 * The engine (server.c + proxy.c): libmicrohttpd's epoll thread pool
 * accepts and parses; the access handler decides everything above without
 * blocking, then suspends the connection and hands the exchange to the
 * libcurl multi thread; both bodies stream through bounded rings with
 * back-pressure (xfer.h). /healthz, /readyz and /metrics are answered by
 * the gateway itself.
 *
 * Thread-safety: the access handler runs on every MHD thread; gw_reload
 * may run concurrently with it (from the signal-handling thread).
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "authn.h"
#include "httpd/httpd.h"
#include "pool.h"
#include "proxy.h"
#include "routes.h"

struct gw_server;

struct gw {
    struct gw_route_table table;
    struct gw_server *srv;           /* owned; NULL until gw_serve_start */
    struct gw_authn *authn;          /* owned */
    struct gw_proxy *proxy;          /* owned */
    const char *routes_file;         /* borrowed, lives as long as gw */
    struct gw_route_defaults defaults;
    size_t body_cap;                 /* httpd's body limit, fixed at start */
    struct gw_pools pools;           /* live upstream state */
    char admin_token[256];           /* static admin bearer, "" = none */
    struct gw_ratelimit *rl;         /* owned; NULL: no Redis */
    int rl_fail_closed;              /* RATE_LIMIT_FAIL=closed */
};

/*
 * Takes ownership of `routes`, `authn` and `proxy`. `body_cap` is the body
 * limit httpd enforces before any route is known; a reloaded route asking
 * for more is warned about. Can't fail.
 */
void gw_init(struct gw *g, struct gw_routes *routes, struct gw_authn *authn,
             struct gw_proxy *proxy, const char *routes_file,
             const struct gw_route_defaults *def, size_t body_cap);

struct gw_ratelimit;
/* Takes ownership of `rl` (may be NULL); fail_closed is the default
 * answer of rate-limited routes when Redis is down. */
void gw_set_ratelimit(struct gw *g, struct gw_ratelimit *rl,
                      int fail_closed);

/* Sets the static bearer accepted on /admin/ (NULL or "" = none). */
void gw_set_admin_token(struct gw *g, const char *token);

/* Stops the server if running, frees what gw_init took. */
void gw_cleanup(struct gw *g);

struct gw_serve_opts {
    const char *host;        /* bind address */
    int port;                /* 0 picks a free port (gw_serve_port) */
    int threads;             /* engine threads, 0 = number of cores */
    unsigned conn_timeout_s; /* idle client timeout, 0 = 60 */
    unsigned max_conns;      /* 0 = 16384 */
    unsigned drain_s;        /* SIGTERM drain bound, 0 = 25 */
    size_t max_header_bytes; /* request line + headers, 0 = 8192 */
    unsigned max_headers;    /* header count, 0 = 100 */
};

/* Default serve options. Can't fail. */
void gw_serve_opts_init(struct gw_serve_opts *o);

/* Binds and starts the MHD daemon. 0, or -1 (logged). */
int gw_serve_start(struct gw *g, const struct gw_serve_opts *o);

/* The bound port. */
int gw_serve_port(const struct gw *g);

/*
 * Blocks until SIGTERM/SIGINT (SIGHUP reloads the routes), then stops
 * accepting, waits up to drain_s for in-flight requests and stops the
 * daemon. Returns 0.
 */
int gw_serve_run(struct gw *g);

/* Stops the daemon now (if running) and frees the server state. */
void gw_serve_stop(struct gw *g);

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
