/* Matching a request to a route, and the swappable shared table. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} gw_methods[] = {
    {"GET", GW_M_GET},         {"HEAD", GW_M_HEAD},
    {"POST", GW_M_POST},       {"PUT", GW_M_PUT},
    {"PATCH", GW_M_PATCH},     {"DELETE", GW_M_DELETE},
    {"OPTIONS", GW_M_OPTIONS},
};
#define GW_NMETHODS (sizeof(gw_methods) / sizeof(gw_methods[0]))

unsigned gw_method_bit(const char *method)
{
    size_t i;

    if (method == NULL)
        return 0;
    for (i = 0; i < GW_NMETHODS; i++)
        if (strcmp(method, gw_methods[i].name) == 0)
            return gw_methods[i].bit;
    return 0;
}

void gw_methods_str(unsigned methods, char *buf, size_t len)
{
    size_t i, off = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (i = 0; i < GW_NMETHODS; i++) {
        int n;

        if (!(methods & gw_methods[i].bit))
            continue;
        n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                     gw_methods[i].name);
        if (n < 0 || (size_t)n >= len - off)
            return;
        off += (size_t)n;
    }
}

size_t gw_routes_max_body(const struct gw_routes *rt)
{
    size_t i, m = 0;

    for (i = 0; i < rt->nroutes; i++)
        if (rt->routes[i].max_body > m)
            m = rt->routes[i].max_body;
    return m;
}

struct gw_upstream *gw_routes_upstream(const struct gw_routes *rt,
                                       const char *name)
{
    size_t i;

    for (i = 0; i < rt->nupstreams; i++)
        if (strcmp(rt->upstreams[i].name, name) == 0)
            return &rt->upstreams[i];
    return NULL;
}

/* 1 when `prefix` covers `path` on a segment boundary. */
static int prefix_covers(const struct gw_route *r, const char *path)
{
    if (r->path_len == 1)
        return path[0] == '/';
    return strncmp(path, r->path, r->path_len) == 0 &&
           (path[r->path_len] == '\0' || path[r->path_len] == '/');
}

enum gw_match_rc gw_routes_match(const struct gw_routes *rt,
                                 const char *method, const char *path,
                                 const struct gw_route **out,
                                 unsigned *allowed)
{
    unsigned bit = gw_method_bit(method);
    size_t i, best_len = 0;
    int found = 0, pass;

    *out = NULL;
    *allowed = 0;
    /* Pass 0: exact paths; pass 1: prefixes. The first pass with any
     * match decides, and within a pass the longest path. */
    for (pass = 0; pass < 2 && !found; pass++) {
        for (i = 0; i < rt->nroutes; i++) {
            const struct gw_route *r = &rt->routes[i];
            int hit = pass == 0 ? (!r->is_prefix && strcmp(r->path, path) == 0)
                                : (r->is_prefix && prefix_covers(r, path));

            if (!hit || (found && r->path_len < best_len))
                continue;
            if (!found || r->path_len > best_len) {
                best_len = r->path_len;
                *allowed = 0;
                *out = NULL;
            }
            found = 1;
            *allowed |= r->methods;
            if ((r->methods & bit) && *out == NULL)
                *out = r;
        }
    }
    if (!found)
        return GW_MATCH_NOT_FOUND;
    return *out != NULL ? GW_MATCH_OK : GW_MATCH_METHOD;
}

int gw_route_upstream_path(const struct gw_route *r, const char *path,
                           char *buf, size_t len)
{
    const char *rest = path;
    int n;

    if (r->strip_prefix && r->path_len > 1)
        rest = path + r->path_len;
    n = snprintf(buf, len, "%s", rest[0] == '\0' ? "/" : rest);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void gw_route_table_init(struct gw_route_table *t, struct gw_routes *initial)
{
    pthread_mutex_init(&t->mu, NULL);
    t->cur = initial;
}

void gw_route_table_cleanup(struct gw_route_table *t)
{
    gw_routes_release(t->cur);
    t->cur = NULL;
    pthread_mutex_destroy(&t->mu);
}

struct gw_routes *gw_route_table_get(struct gw_route_table *t)
{
    struct gw_routes *rt;

    pthread_mutex_lock(&t->mu);
    rt = t->cur;
    if (rt != NULL)
        gw_routes_retain(rt);
    pthread_mutex_unlock(&t->mu);
    return rt;
}

void gw_route_table_swap(struct gw_route_table *t, struct gw_routes *next)
{
    struct gw_routes *old;

    pthread_mutex_lock(&t->mu);
    old = t->cur;
    t->cur = next;
    pthread_mutex_unlock(&t->mu);
    gw_routes_release(old);
}
