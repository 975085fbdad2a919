#include "httpd/httpd_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *route_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void route_cleanup(struct httpd_route *rt)
{
    size_t i;

    for (i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt->is_param);
    free(rt->method);
    free(rt->pattern);
    memset(rt, 0, sizeof(*rt));
}

/* A parameter name: [A-Za-z0-9_]+ */
static int route_valid_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Splits "/a/{b}/c" into segments; -1 on a malformed pattern or OOM. */
static int route_parse_segments(struct httpd_route *rt, const char *pattern)
{
    const char *p = pattern + 1;
    size_t n = 1;
    const char *q;

    for (q = p; *q != '\0'; q++)
        if (*q == '/')
            n++;
    rt->segs = calloc(n, sizeof(*rt->segs));
    rt->is_param = calloc(n, sizeof(*rt->is_param));
    if (rt->segs == NULL || rt->is_param == NULL)
        return -1;
    while (rt->nsegs < n) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
        const char *name = param ? p + 1 : p;
        size_t nlen = param ? len - 2 : len;

        if (param && !route_valid_name(name, nlen))
            return -1;
        if (!param && (memchr(p, '{', len) != NULL ||
                       memchr(p, '}', len) != NULL ||
                       memchr(p, '*', len) != NULL))
            return -1;
        rt->segs[rt->nsegs] = route_strndup(name, nlen);
        if (rt->segs[rt->nsegs] == NULL)
            return -1;
        rt->is_param[rt->nsegs] = param;
        rt->nsegs++;
        if (param)
            rt->nparams++;
        p += len + 1;
    }
    return rt->nparams <= HTTPD_MAX_PARAMS ? 0 : -1;
}

int httpd_route_add(struct httpd_server *s, const char *method,
                    const char *pattern, httpd_handler_fn fn, void *arg,
                    size_t max_body, int quiet)
{
    struct httpd_route rt;
    size_t plen;

    if (method == NULL || method[0] == '\0' || pattern == NULL ||
        pattern[0] != '/' || fn == NULL)
        return -1;
    memset(&rt, 0, sizeof(rt));
    plen = strlen(pattern);
    rt.method = strdup(method);
    rt.pattern = strdup(pattern);
    if (rt.method == NULL || rt.pattern == NULL)
        goto fail;
    if (plen >= 2 && strcmp(pattern + plen - 2, "/*") == 0) {
        rt.kind = HTTPD_ROUTE_PREFIX;
        rt.prefix_len = plen - 2;
        if (memchr(pattern, '*', plen - 1) != NULL ||
            memchr(pattern, '{', plen) != NULL)
            goto fail;
    } else {
        if (route_parse_segments(&rt, pattern) != 0)
            goto fail;
        rt.kind = rt.nparams > 0 ? HTTPD_ROUTE_PARAM : HTTPD_ROUTE_EXACT;
    }
    rt.fn = fn;
    rt.arg = arg;
    rt.max_body = max_body != 0 ? max_body : s->opts.max_body;
    rt.quiet = quiet;
    if (s->nroutes == s->cap_routes) {
        size_t cap = s->cap_routes != 0 ? s->cap_routes * 2 : 16;
        struct httpd_route *n = realloc(s->routes, cap * sizeof(*n));
        if (n == NULL)
            goto fail;
        s->routes = n;
        s->cap_routes = cap;
    }
    s->routes[s->nroutes++] = rt;
    return 0;
fail:
    route_cleanup(&rt);
    return -1;
}

void httpd_routes_free(struct httpd_server *s)
{
    size_t i;

    for (i = 0; i < s->nroutes; i++)
        route_cleanup(&s->routes[i]);
    free(s->routes);
    s->routes = NULL;
    s->nroutes = 0;
    s->cap_routes = 0;
}

int httpd_route_has_exact(const struct httpd_server *s, const char *pattern)
{
    size_t i;

    for (i = 0; i < s->nroutes; i++)
        if (s->routes[i].kind == HTTPD_ROUTE_EXACT &&
            strcmp(s->routes[i].pattern, pattern) == 0)
            return 1;
    return 0;
}

/*
 * Segment-wise match of path against an EXACT or PARAM route. When vals is
 * not NULL, stores pointers/lengths of parameter values.
 */
static int route_match_segments(const struct httpd_route *rt,
                                const char *path, const char **vals,
                                size_t *lens)
{
    const char *p;
    size_t i, k = 0;

    if (path[0] != '/')
        return 0;
    p = path + 1;
    for (i = 0; i < rt->nsegs; i++) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (rt->is_param[i]) {
            if (len == 0)
                return 0;
            if (vals != NULL) {
                vals[k] = p;
                lens[k] = len;
            }
            k++;
        } else if (strlen(rt->segs[i]) != len ||
                   memcmp(rt->segs[i], p, len) != 0) {
            return 0;
        }
        if (end == NULL)
            return i + 1 == rt->nsegs;
        p = end + 1;
    }
    return 0;
}

static int route_match_path(const struct httpd_route *rt, const char *path)
{
    if (rt->kind == HTTPD_ROUTE_PREFIX) {
        /* Prefix "/a" matches "/a" and "/a/..." but not "/ab". */
        if (strncmp(path, rt->pattern, rt->prefix_len) != 0)
            return 0;
        return path[rt->prefix_len] == '\0' || path[rt->prefix_len] == '/';
    }
    return route_match_segments(rt, path, NULL, NULL);
}

static int route_method_ok(const struct httpd_route *rt, const char *method)
{
    if (strcmp(rt->method, "*") == 0 || strcasecmp(rt->method, method) == 0)
        return 1;
    /* HEAD is GET without a body; MHD drops the body itself. */
    return strcasecmp(method, "HEAD") == 0 &&
           strcasecmp(rt->method, "GET") == 0;
}

/* Lower rank wins: exact, then fewer parameters, then longer prefixes. */
static long route_rank(const struct httpd_route *rt)
{
    switch (rt->kind) {
    case HTTPD_ROUTE_EXACT:
        return 0;
    case HTTPD_ROUTE_PARAM:
        return (long)rt->nparams;
    case HTTPD_ROUTE_PREFIX:
        return 1000000L - (long)rt->prefix_len;
    }
    return 2000000L;
}

static void allow_append(char *allow, size_t allowlen, const char *method)
{
    size_t used = strlen(allow);
    size_t mlen = strlen(method);
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
        p += mlen;
    }
    snprintf(allow + used, allowlen - used, "%s%s", used > 0 ? ", " : "",
             method);
}

const struct httpd_route *httpd_route_match(const struct httpd_server *s,
                                            struct httpd_req *r,
                                            char *allow, size_t allowlen,
                                            const char **pattern, int *err)
{
    const struct httpd_route *best = NULL;
    const char *vals[HTTPD_MAX_PARAMS];
    size_t lens[HTTPD_MAX_PARAMS];
    size_t i;

    *err = 0;
    *pattern = NULL;
    if (allowlen > 0)
        allow[0] = '\0';
    for (i = 0; i < s->nroutes; i++) {
        const struct httpd_route *rt = &s->routes[i];

        if (!route_match_path(rt, r->path))
            continue;
        if (!route_method_ok(rt, r->method)) {
            if (*pattern == NULL)
                *pattern = rt->pattern;
            allow_append(allow, allowlen, rt->method);
            if (strcmp(rt->method, "GET") == 0)
                allow_append(allow, allowlen, "HEAD");
            continue;
        }
        if (best == NULL || route_rank(rt) < route_rank(best))
            best = rt;
    }
    if (best == NULL)
        return NULL;
    if (best->kind == HTTPD_ROUTE_PARAM) {
        size_t k = 0;

        route_match_segments(best, r->path, vals, lens);
        for (i = 0; i < best->nsegs; i++) {
            if (!best->is_param[i])
                continue;
            r->param_names[k] = best->segs[i];
            r->param_values[k] = route_strndup(vals[k], lens[k]);
            if (r->param_values[k] == NULL) {
                *err = -1;
                break;
            }
            k++;
            r->nparams = k;
        }
    }
    return best;
}
