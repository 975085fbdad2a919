#include "throttle.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "plat.h"

#define REDIS_WAIT_MS 200
/* Failures are counted over this sliding window. */
#define FAILURE_WINDOW_S 900
#define WARN_EVERY_S 10

long plat_throttle_backoff_s(long failures, long free_failures, long base_s,
                             long max_s)
{
    long steps, d;

    if (failures < free_failures || base_s <= 0)
        return 0;
    steps = failures - free_failures;
    if (steps >= 30)
        return max_s;
    d = base_s << steps;
    return d > max_s || d <= 0 ? max_s : d;
}

static void warn_down(const struct log_ctx *lc)
{
    static long last;
    long now = (long)time(NULL);

    /* Racy by design: at worst two threads both log one line. */
    if (now - __atomic_load_n(&last, __ATOMIC_RELAXED) >= WARN_EVERY_S) {
        __atomic_store_n(&last, now, __ATOMIC_RELAXED);
        log_kv(LOG_LVL_WARN, lc,
               "redis unavailable: sign-in throttling fails open", NULL);
    }
}

/* Hex SHA-256 prefix (32 chars) of the account name. */
static void account_key(const char *account, char out[33])
{
    unsigned char h[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)account, strlen(account), h);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static redisContext *acquire(struct plat_ctx *ctx, const struct log_ctx *lc)
{
    redisContext *c = redispool_acquire(ctx->redis, REDIS_WAIT_MS);

    if (c == NULL)
        warn_down(lc);
    return c;
}

int plat_throttle_rate(struct plat_ctx *ctx, const struct log_ctx *lc,
                       const char *what, const char *ip, long limit,
                       long *retry_after)
{
    time_t now = time(NULL);
    long minute = (long)(now / 60);
    redisContext *c;
    redisReply *r;
    long long count = 0;
    int broken = 1;

    if (limit <= 0 || ip == NULL || ip[0] == '\0')
        return 0;
    if ((c = acquire(ctx, lc)) == NULL)
        return 0;
    r = redisCommand(c, "INCR basalt:rl:%s:%s:%ld", what, ip, minute);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        count = r->integer;
        broken = 0;
    }
    if (r != NULL)
        freeReplyObject(r);
    if (!broken && count == 1) {
        r = redisCommand(c, "EXPIRE basalt:rl:%s:%s:%ld 61", what, ip,
                         minute);
        if (r == NULL)
            broken = 1;
        else
            freeReplyObject(r);
    }
    redispool_release(ctx->redis, c, broken);
    if (broken) {
        warn_down(lc);
        return 0;
    }
    if (count <= limit)
        return 0;
    *retry_after = 60 - (long)(now % 60);
    return 1;
}

/* Remaining block (seconds, rounded up) of one key; 0 when none. */
static long block_left(redisContext *c, const char *kind, const char *id,
                       int *broken)
{
    redisReply *r = redisCommand(c, "PTTL basalt:lb:%s:%s", kind, id);
    long left = 0;

    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        *broken = 1;
    else if (r->integer > 0)
        left = (long)((r->integer + 999) / 1000);
    if (r != NULL)
        freeReplyObject(r);
    return left;
}

int plat_throttle_login_blocked(struct plat_ctx *ctx,
                                const struct log_ctx *lc,
                                const char *account, const char *ip,
                                long *retry_after)
{
    char ak[33];
    redisContext *c;
    long a, b = 0;
    int broken = 0;

    account_key(account, ak);
    if ((c = acquire(ctx, lc)) == NULL)
        return 0;
    a = block_left(c, "a", ak, &broken);
    if (!broken && ip != NULL && ip[0] != '\0')
        b = block_left(c, "ip", ip, &broken);
    redispool_release(ctx->redis, c, broken);
    if (broken) {
        warn_down(lc);
        return 0;
    }
    if (a <= 0 && b <= 0)
        return 0;
    *retry_after = a > b ? a : b;
    return 1;
}

/* One failure of one key: count it, block it when past the free ones. */
static int fail_one(struct plat_ctx *ctx, redisContext *c, const char *kind,
                    const char *id, long free_failures)
{
    const struct plat_settings *s = ctx->set;
    redisReply *r = redisCommand(c, "INCR basalt:lf:%s:%s", kind, id);
    long long n;
    long d;

    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    n = r->integer;
    freeReplyObject(r);
    r = redisCommand(c, "EXPIRE basalt:lf:%s:%s %d", kind, id,
                     FAILURE_WINDOW_S);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    d = plat_throttle_backoff_s((long)n, free_failures,
                                s->login_backoff_base_s,
                                s->login_backoff_max_s);
    if (d <= 0)
        return 0;
    r = redisCommand(c, "SET basalt:lb:%s:%s 1 EX %ld", kind, id, d);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

void plat_throttle_login_failed(struct plat_ctx *ctx,
                                const struct log_ctx *lc,
                                const char *account, const char *ip)
{
    char ak[33];
    redisContext *c;
    int broken;

    account_key(account, ak);
    if ((c = acquire(ctx, lc)) == NULL)
        return;
    broken = fail_one(ctx, c, "a", ak, ctx->set->login_free_failures) != 0;
    if (!broken && ip != NULL && ip[0] != '\0')
        broken = fail_one(ctx, c, "ip", ip,
                          ctx->set->login_ip_free_failures) != 0;
    redispool_release(ctx->redis, c, broken);
    if (broken)
        warn_down(lc);
}

void plat_throttle_login_ok(struct plat_ctx *ctx, const struct log_ctx *lc,
                            const char *account)
{
    char ak[33];
    redisContext *c;
    redisReply *r;

    account_key(account, ak);
    if ((c = acquire(ctx, lc)) == NULL)
        return;
    r = redisCommand(c, "DEL basalt:lf:a:%s basalt:lb:a:%s", ak, ak);
    redispool_release(ctx->redis, c, r == NULL);
    if (r != NULL)
        freeReplyObject(r);
    else
        warn_down(lc);
}
