#include "revoke.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "identity/revocation.h"
#include "plat.h"

#define REDIS_WAIT_MS 1000
#define PG_WAIT_MS 5000
/* Clock skew verifiers allow past exp (libs/token's maximum leeway). */
#define LEEWAY_S 60

static void note_local(struct plat_ctx *ctx, const char *msg)
{
    if (ctx->rev != NULL)
        ident_rev_note(ctx->rev, msg, strlen(msg), time(NULL));
}

/* exp plus the verifiers' leeway: keep the entry while it can verify. */
static long long keep_until(long long exp)
{
    return exp + LEEWAY_S;
}

static int publish_jtis(struct plat_ctx *ctx, const struct log_ctx *lc,
                        const struct plat_jti *v, size_t n)
{
    redisContext *c;
    char msg[128];
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        snprintf(msg, sizeof(msg), "jti %s %lld", v[i].jti,
                 keep_until(v[i].exp));
        note_local(ctx, msg);
    }
    if (n == 0)
        return 0;
    c = redispool_acquire(ctx->redis, REDIS_WAIT_MS);
    if (c == NULL) {
        log_kv(LOG_LVL_ERROR, lc, "redis unavailable: access tokens not "
               "denylisted (they expire on their own)", NULL);
        return -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ident_rev_publish_jti(c, v[i].jti, keep_until(v[i].exp));
    redispool_release(ctx->redis, c, rc != 0);
    if (rc != 0)
        log_kv(LOG_LVL_ERROR, lc, "redis error while denylisting access "
               "tokens", NULL);
    return rc;
}

int plat_revoke_jtis(struct plat_ctx *ctx, const struct log_ctx *lc,
                     const struct plat_jtis *j)
{
    return publish_jtis(ctx, lc, j->v, j->n);
}

int plat_revoke_jti(struct plat_ctx *ctx, const struct log_ctx *lc,
                    const char *jti, long long exp)
{
    struct plat_jti one;

    snprintf(one.jti, sizeof(one.jti), "%s", jti);
    one.exp = exp;
    return publish_jtis(ctx, lc, &one, 1);
}

int plat_revoke_user(struct plat_ctx *ctx, const struct log_ctx *lc,
                     const char *user_id, long long t)
{
    long long expire_at = t + ctx->set->access_ttl_s + LEEWAY_S;
    redisContext *c;
    char msg[160];
    int rc;

    snprintf(msg, sizeof(msg), "user %s %lld %lld", user_id, t, expire_at);
    note_local(ctx, msg);
    c = redispool_acquire(ctx->redis, REDIS_WAIT_MS);
    if (c == NULL) {
        log_kv(LOG_LVL_ERROR, lc, "redis unavailable: user marker not "
               "written", "user_id", user_id, NULL);
        return -1;
    }
    rc = ident_rev_publish_user(c, user_id, t, expire_at);
    redispool_release(ctx->redis, c, rc != 0);
    if (rc != 0)
        log_kv(LOG_LVL_ERROR, lc, "redis error while writing a user marker",
               "user_id", user_id, NULL);
    return rc;
}

struct republish {
    struct plat_ctx *ctx;
    int failed;
    long count;
};

static void on_jti(void *arg, const char *jti, long long exp)
{
    struct republish *rp = arg;

    if (rp->failed)
        return; /* Redis is down: do not wait once per row */
    if (plat_revoke_jti(rp->ctx, NULL, jti, exp) != 0)
        rp->failed = 1;
    rp->count++;
}

static void on_user(void *arg, const char *id, long long t)
{
    struct republish *rp = arg;

    if (rp->failed)
        return;
    if (plat_revoke_user(rp->ctx, NULL, id, t) != 0)
        rp->failed = 1;
    rp->count++;
}

int plat_revoke_republish(struct plat_ctx *ctx)
{
    struct republish rp = {ctx, 0, 0};
    PGconn *c = pgpool_acquire(ctx->pg, PG_WAIT_MS);
    enum plat_db rc;
    char n[32];

    if (c == NULL)
        return -1;
    rc = plat_revocations_each(c, NULL,
                               ctx->set->access_ttl_s + LEEWAY_S, on_jti,
                               on_user, &rp);
    pgpool_release(ctx->pg, c, rc == PLAT_DB_UNAVAILABLE);
    snprintf(n, sizeof(n), "%ld", rp.count);
    log_kv(rc == PLAT_DB_OK && !rp.failed ? LOG_LVL_INFO : LOG_LVL_WARN,
           NULL, "revocations re-published to redis", "count", n, NULL);
    return rc == PLAT_DB_OK && !rp.failed ? 0 : -1;
}
