/*
 * automation — wiring: settings, migrations, the worker pool and the HTTP
 * API. SIGTERM: stop claiming, drain HTTP and running jobs side by side
 * (both bounded by DRAIN_S), release what is left, exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auto.h"
#include "egress.h"
#include "workflows.h"
#include "files.h"
#include "config/config.h"
#include "identity/revocation.h"
#include "log/log.h"
#include "redispool/redispool.h"
#include "token/token_cache.h"

#define SERVICE "automation"
#define MIGRATE_RETRY_S 30

struct settings {
    const char *host, *log_level, *database_url, *redis_url;
    const char *storage_dir, *jwt_public_key_file, *jwt_secret;
    const char *jwt_issuer, *jwt_audience, *internal_token;
    const char *migrations_dir;
    int port, workers, lease_s, heartbeat_s, drain_s, max_attempts;
    int retry_base_ms, retry_max_ms, poll_ms, pg_pool_size;
    const char *platform_url;          /* workflows (workflows.h) */
    int sched_max_wait_ms, sched_grace_ms, sse_keepalive_s;
    long files_max_bytes;              /* files (files.h) */
    double import_max_error_rate;
    const char *http_allow_hosts;      /* egress (egress.h) */
    int http_allow_private;
    long token_cache_size, token_cache_ttl_s; /* token/token_cache.h */
};

struct deps {
    struct pgpool *pg;
    struct redispool *redis;
};

static void read_settings(struct cfg *c, struct settings *s)
{
    s->host = cfg_str(c, "HOST", "127.0.0.1");
    s->port = (int)cfg_int(c, "PORT", 8082, 0, 65535);
    s->log_level = cfg_str(c, "LOG_LEVEL", "info");
    s->database_url = cfg_str(c, "DATABASE_URL", NULL);
    s->redis_url = cfg_str(c, "REDIS_URL", NULL);
    s->workers = (int)cfg_int(c, "WORKERS", 4, 1, 256);
    s->lease_s = (int)cfg_int(c, "LEASE_S", 30, 2, 86400);
    s->heartbeat_s = (int)cfg_int(c, "HEARTBEAT_S", 10, 1, 3600);
    s->drain_s = (int)cfg_int(c, "DRAIN_S", 20, 0, 3600);
    s->max_attempts = (int)cfg_int(c, "JOB_MAX_ATTEMPTS", 5, 1, 100);
    s->retry_base_ms = (int)cfg_int(c, "RETRY_BASE_MS", 1000, 1, 3600000);
    s->retry_max_ms = (int)cfg_int(c, "RETRY_MAX_MS", 3600000, 1, 86400000);
    s->poll_ms = (int)cfg_int(c, "POLL_MS", 1000, 10, 60000);
    s->token_cache_size = cfg_int(c, "TOKEN_CACHE_SIZE", 10000, 0, 10000000);
    s->token_cache_ttl_s = cfg_int(c, "TOKEN_CACHE_TTL_S", 60, 1, 300);
    s->storage_dir = cfg_str(c, "STORAGE_DIR", ".run/storage");
    s->jwt_public_key_file = cfg_str(c, "JWT_PUBLIC_KEY_FILE", "");
    s->jwt_secret = cfg_str(c, "JWT_SECRET", "");
    s->jwt_issuer = cfg_str(c, "JWT_ISSUER", "basalt");
    s->jwt_audience = cfg_str(c, "JWT_AUDIENCE", "basalt");
    s->internal_token = cfg_str(c, "INTERNAL_TOKEN", "");
    s->migrations_dir = cfg_str(c, "MIGRATIONS_DIR",
                                "services/automation/migrations");
    s->pg_pool_size = (int)cfg_int(c, "PG_POOL_SIZE", s->workers + 8, 2,
                                   1024);
    s->platform_url = cfg_str(c, "PLATFORM_URL", "");
    s->sched_max_wait_ms = (int)cfg_int(c, "SCHEDULER_MAX_WAIT_MS", 1000, 10,
                                        60000);
    s->sched_grace_ms = (int)cfg_int(c, "SCHEDULE_GRACE_MS", 10000, 0,
                                     86400000);
    s->sse_keepalive_s = (int)cfg_int(c, "SSE_KEEPALIVE_S", 15, 1, 300);
    s->files_max_bytes = cfg_int(c, "FILES_MAX_BYTES",
                                 (long)AUTO_FILES_MAX_BYTES_DEFAULT, 1,
                                 (long)1 << 40);
    s->import_max_error_rate = cfg_double(c, "IMPORT_MAX_ERROR_RATE",
                                          AUTO_IMPORT_MAX_ERROR_RATE_DEFAULT,
                                          0, 1);
    s->http_allow_hosts = cfg_str(c, "HTTP_JOB_ALLOW_HOSTS", "");
    s->http_allow_private = cfg_bool(c, "HTTP_JOB_ALLOW_PRIVATE", 0);
    if (log_level_parse(s->log_level) < 0)
        cfg_fail(c, "LOG_LEVEL", "must be debug, info, warn or error");
    if (s->heartbeat_s >= s->lease_s)
        cfg_fail(c, "HEARTBEAT_S", "must be shorter than LEASE_S");
    if (s->jwt_secret && *s->jwt_secret && strlen(s->jwt_secret) < 32)
        cfg_fail(c, "JWT_SECRET", "must be at least 32 bytes");
    if (s->jwt_public_key_file && !*s->jwt_public_key_file &&
        s->jwt_secret && !*s->jwt_secret && s->internal_token &&
        !*s->internal_token)
        cfg_fail(c, "JWT_PUBLIC_KEY_FILE",
                 "set it, JWT_SECRET or INTERNAL_TOKEN to authenticate "
                 "callers");
}

/* A PEM key file larger than this is not one. */
#define PEM_MAX (64 * 1024)

/* Builds the verification keyset; NULL when no key is configured. Exits 2
 * on an unusable key. */
static struct tok_keyset *load_keys(const struct settings *s)
{
    struct tok_keyset *ks;
    size_t len = 0;
    char *pem;

    if (!*s->jwt_public_key_file && !*s->jwt_secret)
        return NULL;
    ks = tok_keyset_new();
    if (!ks) {
        fprintf(stderr, SERVICE ": out of memory\n");
        exit(1);
    }
    if (*s->jwt_public_key_file) {
        char why[300];

        pem = cfg_read_file(s->jwt_public_key_file, PEM_MAX, &len, why,
                            sizeof(why));
        if (!pem) {
            fprintf(stderr, SERVICE ": config: JWT_PUBLIC_KEY_FILE: %s\n",
                    why);
            exit(2);
        }
        if (tok_keyset_add_rsa_pem(ks, pem, len, NULL, NULL) != 0) {
            fprintf(stderr, SERVICE ": config: JWT_PUBLIC_KEY_FILE: "
                            "not an RSA PEM key\n");
            exit(2);
        }
        free(pem);
    }
    if (*s->jwt_secret &&
        tok_keyset_add_hmac(ks, s->jwt_secret, strlen(s->jwt_secret),
                            NULL) != 0) {
        fprintf(stderr, SERVICE ": config: JWT_SECRET: unusable\n");
        exit(2);
    }
    return ks;
}

/* PostgreSQL may still be starting (compose, k8s): retry ~30 s. */
static int migrate(struct pgpool *pg, const char *dir)
{
    time_t until = time(NULL) + MIGRATE_RETRY_S;

    for (;;) {
        if (pgpool_migrate(pg, "automation", dir) == 0)
            return 0;
        if (time(NULL) >= until)
            return -1;
        log_kv(LOG_LVL_WARN, NULL, "migrations failed; retrying", NULL);
        sleep(1);
    }
}

static int ready(void *arg, char *why, size_t whylen)
{
    struct deps *d = arg;

    if (pgpool_ping(d->pg) != 0) {
        snprintf(why, whylen, "postgres unreachable");
        return -1;
    }
    if (redispool_ping(d->redis) != 0) {
        snprintf(why, whylen, "redis unreachable");
        return -1;
    }
    return 0;
}

static void on_signal(void *arg)
{
    auto_pool_stop_claiming(arg);
}

int main(void)
{
    struct cfg c;
    struct settings s;
    struct deps d = {0};
    struct tok_keyset *keys = NULL;
    struct auto_queue queue;
    struct auto_auth auth = {0};
    struct auto_api api;
    struct auto_pool_opts po = {0};
    struct auto_pool *pool = NULL;
    struct httpd_opts ho;
    struct httpd_server *srv = NULL;
    struct auto_events *events = NULL;
    struct auto_sched *sched = NULL;
    struct auto_sched_opts so = {0};
    struct auto_wf_api wfapi;
    struct auto_files files = {0};
    int rc = 1;

    cfg_init(&c, SERVICE);
    read_settings(&c, &s);
    if (cfg_check(&c) != 0)
        return 2;
    log_init(SERVICE, s.log_level);
    keys = load_keys(&s);
    if (auto_storage_mkdir_p(s.storage_dir) != 0) {
        fprintf(stderr, SERVICE ": config: STORAGE_DIR: cannot create %s\n",
                s.storage_dir);
        return 2;
    }
    d.redis = redispool_new(s.redis_url, 4, 2000);
    if (!d.redis) {
        fprintf(stderr, SERVICE ": config: REDIS_URL: malformed\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto cleanup;
    d.pg = pgpool_new(s.database_url, s.pg_pool_size, 5);
    if (!d.pg)
        goto cleanup;
    if (migrate(d.pg, s.migrations_dir) != 0) {
        log_kv(LOG_LVL_ERROR, NULL, "cannot apply migrations", "dir",
               s.migrations_dir, NULL);
        goto cleanup;
    }
    auto_queue_init(&queue, d.pg, s.lease_s, s.retry_base_ms,
                    s.retry_max_ms);
    auth.keys = keys;
    auth.policy.issuer = s.jwt_issuer;
    auth.policy.audience = s.jwt_audience;
    auth.policy.leeway_s = 60;
    auth.internal_token = s.internal_token;
    /* Bearer tokens: logout / disabled users count within 30 s. */
    auth.rev = ident_rev_new(d.redis, 30);
    if (s.token_cache_size > 0 &&
        (auth.cache = tok_cache_new((size_t)s.token_cache_size,
                                    (int)s.token_cache_ttl_s)) == NULL) {
        log_kv(LOG_LVL_ERROR, NULL, "TOKEN_CACHE_SIZE: out of memory", NULL);
        goto cleanup;
    }
    api.queue = &queue;
    api.auth = &auth;
    api.default_max_attempts = s.max_attempts;

    po.queue = &queue;
    po.conninfo = s.database_url;
    po.workers = s.workers;
    po.heartbeat_s = s.heartbeat_s;
    po.poll_ms = s.poll_ms;
    po.drain_s = s.drain_s;
    events = auto_events_new(s.redis_url, d.pg, s.sse_keepalive_s);
    if (!events)
        goto cleanup;
    po.on_job = auto_events_on_job;
    po.on_job_arg = events;
    auto_steps_init(s.platform_url, s.internal_token);
    if (auto_egress_init(s.http_allow_hosts, s.http_allow_private) != 0)
        goto cleanup;
    wfapi.pg = d.pg;
    wfapi.auth = &auth;
    wfapi.events = events;
    wfapi.default_max_attempts = s.max_attempts;
    files.pg = d.pg;
    files.auth = &auth;
    files.max_bytes = (uint64_t)s.files_max_bytes;
    files.max_error_rate = s.import_max_error_rate;
    files.storage = auto_storage_dir_new(s.storage_dir);
    if (!files.storage)
        goto cleanup;
    auto_files_set(&files);   /* before workers: import_file reads it */
    pool = auto_pool_new(&po);
    if (!pool || auto_pool_start(pool) != 0)
        goto cleanup;

    httpd_opts_init(&ho, SERVICE);
    ho.host = s.host;
    ho.port = s.port;
    ho.threads = 0;
    ho.drain_s = (unsigned)(s.drain_s > 0 ? s.drain_s : 1);
    ho.ready = ready;
    ho.ready_arg = &d;
    srv = httpd_new(&ho);
    if (!srv || auto_api_routes(srv, &api) != 0 ||
        auto_wf_routes(srv, &wfapi) != 0 ||
        auto_files_routes(srv, &files) != 0 ||
        auto_events_routes(srv, events, &auth) != 0 ||
        httpd_start(srv) != 0 || auto_events_start(events) != 0)
        goto cleanup;
    so.pg = d.pg;
    so.events = events;
    so.max_wait_ms = s.sched_max_wait_ms;
    so.grace_ms = s.sched_grace_ms;
    sched = auto_sched_start(&so);
    if (!sched)
        goto cleanup;
    log_kv(LOG_LVL_INFO, NULL, "automation ready", "host", s.host, NULL);
    httpd_run(srv, on_signal, NULL, pool);
    auto_sched_stop(sched);   /* a run fired now would wait for a replica */
    sched = NULL;
    auto_pool_drain(pool);
    rc = 0;
cleanup:
    auto_sched_stop(sched);
    auto_pool_free(pool);   /* drains first if still running */
    auto_files_set(NULL);
    auto_storage_free(files.storage);
    auto_events_free(events);   /* after the pool: its hook emits */
    auto_steps_cleanup();
    auto_egress_cleanup();
    if (srv)
        httpd_free(srv);
    if (d.pg)
        pgpool_free(d.pg);
    ident_rev_free(auth.rev);   /* borrows d.redis */
    tok_cache_free(auth.cache);
    redispool_free(d.redis);
    if (keys)
        tok_keyset_free(keys);
    curl_global_cleanup();
    cfg_cleanup(&c);
    return rc;
}
