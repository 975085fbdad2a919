/* Shared rate limits: GCRA in one Redis Lua script. */
#include "ratelimit.h"

#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "redispool/redispool.h"

/*
 * KEYS[1] bucket; ARGV[1] emission interval (ms, may be fractional),
 * ARGV[2] limit. Returns {allowed, remaining, retry_ms, reset_ms}.
 * Mirrors gw_rl_gcra().
 */
static const char gcra_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local em = tonumber(ARGV[1])\n"
    "local limit = tonumber(ARGV[2])\n"
    "local period = em * limit\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + em\n"
    "local allow_at = new_tat - period\n"
    "if allow_at > now then\n"
    "  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}\n"
    "end\n"
    "redis.call('SET', KEYS[1], tostring(new_tat), 'PX',\n"
    "           math.ceil(new_tat - now) + 1)\n"
    "return {1, math.floor((now - allow_at) / em),\n"
    "        0, math.ceil(new_tat - now)}\n";

#define GW_RL_BACKOFF_S 1.0

struct gw_ratelimit {
    struct redispool *pool;
    char sha[41];
    int timeout_ms;
    _Atomic double down_until; /* monotonic: skip Redis until then */
};

void gw_rl_gcra(int64_t *tat, int64_t now, long limit, long period_ms,
                struct gw_rl_result *out)
{
    double em = (double)period_ms / (double)limit;
    double t = *tat < now ? (double)now : (double)*tat;
    double new_tat = t + em, allow_at = new_tat - (double)period_ms;

    out->limit = limit;
    if (allow_at > (double)now) {
        out->allowed = 0;
        out->remaining = 0;
        out->retry_ms = (int64_t)(allow_at - (double)now + 0.999999);
        out->reset_ms = (int64_t)(t - (double)now + 0.999999);
        return;
    }
    out->allowed = 1;
    out->remaining = (long)(((double)now - allow_at) / em);
    out->retry_ms = 0;
    out->reset_ms = (int64_t)(new_tat - (double)now + 0.999999);
    *tat = (int64_t)(new_tat + 0.5);
}

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct gw_ratelimit *gw_ratelimit_new(const char *url, int pool_size,
                                      int timeout_ms)
{
    struct gw_ratelimit *rl = calloc(1, sizeof(*rl));
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t i;

    if (rl == NULL)
        return NULL;
    rl->pool = redispool_new(url, pool_size, timeout_ms);
    if (rl->pool == NULL) {
        free(rl);
        return NULL;
    }
    rl->timeout_ms = timeout_ms;
    SHA1((const unsigned char *)gcra_lua, strlen(gcra_lua), md);
    for (i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(rl->sha + 2 * i, 3, "%02x", md[i]);
    atomic_init(&rl->down_until, 0.0);
    return rl;
}

void gw_ratelimit_free(struct gw_ratelimit *rl)
{
    if (rl == NULL)
        return;
    redispool_free(rl->pool);
    free(rl);
}

static int read_reply(redisReply *r, struct gw_rl_result *out, long limit)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    out->allowed = r->element[0]->integer == 1;
    out->remaining = (long)r->element[1]->integer;
    out->retry_ms = r->element[2]->integer;
    out->reset_ms = r->element[3]->integer;
    out->limit = limit;
    return 0;
}

int gw_ratelimit_check(struct gw_ratelimit *rl, const char *key, long limit,
                       long period_ms, struct gw_rl_result *out)
{
    char em[64], lim[32];
    redisContext *c;
    redisReply *r;
    int rc = -1, broken = 0;

    if (mono() < atomic_load(&rl->down_until))
        return -1;
    c = redispool_acquire(rl->pool, rl->timeout_ms);
    if (c == NULL)
        goto down;
    snprintf(em, sizeof(em), "%.6f", (double)period_ms / (double)limit);
    snprintf(lim, sizeof(lim), "%ld", limit);
    r = redisCommand(c, "EVALSHA %s 1 %s %s %s", rl->sha, key, em, lim);
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = redisCommand(c, "EVAL %s 1 %s %s %s", gcra_lua, key, em, lim);
    }
    if (r == NULL)
        broken = 1;
    else if (read_reply(r, out, limit) == 0)
        rc = 0;
    else if (r->type == REDIS_REPLY_ERROR)
        log_kv(LOG_LVL_WARN, NULL, "rate limit script failed", "error",
               r->str, NULL);
    if (r != NULL)
        freeReplyObject(r);
    redispool_release(rl->pool, c, broken);
    if (rc == 0)
        return 0;
down:
    atomic_store(&rl->down_until, mono() + GW_RL_BACKOFF_S);
    log_kv(LOG_LVL_WARN, NULL, "rate limiter cannot reach Redis; using the "
           "routes' fail mode for a second", NULL);
    return -1;
}
