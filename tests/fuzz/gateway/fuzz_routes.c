/*
 * Fuzzes the routes file parser (gw_routes_parse, routes.c and
 * routes_upstream.c): the input is the file. A table that parses is then
 * used the way request threads use it: every route's own path (and one
 * level below it) must match some route, upstream paths are built into
 * roomy and tiny buffers, method sets are printed.
 */
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/gateway/src/routes.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH",
                                      "DELETE", "OPTIONS", "TRACE", "get"};

static void use_path(const struct gw_routes *rt, const char *path)
{
    const struct gw_route *r;
    unsigned allowed;
    char buf[512], tiny[2], mbuf[128];

    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
        enum gw_match_rc rc = gw_routes_match(rt, methods[m], path, &r,
                                              &allowed);

        if (rc == GW_MATCH_OK) {
            if (r < rt->routes || r >= rt->routes + rt->nroutes)
                abort();
            (void)gw_route_upstream_path(r, path, buf, sizeof buf);
            (void)gw_route_upstream_path(r, path, tiny, sizeof tiny);
        } else if (rc == GW_MATCH_METHOD) {
            gw_methods_str(allowed, mbuf, sizeof mbuf);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_route_defaults def = {.timeout_ms = 30000,
                                    .max_body = 1 << 20};
    char err[256], path[600];
    struct gw_routes *rt;

    err[0] = '\0';
    rt = gw_routes_parse((const char *)data, size, &def, err, sizeof err);
    if (!rt) {
        if (!memchr(err, '\0', sizeof err) || !err[0])
            abort();            /* a failure must say why */
        return 0;
    }
    (void)gw_routes_max_body(rt);
    for (size_t i = 0; i < rt->nroutes; i++) {
        const struct gw_route *r = &rt->routes[i];

        if (!r->upstream || strlen(r->path) != r->path_len)
            abort();
        if (gw_routes_upstream(rt, r->upstream->name) != r->upstream)
            abort();
        use_path(rt, r->path);
        snprintf(path, sizeof path, "%s/x", r->path);
        use_path(rt, path);
    }
    use_path(rt, "/");
    use_path(rt, "");
    gw_routes_release(rt);
    return 0;
}
