#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "plat.h"
#include "validation.h"

/* Larger files are not a PEM key we would want to parse. */
#define KEY_FILE_MAX (64 * 1024)

static void load_jwt(struct cfg *c, struct plat_settings *s)
{
    char why[300];

    s->jwt_private_key_file = cfg_str(c, "JWT_PRIVATE_KEY_FILE", "");
    s->jwt_secret = cfg_str(c, "JWT_SECRET", "");
    if (s->jwt_private_key_file != NULL && s->jwt_private_key_file[0]) {
        /* RS256 wins: a verifier holding only the public key works. */
        s->jwt_secret = NULL;
        s->jwt_private_key_pem = cfg_read_file(s->jwt_private_key_file,
                                               KEY_FILE_MAX,
                                               &s->jwt_private_key_len, why,
                                               sizeof(why));
        if (s->jwt_private_key_pem == NULL)
            cfg_fail(c, "JWT_PRIVATE_KEY_FILE", why);
        return;
    }
    s->jwt_private_key_file = NULL;
    if (s->jwt_secret == NULL || s->jwt_secret[0] == '\0') {
        s->jwt_secret = NULL;
        cfg_fail(c, "JWT_PRIVATE_KEY_FILE",
                 "required (an RSA private key PEM), or set JWT_SECRET "
                 "for HS256");
        return;
    }
    if (strlen(s->jwt_secret) < 32)
        cfg_fail(c, "JWT_SECRET", "must be at least 32 bytes");
}

/* Issue 3 settings: rotation grace, throttling, revocation, keys. */
static void load_auth_hardening(struct cfg *c, struct plat_settings *s)
{
    const char *prev, *admin;
    static char admin_norm[PLAT_EMAIL_MAX + 1];
    char why[128];

    prev = cfg_str(c, "JWT_PREVIOUS_PUBLIC_KEY_FILES", "");
    s->previous_public_key_files = prev != NULL && prev[0] ? prev : NULL;
    s->refresh_grace_s = cfg_int(c, "REFRESH_REUSE_GRACE_S", 10, 0, 300);
    admin = cfg_str(c, "ADMIN_EMAIL", "");
    s->admin_email = NULL;
    if (admin != NULL && admin[0] != '\0') {
        if (plat_email_normalize(admin, strlen(admin), admin_norm,
                                 sizeof(admin_norm), why, sizeof(why)) != 0)
            cfg_fail(c, "ADMIN_EMAIL", why);
        else
            s->admin_email = admin_norm;
    }
    s->login_rate_per_min = cfg_int(c, "LOGIN_RATE_LIMIT_PER_MIN", 30, 0,
                                    1000000);
    s->register_rate_per_min =
        cfg_int(c, "REGISTER_RATE_LIMIT_PER_MIN", 10, 0, 1000000);
    s->login_free_failures =
        cfg_int(c, "LOGIN_FREE_FAILURES", 5, 1, 1000);
    s->login_ip_free_failures =
        cfg_int(c, "LOGIN_IP_FREE_FAILURES", 20, 1, 1000000);
    s->login_backoff_base_s = cfg_int(c, "LOGIN_BACKOFF_BASE_S", 1, 1, 3600);
    s->login_backoff_max_s =
        cfg_int(c, "LOGIN_BACKOFF_MAX_S", 900, 1, 86400);
    s->revocation_cache_s = cfg_int(c, "REVOCATION_CACHE_TTL_S", 30, 1, 30);
    s->revocation_fail_open = cfg_bool(c, "REVOCATION_FAIL_OPEN", 1);
    s->token_cache_size = cfg_int(c, "TOKEN_CACHE_SIZE", 10000, 0, 10000000);
    s->token_cache_ttl_s = cfg_int(c, "TOKEN_CACHE_TTL_S", 60, 1, 300);
}

void plat_settings_load(struct cfg *c, struct plat_settings *s)
{
    const char *tok;

    memset(s, 0, sizeof(*s));
    s->host = cfg_str(c, "HOST", "127.0.0.1");
    s->port = (int)cfg_int(c, "PORT", 8081, 0, 65535);
    s->log_level = cfg_str(c, "LOG_LEVEL", "info");
    if (s->log_level != NULL && log_level_parse(s->log_level) < 0)
        cfg_fail(c, "LOG_LEVEL", "must be debug, info, warn or error");
    s->database_url = cfg_str(c, "DATABASE_URL", NULL);
    s->redis_url = cfg_str(c, "REDIS_URL", NULL);
    load_jwt(c, s);
    s->jwt_issuer = cfg_str(c, "JWT_ISSUER", "basalt");
    s->jwt_audience = cfg_str(c, "JWT_AUDIENCE", "basalt");
    s->access_ttl_s = cfg_int(c, "ACCESS_TOKEN_TTL_S", 900, 60, 86400);
    s->refresh_ttl_s =
        cfg_int(c, "REFRESH_TOKEN_TTL_S", 2592000, 300, 31536000);
    tok = cfg_str(c, "INTERNAL_TOKEN", "");
    s->internal_token = tok != NULL && tok[0] != '\0' ? tok : NULL;
    if (s->internal_token != NULL && strlen(s->internal_token) < 16)
        cfg_fail(c, "INTERNAL_TOKEN", "must be at least 16 bytes");
    s->pg_pool_size = (int)cfg_int(c, "PG_POOL_SIZE", 8, 1, 256);
    s->argon2.memory_kib = (uint32_t)cfg_int(
        c, "ARGON2_MEMORY_KIB", PLAT_ARGON2_MIN_MEMORY_KIB,
        PLAT_ARGON2_MIN_MEMORY_KIB, 4L * 1024 * 1024);
    s->argon2.iterations =
        (uint32_t)cfg_int(c, "ARGON2_ITERATIONS", 2, 1, 100);
    s->argon2.parallelism =
        (uint32_t)cfg_int(c, "ARGON2_PARALLELISM", 1, 1, 64);
    s->argon2_max_concurrent =
        (int)cfg_int(c, "ARGON2_MAX_CONCURRENT", 4, 1, 1024);
    s->max_body = (size_t)cfg_int(c, "MAX_BODY_BYTES", 65536, 1024,
                                  16L * 1024 * 1024);
    s->migrations_dir =
        cfg_str(c, "MIGRATIONS_DIR", "services/platform/migrations");
    load_auth_hardening(c, s);
}

void plat_settings_cleanup(struct plat_settings *s)
{
    if (s->jwt_private_key_pem != NULL) {
        /* Private key material: do not leave it in freed heap. */
        memset(s->jwt_private_key_pem, 0, s->jwt_private_key_len);
        free(s->jwt_private_key_pem);
    }
    s->jwt_private_key_pem = NULL;
    s->jwt_private_key_len = 0;
}
