/* Rate-limit maths (GCRA) and the Redis script that shares it. Needs
 * BASALT_TEST_REDIS_URL (scripts/run-unit-tests provides one). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../src/ratelimit.h"

START_TEST(test_gcra_burst_then_refill)
{
    struct gw_rl_result r;
    int64_t tat = 0, now = 1000000;
    int i;

    /* 10 per 60 s: a burst of exactly 10, then one every 6 s. */
    for (i = 0; i < 10; i++) {
        gw_rl_gcra(&tat, now, 10, 60000, &r);
        ck_assert_msg(r.allowed, "request %d refused", i);
        ck_assert_int_eq(r.remaining, 9 - i);
        ck_assert_int_eq(r.limit, 10);
    }
    gw_rl_gcra(&tat, now, 10, 60000, &r);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_eq(r.retry_ms, 6000);
    ck_assert_int_eq(r.reset_ms, 60000);
    gw_rl_gcra(&tat, now + 5999, 10, 60000, &r);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.retry_ms, 1);
    gw_rl_gcra(&tat, now + 6000, 10, 60000, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.remaining, 0);
    /* After a full period of silence the whole burst is back. */
    gw_rl_gcra(&tat, now + 6000 + 60000, 10, 60000, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.remaining, 9);
}
END_TEST

START_TEST(test_gcra_steady_rate)
{
    struct gw_rl_result r;
    int64_t tat = 0, now = 0;
    int i, ok = 0;

    /* 100 per second offered at 1 per ms for 10 s: burst + 1000 - 1.. */
    for (i = 0; i < 10000; i++, now++) {
        gw_rl_gcra(&tat, now, 100, 1000, &r);
        ok += r.allowed;
    }
    ck_assert_msg(ok >= 1099 && ok <= 1100, "allowed %d", ok);
}
END_TEST

START_TEST(test_redis_exact_limit)
{
    const char *url = getenv("BASALT_TEST_REDIS_URL");
    struct gw_ratelimit *a, *b;
    struct gw_rl_result r;
    char key[64];
    int i, ok = 0, limited = 0;

    ck_assert_msg(url != NULL, "BASALT_TEST_REDIS_URL not set");
    a = gw_ratelimit_new(url, 2, 1000);
    b = gw_ratelimit_new(url, 2, 1000);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    snprintf(key, sizeof(key), "gw:rl:test:%ld", (long)time(NULL));
    /* Two limiters (two replicas) share the bucket. */
    for (i = 0; i < 30; i++) {
        ck_assert_int_eq(gw_ratelimit_check(i % 2 ? a : b, key, 20, 600000,
                                             &r),
                         0);
        if (r.allowed)
            ok++;
        else {
            limited++;
            ck_assert_int_gt(r.retry_ms, 0);
        }
    }
    ck_assert_int_eq(ok, 20);
    ck_assert_int_eq(limited, 10);
    gw_ratelimit_free(a);
    gw_ratelimit_free(b);
}
END_TEST

START_TEST(test_redis_down_fails_fast)
{
    struct gw_ratelimit *rl = gw_ratelimit_new("redis://127.0.0.1:1/0", 1,
                                               50);
    struct gw_rl_result r;

    ck_assert_ptr_nonnull(rl);
    ck_assert_int_eq(gw_ratelimit_check(rl, "k", 1, 1000, &r), -1);
    /* Backed off: no second connection attempt. */
    ck_assert_int_eq(gw_ratelimit_check(rl, "k", 1, 1000, &r), -1);
    gw_ratelimit_free(rl);
    ck_assert_ptr_null(gw_ratelimit_new("http://nope", 1, 50));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_ratelimit");
    TCase *tc = tcase_create("ratelimit");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_gcra_burst_then_refill);
    tcase_add_test(tc, test_gcra_steady_rate);
    tcase_add_test(tc, test_redis_exact_limit);
    tcase_add_test(tc, test_redis_down_fails_fast);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
