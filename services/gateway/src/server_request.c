/*
 * server_request — the client side of one request before the answer:
 * the access handler's first call (checks, routing, CORS, auth, rate
 * limits, the upstream URL and header list, picking a target, handing
 * the xfer to its engine), streaming the request body into the up ring,
 * and its last call. Runs on the connection's MHD thread; see
 * server_int.h and xfer.h for ownership.
 */
#include "gateway.h"
#include "admin.h"
#include "edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "server_int.h"
#include "xfer.h"

/* Client headers / query args gathered for the pure proxy layer. */
struct kv_vec {
    struct gw_header *v;
    size_t n, cap;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    struct kv_vec *h = cls;

    (void)kind;
    if (key == NULL)
        return MHD_YES;
    if (h->n == h->cap) {
        struct gw_header *nv;

        h->cap = h->cap ? h->cap * 2 : 32;
        nv = realloc(h->v, h->cap * sizeof(*nv));
        if (nv == NULL) {
            fputs("gateway: out of memory\n", stderr);
            abort();
        }
        h->v = nv;
    }
    h->v[h->n].name = key;
    h->v[h->n].value = value;
    h->n++;
    return MHD_YES;
}

/* Upstream path + query and header lines. 0, or -1 (answered). */
static int prepare(struct gw *g, struct gw_xfer *x,
                   const struct tok_claims *claims)
{
    struct httpd_req *r = &x->st.r;
    struct kv_vec in = {0}, args = {0};
    struct gw_fwd fwd;
    size_t pathlen = strlen(r->path) + 2;
    char ip[64], *path = malloc(pathlen);
    int rc = -1;

    if (path == NULL ||
        gw_route_upstream_path(x->route, r->path, path, pathlen) != 0)
        goto cleanup;
    MHD_get_connection_values(x->conn, MHD_HEADER_KIND, collect, &in);
    MHD_get_connection_values(x->conn, MHD_GET_ARGUMENT_KIND, collect,
                              &args);
    httpd_client_ip(r, ip, sizeof(ip));
    memset(&fwd, 0, sizeof(fwd));
    fwd.client_ip = ip;
    fwd.request_id = r->request_id;
    fwd.traceparent = r->traceparent;
    fwd.proto = "http";
    fwd.internal_token = gw_proxy_internal_token(g->proxy);
    fwd.claims = claims;
    if (gw_proxy_upstream_headers(in.v, in.n, &fwd, &x->req_headers) != 0)
        goto cleanup;
    /* The target base is prepended on the curl thread. */
    x->path_query = gw_proxy_build_url("", path, args.v, args.n);
    rc = x->path_query != NULL ? 0 : -1;

cleanup:
    if (rc != 0)
        httpd_error(r, 500, "internal_error", "could not forward the "
                    "request");
    free(in.v);
    free(args.v);
    free(path);
    return rc;
}

static void builtin(struct gw *g, struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;

    r->route = r->path;
    if (strcmp(r->path, "/healthz") == 0) {
        httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(r->path, "/readyz") == 0) {
        struct gw_routes *rt = gw_route_table_get(&g->table);

        if (atomic_load(&g->srv->shim.draining))
            httpd_error(r, 503, "not_ready", "shutting down");
        else if (rt == NULL)
            httpd_error(r, 503, "not_ready", "no routes loaded");
        else
            httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
        gw_routes_release(rt);
    } else {
        size_t len = 0;
        char *text = metrics_render(metrics_default(), &len);

        if (text == NULL) {
            httpd_error(r, 500, "internal_error", "cannot render metrics");
            return;
        }
        httpd_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                        text, len);
        free(text);
    }
}

static int is_builtin(const char *method, const char *path)
{
    return (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
           (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
            strcmp(path, "/metrics") == 0);
}

/* First call: identity, routing, limits, auth; then off to curl. */
enum MHD_Result gw_serve_begin(struct gw *g, struct gw_xfer *x)
{
    struct gw_server *s = g->srv;
    struct httpd_req *r = &x->st.r;
    struct tok_claims claims;
    unsigned allowed = 0;
    int nhdrs;
    int has_claims = 0;
    const char *cl, *te;
    char allow[96];

    httpd_identity_init(r);
    gw_edge_security_headers(x);
    /* With no iterator MHD only counts (libmicrohttpd manual). */
    nhdrs = MHD_get_connection_values(x->conn, MHD_HEADER_KIND, NULL, NULL);
    if (nhdrs < 0 || (unsigned)nhdrs > s->opts.max_headers) {
        httpd_error(r, 431, "headers_too_large", "more than %u headers",
                    s->opts.max_headers);
        goto out;
    }
    if (is_builtin(r->method, r->path)) {
        builtin(g, x);
        goto out;
    }
    if (gw_admin_path(r->path)) {
        gw_admin_begin(g, x);
        goto out;
    }
    x->routes = gw_route_table_get(&g->table);
    if (x->routes == NULL) {
        httpd_error(r, 503, "not_ready", "no routes loaded");
        goto out;
    }
    if (gw_path_has_dot_segment(r->path)) {
        httpd_error(r, 400, "invalid_path",
                    "path must not contain '.' or '..' segments");
        goto out;
    }
    if (gw_edge_preflight(x, x->routes))
        goto out;
    switch (gw_routes_match(x->routes, r->method, r->path, &x->route,
                            &allowed)) {
    case GW_MATCH_OK:
        break;
    case GW_MATCH_NOT_FOUND:
        httpd_error(r, 404, "not_found", "no route for this path");
        goto out;
    case GW_MATCH_METHOD:
        gw_methods_str(allowed, allow, sizeof(allow));
        httpd_add_header(r, "Allow", allow);
        httpd_error(r, 405, "method_not_allowed",
                    "method %.16s not allowed here; allowed: %s", r->method,
                    allow);
        goto out;
    }
    r->route = x->route->name;
    x->upstream = x->route->upstream;
    gw_edge_cors_headers(x);
    cl = httpd_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = httpd_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl != NULL) {
        char *end;
        long long n = strtoll(cl, &end, 10);

        if (end == cl || *end != '\0' || n < 0) {
            httpd_error(r, 400, "invalid_request", "bad Content-Length");
            goto out;
        }
        x->content_length = n;
        x->has_body = n > 0;
        if ((unsigned long long)n > x->route->max_body) {
            httpd_error(r, 413, "payload_too_large",
                        "request body over %zu bytes", x->route->max_body);
            goto out;
        }
    } else if (te != NULL) {
        x->has_body = 1;
    }
    if (gw_authn_check(g->authn, r, x->route, &claims, &has_claims) != 0)
        goto out;
    if (gw_edge_rate_limit(g, x, has_claims ? claims.sub : NULL) != 0)
        goto out;
    if (prepare(g, x, has_claims ? &claims : NULL) != 0)
        goto out;
    if (has_claims)
        snprintf(x->sticky_key, sizeof(x->sticky_key), "%s", claims.sub);
    switch (gw_pool_pick(x->upstream->pool, x->sticky_key, NULL, httpd_now(),
                         &x->tgt)) {
    case GW_PICK_OK:
        break;
    case GW_PICK_EMPTY:
        httpd_error(r, 503, "upstream_unavailable",
                    "upstream %s has no target", x->upstream->name);
        goto out;
    case GW_PICK_OPEN:
        httpd_error(r, 503, "upstream_unavailable",
                    "no target of upstream %s is available (circuit open)",
                    x->upstream->name);
        goto out;
    }
    x->color = gw_color_name(x->tgt->color);
    x->idempotent = gw_proxy_idempotent(r->method);
    gw_ring_init(&x->up, x->has_body ? GW_RING_UP : 1);
    x->started = 1;
    gw_proxy_submit(g->proxy, x);
out:
    return MHD_YES;
}

/* Request body bytes from the client into the up ring. */
enum MHD_Result gw_serve_upload(struct gw *g, struct gw_xfer *x,
                                const char *data, size_t *size)
{
    int unpause = 0;
    size_t n;

    pthread_mutex_lock(&x->mu);
    if (x->done) {
        /* The upstream already answered (or failed): drop the rest. */
        x->up_total += *size;
        *size = 0;
        pthread_mutex_unlock(&x->mu);
        return MHD_YES;
    }
    n = gw_ring_put(&x->up, data, *size);
    x->up_total += n;
    *size -= n;
    if (n > 0 && x->read_paused) {
        x->read_paused = 0;
        unpause = 1;
    }
    if (*size > 0) {
        x->wait = GW_WAIT_UP_SPACE;
        MHD_suspend_connection(x->conn);
    }
    pthread_mutex_unlock(&x->mu);
    if (unpause)
        gw_proxy_unpause(g->proxy, x);
    if (x->up_total > x->route->max_body) {
        /* Chunked upload over the limit: nothing sane left to answer. */
        log_kv(LOG_LVL_WARN, &x->st.r.log, "request body over max_body",
               "route", x->route->name, NULL);
        return MHD_NO;
    }
    return MHD_YES;
}

/* Last access-handler call: the whole body is in; answer when we can. */
enum MHD_Result gw_serve_complete(struct gw *g, struct gw_xfer *x)
{
    int unpause = 0, ready;

    pthread_mutex_lock(&x->mu);
    x->up_eof = 1;
    if (x->read_paused) {
        x->read_paused = 0;
        unpause = 1;
    }
    ready = x->headers_done || x->done;
    if (!ready) {
        x->wait = GW_WAIT_HEADERS;
        MHD_suspend_connection(x->conn);
    }
    pthread_mutex_unlock(&x->mu);
    if (unpause)
        gw_proxy_unpause(g->proxy, x);
    if (ready) {
        x->queued = 1;
        gw_serve_respond(x);
    }
    return MHD_YES;
}
