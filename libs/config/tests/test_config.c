#include "config/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const vars[] = {
    "T_PORT", "T_PORT_FILE", "T_URL", "T_URL_FILE", "T_RATIO", "T_FLAG",
    "T_LEVEL", "T_WORKERS", "T_SECRET", "T_SECRET_FILE",
};

/* Each test starts from a clean slate, also under CK_FORK=no. */
static void clear_env(void)
{
    size_t i;

    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

/* Writes `len` bytes to a fresh temp file; returns its path (static). */
static const char *write_tmp(const char *data, size_t len)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/test_config_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

START_TEST(test_defaults)
{
    struct cfg c;

    clear_env();
    setenv("T_URL", "", 1); /* empty counts as unset */
    cfg_init(&c, "platform");
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 8081, 1, 65535), 8081);
    ck_assert_str_eq(cfg_str(&c, "T_URL", "redis://x"), "redis://x");
    ck_assert(cfg_double(&c, "T_RATIO", 0.25, 0, 1) == 0.25);
    ck_assert_int_eq(cfg_bool(&c, "T_FLAG", 1), 1);
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", "info", levels), 1);
    ck_assert_int_eq(c.nerr, 0);
    ck_assert_int_eq(cfg_check(&c), 0);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_values_read)
{
    struct cfg c;

    clear_env();
    setenv("T_PORT", "8082", 1);
    setenv("T_URL", "postgresql://h/db", 1);
    setenv("T_RATIO", "0.5", 1);
    setenv("T_FLAG", "off", 1);
    setenv("T_LEVEL", "WARN", 1);
    setenv("T_WORKERS", "-3", 1);
    cfg_init(&c, "platform");
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 1, 1, 65535), 8082);
    ck_assert_str_eq(cfg_str(&c, "T_URL", NULL), "postgresql://h/db");
    ck_assert(cfg_double(&c, "T_RATIO", 0, 0, 1) == 0.5);
    ck_assert_int_eq(cfg_bool(&c, "T_FLAG", 1), 0);
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", "info", levels), 2);
    ck_assert_int_eq(cfg_int(&c, "T_WORKERS", 0, -10, 10), -3);
    ck_assert_int_eq(cfg_check(&c), 0);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_required_missing)
{
    struct cfg c;
    char line[256];
    FILE *tmp;
    int saved;

    clear_env();
    cfg_init(&c, "platform");
    ck_assert_ptr_null(cfg_str(&c, "T_URL", NULL));
    ck_assert_int_eq(c.nerr, 1);
    ck_assert_str_eq(c.err, "T_URL: required but not set");
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", NULL, levels), -1);
    ck_assert_int_eq(c.nerr, 2);

    /* cfg_check prints exactly one line to stderr. */
    tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    ck_assert_int_eq(cfg_check(&c), -1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), tmp));
    ck_assert_str_eq(line, "platform: config: T_URL: required but not set\n");
    ck_assert_ptr_null(fgets(line, sizeof(line), tmp));
    fclose(tmp);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_bad_int)
{
    static const char *const bad[] = {
        "abc", "80x", " 80", "8 0", "0x50", "99999999999999999999999", "-",
    };
    struct cfg c;
    char want[128];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        setenv("T_PORT", bad[i], 1);
        cfg_init(&c, "gateway");
        ck_assert_int_eq(cfg_int(&c, "T_PORT", 8080, 1, 65535), 8080);
        snprintf(want, sizeof(want),
                 "T_PORT: must be an integer in [1, 65535], got \"%s\"",
                 bad[i]);
        ck_assert_str_eq(c.err, want);
        cfg_cleanup(&c);
    }
}
END_TEST

START_TEST(test_int_range)
{
    struct cfg c;

    clear_env();
    cfg_init(&c, "gateway");
    setenv("T_PORT", "65535", 1);
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 8080, 1, 65535), 65535);
    setenv("T_PORT", "1", 1);
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 8080, 1, 65535), 1);
    ck_assert_int_eq(c.nerr, 0);
    setenv("T_PORT", "65536", 1);
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 8080, 1, 65535), 8080);
    ck_assert_str_eq(c.err,
                     "T_PORT: must be an integer in [1, 65535], got \"65536\"");
    setenv("T_PORT", "0", 1);
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 8080, 1, 65535), 8080);
    ck_assert_int_eq(c.nerr, 2);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_double)
{
    static const char *const bad[] = {"abc", "nan", "1e999", "1.5", "-0.1",
                                      "0.5s"};
    struct cfg c;
    size_t i;

    clear_env();
    cfg_init(&c, "svc");
    setenv("T_RATIO", "1e-1", 1);
    ck_assert(cfg_double(&c, "T_RATIO", 0.5, 0, 1) == 0.1);
    ck_assert_int_eq(c.nerr, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("T_RATIO", bad[i], 1);
        ck_assert(cfg_double(&c, "T_RATIO", 0.5, 0, 1) == 0.5);
        ck_assert_int_eq(c.nerr, (int)i + 1);
    }
    ck_assert_str_eq(c.err,
                     "T_RATIO: must be a number in [0, 1], got \"abc\"");
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_bool_enum)
{
    static const char *const t[] = {"1", "true", "TRUE", "yes", "On"};
    static const char *const f[] = {"0", "false", "No", "off", "OFF"};
    struct cfg c;
    size_t i;

    clear_env();
    cfg_init(&c, "svc");
    for (i = 0; i < 5; i++) {
        setenv("T_FLAG", t[i], 1);
        ck_assert_int_eq(cfg_bool(&c, "T_FLAG", 0), 1);
        setenv("T_FLAG", f[i], 1);
        ck_assert_int_eq(cfg_bool(&c, "T_FLAG", 1), 0);
    }
    ck_assert_int_eq(c.nerr, 0);
    setenv("T_FLAG", "maybe", 1);
    ck_assert_int_eq(cfg_bool(&c, "T_FLAG", 1), 1);
    ck_assert_str_eq(c.err, "T_FLAG: must be true/false, 1/0, yes/no or "
                            "on/off, got \"maybe\"");
    cfg_cleanup(&c);

    cfg_init(&c, "svc");
    setenv("T_LEVEL", "error", 1);
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", "info", levels), 3);
    setenv("T_LEVEL", "loud", 1);
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", "info", levels), 1);
    ck_assert_str_eq(c.err, "T_LEVEL: must be one of debug, info, warn, "
                            "error; got \"loud\"");
    cfg_cleanup(&c);

    /* A default that isn't a choice is a programming error, reported. */
    clear_env();
    cfg_init(&c, "svc");
    ck_assert_int_eq(cfg_enum(&c, "T_LEVEL", "trace", levels), -1);
    ck_assert_int_eq(c.nerr, 1);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_file)
{
    struct cfg c;
    char *big;
    const char *v, *path;

    clear_env();
    cfg_init(&c, "platform");
    setenv("T_SECRET_FILE", write_tmp("s3cret\r\n\n", 9), 1);
    v = cfg_str(&c, "T_SECRET", NULL);
    ck_assert_str_eq(v, "s3cret");
    unlink(getenv("T_SECRET_FILE"));

    /* Inner newlines survive (PEM keys); only the trailing ones go. */
    setenv("T_URL_FILE", write_tmp("a\nb\n", 4), 1);
    ck_assert_str_eq(cfg_str(&c, "T_URL", NULL), "a\nb");
    unlink(getenv("T_URL_FILE"));
    /* Typed getters accept NAME_FILE as well. */
    setenv("T_PORT_FILE", write_tmp("8443\n", 5), 1);
    ck_assert_int_eq(cfg_int(&c, "T_PORT", 1, 1, 65535), 8443);
    unlink(getenv("T_PORT_FILE"));
    ck_assert_int_eq(c.nerr, 0);
    ck_assert_str_eq(v, "s3cret"); /* still valid until cleanup */
    cfg_cleanup(&c);

    /* Exactly the cap is fine, one byte more is an error. */
    big = malloc(64 * 1024 + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'k', 64 * 1024 + 1);
    cfg_init(&c, "platform");
    path = write_tmp(big, 64 * 1024);
    setenv("T_SECRET_FILE", path, 1);
    v = cfg_str(&c, "T_SECRET", NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(v), 64 * 1024);
    unlink(path);
    path = write_tmp(big, 64 * 1024 + 1);
    setenv("T_SECRET_FILE", path, 1);
    ck_assert_ptr_null(cfg_str(&c, "T_SECRET", NULL));
    ck_assert_int_eq(c.nerr, 1);
    ck_assert_ptr_nonnull(strstr(c.err, "T_SECRET_FILE: "));
    ck_assert_ptr_nonnull(strstr(c.err, "larger than 65536 bytes"));
    unlink(path);
    free(big);
    cfg_cleanup(&c);

    cfg_init(&c, "platform");
    setenv("T_SECRET_FILE", "/nonexistent/secret", 1);
    ck_assert_str_eq(cfg_str(&c, "T_SECRET", "dflt"), "dflt");
    ck_assert_str_eq(c.err, "T_SECRET_FILE: cannot open "
                            "\"/nonexistent/secret\": No such file or "
                            "directory");
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_read_file)
{
    char why[300];
    size_t len = 99;
    char *buf, *big = malloc(10000);
    const char *path;

    ck_assert_ptr_nonnull(big);
    memset(big, 'k', 10000);
    /* beyond the first 4 KiB read, up to exactly the cap */
    path = write_tmp(big, 10000);
    buf = cfg_read_file(path, 10000, &len, why, sizeof(why));
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 10000);
    ck_assert_uint_eq(strlen(buf), 10000);
    free(buf);
    /* one byte over the cap */
    ck_assert_ptr_null(cfg_read_file(path, 9999, &len, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "is larger than 9999 bytes"));
    ck_assert_ptr_nonnull(strstr(why, path));
    unlink(path);
    /* an empty file is "", the caller decides */
    path = write_tmp("", 0);
    buf = cfg_read_file(path, 16, &len, why, sizeof(why));
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(buf, "");
    free(buf);
    unlink(path);
    path = write_tmp("a\0b", 3);
    ck_assert_ptr_null(cfg_read_file(path, 16, &len, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "contains a NUL byte"));
    unlink(path);
    ck_assert_ptr_null(cfg_read_file("/nonexistent/key.pem", 16, &len, why,
                                     sizeof(why)));
    ck_assert_str_eq(why, "cannot open \"/nonexistent/key.pem\": No such "
                          "file or directory");
    /* a directory opens but cannot be read */
    ck_assert_ptr_null(cfg_read_file("/", 16, &len, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "cannot read \"/\""));
    free(big);
}
END_TEST

START_TEST(test_both_set)
{
    struct cfg c;

    clear_env();
    setenv("T_SECRET", "inline", 1);
    setenv("T_SECRET_FILE", "/dev/null", 1);
    cfg_init(&c, "platform");
    ck_assert_ptr_null(cfg_str(&c, "T_SECRET", NULL));
    ck_assert_str_eq(c.err,
                     "T_SECRET: set only one of T_SECRET and T_SECRET_FILE");
    ck_assert_int_eq(cfg_check(&c), -1);
    cfg_cleanup(&c);
}
END_TEST

START_TEST(test_first_error_kept)
{
    char longval[200];
    struct cfg c;

    clear_env();
    setenv("T_PORT", "abc", 1);
    setenv("T_WORKERS", "-1", 1);
    cfg_init(&c, "automation");
    cfg_int(&c, "T_PORT", 8082, 1, 65535);
    cfg_int(&c, "T_WORKERS", 4, 1, 64);
    cfg_str(&c, "T_URL", NULL);
    cfg_fail(&c, "T_WORKERS", "must not exceed the pool size");
    ck_assert_int_eq(c.nerr, 4);
    ck_assert_str_eq(c.err,
                     "T_PORT: must be an integer in [1, 65535], got \"abc\"");
    cfg_cleanup(&c);

    cfg_init(&c, "automation");
    cfg_fail(&c, "T_WORKERS", "must not exceed the pool size");
    ck_assert_str_eq(c.err, "T_WORKERS: must not exceed the pool size");
    cfg_cleanup(&c);

    /* Bad values are quoted on one line and shortened. */
    memset(longval, '7', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    longval[2] = '\n';
    setenv("T_PORT", longval, 1);
    cfg_init(&c, "automation");
    cfg_int(&c, "T_PORT", 8082, 1, 65535);
    ck_assert_ptr_null(strchr(c.err, '\n'));
    ck_assert_ptr_nonnull(strstr(c.err, "got \"77?777"));
    ck_assert_ptr_nonnull(strstr(c.err, "...\""));
    cfg_cleanup(&c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values_read);
    tcase_add_test(tc, test_required_missing);
    tcase_add_test(tc, test_bad_int);
    tcase_add_test(tc, test_int_range);
    tcase_add_test(tc, test_double);
    tcase_add_test(tc, test_bool_enum);
    tcase_add_test(tc, test_file);
    tcase_add_test(tc, test_read_file);
    tcase_add_test(tc, test_both_set);
    tcase_add_test(tc, test_first_error_kept);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
