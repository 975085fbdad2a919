/* The circuit breaker state machine. */
#include <check.h>
#include <stdlib.h>

#include "../src/breaker.h"

static const struct gw_breaker_opts opts = {3, 0.5, 10, 1000};

START_TEST(test_consecutive_failures_open)
{
    struct gw_breaker b;

    gw_breaker_init(&b);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 0), 1);
    gw_breaker_record(&b, &opts, 0, 1.0);
    gw_breaker_record(&b, &opts, 0, 1.0);
    ck_assert_int_eq(b.state, GW_BREAKER_CLOSED);
    gw_breaker_record(&b, &opts, 1, 1.0); /* a success resets the run */
    gw_breaker_record(&b, &opts, 0, 1.0);
    gw_breaker_record(&b, &opts, 0, 1.0);
    ck_assert_int_eq(b.state, GW_BREAKER_CLOSED);
    gw_breaker_record(&b, &opts, 0, 2.0);
    ck_assert_int_eq(b.state, GW_BREAKER_OPEN);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 2.5), 0);
    ck_assert_int_eq(gw_breaker_would_allow(&b, &opts, 2.5), 0);
}
END_TEST

START_TEST(test_half_open_probe)
{
    struct gw_breaker b;
    int i;

    gw_breaker_init(&b);
    for (i = 0; i < 3; i++)
        gw_breaker_record(&b, &opts, 0, 10.0);
    ck_assert_int_eq(b.state, GW_BREAKER_OPEN);
    /* After open_ms one probe goes, the next waits for its result. */
    ck_assert_int_eq(gw_breaker_would_allow(&b, &opts, 11.0), 1);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 11.0), 1);
    ck_assert_int_eq(b.state, GW_BREAKER_HALF_OPEN);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 11.0), 0);
    /* Probe fails: open again, for another open_ms. */
    gw_breaker_record(&b, &opts, 0, 11.1);
    ck_assert_int_eq(b.state, GW_BREAKER_OPEN);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 11.5), 0);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 12.2), 1);
    /* A cancelled probe frees the slot without deciding. */
    gw_breaker_record(&b, &opts, -1, 12.3);
    ck_assert_int_eq(b.state, GW_BREAKER_HALF_OPEN);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 12.3), 1);
    gw_breaker_record(&b, &opts, 1, 12.4);
    ck_assert_int_eq(b.state, GW_BREAKER_CLOSED);
    ck_assert_int_eq(gw_breaker_allow(&b, &opts, 12.4), 1);
    ck_assert_str_eq(gw_breaker_state_name(GW_BREAKER_HALF_OPEN),
                     "half_open");
}
END_TEST

START_TEST(test_error_rate_opens)
{
    static const struct gw_breaker_opts o = {100, 0.5, 10, 1000};
    struct gw_breaker b;
    int i;

    gw_breaker_init(&b);
    /* Alternating results never make 100 in a row, but half of the
     * window fails: it opens once the window is full. */
    for (i = 0; i < 9; i++)
        gw_breaker_record(&b, &o, i % 2, 1.0);
    ck_assert_int_eq(b.state, GW_BREAKER_CLOSED);
    gw_breaker_record(&b, &o, 1, 1.0);
    gw_breaker_record(&b, &o, 0, 1.0);
    ck_assert_int_eq(b.state, GW_BREAKER_OPEN);
}
END_TEST

START_TEST(test_error_rate_below_threshold)
{
    static const struct gw_breaker_opts o = {100, 0.5, 10, 1000};
    struct gw_breaker b;
    int i;

    gw_breaker_init(&b);
    for (i = 0; i < 1000; i++)
        gw_breaker_record(&b, &o, i % 4 != 0, 1.0); /* 25% failures */
    ck_assert_int_eq(b.state, GW_BREAKER_CLOSED);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_breaker");
    TCase *tc = tcase_create("breaker");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_consecutive_failures_open);
    tcase_add_test(tc, test_half_open_probe);
    tcase_add_test(tc, test_error_rate_opens);
    tcase_add_test(tc, test_error_rate_below_threshold);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
