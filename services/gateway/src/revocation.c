#include "revocation.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "authn.h"
#include "config/config.h"
#include "identity/revocation.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "redispool/redispool.h"
#include "token/token_cache.h"

#define POOL_SIZE 16
/* Runs on the epoll threads: a hung Redis must cost little (and is then
 * skipped for a second by ident_rev). */
#define REDIS_TIMEOUT_MS 50
#define WARN_EVERY_S 10

struct gw_revocation {
    struct redispool *pool;
    struct ident_rev *rev;
    int fail_open;
    char host[256];
    char pass[256];
    int port;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;   /* guards sub and stopping */
    redisContext *sub;    /* the subscriber's connection, or NULL */
    int stopping;
    long last_warn;
    struct metrics_series *m_unavailable;
    struct metrics_series *m_revoked;
};

static int stopping(struct gw_revocation *rv)
{
    int s;

    pthread_mutex_lock(&rv->mu);
    s = rv->stopping;
    pthread_mutex_unlock(&rv->mu);
    return s;
}

/* One subscription: returns when the connection breaks or on stop. */
static void subscribe_once(struct gw_revocation *rv)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(rv->host, rv->port, tv);
    redisReply *r = NULL;
    void *rep;

    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return;
    }
    if (rv->pass[0] != '\0') {
        r = redisCommand(c, "AUTH %s", rv->pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            if (r != NULL)
                freeReplyObject(r);
            redisFree(c);
            return;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "SUBSCRIBE " IDENT_REV_CHANNEL);
    if (r == NULL) {
        redisFree(c);
        return;
    }
    freeReplyObject(r);
    pthread_mutex_lock(&rv->mu);
    if (rv->stopping) {
        pthread_mutex_unlock(&rv->mu);
        redisFree(c);
        return;
    }
    rv->sub = c;
    pthread_mutex_unlock(&rv->mu);
    /* Anything said before this moment may have been missed. */
    ident_rev_forget_ok(rv->rev);
    log_kv(LOG_LVL_INFO, NULL, "revocations: subscribed", "channel",
           IDENT_REV_CHANNEL, NULL);
    while (redisGetReply(c, &rep) == REDIS_OK) {
        r = rep;
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING)
            ident_rev_note(rv->rev, r->element[2]->str,
                           r->element[2]->len, time(NULL));
        if (r != NULL)
            freeReplyObject(r);
    }
    pthread_mutex_lock(&rv->mu);
    rv->sub = NULL;
    pthread_mutex_unlock(&rv->mu);
    redisFree(c);
}

static void *subscriber(void *arg)
{
    struct gw_revocation *rv = arg;
    int warned = 0;

    while (!stopping(rv)) {
        subscribe_once(rv);
        if (stopping(rv))
            break;
        if (!warned)
            log_kv(LOG_LVL_WARN, NULL, "revocations: subscription lost; "
                   "retrying every second", NULL);
        warned = 1;
        ident_rev_forget_ok(rv->rev);
        for (int i = 0; i < 10 && !stopping(rv); i++)
            usleep(100 * 1000);
    }
    return NULL;
}

/* An unlabelled counter series; NULL when metrics are short of memory. */
static struct metrics_series *counter(const char *name, const char *help)
{
    static const char *const none[1] = {NULL};
    struct metrics_family *f = metrics_family(
        metrics_default(), METRICS_COUNTER, name, help, 0, none, NULL, 0);

    return f != NULL ? metrics_series(f, none) : NULL;
}

struct gw_revocation *gw_revocation_new(const struct gw_revocation_opts *o,
                                        char *err, size_t errlen)
{
    struct gw_revocation *rv = calloc(1, sizeof(*rv));
    sigset_t all, old;
    int db = 0;

    if (rv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&rv->mu, NULL);
    rv->fail_open = o->fail_open;
    if (redispool_parse_url(o->redis_url, rv->host, sizeof(rv->host),
                            &rv->port, rv->pass, sizeof(rv->pass),
                            &db) != 0 ||
        (rv->pool = redispool_new(o->redis_url, POOL_SIZE,
                                  REDIS_TIMEOUT_MS)) == NULL) {
        snprintf(err, errlen, "REDIS_URL: malformed (redis://host:port/db)");
        goto fail;
    }
    rv->rev = ident_rev_new(rv->pool, o->cache_ttl_s);
    if (rv->rev == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rv->m_unavailable = counter("gateway_revocation_unavailable_total",
                                "Revocation checks that could not ask "
                                "Redis.");
    rv->m_revoked = counter("gateway_tokens_revoked_total",
                            "Verified tokens refused as revoked.");
    /* The subscriber must not take the signals httpd_run waits for. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rv->thread_started =
        pthread_create(&rv->thread, NULL, subscriber, rv) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rv->thread_started) {
        snprintf(err, errlen, "cannot start the revocation subscriber");
        goto fail;
    }
    return rv;
fail:
    gw_revocation_free(rv);
    return NULL;
}

void gw_revocation_free(struct gw_revocation *rv)
{
    if (rv == NULL)
        return;
    if (rv->thread_started) {
        pthread_mutex_lock(&rv->mu);
        rv->stopping = 1;
        /* Wakes the blocking read; the thread frees the context. */
        if (rv->sub != NULL)
            shutdown(rv->sub->fd, SHUT_RDWR);
        pthread_mutex_unlock(&rv->mu);
        pthread_join(rv->thread, NULL);
    }
    ident_rev_free(rv->rev);
    if (rv->pool != NULL)
        redispool_free(rv->pool);
    pthread_mutex_destroy(&rv->mu);
    free(rv);
}

int gw_revocation_check(struct gw_revocation *rv, const struct tok_claims *c,
                        time_t now)
{
    enum ident_rev_result r =
        ident_rev_check(rv->rev, c->sub, c->jti, c->iat, c->exp, now);

    if (r == IDENT_REV_OK)
        return 0;
    if (r == IDENT_REV_REVOKED) {
        if (rv->m_revoked != NULL)
            metrics_add(rv->m_revoked, 1);
        return -1;
    }
    if (rv->m_unavailable != NULL)
        metrics_add(rv->m_unavailable, 1);
    if ((long)now - __atomic_load_n(&rv->last_warn, __ATOMIC_RELAXED) >=
        WARN_EVERY_S) {
        __atomic_store_n(&rv->last_warn, (long)now, __ATOMIC_RELAXED);
        log_kv(LOG_LVL_WARN, NULL, "revocations: redis unavailable",
               "policy", rv->fail_open ? "fail_open" : "fail_closed", NULL);
    }
    return rv->fail_open ? 0 : -1;
}

void gw_revocation_note(struct gw_revocation *rv, const char *msg)
{
    ident_rev_note(rv->rev, msg, strlen(msg), time(NULL));
}

int gw_authn_setup_revocation(struct gw_authn *a, char *err, size_t errlen)
{
    struct gw_revocation_opts o;
    struct tok_cache *tc = NULL;
    struct gw_revocation *rv = NULL;
    struct cfg c;
    long size, ttl;
    int rc = -1;

    cfg_init(&c, "gateway");
    o.redis_url = cfg_str(&c, "REDIS_URL", "");
    o.cache_ttl_s = (int)cfg_int(&c, "REVOCATION_CACHE_TTL_S", 30, 1, 30);
    o.fail_open = cfg_bool(&c, "REVOCATION_FAIL_OPEN", 1);
    size = cfg_int(&c, "TOKEN_CACHE_SIZE", 10000, 0, 10000000);
    ttl = cfg_int(&c, "TOKEN_CACHE_TTL_S", 60, 1, 300);
    if (c.nerr > 0) {
        snprintf(err, errlen, "%s", c.err);
        goto cleanup;
    }
    if (size > 0 && (tc = tok_cache_new((size_t)size, (int)ttl)) ==
                        NULL) {
        snprintf(err, errlen, "TOKEN_CACHE_SIZE: out of memory");
        goto cleanup;
    }
    if (o.redis_url != NULL && o.redis_url[0] != '\0') {
        rv = gw_revocation_new(&o, err, errlen);
        if (rv == NULL)
            goto cleanup;
    } else {
        log_kv(LOG_LVL_WARN, NULL, "REDIS_URL unset: logout and disabled "
               "users are not enforced here until tokens expire", NULL);
    }
    gw_authn_attach(a, tc, rv);
    tc = NULL;
    rv = NULL;
    rc = 0;
cleanup:
    tok_cache_free(tc);
    gw_revocation_free(rv);
    cfg_cleanup(&c);
    return rc;
}
