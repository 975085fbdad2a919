/*
 * httpd_listen: the libmicrohttpd logger and the listen address that
 * httpd_start() and the gateway's daemons share.
 */
#include <check.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd/httpd.h"
#include "log/log.h"

/* Calls the logger the way MHD does (through a va_list). */
static void mhd_says(void *cls, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    httpd_mhd_logger(cls, fmt, ap);
    va_end(ap);
}

/* What the logger wrote to stdout (fd 1) while running mhd_says(). */
static char *logged(void *cls, const char *text)
{
    FILE *f = tmpfile();
    int saved = dup(STDOUT_FILENO);
    static char out[2048];
    size_t n;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fileno(f), STDOUT_FILENO), STDOUT_FILENO);
    mhd_says(cls, "%s", text);
    ck_assert_int_eq(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    rewind(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

START_TEST(test_logger_levels_and_newlines)
{
    static const enum log_level debug = LOG_LVL_DEBUG;
    static const enum log_level error = LOG_LVL_ERROR;
    const char *out;

    ck_assert_int_eq(log_init("listen-test", "info"), 0);
    /* NULL: warn, written at info; MHD's trailing newline dropped. */
    out = logged(NULL, "Failed to bind to port 80.\n");
    ck_assert_ptr_nonnull(strstr(out, "\"level\":\"warn\""));
    ck_assert_ptr_nonnull(strstr(out, "\"msg\":\"libmicrohttpd\""));
    ck_assert_ptr_nonnull(strstr(out, "\"detail\":\"Failed to bind to "
                                      "port 80.\"}"));
    /* A level below the configured one writes nothing. */
    out = logged((void *)&debug, "chatter\n");
    ck_assert_str_eq(out, "");
    out = logged((void *)&error, "bad\r\n");
    ck_assert_ptr_nonnull(strstr(out, "\"level\":\"error\""));
    ck_assert_ptr_nonnull(strstr(out, "\"detail\":\"bad\"}"));
}
END_TEST

START_TEST(test_listen_addr)
{
    struct addrinfo *ai = httpd_listen_addr("t", "127.0.0.1", 8080);

    ck_assert_ptr_nonnull(ai);
    ck_assert_int_eq(ai->ai_family, AF_INET);
    ck_assert_int_eq(ai->ai_socktype, SOCK_STREAM);
    freeaddrinfo(ai);
    ai = httpd_listen_addr("t", "::1", 0);
    ck_assert_ptr_nonnull(ai);
    ck_assert_int_eq(ai->ai_family, AF_INET6);
    freeaddrinfo(ai);
    /* Not an address, and .invalid never resolves (RFC 6761 §6.4). */
    ck_assert_ptr_null(httpd_listen_addr("t", "no-such-host.invalid", 80));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("httpd_listen");
    TCase *tc = tcase_create("listen");

    tcase_add_test(tc, test_logger_levels_and_newlines);
    tcase_add_test(tc, test_listen_addr);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
