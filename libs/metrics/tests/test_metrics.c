#include "metrics/metrics.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(struct metrics_registry *reg)
{
    size_t len = 12345;
    char *out = metrics_render(reg, &len);

    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

START_TEST(test_render_exact)
{
    static const char *const lbl[] = {"method", "status"};
    static const char *const route[] = {"route"};
    static const double bounds[] = {0.25, 0.5, 1};
    struct metrics_registry *reg = metrics_registry_new();
    struct metrics_family *req, *temp, *lat;
    struct metrics_series *s;
    char *out;

    ck_assert_ptr_nonnull(reg);
    req = metrics_family(reg, METRICS_COUNTER, "http_requests_total",
                         "Requests handled.", 2, lbl, NULL, 0);
    temp = metrics_family(reg, METRICS_GAUGE, "temp_celsius", "Temperature.",
                          0, NULL, NULL, 0);
    lat = metrics_family(reg, METRICS_HISTOGRAM, "lat_seconds", "Latency.", 1,
                         route, bounds, 3);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(temp);
    ck_assert_ptr_nonnull(lat);

    metrics_inc_labels(req, (const char *const[]){"GET", "200"}, 1);
    metrics_inc_labels(req, (const char *const[]){"POST", "500"}, 1);
    metrics_inc_labels(req, (const char *const[]){"GET", "200"}, 2);
    metrics_inc_labels(req, (const char *const[]){"GET", "200"}, -5);
    s = metrics_series(temp, NULL);
    metrics_set(s, 20);
    metrics_add(s, -22.5);
    metrics_observe(s, 1); /* wrong type: ignored */
    metrics_observe_labels(lat, (const char *const[]){"/a"}, 0.125);
    metrics_observe_labels(lat, (const char *const[]){"/a"}, 0.25);
    metrics_observe_labels(lat, (const char *const[]){"/a"}, 0.75);
    metrics_observe_labels(lat, (const char *const[]){"/a"}, 4);

    out = render(reg);
    ck_assert_str_eq(out,
                     "# HELP http_requests_total Requests handled.\n"
                     "# TYPE http_requests_total counter\n"
                     "http_requests_total{method=\"GET\",status=\"200\"} 3\n"
                     "http_requests_total{method=\"POST\",status=\"500\"} 1\n"
                     "# HELP temp_celsius Temperature.\n"
                     "# TYPE temp_celsius gauge\n"
                     "temp_celsius -2.5\n"
                     "# HELP lat_seconds Latency.\n"
                     "# TYPE lat_seconds histogram\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"0.25\"} 2\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                     "lat_seconds_sum{route=\"/a\"} 5.125\n"
                     "lat_seconds_count{route=\"/a\"} 4\n");
    free(out);
    metrics_registry_free(reg);
}
END_TEST

START_TEST(test_escaping)
{
    static const char *const lbl[] = {"path"};
    struct metrics_registry *reg = metrics_registry_new();
    struct metrics_family *f;
    char *out;

    f = metrics_family(reg, METRICS_COUNTER, "odd_total",
                       "Back\\slash and\nnewline \"quoted\".", 1, lbl, NULL,
                       0);
    ck_assert_ptr_nonnull(f);
    metrics_inc_labels(f, (const char *const[]){"a\"b\\c\nd"}, 1);
    out = render(reg);
    ck_assert_str_eq(out,
                     "# HELP odd_total Back\\\\slash and\\nnewline "
                     "\"quoted\".\n"
                     "# TYPE odd_total counter\n"
                     "odd_total{path=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(out);
    metrics_registry_free(reg);
}
END_TEST

START_TEST(test_number_format)
{
    static const double v[] = {0.1, 1e21, 1234567, -0.0, 1.0 / 3, 2e-9};
    static const char *const want[] = {
        "g 0.1\n", "g 1e+21\n", "g 1234567\n", "g -0\n",
        "g 0.3333333333333333\n", "g 2e-09\n",
    };
    struct metrics_registry *reg = metrics_registry_new();
    struct metrics_family *f;
    struct metrics_series *s;
    size_t i;
    char *out;

    f = metrics_family(reg, METRICS_GAUGE, "g", "", 0, NULL, NULL, 0);
    s = metrics_series(f, NULL);
    ck_assert_ptr_nonnull(s);
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        metrics_set(s, v[i]);
        out = render(reg);
        ck_assert_str_eq(strstr(out, "\ng ") + 1, want[i]);
        free(out);
    }
    metrics_set(s, INFINITY);
    out = render(reg);
    ck_assert_ptr_nonnull(strstr(out, "\ng +Inf\n"));
    free(out);
    metrics_set(s, -INFINITY);
    out = render(reg);
    ck_assert_ptr_nonnull(strstr(out, "\ng -Inf\n"));
    free(out);
    metrics_set(s, NAN);
    out = render(reg);
    ck_assert_str_eq(out, "# HELP g \n# TYPE g gauge\ng NaN\n");
    free(out);
    metrics_registry_free(reg);
}
END_TEST

START_TEST(test_default_buckets)
{
    struct metrics_registry *reg = metrics_registry_new();
    struct metrics_family *f;
    size_t lines = 0;
    char *out, *p;

    f = metrics_family(reg, METRICS_HISTOGRAM, "d_seconds", "D.", 0, NULL,
                       NULL, 0);
    ck_assert_ptr_nonnull(f);
    metrics_observe(metrics_series(f, NULL), 0.003);
    metrics_observe(metrics_series(f, NULL), 20);
    out = render(reg);
    for (p = out; (p = strstr(p, "d_seconds_bucket{")) != NULL; p++)
        lines++;
    ck_assert_uint_eq(lines, 15);
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_bucket{le=\"0.0005\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_bucket{le=\"0.0025\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_bucket{le=\"0.005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_bucket{le=\"10\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_bucket{le=\"+Inf\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_sum 20.003\n"));
    ck_assert_ptr_nonnull(strstr(out, "d_seconds_count 2\n"));
    free(out);
    metrics_registry_free(reg);
}
END_TEST

START_TEST(test_registration)
{
    static const char *const ab[] = {"a", "b"};
    static const char *const ac[] = {"a", "c"};
    static const char *const dup[] = {"a", "a"};
    static const char *const le[] = {"le"};
    static const char *const bad[] = {"0a"};
    static const double unsorted[] = {1, 0.5};
    static const double b1[] = {1, 2};
    static const double b2[] = {1, 3};
    static const double with_inf[] = {1, 2, INFINITY};
    const char *const nine[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    struct metrics_registry *reg = metrics_registry_new();
    struct metrics_family *f, *h;
    char *out;

    out = render(reg);
    ck_assert_str_eq(out, "");
    free(out);

    f = metrics_family(reg, METRICS_COUNTER, "x_total", "X.", 2, ab, NULL, 0);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_eq(metrics_family(reg, METRICS_COUNTER, "x_total",
                                    "Other help.", 2, ab, NULL, 0),
                     f);
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_GAUGE, "x_total", "X.", 2, ab, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "x_total", "X.", 2, ac, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "x_total", "X.", 1, ab, NULL, 0));

    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "bad-name", "", 0, NULL, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "", "", 0, NULL, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, NULL, "", 0, NULL, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "y", "", 2, dup, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "y", "", 1, bad, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_COUNTER, "y", "", 9, nine, NULL, 0));
    ck_assert_ptr_nonnull(
        metrics_family(reg, METRICS_COUNTER, "y", "", 8, nine, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_HISTOGRAM, "h", "", 1, le, NULL, 0));
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_HISTOGRAM, "h", "", 0, NULL, unsorted, 2));

    h = metrics_family(reg, METRICS_HISTOGRAM, "h", "", 0, NULL, b1, 2);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(
        metrics_family(reg, METRICS_HISTOGRAM, "h", "", 0, NULL, with_inf, 3),
        h);
    ck_assert_ptr_null(
        metrics_family(reg, METRICS_HISTOGRAM, "h", "", 0, NULL, b2, 2));

    /* A labelled family renders nothing until it has a series. */
    out = render(reg);
    ck_assert_ptr_null(strstr(out, "x_total"));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE h histogram\n"));
    free(out);
    ck_assert_ptr_null(metrics_series(f, NULL));
    ck_assert_ptr_eq(metrics_series(f, ab), metrics_series(f, ab));
    ck_assert_ptr_ne(metrics_series(f, ab), metrics_series(f, ac));
    /* Value boundaries are part of the key: ("ab","") vs ("a","b"). */
    ck_assert_ptr_ne(metrics_series(f, (const char *const[]){"ab", ""}),
                     metrics_series(f, (const char *const[]){"a", "b"}));
    metrics_add(NULL, 1); /* tolerated */
    metrics_registry_free(reg);

    ck_assert_ptr_nonnull(metrics_default());
    ck_assert_ptr_eq(metrics_default(), metrics_default());
    f = metrics_family(metrics_default(), METRICS_COUNTER, "d_total", "D.", 0,
                       NULL, NULL, 0);
    metrics_add(metrics_series(f, NULL), 2);
    out = render(metrics_default());
    ck_assert_ptr_nonnull(strstr(out, "\nd_total 2\n"));
    free(out);
}
END_TEST

#define NTHREADS 8
#define NINC 100000
#define NNEW 300

struct shared {
    struct metrics_family *count;
    struct metrics_family *hist;
    struct metrics_family *many;
    struct metrics_registry *reg;
};

static void *worker(void *arg)
{
    struct shared *sh = arg;
    static const char *const one[] = {"same"};
    struct metrics_series *c, *h;
    char name[32];
    const char *vals[1] = {name};
    int i;

    for (i = 0; i < NINC; i++) {
        /* Look the series up every time half of the loop, cached else. */
        c = metrics_series(sh->count, one);
        metrics_add(c, 1);
        if (i % 1000 == 0) {
            h = metrics_series(sh->hist, NULL);
            metrics_observe(h, 0.5);
        }
    }
    /* Every thread creates the same series concurrently. */
    for (i = 0; i < NNEW; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        metrics_inc_labels(sh->many, vals, 1);
        if (i % 50 == 0)
            free(metrics_render(sh->reg, NULL));
    }
    return NULL;
}

START_TEST(test_threads)
{
    static const char *const lbl[] = {"k"};
    static const double b[] = {1};
    struct shared sh;
    pthread_t th[NTHREADS];
    char want[64];
    char *out, *p;
    size_t lines = 0;
    int t;

    sh.reg = metrics_registry_new();
    sh.count = metrics_family(sh.reg, METRICS_COUNTER, "c_total", "", 1, lbl,
                              NULL, 0);
    sh.hist = metrics_family(sh.reg, METRICS_HISTOGRAM, "h", "", 0, NULL, b,
                             1);
    sh.many = metrics_family(sh.reg, METRICS_COUNTER, "m_total", "", 1, lbl,
                             NULL, 0);
    for (t = 0; t < NTHREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &sh), 0);
    for (t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    out = render(sh.reg);
    snprintf(want, sizeof(want), "c_total{k=\"same\"} %d\n", NTHREADS * NINC);
    ck_assert_ptr_nonnull(strstr(out, want));
    snprintf(want, sizeof(want), "h_count %d\n", NTHREADS * NINC / 1000);
    ck_assert_ptr_nonnull(strstr(out, want));
    snprintf(want, sizeof(want), "h_sum %d\n", NTHREADS * NINC / 2000);
    ck_assert_ptr_nonnull(strstr(out, want));
    /* Every series got exactly one increment per thread: check each
     * line's own value, not the next "} 8" anywhere below it. */
    snprintf(want, sizeof(want), "} %d", NTHREADS);
    for (p = out; (p = strstr(p, "\nm_total{")) != NULL; p++) {
        const char *eol = strchr(p + 1, '\n');

        ck_assert_ptr_nonnull(eol);
        ck_assert_uint_ge((size_t)(eol - p), strlen(want));
        ck_assert_msg(strncmp(eol - strlen(want), want, strlen(want)) == 0,
                      "%.*s", (int)(eol - p - 1), p + 1);
        lines++;
    }
    ck_assert_uint_eq(lines, NNEW);
    snprintf(want, sizeof(want), "\nm_total{k=\"s%d\"} %d\n", NNEW - 1,
             NTHREADS);
    ck_assert_ptr_nonnull(strstr(out, want));
    free(out);
    metrics_registry_free(sh.reg);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_render_exact);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_number_format);
    tcase_add_test(tc, test_default_buckets);
    tcase_add_test(tc, test_registration);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
