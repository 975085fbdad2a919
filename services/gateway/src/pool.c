/* Live upstream pools: targets, weights, health, breakers, selection. */
#include "pool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log/log.h"
#include "metrics/metrics.h"

/* Consecutive failed requests that eject a target from a pool with active
 * health checks (the checks bring it back). */
#define GW_OUTLIER_FAILS 3
/* Consecutive failed checks that mark a target unhealthy. */
#define GW_HC_UNHEALTHY 2

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

const char *gw_color_name(enum gw_color c)
{
    return c == GW_GREEN ? "green" : "blue";
}

static struct metrics_family *fam_healthy(void)
{
    static const char *const labels[] = {"upstream", "color", "target"};

    return metrics_family(metrics_default(), METRICS_GAUGE,
                          "gateway_target_healthy",
                          "1 when the target takes traffic (health checks "
                          "and outlier detection).",
                          3, labels, NULL, 0);
}

static struct metrics_family *fam_breaker(void)
{
    static const char *const labels[] = {"upstream", "color", "target"};

    return metrics_family(metrics_default(), METRICS_GAUGE,
                          "gateway_breaker_state",
                          "Circuit breaker per target: 0 closed, 1 open, "
                          "2 half-open.",
                          3, labels, NULL, 0);
}

static void gauge(struct metrics_family *f, const struct gw_target *t,
                  double v)
{
    const char *lv[3] = {t->pool->name, gw_color_name(t->color), t->url};
    struct metrics_series *s = f != NULL ? metrics_series(f, lv) : NULL;

    if (s != NULL)
        metrics_set(s, v);
}

static struct gw_target *target_new(struct gw_pool *pool, const char *url,
                                    enum gw_color color)
{
    struct gw_target *t = xcalloc(1, sizeof(*t));

    atomic_init(&t->refs, 1);
    atomic_init(&t->inflight, 0);
    atomic_init(&t->healthy, 1);
    t->url = xstrdup(url);
    t->color = color;
    t->pool = pool;
    pthread_mutex_init(&t->mu, NULL);
    gw_breaker_init(&t->br);
    return t;
}

void gw_target_retain(struct gw_target *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void gw_target_release(struct gw_target *t)
{
    if (t == NULL ||
        atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->url);
    free(t);
}

void gw_pools_init(struct gw_pools *ps)
{
    pthread_mutex_init(&ps->mu, NULL);
    ps->head = NULL;
}

static void free_color(struct gw_pool *p, int c)
{
    size_t i;

    for (i = 0; i < p->ntargets[c]; i++)
        gw_target_release(p->targets[c][i]);
    free(p->targets[c]);
    p->targets[c] = NULL;
    p->ntargets[c] = 0;
}

void gw_pools_cleanup(struct gw_pools *ps)
{
    struct gw_pool *p = ps->head, *next;

    for (; p != NULL; p = next) {
        next = p->next;
        free_color(p, GW_BLUE);
        free_color(p, GW_GREEN);
        free(p->file_def);
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
    ps->head = NULL;
    pthread_mutex_destroy(&ps->mu);
}

struct gw_pool *gw_pools_find(struct gw_pools *ps, const char *name)
{
    struct gw_pool *p;

    pthread_mutex_lock(&ps->mu);
    for (p = ps->head; p != NULL; p = p->next)
        if (strcmp(p->name, name) == 0)
            break;
    pthread_mutex_unlock(&ps->mu);
    return p;
}

/* Replaces colour c's targets with `urls`, keeping the state of targets
 * whose URL stays. Call with p->mu held. */
static void set_targets(struct gw_pool *p, int c, char *const *urls,
                        size_t n)
{
    struct gw_target **next = xcalloc(n + 1, sizeof(*next));
    size_t i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < p->ntargets[c]; j++)
            if (strcmp(p->targets[c][j]->url, urls[i]) == 0)
                break;
        if (j < p->ntargets[c]) {
            next[i] = p->targets[c][j];
            gw_target_retain(next[i]);
        } else {
            next[i] = target_new(p, urls[i], (enum gw_color)c);
            gauge(fam_healthy(), next[i], 1);
            gauge(fam_breaker(), next[i], 0);
        }
    }
    free_color(p, c);
    p->targets[c] = next;
    p->ntargets[c] = n;
}

/* A canonical text of what the file says about a pool. */
static char *definition(const struct gw_upstream *up)
{
    size_t len = 512, i;
    char *buf, *at;

    for (i = 0; i < up->ntargets; i++)
        len += strlen(up->targets[i]) + 2;
    for (i = 0; i < up->green_ntargets; i++)
        len += strlen(up->green_targets[i]) + 2;
    len += strlen(up->hc_path);
    buf = xcalloc(1, len);
    at = buf + snprintf(buf, len, "%d|%d|%d|%d|%s|%ld|%ld|%d|%g|%d|%ld|B",
                        up->balance, up->sticky, up->weight[0],
                        up->weight[1], up->hc_path, up->hc_interval_ms,
                        up->hc_timeout_ms, up->breaker.failures,
                        up->breaker.error_rate, up->breaker.window,
                        up->breaker.open_ms);
    for (i = 0; i < up->ntargets; i++)
        at += snprintf(at, len - (size_t)(at - buf), ",%s", up->targets[i]);
    at += snprintf(at, len - (size_t)(at - buf), "|G");
    for (i = 0; i < up->green_ntargets; i++)
        at += snprintf(at, len - (size_t)(at - buf), ",%s",
                       up->green_targets[i]);
    return buf;
}

void gw_pools_sync(struct gw_pools *ps, struct gw_routes *rt)
{
    size_t i;

    pthread_mutex_lock(&ps->mu);
    for (i = 0; i < rt->nupstreams; i++) {
        struct gw_upstream *up = &rt->upstreams[i];
        struct gw_pool *p;
        char *def = definition(up);

        for (p = ps->head; p != NULL; p = p->next)
            if (strcmp(p->name, up->name) == 0)
                break;
        if (p == NULL) {
            p = xcalloc(1, sizeof(*p));
            snprintf(p->name, sizeof(p->name), "%s", up->name);
            pthread_mutex_init(&p->mu, NULL);
            p->next = ps->head;
            ps->head = p;
        }
        pthread_mutex_lock(&p->mu);
        if (p->file_def == NULL || strcmp(p->file_def, def) != 0) {
            p->balance = up->balance;
            p->sticky = up->sticky;
            p->weight[GW_BLUE] = up->weight[GW_BLUE];
            p->weight[GW_GREEN] = up->weight[GW_GREEN];
            snprintf(p->hc_path, sizeof(p->hc_path), "%s", up->hc_path);
            p->hc_interval_ms = up->hc_interval_ms;
            p->hc_timeout_ms = up->hc_timeout_ms;
            p->bopts = up->breaker;
            p->hc_next = 0;
            set_targets(p, GW_BLUE, up->targets, up->ntargets);
            set_targets(p, GW_GREEN, up->green_targets, up->green_ntargets);
            free(p->file_def);
            p->file_def = def;
            def = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        free(def);
        up->pool = p;
    }
    pthread_mutex_unlock(&ps->mu);
}

/* Per-thread xorshift for weighted picks (no lock, no syscalls). */
static uint32_t rand_u32(void)
{
    static _Thread_local uint64_t s;

    if (s == 0) {
        if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s) || s == 0)
            s = (uint64_t)(uintptr_t)&s ^ 0x9e3779b97f4a7c15ULL;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 32);
}

/* FNV-1a: a stable bucket per user for sticky pools. */
static uint32_t hash_key(const char *k)
{
    uint32_t h = 2166136261u;

    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 16777619u;
    }
    return h;
}

/* Candidates of colour c into cand; returns how many. Call under p->mu. */
static size_t candidates(struct gw_pool *p, int c, int need_healthy,
                         const struct gw_target *exclude, double now,
                         struct gw_target **cand)
{
    size_t i, n = 0;

    for (i = 0; i < p->ntargets[c] && n < GW_POOL_MAX_TARGETS; i++) {
        struct gw_target *t = p->targets[c][i];
        int ok;

        if (t == exclude)
            continue;
        if (need_healthy && !atomic_load(&t->healthy))
            continue;
        pthread_mutex_lock(&t->mu);
        ok = gw_breaker_would_allow(&t->br, &p->bopts, now);
        pthread_mutex_unlock(&t->mu);
        if (ok)
            cand[n++] = t;
    }
    return n;
}

static struct gw_target *choose(struct gw_pool *p, struct gw_target **cand,
                                size_t n)
{
    size_t i, best, start = p->rr++;

    if (p->balance == GW_BALANCE_ROUND_ROBIN)
        return cand[start % n];
    best = start % n;
    for (i = 1; i < n; i++) {
        size_t k = (start + i) % n;

        if (atomic_load(&cand[k]->inflight) <
            atomic_load(&cand[best]->inflight))
            best = k;
    }
    return cand[best];
}

enum gw_pick_rc gw_pool_pick(struct gw_pool *p, const char *sticky_key,
                             const struct gw_target *exclude, double now,
                             struct gw_target **out)
{
    struct gw_target *cand[GW_POOL_MAX_TARGETS], *t = NULL;
    int primary, other, pass;
    uint32_t roll;
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->ntargets[GW_BLUE] + p->ntargets[GW_GREEN] == 0) {
        pthread_mutex_unlock(&p->mu);
        return GW_PICK_EMPTY;
    }
    roll = p->sticky && sticky_key != NULL && sticky_key[0] != '\0'
               ? hash_key(sticky_key) % 100u
               : rand_u32() % 100u;
    primary = roll < (uint32_t)p->weight[GW_BLUE] ? GW_BLUE : GW_GREEN;
    if (p->ntargets[primary] == 0)
        primary = !primary;
    other = !primary;
    /* healthy in the chosen colour, healthy in the other colour (if it
     * takes traffic), then anything the breakers allow (panic). */
    for (pass = 0; pass < 4 && n == 0; pass++) {
        int c = pass == 1 || pass == 3 ? other : primary;

        if (c == other && (p->weight[other] == 0 || p->ntargets[other] == 0))
            continue;
        n = candidates(p, c, pass < 2, exclude, now, cand);
    }
    if (n > 0) {
        t = choose(p, cand, n);
        pthread_mutex_lock(&t->mu);
        gw_breaker_allow(&t->br, &p->bopts, now);
        pthread_mutex_unlock(&t->mu);
        gw_target_retain(t);
        atomic_fetch_add(&t->inflight, 1);
    }
    pthread_mutex_unlock(&p->mu);
    *out = t;
    return t != NULL ? GW_PICK_OK : GW_PICK_OPEN;
}

void gw_target_done(struct gw_target *t, int ok, double now)
{
    struct gw_pool *p = t->pool;
    enum gw_breaker_state before, after;
    int eject = 0;

    pthread_mutex_lock(&t->mu);
    before = t->br.state;
    gw_breaker_record(&t->br, &p->bopts, ok, now);
    after = t->br.state;
    if (ok == 1)
        t->fails = 0;
    else if (ok == 0 && ++t->fails >= GW_OUTLIER_FAILS && p->hc_path[0])
        eject = 1;
    pthread_mutex_unlock(&t->mu);
    if (before != after) {
        gauge(fam_breaker(), t, (double)after);
        log_kv(after == GW_BREAKER_OPEN ? LOG_LVL_WARN : LOG_LVL_INFO, NULL,
               "circuit breaker", "upstream", p->name, "target", t->url,
               "state", gw_breaker_state_name(after), NULL);
    }
    if (eject && atomic_exchange(&t->healthy, 0) == 1) {
        gauge(fam_healthy(), t, 0);
        log_kv(LOG_LVL_WARN, NULL, "target ejected (outlier)", "upstream",
               p->name, "target", t->url, NULL);
    }
    atomic_fetch_sub(&t->inflight, 1);
    gw_target_release(t);
}

void gw_target_health_result(struct gw_target *t, int ok)
{
    if (ok) {
        t->hc_fail = 0;
        if (atomic_exchange(&t->healthy, 1) == 0) {
            pthread_mutex_lock(&t->mu);
            t->fails = 0;
            pthread_mutex_unlock(&t->mu);
            gauge(fam_healthy(), t, 1);
            log_kv(LOG_LVL_INFO, NULL, "target healthy", "upstream",
                   t->pool->name, "target", t->url, NULL);
        }
        return;
    }
    if (++t->hc_fail >= GW_HC_UNHEALTHY &&
        atomic_exchange(&t->healthy, 0) == 1) {
        gauge(fam_healthy(), t, 0);
        log_kv(LOG_LVL_WARN, NULL, "target unhealthy", "upstream",
               t->pool->name, "target", t->url, NULL);
    }
}

size_t gw_pool_targets(struct gw_pool *p, struct gw_target **out, size_t max)
{
    size_t n = 0, i;
    int c;

    pthread_mutex_lock(&p->mu);
    for (c = 0; c < GW_NCOLORS; c++)
        for (i = 0; i < p->ntargets[c] && n < max; i++) {
            out[n] = p->targets[c][i];
            gw_target_retain(out[n++]);
        }
    pthread_mutex_unlock(&p->mu);
    return n;
}

json_t *gw_pool_json(struct gw_pool *p, double now)
{
    json_t *colors = json_object(), *o;
    size_t i;
    int c;

    (void)now;
    pthread_mutex_lock(&p->mu);
    for (c = 0; c < GW_NCOLORS; c++) {
        json_t *targets = json_array();

        for (i = 0; i < p->ntargets[c]; i++) {
            struct gw_target *t = p->targets[c][i];
            enum gw_breaker_state st;

            pthread_mutex_lock(&t->mu);
            st = t->br.state;
            pthread_mutex_unlock(&t->mu);
            json_array_append_new(
                targets, json_pack("{s:s,s:b,s:s,s:I}", "url", t->url,
                                   "healthy", atomic_load(&t->healthy),
                                   "breaker", gw_breaker_state_name(st),
                                   "in_flight",
                                   (json_int_t)atomic_load(&t->inflight)));
        }
        json_object_set_new(colors, gw_color_name((enum gw_color)c),
                            json_pack("{s:i,s:o}", "weight", p->weight[c],
                                      "targets", targets));
    }
    o = json_pack("{s:s,s:s,s:b,s:o}", "name", p->name, "balance",
                  p->balance == GW_BALANCE_LEAST_REQUESTS ? "least_requests"
                                                          : "round_robin",
                  "sticky", p->sticky, "colors", colors);
    pthread_mutex_unlock(&p->mu);
    return o;
}

int gw_pool_update(struct gw_pool *p, json_t *body, char *err, size_t errlen)
{
    json_t *weights = json_object_get(body, "weights");
    json_t *targets = json_object_get(body, "targets");
    char **urls[GW_NCOLORS] = {NULL, NULL};
    size_t nurls[GW_NCOLORS] = {0, 0}, i;
    int has_urls[GW_NCOLORS] = {0, 0};
    int w[GW_NCOLORS], c, rc = -1;
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        if (strcmp(key, "weights") != 0 && strcmp(key, "targets") != 0) {
            snprintf(err, errlen, "unknown key \"%.64s\"", key);
            return -1;
        }
    }
    if (weights == NULL && targets == NULL) {
        snprintf(err, errlen, "give \"weights\" and/or \"targets\"");
        return -1;
    }
    if (targets != NULL) {
        if (!json_is_object(targets)) {
            snprintf(err, errlen, "targets: must be an object");
            return -1;
        }
        json_object_foreach(targets, key, v) {
            c = strcmp(key, "blue") == 0    ? GW_BLUE
                : strcmp(key, "green") == 0 ? GW_GREEN
                                            : -1;
            if (c < 0 || !json_is_array(v) ||
                json_array_size(v) > GW_POOL_MAX_TARGETS) {
                snprintf(err, errlen, "targets.%.16s: must be blue or green "
                         "with an array of at most %d URLs", key,
                         GW_POOL_MAX_TARGETS);
                goto cleanup;
            }
            has_urls[c] = 1;
            nurls[c] = json_array_size(v);
            urls[c] = xcalloc(nurls[c] + 1, sizeof(char *));
            for (i = 0; i < nurls[c]; i++) {
                const char *why = "must be a string";
                json_t *u = json_array_get(v, i);

                if (!json_is_string(u) ||
                    (urls[c][i] = gw_routes_target_dup(json_string_value(u),
                                                       &why)) == NULL) {
                    snprintf(err, errlen, "targets.%s[%zu]: %s", key, i,
                             why);
                    goto cleanup;
                }
            }
        }
    }
    pthread_mutex_lock(&p->mu);
    w[GW_BLUE] = p->weight[GW_BLUE];
    w[GW_GREEN] = p->weight[GW_GREEN];
    if (weights != NULL) {
        json_t *b = json_object_get(weights, "blue");
        json_t *g = json_object_get(weights, "green");

        if (!json_is_object(weights) || !json_is_integer(b) ||
            !json_is_integer(g) || json_object_size(weights) != 2 ||
            json_integer_value(b) < 0 || json_integer_value(b) > 100 ||
            json_integer_value(g) < 0 || json_integer_value(g) > 100 ||
            json_integer_value(b) + json_integer_value(g) != 100) {
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "weights: blue and green integers 0..100 "
                     "summing to 100");
            goto cleanup;
        }
        w[GW_BLUE] = (int)json_integer_value(b);
        w[GW_GREEN] = (int)json_integer_value(g);
    }
    for (c = 0; c < GW_NCOLORS; c++) {
        size_t n = has_urls[c] ? nurls[c] : p->ntargets[c];

        if (n == 0 && w[c] > 0) {
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "%s has no targets, so its weight must "
                     "be 0", gw_color_name((enum gw_color)c));
            goto cleanup;
        }
    }
    for (c = 0; c < GW_NCOLORS; c++)
        if (has_urls[c])
            set_targets(p, c, urls[c], nurls[c]);
    p->weight[GW_BLUE] = w[GW_BLUE];
    p->weight[GW_GREEN] = w[GW_GREEN];
    pthread_mutex_unlock(&p->mu);
    rc = 0;

cleanup:
    for (c = 0; c < GW_NCOLORS; c++)
        gw_routes_targets_free(urls[c], nurls[c]);
    return rc;
}
