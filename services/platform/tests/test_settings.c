/* Settings: defaults, required values, cross-setting checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/settings.c"

#define SECRET32 "0123456789abcdef0123456789abcdef"

static const char *const names[] = {
    "HOST", "PORT", "LOG_LEVEL", "DATABASE_URL", "REDIS_URL",
    "JWT_PRIVATE_KEY_FILE", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE",
    "ACCESS_TOKEN_TTL_S", "REFRESH_TOKEN_TTL_S", "INTERNAL_TOKEN",
    "PG_POOL_SIZE", "ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM", "ARGON2_MAX_CONCURRENT", "MAX_BODY_BYTES",
    "MIGRATIONS_DIR", "REFRESH_REUSE_GRACE_S", "ADMIN_EMAIL",
    "REVOCATION_CACHE_TTL_S", "REVOCATION_FAIL_OPEN", "LOGIN_BACKOFF_BASE_S",
    "LOGIN_RATE_LIMIT_PER_MIN", "JWT_PREVIOUS_PUBLIC_KEY_FILES",
};

static void setup(void)
{
    char buf[64];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unsetenv(names[i]);
        snprintf(buf, sizeof(buf), "%s_FILE", names[i]);
        unsetenv(buf);
    }
    setenv("DATABASE_URL", "postgresql://u@127.0.0.1:1/db", 1);
    setenv("REDIS_URL", "redis://127.0.0.1:2/0", 1);
    setenv("JWT_SECRET", SECRET32, 1);
}

/* Loads settings; returns cfg_check()'s result, error text in err. */
static int load(struct plat_settings *s, char *err, size_t errlen)
{
    struct cfg c;
    int rc;

    cfg_init(&c, "platform");
    plat_settings_load(&c, s);
    rc = c.nerr == 0 ? 0 : -1;
    snprintf(err, errlen, "%s", c.err);
    /* strings live in c only when read from *_FILE; none are here */
    plat_settings_cleanup(s);
    cfg_cleanup(&c);
    return rc;
}

START_TEST(defaults)
{
    struct plat_settings s;
    struct cfg c;

    cfg_init(&c, "platform");
    plat_settings_load(&c, &s);
    ck_assert_int_eq(c.nerr, 0);
    ck_assert_str_eq(s.host, "127.0.0.1");
    ck_assert_int_eq(s.port, 8081);
    ck_assert_str_eq(s.jwt_issuer, "basalt");
    ck_assert_str_eq(s.jwt_audience, "basalt");
    ck_assert_int_eq(s.access_ttl_s, 900);
    ck_assert_int_eq(s.refresh_ttl_s, 2592000);
    ck_assert_ptr_null(s.internal_token);
    ck_assert_int_eq(s.pg_pool_size, 8);
    ck_assert_uint_eq(s.argon2.memory_kib, 19456);
    ck_assert_uint_eq(s.argon2.iterations, 2);
    ck_assert_uint_eq(s.argon2.parallelism, 1);
    ck_assert_uint_eq(s.max_body, 65536);
    ck_assert_str_eq(s.migrations_dir, "services/platform/migrations");
    ck_assert_int_eq(s.refresh_grace_s, 10);
    ck_assert_ptr_null(s.admin_email);
    ck_assert_ptr_null(s.previous_public_key_files);
    ck_assert_int_eq(s.login_rate_per_min, 30);
    ck_assert_int_eq(s.login_free_failures, 5);
    ck_assert_int_eq(s.revocation_cache_s, 30);
    ck_assert_int_eq(s.revocation_fail_open, 1);
    ck_assert_str_eq(s.jwt_secret, SECRET32);
    ck_assert_ptr_null(s.jwt_private_key_pem);
    plat_settings_cleanup(&s);
    cfg_cleanup(&c);
}
END_TEST

struct bad_case {
    const char *name;
    const char *value;   /* NULL: unset */
    const char *named;   /* setting the error line must name */
};

static const struct bad_case bad_cases[] = {
    {"DATABASE_URL", NULL, "DATABASE_URL"},
    {"REDIS_URL", NULL, "REDIS_URL"},
    {"JWT_SECRET", NULL, "JWT_PRIVATE_KEY_FILE"},
    {"JWT_SECRET", "too-short", "JWT_SECRET"},
    {"JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem", "JWT_PRIVATE_KEY_FILE"},
    {"ARGON2_MEMORY_KIB", "4096", "ARGON2_MEMORY_KIB"},
    {"ARGON2_ITERATIONS", "0", "ARGON2_ITERATIONS"},
    {"PORT", "70000", "PORT"},
    {"PORT", "80x", "PORT"},
    {"LOG_LEVEL", "chatty", "LOG_LEVEL"},
    {"ACCESS_TOKEN_TTL_S", "-1", "ACCESS_TOKEN_TTL_S"},
    {"PG_POOL_SIZE", "0", "PG_POOL_SIZE"},
    {"INTERNAL_TOKEN", "short", "INTERNAL_TOKEN"},
    {"MAX_BODY_BYTES", "12", "MAX_BODY_BYTES"},
    {"REFRESH_REUSE_GRACE_S", "-1", "REFRESH_REUSE_GRACE_S"},
    {"REFRESH_REUSE_GRACE_S", "301", "REFRESH_REUSE_GRACE_S"},
    {"ADMIN_EMAIL", "not an email", "ADMIN_EMAIL"},
    {"REVOCATION_CACHE_TTL_S", "31", "REVOCATION_CACHE_TTL_S"},
    {"REVOCATION_FAIL_OPEN", "maybe", "REVOCATION_FAIL_OPEN"},
    {"LOGIN_BACKOFF_BASE_S", "0", "LOGIN_BACKOFF_BASE_S"},
    {"LOGIN_RATE_LIMIT_PER_MIN", "-5", "LOGIN_RATE_LIMIT_PER_MIN"},
};

START_TEST(bad_settings)
{
    const struct bad_case *tc = &bad_cases[_i];
    struct plat_settings s;
    char err[256];

    if (tc->value == NULL)
        unsetenv(tc->name);
    else
        setenv(tc->name, tc->value, 1);
    ck_assert_int_eq(load(&s, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, tc->named) != NULL, "%s=%s: \"%s\"",
                  tc->name, tc->value ? tc->value : "(unset)", err);
}
END_TEST

START_TEST(rsa_key_file_wins)
{
    char path[] = "/tmp/plat_test_keyXXXXXX";
    const char *pem = "-----BEGIN PRIVATE KEY-----\nnot really\n"
                      "-----END PRIVATE KEY-----\n";
    struct plat_settings s;
    struct cfg c;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
    close(fd);
    setenv("JWT_PRIVATE_KEY_FILE", path, 1);
    cfg_init(&c, "platform");
    plat_settings_load(&c, &s);
    ck_assert_int_eq(c.nerr, 0);
    ck_assert_ptr_nonnull(s.jwt_private_key_pem);
    ck_assert_uint_eq(s.jwt_private_key_len, strlen(pem));
    ck_assert_str_eq(s.jwt_private_key_pem, pem);
    ck_assert_ptr_null(s.jwt_secret);
    plat_settings_cleanup(&s);
    ck_assert_ptr_null(s.jwt_private_key_pem);
    cfg_cleanup(&c);
    unlink(path);
}
END_TEST

START_TEST(overrides)
{
    struct plat_settings s;
    struct cfg c;

    setenv("PORT", "0", 1);
    setenv("INTERNAL_TOKEN", "0123456789abcdef-internal", 1);
    setenv("ARGON2_MEMORY_KIB", "65536", 1);
    setenv("MIGRATIONS_DIR", "/opt/basalt/migrations", 1);
    cfg_init(&c, "platform");
    plat_settings_load(&c, &s);
    ck_assert_int_eq(c.nerr, 0);
    ck_assert_int_eq(s.port, 0);
    ck_assert_str_eq(s.internal_token, "0123456789abcdef-internal");
    ck_assert_uint_eq(s.argon2.memory_kib, 65536);
    ck_assert_str_eq(s.migrations_dir, "/opt/basalt/migrations");
    plat_settings_cleanup(&s);
    cfg_cleanup(&c);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("platform_settings");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, defaults);
    tcase_add_loop_test(tc, bad_settings, 0,
                        sizeof(bad_cases) / sizeof(bad_cases[0]));
    tcase_add_test(tc, rsa_key_file_wins);
    tcase_add_test(tc, overrides);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
