#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include "log/log.h"

void gw_init(struct gw *g, struct gw_routes *routes, struct gw_authn *authn,
             struct gw_proxy *proxy, const char *routes_file,
             const struct gw_route_defaults *def, size_t body_cap)
{
    memset(g, 0, sizeof(*g));
    gw_route_table_init(&g->table, routes);
    g->authn = authn;
    g->proxy = proxy;
    g->routes_file = routes_file;
    g->defaults = *def;
    g->body_cap = body_cap;
}

void gw_cleanup(struct gw *g)
{
    gw_route_table_cleanup(&g->table);
    gw_authn_free(g->authn);
    gw_proxy_free(g->proxy);
    g->authn = NULL;
    g->proxy = NULL;
}

int gw_path_has_dot_segment(const char *path)
{
    const char *seg = path;

    while (seg != NULL) {
        const char *end;
        size_t len;

        if (*seg == '/')
            seg++;
        end = strchr(seg, '/');
        len = end ? (size_t)(end - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 1;
        seg = end;
    }
    return 0;
}

void gw_handle(struct httpd_req *r, void *arg)
{
    struct gw *g = arg;
    struct gw_routes *rt = gw_route_table_get(&g->table);
    const struct gw_route *route = NULL;
    struct tok_claims claims;
    unsigned allowed = 0;
    int has_claims = 0;
    char allow[96];

    if (rt == NULL) {
        httpd_error(r, 503, "not_ready", "no routes loaded");
        return;
    }
    if (gw_path_has_dot_segment(r->path)) {
        httpd_error(r, 400, "invalid_path",
                    "path must not contain '.' or '..' segments");
        goto done;
    }
    switch (gw_routes_match(rt, r->method, r->path, &route, &allowed)) {
    case GW_MATCH_OK:
        break;
    case GW_MATCH_NOT_FOUND:
        httpd_error(r, 404, "not_found", "no route for this path");
        goto done;
    case GW_MATCH_METHOD:
        gw_methods_str(allowed, allow, sizeof(allow));
        httpd_add_header(r, "Allow", allow);
        httpd_error(r, 405, "method_not_allowed",
                    "method %.16s not allowed here; allowed: %s", r->method,
                    allow);
        goto done;
    }
    if (r->body_len > route->max_body) {
        httpd_error(r, 413, "payload_too_large",
                    "request body over %zu bytes", route->max_body);
        goto done;
    }
    if (gw_authn_check(g->authn, r, route, &claims, &has_claims) != 0)
        goto done;
    gw_proxy_forward(g->proxy, r, route, has_claims ? &claims : NULL);

done:
    gw_routes_release(rt);
}

int gw_reload(struct gw *g)
{
    char err[512];
    char count[32];
    struct gw_routes *next;
    size_t max;

    next = gw_routes_load(g->routes_file, &g->defaults, err, sizeof(err));
    if (next == NULL) {
        log_kv(LOG_LVL_ERROR, NULL, "routes reload failed; keeping the "
               "current routes", "file", g->routes_file, "error", err, NULL);
        return -1;
    }
    max = gw_routes_max_body(next);
    if (max > g->body_cap) {
        char a[32], b[32];

        snprintf(a, sizeof(a), "%zu", max);
        snprintf(b, sizeof(b), "%zu", g->body_cap);
        log_kv(LOG_LVL_WARN, NULL, "a route's max_body exceeds the limit "
               "set at start; restart to raise it", "max_body", a, "limit",
               b, NULL);
    }
    snprintf(count, sizeof(count), "%zu", next->nroutes);
    gw_route_table_swap(&g->table, next);
    log_kv(LOG_LVL_INFO, NULL, "routes reloaded", "file", g->routes_file,
           "routes", count, NULL);
    return 0;
}

void gw_on_hup(void *arg)
{
    gw_reload(arg);
}
