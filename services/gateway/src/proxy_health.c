/*
 * proxy_health — active health checks: each pool with a health_check path
 * gets a GET of that path on every target once per interval, run as
 * easy handles on the first engine's multi (its thread only). The result
 * feeds gw_target_health_result. See proxy_int.h for ownership.
 */
#include "proxy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Starts a check of `t` (takes over the reference). */
static void health_start(struct gw_proxy *p, struct gw_target *t,
                         const char *path, long timeout_ms)
{
    struct gw_hc *hc = calloc(1, sizeof(*hc));
    size_t len = strlen(t->url) + strlen(path) + 1;
    char *url = malloc(len);
    CURLcode rc = CURLE_OK;

    if (hc == NULL || url == NULL || (hc->easy = curl_easy_init()) == NULL)
        goto fail;
    snprintf(url, len, "%s%s", t->url, path);
    hc->tag.kind = GW_EASY_HEALTH;
    hc->tag.obj = hc;
    hc->t = t;
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(hc->easy, opt, val);                       \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, &hc->tag);
    SET(CURLOPT_CLOSESOCKETFUNCTION, gw_proxy_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, p);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, discard);
#undef SET
    if (rc != CURLE_OK || curl_multi_add_handle(p->multi, hc->easy) !=
                              CURLM_OK)
        goto fail;
    free(url);
    t->hc_busy = 1;
    hc->next = p->checks;
    p->checks = hc;
    return;
fail:
    if (hc != NULL && hc->easy != NULL)
        curl_easy_cleanup(hc->easy);
    free(hc);
    free(url);
    gw_target_release(t);
}

void gw_health_done(struct gw_proxy *p, struct gw_hc *hc, CURLcode rc,
                    int record)
{
    struct gw_hc **pp;
    long status = 0;

    for (pp = &p->checks; *pp != NULL; pp = &(*pp)->next)
        if (*pp == hc) {
            *pp = hc->next;
            break;
        }
    curl_easy_getinfo(hc->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(p->multi, hc->easy);
    curl_easy_cleanup(hc->easy);
    if (record)
        gw_target_health_result(hc->t, rc == CURLE_OK && status >= 200 &&
                                           status < 400);
    hc->t->hc_busy = 0;
    gw_target_release(hc->t);
    free(hc);
}

/* Starts the check rounds that are due; returns ms until the next one. */
long gw_health_round(struct gw_proxy *p)
{
    struct gw_pools *ps;
    struct gw_pool *pool;
    double now = httpd_now(), next = now + 1.0;

    pthread_mutex_lock(&p->qmu);
    ps = p->pools;
    pthread_mutex_unlock(&p->qmu);
    if (ps == NULL)
        return 1000;
    pthread_mutex_lock(&ps->mu);
    for (pool = ps->head; pool != NULL; pool = pool->next) {
        struct gw_target *ts[2 * GW_POOL_MAX_TARGETS];
        char path[sizeof(pool->hc_path)];
        long timeout_ms, interval_ms;
        size_t n, i;

        pthread_mutex_lock(&pool->mu);
        snprintf(path, sizeof(path), "%s", pool->hc_path);
        timeout_ms = pool->hc_timeout_ms;
        interval_ms = pool->hc_interval_ms;
        pthread_mutex_unlock(&pool->mu);
        if (path[0] == '\0' || interval_ms <= 0)
            continue;
        if (now < pool->hc_next) {
            if (pool->hc_next < next)
                next = pool->hc_next;
            continue;
        }
        pool->hc_next = now + interval_ms / 1000.0;
        if (pool->hc_next < next)
            next = pool->hc_next;
        n = gw_pool_targets(pool, ts, sizeof(ts) / sizeof(ts[0]));
        for (i = 0; i < n; i++) {
            if (ts[i]->hc_busy)
                gw_target_release(ts[i]);
            else
                health_start(p, ts[i], path,
                             timeout_ms < interval_ms ? timeout_ms
                                                      : interval_ms);
        }
    }
    pthread_mutex_unlock(&ps->mu);
    return (long)((next - now) * 1000.0) + 1;
}
