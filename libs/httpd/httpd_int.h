/*
 * httpd internals shared by httpd.c (daemon, request life cycle, drain),
 * httpd_route.c (pattern parsing and matching) and httpd_reply.c (replies,
 * accessors, request identity). Not part of the public contract.
 */
#ifndef BASALT_HTTPD_INT_H
#define BASALT_HTTPD_INT_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "httpd/httpd.h"
#include "metrics/metrics.h"

enum httpd_route_kind {
    HTTPD_ROUTE_EXACT,
    HTTPD_ROUTE_PARAM,
    HTTPD_ROUTE_PREFIX,
};

/* One registered route; immutable once the daemon runs. */
struct httpd_route {
    char *method;          /* "GET", ... or "*" */
    char *pattern;         /* as registered; the metrics route label */
    enum httpd_route_kind kind;
    char **segs;           /* PARAM: path segments; "{x}" kept as "x" */
    int *is_param;         /* PARAM: 1 where segs[i] is a parameter name */
    size_t nsegs;
    size_t nparams;
    size_t prefix_len;     /* PREFIX: bytes before the final "/" "*" */
    httpd_handler_fn fn;
    void *arg;
    size_t max_body;       /* resolved: never 0 */
    int quiet;             /* built-in probe: access log at debug level */
    /* streaming routes (httpd_route_stream): fn is NULL, these are set */
    httpd_stream_begin_fn s_begin;
    httpd_stream_chunk_fn s_chunk;
    httpd_stream_end_fn s_end;
};

/*
 * The server. Routes and opts are written before httpd_start() and only
 * read afterwards; inflight and draining are atomics touched by every
 * connection thread.
 */
struct httpd_server {
    struct httpd_opts opts;   /* service and host point at the copies */
    char *service;
    char *host;
    struct httpd_route *routes;
    size_t nroutes;
    size_t cap_routes;
    struct MHD_Daemon *daemon;
    int port;
    MHD_socket quiesced_fd;   /* listen fd after quiesce, closed at stop */
    atomic_long inflight;
    atomic_int draining;      /* 1 once quiesced: replies close conns */
    struct metrics_family *m_requests;
    struct metrics_family *m_duration;
};

struct httpd_resp_header {
    char *name;
    char *value;
    struct httpd_resp_header *next;
};

/*
 * Per-request state: the public struct first, so a struct httpd_req * is a
 * struct httpd_req_state *. Owned by the connection's thread; created on
 * the first access-handler call, freed in the completion callback.
 */
struct httpd_req_state {
    struct httpd_req r;
    const struct httpd_route *rt;
    size_t max_body;
    size_t body_cap;
    size_t discarded;     /* body bytes dropped past max_body */
    int too_large;
    size_t resp_bytes;
    int quiet;
    /* streaming routes: ctx from begin; 1 while end is still owed */
    void *s_ctx;
    int s_open;
    int s_refused;
    size_t s_bytes;       /* body bytes seen */
};

/* httpd_route.c */
int httpd_route_add(struct httpd_server *s, const char *method,
                    const char *pattern, httpd_handler_fn fn, void *arg,
                    size_t max_body, int quiet);
void httpd_routes_free(struct httpd_server *s);
int httpd_route_has_exact(const struct httpd_server *s, const char *pattern);

/*
 * Finds the route for method + path. On a match returns it and fills the
 * request's params (values malloc'd; -1 in *err on OOM). When some pattern
 * matches the path but none with this method, returns NULL and writes the
 * comma-separated Allow list into allow (and that pattern into *pattern).
 */
const struct httpd_route *httpd_route_match(const struct httpd_server *s,
                                            struct httpd_req *r,
                                            char *allow, size_t allowlen,
                                            const char **pattern, int *err);

/* httpd_reply.c */
void httpd_identity_init(struct httpd_req *r);
void httpd_req_free_resp_headers(struct httpd_req *r);

#endif
