/*
 * Parsing one upstreams.<name> entry of the routes file: the old form
 * {"targets": [...]} (= blue, weight 100) or the pool form with balance,
 * sticky, health_check, breaker and blue / green colours.
 */
#include "routes.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Upstream names become env var names, so keep them to [A-Za-z0-9_-]. */
static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= GW_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return 0;
    return 1;
}

static int only_keys(json_t *obj, const char *const *keys, const char *where,
                     char *err, size_t errlen)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        size_t k;

        for (k = 0; keys[k] != NULL; k++)
            if (strcmp(key, keys[k]) == 0)
                break;
        if (keys[k] == NULL) {
            seterr(err, errlen, "%s: unknown key \"%.64s\"", where, key);
            return -1;
        }
    }
    return 0;
}

static int parse_targets(json_t *arr, char ***out, size_t *n,
                         const char *where, char *err, size_t errlen)
{
    json_t *val;
    size_t i;

    if (!json_is_array(arr)) {
        seterr(err, errlen, "%s: must be an array of URLs", where);
        return -1;
    }
    *n = json_array_size(arr);
    *out = calloc(*n + 1, sizeof(char *));
    if (*out == NULL) {
        fputs("gateway: out of memory\n", stderr);
        abort();
    }
    json_array_foreach(arr, i, val) {
        const char *why = "must be a string";

        if (!json_is_string(val) ||
            ((*out)[i] = gw_routes_target_dup(json_string_value(val),
                                              &why)) == NULL) {
            seterr(err, errlen, "%s[%zu]: %s", where, i, why);
            return -1;
        }
    }
    return 0;
}

/* Integer in [min, max] or absent (keeps *out). 0, or -1 with err. */
static int int_opt(json_t *obj, const char *key, long long min,
                   long long max, long *out, const char *where, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        seterr(err, errlen, "%s.%s: must be an integer in %lld..%lld",
               where, key, min, max);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

static int parse_color(struct gw_upstream *up, int color, json_t *obj,
                       char *err, size_t errlen)
{
    static const char *const keys[] = {"targets", "weight", NULL};
    char where[GW_NAME_MAX + 32];
    char tw[GW_NAME_MAX + 48];
    long w = up->weight[color];

    snprintf(where, sizeof(where), "upstreams.%s.%s", up->name,
             color == GW_BLUE ? "blue" : "green");
    if (!json_is_object(obj)) {
        seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    if (only_keys(obj, keys, where, err, errlen) != 0)
        return -1;
    snprintf(tw, sizeof(tw), "%s.targets", where);
    if (parse_targets(json_object_get(obj, "targets"),
                      color == GW_BLUE ? &up->targets : &up->green_targets,
                      color == GW_BLUE ? &up->ntargets : &up->green_ntargets,
                      tw, err, errlen) != 0)
        return -1;
    if (int_opt(obj, "weight", 0, 100, &w, where, err, errlen) != 0)
        return -1;
    up->weight[color] = (int)w;
    return 0;
}

static int parse_health(struct gw_upstream *up, json_t *obj, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"path", "interval_ms", "timeout_ms",
                                       NULL};
    char where[GW_NAME_MAX + 32];
    const char *path;

    snprintf(where, sizeof(where), "upstreams.%s.health_check", up->name);
    if (!json_is_object(obj) || only_keys(obj, keys, where, err, errlen)) {
        if (!json_is_object(obj))
            seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    path = json_string_value(json_object_get(obj, "path"));
    if (path == NULL || path[0] != '/' ||
        strlen(path) >= sizeof(up->hc_path) || strpbrk(path, " \r\n")) {
        seterr(err, errlen, "%s.path: must be a path starting with '/'",
               where);
        return -1;
    }
    snprintf(up->hc_path, sizeof(up->hc_path), "%s", path);
    up->hc_interval_ms = 5000;
    up->hc_timeout_ms = 1000;
    if (int_opt(obj, "interval_ms", 50, 3600000, &up->hc_interval_ms, where,
                err, errlen) != 0 ||
        int_opt(obj, "timeout_ms", 10, 60000, &up->hc_timeout_ms, where, err,
                errlen) != 0)
        return -1;
    return 0;
}

static int parse_breaker(struct gw_upstream *up, json_t *obj, char *err,
                         size_t errlen)
{
    static const char *const keys[] = {"failures", "error_rate", "window",
                                       "open_ms", NULL};
    char where[GW_NAME_MAX + 32];
    long failures = up->breaker.failures, window = up->breaker.window;
    json_t *rate;

    snprintf(where, sizeof(where), "upstreams.%s.breaker", up->name);
    if (!json_is_object(obj)) {
        seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    if (only_keys(obj, keys, where, err, errlen) != 0 ||
        int_opt(obj, "failures", 1, 1000, &failures, where, err, errlen) ||
        int_opt(obj, "window", 2, 64, &window, where, err, errlen) ||
        int_opt(obj, "open_ms", 10, 3600000, &up->breaker.open_ms, where,
                err, errlen))
        return -1;
    up->breaker.failures = (int)failures;
    up->breaker.window = (int)window;
    rate = json_object_get(obj, "error_rate");
    if (rate != NULL) {
        if (!json_is_number(rate) || json_number_value(rate) <= 0 ||
            json_number_value(rate) > 1) {
            seterr(err, errlen, "%s.error_rate: must be a number in (0, 1]",
                   where);
            return -1;
        }
        up->breaker.error_rate = json_number_value(rate);
    }
    return 0;
}

int gw_routes_parse_upstream(struct gw_upstream *up, const char *name,
                             void *json_obj, char *err, size_t errlen)
{
    static const char *const keys[] = {"targets", "balance", "sticky",
                                       "health_check", "breaker", "blue",
                                       "green", NULL};
    json_t *obj = json_obj, *v, *blue, *green;
    char where[GW_NAME_MAX + 16];
    const char *s;

    if (!valid_name(name)) {
        seterr(err, errlen,
               "upstreams: name \"%.64s\" must be 1-63 of [A-Za-z0-9_-]",
               name);
        return -1;
    }
    snprintf(up->name, sizeof(up->name), "%s", name);
    snprintf(where, sizeof(where), "upstreams.%s", name);
    up->weight[GW_BLUE] = 100;
    up->weight[GW_GREEN] = 0;
    up->breaker.failures = 5;
    up->breaker.error_rate = 0.5;
    up->breaker.window = 20;
    up->breaker.open_ms = 5000;
    if (!json_is_object(obj)) {
        seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    if (only_keys(obj, keys, where, err, errlen) != 0)
        return -1;
    blue = json_object_get(obj, "blue");
    green = json_object_get(obj, "green");
    v = json_object_get(obj, "targets");
    if (v != NULL && blue != NULL) {
        seterr(err, errlen, "%s: \"targets\" and \"blue\" are the same "
               "thing; give one", where);
        return -1;
    }
    if (blue == NULL && v == NULL) {
        seterr(err, errlen, "%s.targets: must be an array of URLs", where);
        return -1;
    }
    if (v != NULL) {
        char tw[GW_NAME_MAX + 32];

        snprintf(tw, sizeof(tw), "%s.targets", where);
        if (parse_targets(v, &up->targets, &up->ntargets, tw, err,
                          errlen) != 0)
            return -1;
    }
    if (blue != NULL && parse_color(up, GW_BLUE, blue, err, errlen) != 0)
        return -1;
    if (green != NULL && parse_color(up, GW_GREEN, green, err, errlen) != 0)
        return -1;
    if (green != NULL && json_object_get(green, "weight") != NULL &&
        (blue == NULL || json_object_get(blue, "weight") == NULL))
        up->weight[GW_BLUE] = 100 - up->weight[GW_GREEN];
    if (up->weight[GW_BLUE] + up->weight[GW_GREEN] != 100) {
        seterr(err, errlen, "%s: blue and green weights must sum to 100",
               where);
        return -1;
    }
    if ((up->ntargets == 0 && up->weight[GW_BLUE] > 0 &&
         up->green_ntargets > 0) ||
        (up->green_ntargets == 0 && up->weight[GW_GREEN] > 0)) {
        seterr(err, errlen, "%s: a colour without targets must have weight "
               "0", where);
        return -1;
    }
    v = json_object_get(obj, "balance");
    if (v != NULL) {
        s = json_string_value(v);
        if (s != NULL && strcmp(s, "round_robin") == 0)
            up->balance = GW_BALANCE_ROUND_ROBIN;
        else if (s != NULL && strcmp(s, "least_requests") == 0)
            up->balance = GW_BALANCE_LEAST_REQUESTS;
        else {
            seterr(err, errlen, "%s.balance: must be \"round_robin\" or "
                   "\"least_requests\"", where);
            return -1;
        }
    }
    v = json_object_get(obj, "sticky");
    if (v != NULL) {
        if (!json_is_boolean(v)) {
            seterr(err, errlen, "%s.sticky: must be a boolean", where);
            return -1;
        }
        up->sticky = json_is_true(v);
    }
    v = json_object_get(obj, "health_check");
    if (v != NULL && parse_health(up, v, err, errlen) != 0)
        return -1;
    v = json_object_get(obj, "breaker");
    if (v != NULL && parse_breaker(up, v, err, errlen) != 0)
        return -1;
    return 0;
}

/* A header-name list ("A, B"): tokens and ", " only. */
static int header_list(json_t *arr, char *buf, size_t len)
{
    json_t *v;
    size_t i, off = 0;

    if (!json_is_array(arr))
        return -1;
    buf[0] = '\0';
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        int n;

        if (s == NULL || s[0] == '\0')
            return -1;
        for (const char *c = s; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                return -1;
        n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", s);
        if (n < 0 || (size_t)n >= len - off)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int parse_cors(struct gw_route *r, json_t *obj, size_t idx, char *err,
                      size_t errlen)
{
    static const char *const keys[] = {"origins", "credentials", "max_age_s",
                                       "allow_headers", "expose_headers",
                                       NULL};
    char where[48];
    json_t *v;
    size_t i;

    snprintf(where, sizeof(where), "routes[%zu].cors", idx);
    if (!json_is_object(obj)) {
        seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    if (only_keys(obj, keys, where, err, errlen) != 0)
        return -1;
    v = json_object_get(obj, "origins");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        seterr(err, errlen, "%s.origins: must be a non-empty array", where);
        return -1;
    }
    r->cors.origins = calloc(json_array_size(v) + 1, sizeof(char *));
    if (r->cors.origins == NULL)
        abort();
    for (i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));

        if (s == NULL || s[0] == '\0' || strpbrk(s, " \r\n,") != NULL ||
            (strcmp(s, "*") != 0 && strncmp(s, "http://", 7) != 0 &&
             strncmp(s, "https://", 8) != 0)) {
            seterr(err, errlen, "%s.origins[%zu]: must be \"*\" or an "
                   "http(s) origin", where, i);
            return -1;
        }
        r->cors.origins[i] = strdup(s);
        if (r->cors.origins[i] == NULL)
            abort();
        r->cors.norigins = i + 1;
    }
    v = json_object_get(obj, "credentials");
    if (v != NULL && !json_is_boolean(v)) {
        seterr(err, errlen, "%s.credentials: must be a boolean", where);
        return -1;
    }
    r->cors.credentials = json_is_true(v);
    if (r->cors.credentials && r->cors.norigins == 1 &&
        strcmp(r->cors.origins[0], "*") == 0) {
        seterr(err, errlen, "%s: credentials need explicit origins", where);
        return -1;
    }
    r->cors.max_age_s = 600;
    if (int_opt(obj, "max_age_s", 0, 86400, &r->cors.max_age_s, where, err,
                errlen) != 0)
        return -1;
    v = json_object_get(obj, "allow_headers");
    if (v != NULL && header_list(v, r->cors.allow_headers,
                                 sizeof(r->cors.allow_headers)) != 0) {
        seterr(err, errlen, "%s.allow_headers: must be header names", where);
        return -1;
    }
    v = json_object_get(obj, "expose_headers");
    if (v != NULL && header_list(v, r->cors.expose_headers,
                                 sizeof(r->cors.expose_headers)) != 0) {
        seterr(err, errlen, "%s.expose_headers: must be header names",
               where);
        return -1;
    }
    return 0;
}

static int parse_rate_limit(struct gw_route *r, json_t *obj, size_t idx,
                            char *err, size_t errlen)
{
    static const char *const keys[] = {"limit", "period_s", "fail", NULL};
    char where[48];
    long period_s = 60;
    const char *fail;

    snprintf(where, sizeof(where), "routes[%zu].rate_limit", idx);
    if (!json_is_object(obj)) {
        seterr(err, errlen, "%s: must be an object", where);
        return -1;
    }
    if (only_keys(obj, keys, where, err, errlen) != 0)
        return -1;
    if (json_object_get(obj, "limit") == NULL) {
        seterr(err, errlen, "%s.limit: required", where);
        return -1;
    }
    if (int_opt(obj, "limit", 1, 1000000000, &r->rl_limit, where, err,
                errlen) != 0 ||
        int_opt(obj, "period_s", 1, 86400, &period_s, where, err, errlen))
        return -1;
    r->rl_period_ms = period_s * 1000;
    fail = json_string_value(json_object_get(obj, "fail"));
    if (json_object_get(obj, "fail") != NULL &&
        (fail == NULL ||
         (strcmp(fail, "open") != 0 && strcmp(fail, "closed") != 0))) {
        seterr(err, errlen, "%s.fail: must be \"open\" or \"closed\"",
               where);
        return -1;
    }
    r->rl_fail = fail == NULL             ? GW_RL_FAIL_DEFAULT
                 : strcmp(fail, "open") == 0 ? GW_RL_FAIL_OPEN
                                             : GW_RL_FAIL_CLOSED;
    return 0;
}

int gw_routes_parse_route_ext(struct gw_route *r, void *json_obj,
                              size_t idx, char *err, size_t errlen)
{
    json_t *obj = json_obj, *v;
    char where[32];

    snprintf(where, sizeof(where), "routes[%zu]", idx);
    if (int_opt(obj, "connect_timeout_ms", 1, 600000, &r->connect_timeout_ms,
                where, err, errlen) != 0 ||
        int_opt(obj, "first_byte_timeout_ms", 1, 600000,
                &r->first_byte_timeout_ms, where, err, errlen) != 0)
        return -1;
    v = json_object_get(obj, "rate_limit");
    if (v != NULL && parse_rate_limit(r, v, idx, err, errlen) != 0)
        return -1;
    v = json_object_get(obj, "cors");
    if (v != NULL && parse_cors(r, v, idx, err, errlen) != 0)
        return -1;
    return 0;
}
