/* CORS, security headers and rate limits at the edge. */
#include "edge.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "ratelimit.h"
#include "xfer.h"

void gw_edge_security_headers(struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;

    httpd_add_header(r, "X-Content-Type-Options", "nosniff");
    httpd_add_header(r, "X-Frame-Options", "DENY");
    httpd_add_header(r, "Referrer-Policy", "no-referrer");
}

static int origin_allowed(const struct gw_cors *c, const char *origin)
{
    size_t i;

    for (i = 0; i < c->norigins; i++)
        if (strcmp(c->origins[i], "*") == 0 ||
            strcmp(c->origins[i], origin) == 0)
            return 1;
    return 0;
}

static void allow_origin(struct httpd_req *r, const struct gw_cors *c,
                         const char *origin)
{
    int any = c->norigins == 1 && strcmp(c->origins[0], "*") == 0;

    httpd_add_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any)
        httpd_add_header(r, "Vary", "Origin");
    if (c->credentials)
        httpd_add_header(r, "Access-Control-Allow-Credentials", "true");
}

/* Header names of a request header value: tokens, commas, spaces. */
static int header_names_ok(const char *s)
{
    for (; *s; s++)
        if (!(*s == ',' || *s == ' ' || *s == '-' || *s == '_' ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

int gw_edge_preflight(struct gw_xfer *x, struct gw_routes *rt)
{
    struct httpd_req *r = &x->st.r;
    const char *origin, *want, *hdrs;
    const struct gw_route *route = NULL;
    unsigned allowed = 0;
    char methods[96], age[16];

    if (strcmp(r->method, "OPTIONS") != 0)
        return 0;
    origin = httpd_header(r, "Origin");
    want = httpd_header(r, "Access-Control-Request-Method");
    if (origin == NULL || want == NULL)
        return 0;
    if (gw_routes_match(rt, want, r->path, &route, &allowed) ==
        GW_MATCH_NOT_FOUND)
        return 0;
    if (route == NULL) {
        /* The path's routes exist but not for that method: find one with
         * CORS to speak for the path. */
        const struct gw_route *any = NULL;
        unsigned bits = 0;

        if (gw_routes_match(rt, "OPTIONS", r->path, &any, &bits) ==
                GW_MATCH_OK &&
            any->cors.norigins > 0)
            route = any;
    }
    if (route == NULL || route->cors.norigins == 0)
        return 0;
    r->route = route->name;
    if (!origin_allowed(&route->cors, origin) ||
        !(allowed & gw_method_bit(want))) {
        httpd_error(r, 403, "cors_rejected",
                    "origin or method not allowed by this route's CORS "
                    "policy");
        return 1;
    }
    hdrs = httpd_header(r, "Access-Control-Request-Headers");
    allow_origin(r, &route->cors, origin);
    gw_methods_str(allowed, methods, sizeof(methods));
    httpd_add_header(r, "Access-Control-Allow-Methods", methods);
    if (route->cors.allow_headers[0] != '\0')
        httpd_add_header(r, "Access-Control-Allow-Headers",
                         route->cors.allow_headers);
    else if (hdrs != NULL && hdrs[0] != '\0' && header_names_ok(hdrs))
        httpd_add_header(r, "Access-Control-Allow-Headers", hdrs);
    snprintf(age, sizeof(age), "%ld", route->cors.max_age_s);
    httpd_add_header(r, "Access-Control-Max-Age", age);
    httpd_reply_raw(r, 204, NULL, "", 0);
    return 1;
}

void gw_edge_cors_headers(struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;
    const struct gw_cors *c = &x->route->cors;
    const char *origin;

    if (c->norigins == 0)
        return;
    origin = httpd_header(r, "Origin");
    if (origin == NULL || !origin_allowed(c, origin))
        return;
    allow_origin(r, c, origin);
    if (c->expose_headers[0] != '\0')
        httpd_add_header(r, "Access-Control-Expose-Headers",
                         c->expose_headers);
}

static struct metrics_family *m_decisions;
static pthread_once_t m_decisions_once = PTHREAD_ONCE_INIT;

static void decisions_setup(void)
{
    static const char *const labels[] = {"route", "decision"};

    m_decisions = metrics_family(
        metrics_default(), METRICS_COUNTER,
        "gateway_ratelimit_decisions_total",
        "Rate limit decisions: allowed, limited, fail_open, fail_closed.", 2,
        labels, NULL, 0);
}

/* Counts one decision; the family is looked up once, not per request
 * (the lookup takes the registry's lock and scans its families). */
static void decision(const struct gw_xfer *x, const char *what)
{
    const char *lv[2] = {x->route->name, what};

    pthread_once(&m_decisions_once, decisions_setup);
    if (m_decisions != NULL)
        metrics_inc_labels(m_decisions, lv, 1);
}

static void add_num(struct httpd_req *r, const char *name, long long v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", v);
    httpd_add_header(r, name, buf);
}

int gw_edge_rate_limit(struct gw *g, struct gw_xfer *x, const char *user)
{
    const struct gw_route *route = x->route;
    struct httpd_req *r = &x->st.r;
    struct gw_rl_result res;
    char key[256], ip[64];
    int closed;

    if (route->rl_limit <= 0)
        return 0;
    if (user != NULL && user[0] != '\0') {
        snprintf(key, sizeof(key), "gw:rl:%s:u:%s", route->name, user);
    } else {
        httpd_client_ip(r, ip, sizeof(ip));
        snprintf(key, sizeof(key), "gw:rl:%s:ip:%s", route->name, ip);
    }
    if (g->rl == NULL ||
        gw_ratelimit_check(g->rl, key, route->rl_limit, route->rl_period_ms,
                           &res) != 0) {
        closed = route->rl_fail == GW_RL_FAIL_CLOSED ||
                 (route->rl_fail == GW_RL_FAIL_DEFAULT && g->rl_fail_closed);
        decision(x, closed ? "fail_closed" : "fail_open");
        if (!closed)
            return 0;
        httpd_add_header(r, "Retry-After", "1");
        httpd_error(r, 503, "rate_limit_unavailable",
                    "rate limiting is unavailable; try again shortly");
        return -1;
    }
    add_num(r, "RateLimit-Limit", res.limit);
    add_num(r, "RateLimit-Remaining", res.remaining);
    add_num(r, "RateLimit-Reset", (res.reset_ms + 999) / 1000);
    if (res.allowed) {
        decision(x, "allowed");
        return 0;
    }
    decision(x, "limited");
    add_num(r, "Retry-After", (res.retry_ms + 999) / 1000);
    httpd_error(r, 429, "rate_limited",
                "too many requests on route %s; retry in %lld s",
                route->name, (long long)((res.retry_ms + 999) / 1000));
    return -1;
}
