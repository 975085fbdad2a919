/* pool.c: slot accounting, idle reuse, bounded waits, wake-up on put. */
#include <check.h>
#include <pthread.h>
#include <time.h>

#include "pool/pool.h"

static int closed;

static void count_close(void *item)
{
    (void)item;
    closed++;
}

START_TEST(test_init_rejects_bad_size)
{
    struct pool_slots s;

    ck_assert_int_eq(pool_slots_init(&s, 0), -1);
    ck_assert_int_eq(pool_slots_init(&s, -3), -1);
}
END_TEST

START_TEST(test_take_put_reuse)
{
    struct pool_slots s;
    int a, b;
    void *item;

    ck_assert_int_eq(pool_slots_init(&s, 2), 0);
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), 0);
    ck_assert_ptr_null(item);            /* nothing idle: caller opens */
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), 0);
    ck_assert_ptr_null(item);
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), -1);   /* full */
    pool_slots_put(&s, &a);
    pool_slots_put(&s, &b);
    /* a stack: the last one back is the first one out */
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), 0);
    ck_assert_ptr_eq(item, &b);
    pool_slots_put(&s, NULL);            /* closed as broken */
    ck_assert_int_eq(s.nout, 0);
    ck_assert_int_eq(s.nidle, 1);
    closed = 0;
    pool_slots_cleanup(&s, count_close);
    ck_assert_int_eq(closed, 1);
}
END_TEST

START_TEST(test_wait_times_out)
{
    struct pool_slots s;
    struct timespec t0, t1;
    void *item;
    double ms;

    ck_assert_int_eq(pool_slots_init(&s, 1), 0);
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(pool_slots_take(&s, 50, &item), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(ms >= 45, "gave up after %.1f ms", ms);
    pool_slots_put(&s, NULL);
    pool_slots_cleanup(&s, count_close);
}
END_TEST

struct waiter {
    struct pool_slots *s;
    void *item;
    int rc;
};

static void *wait_for_slot(void *arg)
{
    struct waiter *w = arg;

    w->rc = pool_slots_take(w->s, 60000, &w->item);
    return NULL;
}

START_TEST(test_put_wakes_waiter)
{
    struct pool_slots s;
    struct waiter w = {.s = &s, .rc = 99};
    struct timespec nap = {0, 20 * 1000000L};
    pthread_t t;
    void *item;
    int conn;

    ck_assert_int_eq(pool_slots_init(&s, 1), 0);
    ck_assert_int_eq(pool_slots_take(&s, 0, &item), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, wait_for_slot, &w), 0);
    nanosleep(&nap, NULL);               /* let it block (not required) */
    pool_slots_put(&s, &conn);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_ptr_eq(w.item, &conn);
    pool_slots_put(&s, NULL);
    pool_slots_cleanup(&s, count_close);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("slots");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_init_rejects_bad_size);
    tcase_add_test(tc, test_take_put_reuse);
    tcase_add_test(tc, test_wait_times_out);
    tcase_add_test(tc, test_put_wakes_waiter);
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
    return failed ? 1 : 0;
}
