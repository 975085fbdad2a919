#include "plat.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin_users.h"
#include "keys.h"
#include "log/log.h"
#include "revoke.h"
#include "token/token_cache.h"

/* Connect timeout for pooled PostgreSQL connections, seconds. */
#define PG_CONNECT_TIMEOUT_S 5
/* Redis: a handful of connections suffice (readiness, later denylist). */
#define REDIS_POOL_SIZE 4
#define REDIS_TIMEOUT_MS 1000

static int make_dummy_hash(struct plat_ctx *ctx)
{
    unsigned char rnd[24];
    char pw[sizeof(rnd) * 2 + 1];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
    return plat_password_hash(&ctx->set->argon2, pw, strlen(pw),
                              ctx->dummy_hash, sizeof(ctx->dummy_hash));
}

int plat_ctx_init(struct plat_ctx *ctx, const struct plat_settings *set)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->set = set;

    if (sem_init(&ctx->argon2_slots, 0,
                 (unsigned)set->argon2_max_concurrent) != 0) {
        log_error(NULL, "sem_init: %s", strerror(errno));
        return -1;
    }
    ctx->argon2_slots_ready = 1;

    ctx->pg = pgpool_new(set->database_url, set->pg_pool_size,
                         PG_CONNECT_TIMEOUT_S);
    if (ctx->pg == NULL) {
        log_error(NULL, "cannot create the PostgreSQL pool");
        return -1;
    }
    ctx->redis = redispool_new(set->redis_url, REDIS_POOL_SIZE,
                               REDIS_TIMEOUT_MS);
    if (ctx->redis == NULL) {
        log_error(NULL, "REDIS_URL is malformed (redis://host:port/db)");
        return -1;
    }

    if (set->jwt_private_key_pem != NULL)
        ctx->signer = tok_signer_new_rsa(set->jwt_private_key_pem,
                                         set->jwt_private_key_len, NULL);
    else
        ctx->signer = tok_signer_new_hmac(set->jwt_secret,
                                          strlen(set->jwt_secret), NULL);
    if (ctx->signer == NULL) {
        log_error(NULL, "cannot load the JWT signing key (%s)",
                  set->jwt_private_key_pem != NULL ? "JWT_PRIVATE_KEY_FILE"
                                                   : "JWT_SECRET");
        return -1;
    }
    ctx->keyset = tok_keyset_new();
    if (ctx->keyset == NULL ||
        tok_signer_add_to_keyset(ctx->signer, ctx->keyset) != 0) {
        log_error(NULL, "cannot build the JWT keyset");
        return -1;
    }
    ctx->identity.keyset = ctx->keyset;
    ctx->identity.policy.issuer = set->jwt_issuer;
    ctx->identity.policy.audience = set->jwt_audience;
    ctx->identity.policy.leeway_s = 60;
    ctx->identity.internal_token = set->internal_token;
    if (plat_keys_add_previous(ctx) != 0)
        return -1;
    ctx->rev = ident_rev_new(ctx->redis, (int)set->revocation_cache_s);
    if (ctx->rev == NULL) {
        log_error(NULL, "out of memory");
        return -1;
    }
    ctx->identity.rev = ctx->rev;
    ctx->identity.rev_fail_open = set->revocation_fail_open;
    if (set->token_cache_size > 0) {
        ctx->token_cache = tok_cache_new((size_t)set->token_cache_size,
                                         (int)set->token_cache_ttl_s);
        if (ctx->token_cache == NULL) {
            log_error(NULL, "TOKEN_CACHE_SIZE: out of memory");
            return -1;
        }
        ctx->identity.cache = ctx->token_cache;
    }

    if (make_dummy_hash(ctx) != 0) {
        log_error(NULL, "argon2id failed with m=%u KiB t=%u p=%u",
                  set->argon2.memory_kib, set->argon2.iterations,
                  set->argon2.parallelism);
        return -1;
    }
    log_kv(LOG_LVL_INFO, NULL, "signing key loaded", "kid",
           tok_signer_kid(ctx->signer), "alg",
           set->jwt_private_key_pem != NULL ? "RS256" : "HS256", NULL);
    return 0;
}

void plat_ctx_cleanup(struct plat_ctx *ctx)
{
    if (ctx->rev != NULL)
        ident_rev_free(ctx->rev);
    tok_cache_free(ctx->token_cache);
    if (ctx->keyset != NULL)
        tok_keyset_free(ctx->keyset);
    if (ctx->signer != NULL)
        tok_signer_free(ctx->signer);
    if (ctx->redis != NULL)
        redispool_free(ctx->redis);
    if (ctx->pg != NULL)
        pgpool_free(ctx->pg);
    if (ctx->argon2_slots_ready)
        sem_destroy(&ctx->argon2_slots);
    memset(ctx, 0, sizeof(*ctx));
}

int plat_ctx_migrate(struct plat_ctx *ctx, int timeout_s)
{
    struct timespec start, now;
    int waited_log = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (pgpool_ping(ctx->pg) != 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= timeout_s) {
            log_error(NULL, "PostgreSQL not reachable after %d s", timeout_s);
            return -1;
        }
        if (!waited_log) {
            log_info(NULL, "waiting for PostgreSQL (up to %d s)", timeout_s);
            waited_log = 1;
        }
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    }
    if (pgpool_migrate(ctx->pg, "platform", ctx->set->migrations_dir) != 0) {
        log_error(NULL, "migrations in %s failed", ctx->set->migrations_dir);
        return -1;
    }
    if (plat_admin_bootstrap(ctx) != 0)
        return -1;
    /* Redis may have lost the denylist: best effort, logged. */
    plat_revoke_republish(ctx);
    return 0;
}

int plat_ready(void *arg, char *why, size_t whylen)
{
    struct plat_ctx *ctx = arg;

    if (pgpool_ping(ctx->pg) != 0) {
        snprintf(why, whylen, "postgres unreachable");
        return -1;
    }
    if (redispool_ping(ctx->redis) != 0) {
        snprintf(why, whylen, "redis unreachable");
        return -1;
    }
    return 0;
}

int plat_argon2_acquire(struct plat_ctx *ctx, int wait_ms)
{
    struct timespec dl;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(&ctx->argon2_slots, &dl) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

void plat_argon2_release(struct plat_ctx *ctx)
{
    sem_post(&ctx->argon2_slots);
}
