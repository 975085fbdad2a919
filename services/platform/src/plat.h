/*
 * plat — the platform service (auth now, analytics later): settings and
 * the process-wide context every handler receives.
 *
 * Module map (one prefix, plat_, one job per file):
 *   settings.c       plat_settings_*   environment -> struct plat_settings
 *   plat.c           plat_ctx_*        pools, signer, keyset, readiness
 *   validation.c     plat_email_*, plat_utf8_*
 *   password.c       plat_password_*   argon2id + password policy
 *   users_db.c       plat_users_*, plat_refresh_*   SQL (PQexecParams)
 *   (libs/identity)  ident_*           who is calling (bearer / gateway)
 *   tokens_db.c      plat_refresh_*, plat_sessions_*  rotation, sessions
 *   admin_db.c       plat_users_list/update  admin SQL
 *   auth_common.c    plat_auth_*       helpers shared by auth handlers
 *   session_handlers.c  /auth/refresh, logout, sessions, password
 *   admin_users.c    GET /users, PATCH /users/{id}
 *   throttle.c       plat_throttle_*   login back-off, per-IP limits
 *   revoke.c         plat_revoke_*     denylist / markers in Redis
 *   auth_handlers.c  plat_auth_*       /auth/... and JWKS routes
 */
#ifndef PLAT_H
#define PLAT_H

#include <semaphore.h>
#include <stddef.h>

#include "config/config.h"
#include "pgpool/pgpool.h"
#include "redispool/redispool.h"
#include "token/token.h"

#include "identity/identity.h"
#include "identity/revocation.h"
#include "password.h"

/* Argon2id memory floor (OWASP 2023 minimum for m=19 MiB, t=2, p=1). */
#define PLAT_ARGON2_MIN_MEMORY_KIB 19456

/*
 * Settings, read once at start by plat_settings_load(). Strings point
 * into the struct cfg (or the environment) and live until cfg_cleanup().
 */
struct plat_settings {
    const char *host;
    int port;
    const char *log_level;
    const char *database_url;
    const char *redis_url;
    const char *jwt_private_key_file; /* NULL when JWT_SECRET is used */
    char *jwt_private_key_pem;        /* file contents (malloc'd) */
    size_t jwt_private_key_len;
    const char *jwt_secret;           /* NULL when RS256 is used */
    const char *jwt_issuer;
    const char *jwt_audience;
    long access_ttl_s;
    long refresh_ttl_s;
    const char *internal_token;       /* NULL: trust no gateway headers */
    int pg_pool_size;
    struct plat_password_params argon2;
    int argon2_max_concurrent;        /* hashes running at once */
    size_t max_body;                  /* bytes */
    const char *migrations_dir;
    /* Auth hardening (issue 3); see README "Settings". */
    const char *previous_public_key_files; /* comma list or NULL */
    long refresh_grace_s;             /* REFRESH_REUSE_GRACE_S */
    const char *admin_email;          /* normalised, or NULL */
    long login_rate_per_min;          /* per IP, 0 = off */
    long register_rate_per_min;       /* per IP, 0 = off */
    long login_free_failures;         /* per account before back-off */
    long login_ip_free_failures;      /* per IP before back-off */
    long login_backoff_base_s;
    long login_backoff_max_s;
    long revocation_cache_s;          /* REVOCATION_CACHE_TTL_S */
    int revocation_fail_open;
    long token_cache_size;            /* entries; 0 = off */
    long token_cache_ttl_s;
};

/*
 * Reads every setting from the environment through `c` (errors accumulate
 * in c; the caller then calls cfg_check()). Reads the private key file.
 * Call plat_settings_cleanup() afterwards even when c has errors.
 */
void plat_settings_load(struct cfg *c, struct plat_settings *s);
void plat_settings_cleanup(struct plat_settings *s);

/*
 * Everything a handler needs. Built once by plat_ctx_init() on the main
 * thread, then read-only except for the pools (internally locked) and
 * the argon2 semaphore, so any request thread may use it.
 */
struct plat_ctx {
    const struct plat_settings *set;
    struct pgpool *pg;
    struct redispool *redis;
    struct tok_signer *signer;
    struct tok_keyset *keyset;        /* verification keys (signer's) */
    struct ident_cfg identity;
    struct ident_rev *rev;            /* revocation cache for bearers */
    struct tok_cache *token_cache;    /* verified bearers; NULL: off */
    /*
     * Encoded argon2id hash of a random password with the configured
     * parameters: logins for unknown emails verify against it so they
     * take as long as a wrong password for a real account.
     */
    char dummy_hash[PLAT_PASSWORD_ENCODED_MAX];
    /*
     * Bounds concurrent argon2 runs: each holds argon2.memory_kib of RAM,
     * and with a thread per connection nothing else limits them.
     */
    sem_t argon2_slots;
    int argon2_slots_ready;
    /*
     * Analytics group-commit writer (analytics_writer.h); NULL until
     * main starts it. plat_track() drops events while it is NULL.
     */
    struct plat_an_writer *analytics;
};

/*
 * Creates pools (nothing connects yet), signer, keyset and the dummy
 * hash from `set` (which must outlive ctx). 0, or -1 with the reason
 * logged; call plat_ctx_cleanup() either way.
 */
int plat_ctx_init(struct plat_ctx *ctx, const struct plat_settings *set);
void plat_ctx_cleanup(struct plat_ctx *ctx);

/*
 * Waits up to `timeout_s` for PostgreSQL to answer (the cluster script
 * starts everything in parallel), then applies migrations from
 * set->migrations_dir under schema "platform". 0 or -1 (logged).
 */
int plat_ctx_migrate(struct plat_ctx *ctx, int timeout_s);

/* httpd_ready_fn for /readyz: PostgreSQL and Redis both answer PING. */
int plat_ready(void *ctx, char *why, size_t whylen);

/*
 * Runs one argon2 operation's admission: waits up to `wait_ms` for a
 * slot. 0 when acquired (release with plat_argon2_release), -1 on
 * timeout (answer 503).
 */
int plat_argon2_acquire(struct plat_ctx *ctx, int wait_ms);
void plat_argon2_release(struct plat_ctx *ctx);

#endif
