/* Parsing and validating the routes file, target overrides from env. */
#include "routes.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define GW_PATH_MAX 1024
#define GW_TARGET_MAX 512
#define GW_TIMEOUT_MAX_MS 600000L
#define GW_BODY_MAX ((size_t)1 << 30)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fputs("gateway: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xcalloc(1, n);

    memcpy(p, s, n);
    return p;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * A route path: absolute, printable, no query/fragment, no trailing slash
 * (except "/"), no empty or dot segments — what we match is then exactly
 * what the upstream sees.
 */
static const char *path_problem(const char *p)
{
    const char *seg;
    size_t n = strlen(p);

    if (n == 0 || p[0] != '/')
        return "must start with '/'";
    if (n > GW_PATH_MAX)
        return "is too long";
    if (n == 1)
        return NULL;
    if (p[n - 1] == '/')
        return "must not end with '/'";
    for (seg = p; *seg; seg++)
        if ((unsigned char)*seg <= 0x20 || *seg == 0x7f || *seg == '?' ||
            *seg == '#' || *seg == '%')
            return "has a space, control, '?', '#' or '%' character";
    seg = p;
    while (*seg == '/') {
        const char *end = strchr(seg + 1, '/');
        size_t sl = end ? (size_t)(end - seg - 1) : strlen(seg + 1);

        if (sl == 0 || (sl == 1 && seg[1] == '.') ||
            (sl == 2 && seg[1] == '.' && seg[2] == '.'))
            return "has an empty or dot segment";
        if (end == NULL)
            break;
        seg = end;
    }
    return NULL;
}

/*
 * Checks a target base URL and returns a copy without trailing slashes,
 * or NULL with *why set.
 */
char *gw_routes_target_dup(const char *url, const char **why)
{
    const char *host;
    char *out;
    size_t n = strlen(url);

    if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else {
        *why = "must start with http:// or https://";
        return NULL;
    }
    if (n > GW_TARGET_MAX) {
        *why = "is too long";
        return NULL;
    }
    if (*host == '\0' || *host == '/' || *host == ':') {
        *why = "has no host";
        return NULL;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '?' ||
            *c == '#' || *c == '@') {
            *why = "has a space, control, '?', '#' or '@' character";
            return NULL;
        }
    out = xstrdup(url);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return out;
}

void gw_routes_targets_free(char **targets, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(targets[i]);
    free(targets);
}

static int parse_methods(struct gw_route *r, json_t *arr, size_t idx,
                         char *err, size_t errlen)
{
    json_t *val;
    size_t i;

    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        seterr(err, errlen,
               "routes[%zu].methods: must be a non-empty array", idx);
        return -1;
    }
    r->methods = 0;
    json_array_foreach(arr, i, val) {
        unsigned bit = gw_method_bit(json_string_value(val));

        if (bit == 0) {
            seterr(err, errlen,
                   "routes[%zu].methods[%zu]: not one of GET HEAD POST PUT "
                   "PATCH DELETE OPTIONS",
                   idx, i);
            return -1;
        }
        r->methods |= bit;
    }
    return 0;
}

static int parse_roles(struct gw_route *r, json_t *arr, size_t idx,
                       char *err, size_t errlen)
{
    json_t *val;
    size_t i;

    if (!json_is_array(arr) || json_array_size(arr) > GW_MAX_ROLES) {
        seterr(err, errlen,
               "routes[%zu].roles: must be an array of at most %d names",
               idx, GW_MAX_ROLES);
        return -1;
    }
    json_array_foreach(arr, i, val) {
        const char *s = json_string_value(val);

        if (s == NULL || s[0] == '\0' || strlen(s) >= GW_ROLE_MAX ||
            strchr(s, ',') != NULL) {
            seterr(err, errlen,
                   "routes[%zu].roles[%zu]: must be a non-empty string of "
                   "at most %d characters without ','",
                   idx, i, GW_ROLE_MAX - 1);
            return -1;
        }
        snprintf(r->roles[i], sizeof(r->roles[i]), "%s", s);
    }
    r->nroles = json_array_size(arr);
    return 0;
}

/* Integer field in [min, max]; 1 when present, 0 absent, -1 invalid. */
static int int_field(json_t *obj, const char *key, long long min,
                     long long max, long long *out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max)
        return -1;
    *out = json_integer_value(v);
    return 1;
}

static const char *const route_keys[] = {
    "name",  "prefix",     "path",     "methods", "upstream", "strip_prefix",
    "auth",  "roles",      "timeout_ms", "max_body", "rate_limit",
    "cors",  "connect_timeout_ms", "first_byte_timeout_ms", NULL,
};

static int parse_route(struct gw_routes *rt, struct gw_route *r, json_t *obj,
                       size_t idx, const struct gw_route_defaults *def,
                       char *err, size_t errlen)
{
    const char *key, *s, *why;
    json_t *val, *prefix, *path;
    long long n;
    int rc;

    if (!json_is_object(obj)) {
        seterr(err, errlen, "routes[%zu]: must be an object", idx);
        return -1;
    }
    json_object_foreach(obj, key, val) {
        size_t k;

        for (k = 0; route_keys[k] != NULL; k++)
            if (strcmp(key, route_keys[k]) == 0)
                break;
        if (route_keys[k] == NULL) {
            seterr(err, errlen, "routes[%zu]: unknown key \"%.64s\"", idx,
                   key);
            return -1;
        }
    }
    s = json_string_value(json_object_get(obj, "name"));
    if (s == NULL || s[0] == '\0' || strlen(s) >= GW_NAME_MAX) {
        seterr(err, errlen, "routes[%zu].name: must be a string of 1-%d "
               "characters", idx, GW_NAME_MAX - 1);
        return -1;
    }
    snprintf(r->name, sizeof(r->name), "%s", s);

    prefix = json_object_get(obj, "prefix");
    path = json_object_get(obj, "path");
    if ((prefix == NULL) == (path == NULL)) {
        seterr(err, errlen, "routes[%zu]: needs exactly one of \"prefix\" "
               "and \"path\"", idx);
        return -1;
    }
    r->is_prefix = prefix != NULL;
    s = json_string_value(r->is_prefix ? prefix : path);
    why = s == NULL ? "must be a string" : path_problem(s);
    if (why != NULL) {
        seterr(err, errlen, "routes[%zu].%s: %s", idx,
               r->is_prefix ? "prefix" : "path", why);
        return -1;
    }
    r->path = xstrdup(s);
    r->path_len = strlen(s);

    r->methods = GW_M_ANY;
    val = json_object_get(obj, "methods");
    if (val != NULL && parse_methods(r, val, idx, err, errlen) != 0)
        return -1;

    s = json_string_value(json_object_get(obj, "upstream"));
    if (s == NULL || (r->upstream = gw_routes_upstream(rt, s)) == NULL) {
        seterr(err, errlen, "routes[%zu].upstream: %s", idx,
               s == NULL ? "must be a string" : "unknown upstream");
        return -1;
    }

    val = json_object_get(obj, "strip_prefix");
    if (val != NULL) {
        if (!json_is_boolean(val)) {
            seterr(err, errlen, "routes[%zu].strip_prefix: must be a "
                   "boolean", idx);
            return -1;
        }
        r->strip_prefix = json_is_true(val);
        if (r->strip_prefix && !r->is_prefix) {
            seterr(err, errlen, "routes[%zu].strip_prefix: only for "
                   "\"prefix\" routes", idx);
            return -1;
        }
    }

    r->auth = GW_AUTH_TOKEN;
    val = json_object_get(obj, "auth");
    if (val != NULL) {
        s = json_string_value(val);
        if (s != NULL && strcmp(s, "none") == 0)
            r->auth = GW_AUTH_NONE;
        else if (s == NULL || strcmp(s, "token") != 0) {
            seterr(err, errlen, "routes[%zu].auth: must be \"none\" or "
                   "\"token\"", idx);
            return -1;
        }
    }

    val = json_object_get(obj, "roles");
    if (val != NULL) {
        if (parse_roles(r, val, idx, err, errlen) != 0)
            return -1;
        if (r->nroles > 0 && r->auth != GW_AUTH_TOKEN) {
            seterr(err, errlen, "routes[%zu].roles: needs \"auth\": "
                   "\"token\"", idx);
            return -1;
        }
    }

    r->timeout_ms = def->timeout_ms;
    rc = int_field(obj, "timeout_ms", 1, GW_TIMEOUT_MAX_MS, &n);
    if (rc < 0) {
        seterr(err, errlen, "routes[%zu].timeout_ms: must be an integer in "
               "1..%ld", idx, GW_TIMEOUT_MAX_MS);
        return -1;
    }
    if (rc > 0)
        r->timeout_ms = (long)n;

    r->max_body = def->max_body;
    rc = int_field(obj, "max_body", 0, (long long)GW_BODY_MAX, &n);
    if (rc < 0) {
        seterr(err, errlen, "routes[%zu].max_body: must be an integer in "
               "0..%zu", idx, GW_BODY_MAX);
        return -1;
    }
    if (rc > 0)
        r->max_body = (size_t)n;
    return gw_routes_parse_route_ext(r, obj, idx, err, errlen);
}

/* Rejects two routes with the same name, or the same path/prefix and a
 * shared method (the second could never be reached). */
static int check_duplicates(const struct gw_routes *rt, char *err,
                            size_t errlen)
{
    size_t i, j;

    for (i = 0; i < rt->nroutes; i++)
        for (j = 0; j < i; j++) {
            const struct gw_route *a = &rt->routes[j], *b = &rt->routes[i];

            if (strcmp(a->name, b->name) == 0) {
                seterr(err, errlen, "routes[%zu].name: \"%s\" already used "
                       "by routes[%zu]", i, b->name, j);
                return -1;
            }
            if (a->is_prefix == b->is_prefix && strcmp(a->path, b->path) == 0 &&
                (a->methods & b->methods) != 0) {
                seterr(err, errlen, "routes[%zu]: same %s and methods as "
                       "routes[%zu]", i, b->is_prefix ? "prefix" : "path",
                       j);
                return -1;
            }
        }
    return 0;
}

static void routes_free(struct gw_routes *rt)
{
    size_t i;

    if (rt == NULL)
        return;
    for (i = 0; i < rt->nupstreams; i++)
    {
        gw_routes_targets_free(rt->upstreams[i].targets,
                               rt->upstreams[i].ntargets);
        gw_routes_targets_free(rt->upstreams[i].green_targets,
                               rt->upstreams[i].green_ntargets);
    }
    for (i = 0; i < rt->nroutes; i++) {
        free(rt->routes[i].path);
        gw_routes_targets_free(rt->routes[i].cors.origins,
                               rt->routes[i].cors.norigins);
    }
    free(rt->upstreams);
    free(rt->routes);
    free(rt);
}

struct gw_routes *gw_routes_parse(const char *text, size_t len,
                                  const struct gw_route_defaults *def,
                                  char *err, size_t errlen)
{
    struct gw_routes *rt = NULL;
    json_error_t jerr;
    json_t *root, *ups, *routes, *val;
    const char *key;
    size_t i;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        seterr(err, errlen, "invalid JSON at line %d column %d: %s",
               jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        seterr(err, errlen, "top level must be an object");
        goto fail;
    }
    json_object_foreach(root, key, val) {
        if (strcmp(key, "upstreams") != 0 && strcmp(key, "routes") != 0) {
            seterr(err, errlen, "unknown top-level key \"%.64s\"", key);
            goto fail;
        }
    }
    ups = json_object_get(root, "upstreams");
    routes = json_object_get(root, "routes");
    if (!json_is_object(ups)) {
        seterr(err, errlen, "upstreams: must be an object");
        goto fail;
    }
    if (!json_is_array(routes)) {
        seterr(err, errlen, "routes: must be an array");
        goto fail;
    }

    rt = xcalloc(1, sizeof(*rt));
    atomic_init(&rt->refs, 1);
    rt->upstreams = xcalloc(json_object_size(ups) + 1, sizeof(*rt->upstreams));
    json_object_foreach(ups, key, val) {
        struct gw_upstream *up = &rt->upstreams[rt->nupstreams++];

        atomic_init(&up->rr, 0);
        if (gw_routes_parse_upstream(up, key, val, err, errlen) != 0)
            goto fail;
    }
    rt->routes = xcalloc(json_array_size(routes) + 1, sizeof(*rt->routes));
    json_array_foreach(routes, i, val) {
        rt->nroutes = i + 1;
        if (parse_route(rt, &rt->routes[i], val, i, def, err, errlen) != 0)
            goto fail;
    }
    if (check_duplicates(rt, err, errlen) != 0)
        goto fail;
    json_decref(root);
    return rt;

fail:
    json_decref(root);
    routes_free(rt);
    return NULL;
}

/* "llm-orchestrator" -> "UPSTREAM_LLM_ORCHESTRATOR_URL". */
static void env_name(const char *up, const char *suffix, char *buf,
                     size_t len)
{
    size_t off;
    int n = snprintf(buf, len, "UPSTREAM_%s%s", up, suffix);

    if (n < 0)
        return;
    for (off = 9; buf[off] != '\0'; off++) {
        if (buf[off] == '-')
            buf[off] = '_';
        else
            buf[off] = (char)toupper((unsigned char)buf[off]);
    }
}

/* Splits a comma list of URLs; NULL with *why set on a bad entry. */
static char **split_targets(const char *list, size_t *n, const char **why)
{
    char **out;
    const char *p = list;
    size_t cap = 1, count = 0;

    for (const char *c = list; *c; c++)
        cap += *c == ',';
    out = xcalloc(cap + 1, sizeof(char *));
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        char item[GW_TARGET_MAX + 1];

        while (l > 0 && isspace((unsigned char)*p)) {
            p++;
            l--;
        }
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            l--;
        if (l > GW_TARGET_MAX) {
            *why = "a URL is too long";
            goto fail;
        }
        if (l > 0) {
            memcpy(item, p, l);
            item[l] = '\0';
            out[count] = gw_routes_target_dup(item, why);
            if (out[count] == NULL)
                goto fail;
            count++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    if (count == 0) {
        *why = "no URL in the list";
        goto fail;
    }
    *n = count;
    return out;

fail:
    gw_routes_targets_free(out, count);
    return NULL;
}

int gw_routes_apply_env(struct gw_routes *rt, char *err, size_t errlen)
{
    static const char *const suffix[GW_NCOLORS] = {"_URL", "_GREEN_URL"};
    char name[GW_NAME_MAX + 32];
    size_t i, nup = rt->nupstreams * GW_NCOLORS;
    char ***lists = xcalloc(nup + 1, sizeof(*lists));
    size_t *counts = xcalloc(nup + 1, sizeof(*counts));
    int rc = 0;

    /* Validate every variable first so a bad one changes nothing.
     * Index i is upstream i / 2, colour i % 2. */
    for (i = 0; i < nup && rc == 0; i++) {
        const char *val, *why = "";

        env_name(rt->upstreams[i / GW_NCOLORS].name,
                 suffix[i % GW_NCOLORS], name, sizeof(name));
        val = getenv(name);
        if (val == NULL || val[0] == '\0')
            continue;
        lists[i] = split_targets(val, &counts[i], &why);
        if (lists[i] == NULL) {
            seterr(err, errlen, "%s: %s", name, why);
            rc = -1;
        }
    }
    for (i = 0; i < nup; i++) {
        struct gw_upstream *up = &rt->upstreams[i / GW_NCOLORS];
        char ***tp = i % GW_NCOLORS ? &up->green_targets : &up->targets;
        size_t *np = i % GW_NCOLORS ? &up->green_ntargets : &up->ntargets;

        if (lists[i] == NULL)
            continue;
        if (rc != 0) {
            gw_routes_targets_free(lists[i], counts[i]);
            continue;
        }
        gw_routes_targets_free(*tp, *np);
        *tp = lists[i];
        *np = counts[i];
    }
    free(lists);
    free(counts);
    return rc;
}

struct gw_routes *gw_routes_load(const char *path,
                                 const struct gw_route_defaults *def,
                                 char *err, size_t errlen)
{
    struct gw_routes *rt;
    char why[600];
    size_t size = 0;
    char *buf = cfg_read_file(path, 4 * 1024 * 1024, &size, why,
                              sizeof(why));

    if (buf == NULL) {
        seterr(err, errlen, "%s", why);
        return NULL;
    }
    rt = gw_routes_parse(buf, size, def, err, errlen);
    if (rt != NULL && gw_routes_apply_env(rt, err, errlen) != 0) {
        routes_free(rt);
        rt = NULL;
    }
    free(buf);
    return rt;
}

void gw_routes_retain(struct gw_routes *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
}

void gw_routes_release(struct gw_routes *rt)
{
    if (rt == NULL)
        return;
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) == 1)
        routes_free(rt);
}

