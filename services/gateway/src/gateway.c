#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "ratelimit.h"

void gw_init(struct gw *g, struct gw_routes *routes, struct gw_authn *authn,
             struct gw_proxy *proxy, const char *routes_file,
             const struct gw_route_defaults *def, size_t body_cap)
{
    memset(g, 0, sizeof(*g));
    gw_pools_init(&g->pools);
    if (routes != NULL)
        gw_pools_sync(&g->pools, routes);
    gw_route_table_init(&g->table, routes);
    if (proxy != NULL)
        gw_proxy_set_pools(proxy, &g->pools);
    g->authn = authn;
    g->proxy = proxy;
    g->routes_file = routes_file;
    g->defaults = *def;
    g->body_cap = body_cap;
}

void gw_cleanup(struct gw *g)
{
    gw_serve_stop(g);
    gw_route_table_cleanup(&g->table);
    gw_authn_free(g->authn);
    gw_proxy_free(g->proxy);
    g->authn = NULL;
    g->proxy = NULL;
    gw_pools_cleanup(&g->pools);
    gw_ratelimit_free(g->rl);
    g->rl = NULL;
}

void gw_set_ratelimit(struct gw *g, struct gw_ratelimit *rl,
                      int fail_closed)
{
    g->rl = rl;
    g->rl_fail_closed = fail_closed;
}

void gw_set_admin_token(struct gw *g, const char *token)
{
    snprintf(g->admin_token, sizeof(g->admin_token), "%s",
             token != NULL ? token : "");
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
    gw_pools_sync(&g->pools, next);
    gw_route_table_swap(&g->table, next);
    log_kv(LOG_LVL_INFO, NULL, "routes reloaded", "file", g->routes_file,
           "routes", count, NULL);
    return 0;
}

void gw_on_hup(void *arg)
{
    gw_reload(arg);
}
