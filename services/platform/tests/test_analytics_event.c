/* Analytics event validation, RFC 3339 times, batches, cursors. */
#include <check.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "../src/analytics_event.c"

#define NOW_US 1735787045000000LL /* 2025-01-02T03:04:05Z */

struct time_case {
    const char *in;
    long long want_us; /* -1: must be rejected */
};

static const struct time_case time_cases[] = {
    {"2025-01-02T03:04:05Z", 1735787045000000LL},
    {"2025-01-02t03:04:05z", 1735787045000000LL},
    {"2025-01-02 03:04:05Z", 1735787045000000LL},
    {"2025-01-02T03:04:05.5Z", 1735787045500000LL},
    {"2025-01-02T03:04:05.123456789Z", 1735787045123456LL},
    {"2025-01-02T05:04:05+02:00", 1735787045000000LL},
    {"2025-01-01T22:34:05-04:30", 1735787045000000LL},
    {"1970-01-01T00:00:00Z", 0},
    {"2024-02-29T00:00:00Z", 1709164800000000LL},
    {"2023-02-29T00:00:00Z", -1},
    {"2025-13-01T00:00:00Z", -1},
    {"2025-01-32T00:00:00Z", -1},
    {"2025-01-02T24:00:00Z", -1},
    {"2025-01-02T23:60:00Z", -1},
    {"2025-01-02T23:59:60Z", -1},
    {"2025-01-02T03:04:05", -1},
    {"2025-01-02T03:04:05.Z", -1},
    {"2025-01-02T03:04:05+0200", -1},
    {"2025-01-02T03:04:05+24:00", -1},
    {"2025-01-02", -1},
    {"1969-12-31T23:59:59Z", -1},
    {"1970-01-01T00:00:00+01:00", -1},
    {"2025-01-02T03:04:05Z ", -1},
    {"20250102T030405Z", -1},
    {"", -1},
};

START_TEST(test_time_parse)
{
    const struct time_case *tc = &time_cases[_i];
    int64_t us = 0;
    int rc = plat_an_time_parse(tc->in, &us);

    if (tc->want_us < 0) {
        ck_assert_msg(rc == -1, "accepted %s", tc->in);
    } else {
        ck_assert_msg(rc == 0, "rejected %s", tc->in);
        ck_assert_int_eq(us, tc->want_us);
    }
}
END_TEST

START_TEST(test_time_format_roundtrip)
{
    char buf[PLAT_AN_TIME_LEN];
    int64_t back;
    static const int64_t vals[] = {0, 1, 999999, 1735787045123456LL,
                                   951782400000000LL /* 2000-02-29 */,
                                   253402300799999999LL};

    plat_an_time_format(1735787045123456LL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2025-01-02T03:04:05.123456Z");
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        plat_an_time_format(vals[i], buf, sizeof(buf));
        ck_assert_int_eq(plat_an_time_parse(buf, &back), 0);
        ck_assert_int_eq(back, vals[i]);
    }
}
END_TEST

/* The hand-written formatter agrees with gmtime_r's calendar. */
START_TEST(test_time_format_matches_libc)
{
    char buf[PLAT_AN_TIME_LEN], want[64];
    uint64_t x = 88172645463325252ULL; /* xorshift64 */

    for (int i = 0; i < 20000; i++) {
        /* 0001-01-01 .. 9999-12-31, microseconds. */
        const int64_t lo = -62135596800LL * 1000000LL;
        const int64_t hi = 253402300799999999LL;
        int64_t us, frac;
        time_t secs;
        struct tm tm;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        us = lo + (int64_t)(x % (uint64_t)(hi - lo));
        secs = (time_t)(us / 1000000);
        frac = us % 1000000;
        if (frac < 0) {
            frac += 1000000;
            secs--;
        }
        ck_assert_ptr_nonnull(gmtime_r(&secs, &tm));
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)frac);
        plat_an_time_format(us, buf, sizeof(buf));
        ck_assert_str_eq(buf, want);
    }
}
END_TEST

struct event_case {
    const char *json;
    const char *why; /* NULL: valid; else substring of the reason */
};

static const struct event_case event_cases[] = {
    {"{\"event\":\"signup\"}", NULL},
    {"{\"event\":\"Order Completed\",\"distinct_id\":\"u-1\","
     "\"timestamp\":\"2025-01-01T00:00:00Z\",\"properties\":{\"a\":1},"
     "\"message_id\":\"m-1\"}", NULL},
    {"{\"event\":\"e\",\"properties\":null,\"timestamp\":null}", NULL},
    {"{\"event\":\"e\",\"extra\":[1,2]}", NULL},
    {"{\"event\":\"caf\\u00e9\"}", NULL},
    {"{}", "event is required"},
    {"{\"event\":null}", "event is required"},
    {"{\"event\":\"\"}", "event must be"},
    {"{\"event\":5}", "event must be a string"},
    {"{\"event\":\"a\\nb\"}", "event must be"},
    {"{\"event\":\"a\\tb\"}", "event must be"},
    {"{\"event\":\"e\",\"distinct_id\":7}", "distinct_id must be"},
    {"{\"event\":\"e\",\"distinct_id\":\"\"}", "distinct_id must be"},
    {"{\"event\":\"e\",\"message_id\":\"\"}", "message_id must be"},
    {"{\"event\":\"e\",\"timestamp\":\"yesterday\"}", "timestamp"},
    {"{\"event\":\"e\",\"timestamp\":1735787045}", "timestamp"},
    {"{\"event\":\"e\",\"timestamp\":\"2025-01-09T03:04:06Z\"}",
     "7 days in the future"},
    {"{\"event\":\"e\",\"timestamp\":\"2025-01-09T03:04:05Z\"}", NULL},
    {"{\"event\":\"e\",\"properties\":[1]}", "properties must be an object"},
    {"{\"event\":\"e\",\"properties\":\"x\"}", "properties must be an object"},
    {"{\"event\":\"e\",\"properties\":{\"k\":\"0123456789012345678901234567"
     "890123456789012345678901234567890123456789\"}}", "properties larger"},
};

START_TEST(test_event_table)
{
    const struct event_case *tc = &event_cases[_i];
    json_error_t err;
    json_t *in = json_loads(tc->json, 0, &err);
    struct plat_an_event ev;
    char why[160] = "";
    int rc;

    ck_assert_msg(in != NULL, "bad test JSON %s: %s", tc->json, err.text);
    rc = plat_an_event_parse(in, "caller-1", "owner-1", NOW_US, 64, &ev, why,
                             sizeof(why));
    if (tc->why == NULL) {
        ck_assert_msg(rc == 0, "%s rejected: %s", tc->json, why);
        ck_assert_ptr_nonnull(ev.properties);
        ck_assert_str_eq(ev.owner, "owner-1");
        ck_assert_int_ne(ev.message_id[0], '\0');
        plat_an_event_cleanup(&ev);
    } else {
        ck_assert_msg(rc == -1, "%s accepted", tc->json);
        ck_assert_msg(strstr(why, tc->why) != NULL, "%s: got '%s'",
                      tc->json, why);
        ck_assert_ptr_null(ev.properties);
    }
    json_decref(in);
}
END_TEST

/* properties are stored as compact JSON, exactly json_dumps()'s text,
 * also past the encoder's stack buffer; the size limit is inclusive. */
START_TEST(test_properties_text)
{
    char big[3000], why[160];
    json_t *in, *props;
    struct plat_an_event ev;
    char *want;
    size_t n;

    in = json_loads("{\"event\":\"e\",\"properties\":{\"a\": 1,"
                    " \"b\": [true, null, \"x\\u00e9\"]}}", 0, NULL);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(plat_an_event_parse(in, "c", "o", NOW_US, 100, &ev, why,
                                         sizeof(why)), 0);
    ck_assert_str_eq(ev.properties,
                     "{\"a\":1,\"b\":[true,null,\"x\xc3\xa9\"]}");
    plat_an_event_cleanup(&ev);
    json_decref(in);

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    props = json_pack("{s:s, s:i}", "long", big, "n", 7);
    in = json_pack("{s:s, s:O}", "event", "e", "properties", props);
    want = json_dumps(props, JSON_COMPACT);
    n = strlen(want);
    ck_assert_uint_gt(n, 1024);
    ck_assert_int_eq(plat_an_event_parse(in, "c", "o", NOW_US, n, &ev, why,
                                         sizeof(why)), 0);
    ck_assert_str_eq(ev.properties, want);
    plat_an_event_cleanup(&ev);
    ck_assert_int_eq(plat_an_event_parse(in, "c", "o", NOW_US, n - 1, &ev,
                                         why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "properties larger"));
    ck_assert_ptr_null(ev.properties);
    free(want);
    json_decref(props);
    json_decref(in);
}
END_TEST

START_TEST(test_event_defaults)
{
    json_t *in = json_pack("{s:s}", "event", "login");
    struct plat_an_event a, b;
    char why[160];

    ck_assert_int_eq(plat_an_event_parse(in, "user-9", "user-9", NOW_US, 100,
                                         &a, why, sizeof(why)), 0);
    ck_assert_int_eq(plat_an_event_parse(in, "user-9", "user-9", NOW_US, 100,
                                         &b, why, sizeof(why)), 0);
    ck_assert_str_eq(a.distinct_id, "user-9");
    ck_assert_int_eq(a.ts_us, NOW_US);
    ck_assert_int_eq(a.received_us, NOW_US);
    ck_assert_str_eq(a.properties, "{}");
    ck_assert_int_eq(strlen(a.message_id), 36);
    ck_assert_int_eq(a.message_id[14], '4');
    ck_assert_str_ne(a.message_id, b.message_id);
    plat_an_event_cleanup(&a);
    plat_an_event_cleanup(&b);
    /* Without a caller id there is no default distinct_id. */
    ck_assert_int_eq(plat_an_event_parse(in, "", "", NOW_US, 100, &a, why,
                                         sizeof(why)), -1);
    json_decref(in);
}
END_TEST

START_TEST(test_text_limits)
{
    char s[PLAT_AN_TEXT_MAX + 2];

    memset(s, 'x', sizeof(s));
    s[PLAT_AN_TEXT_MAX] = '\0';
    ck_assert_int_eq(plat_an_text_ok(s, PLAT_AN_TEXT_MAX), 1);
    s[PLAT_AN_TEXT_MAX] = 'x';
    s[PLAT_AN_TEXT_MAX + 1] = '\0';
    ck_assert_int_eq(plat_an_text_ok(s, PLAT_AN_TEXT_MAX + 1), 0);
    ck_assert_int_eq(plat_an_text_ok("\xff\xfe", 2), 0);
    ck_assert_int_eq(plat_an_text_ok("a\x7f", 2), 0);
}
END_TEST

static json_t *batch_of(size_t n, size_t bad_every)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        if (bad_every != 0 && i % bad_every == 0)
            json_array_append_new(arr, json_pack("{s:i}", "event", 1));
        else
            json_array_append_new(arr, json_pack("{s:s}", "event", "e"));
    }
    return json_pack("{s:o}", "batch", arr);
}

START_TEST(test_batch_limits)
{
    struct plat_an_event *evs;
    size_t nvalid, n;
    json_t *errors, *body;

    body = batch_of(1000, 0);
    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1000, 100,
                                         &evs, &nvalid, &n, &errors),
                     PLAT_AN_BATCH_OK);
    ck_assert_uint_eq(nvalid, 1000);
    ck_assert_uint_eq(json_array_size(errors), 0);
    for (size_t i = 0; i < nvalid; i++)
        plat_an_event_cleanup(&evs[i]);
    free(evs);
    json_decref(errors);
    json_decref(body);

    body = batch_of(1001, 0);
    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1000, 100,
                                         &evs, &nvalid, &n, &errors),
                     PLAT_AN_BATCH_TOO_LARGE);
    ck_assert_uint_eq(n, 1001);
    ck_assert_ptr_null(evs);
    ck_assert_ptr_null(errors);
    json_decref(body);

    body = json_pack("{s:[]}", "batch");
    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1000, 100,
                                         &evs, &nvalid, &n, &errors),
                     PLAT_AN_BATCH_SHAPE);
    json_decref(body);
    body = json_pack("{s:s}", "batch", "x");
    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1000, 100,
                                         &evs, &nvalid, &n, &errors),
                     PLAT_AN_BATCH_SHAPE);
    json_decref(body);
}
END_TEST

START_TEST(test_batch_mixed)
{
    struct plat_an_event *evs;
    size_t nvalid, n;
    json_t *errors, *body = batch_of(10, 3); /* 0, 3, 6, 9 invalid */

    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1000, 100,
                                         &evs, &nvalid, &n, &errors),
                     PLAT_AN_BATCH_OK);
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(nvalid, 6);
    ck_assert_uint_eq(json_array_size(errors), 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(json_integer_value(json_object_get(
                             json_array_get(errors, i), "index")),
                         (json_int_t)(i * 3));
    for (size_t i = 0; i < nvalid; i++)
        plat_an_event_cleanup(&evs[i]);
    free(evs);
    json_decref(errors);
    json_decref(body);

    /* A single event (no "batch") is a batch of one. */
    body = json_pack("{s:s}", "event", "one");
    ck_assert_int_eq(plat_an_batch_parse(body, "u", "u", NOW_US, 1, 100, &evs,
                                         &nvalid, &n, &errors),
                     PLAT_AN_BATCH_OK);
    ck_assert_uint_eq(nvalid, 1);
    ck_assert_str_eq(evs[0].event, "one");
    plat_an_event_cleanup(&evs[0]);
    free(evs);
    json_decref(errors);
    json_decref(body);
}
END_TEST

START_TEST(test_cursor)
{
    char buf[PLAT_AN_CURSOR_MAX];
    int64_t ts, id;
    static const int64_t cases[][2] = {
        {0, 0}, {1, 2}, {1735787045123456LL, 987654321LL},
        {253402300799999999LL, 9223372036854775807LL}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        plat_an_cursor_encode(cases[i][0], cases[i][1], buf, sizeof(buf));
        ck_assert_int_lt(strlen(buf), PLAT_AN_CURSOR_MAX);
        ck_assert_ptr_null(strpbrk(buf, "+/="));
        ck_assert_int_eq(plat_an_cursor_decode(buf, &ts, &id), 0);
        ck_assert_int_eq(ts, cases[i][0]);
        ck_assert_int_eq(id, cases[i][1]);
    }
    ck_assert_int_eq(plat_an_cursor_decode("", &ts, &id), -1);
    ck_assert_int_eq(plat_an_cursor_decode("!!!", &ts, &id), -1);
    ck_assert_int_eq(plat_an_cursor_decode("MjoxOjI", &ts, &id), -1);
    ck_assert_int_eq(plat_an_cursor_decode("MTox", &ts, &id), -1);
    ck_assert_int_eq(plat_an_cursor_decode("MTotMToy", &ts, &id), -1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("analytics_event");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_time_parse, 0,
                        sizeof(time_cases) / sizeof(time_cases[0]));
    tcase_add_test(tc, test_time_format_roundtrip);
    tcase_add_test(tc, test_time_format_matches_libc);
    tcase_add_loop_test(tc, test_event_table, 0,
                        sizeof(event_cases) / sizeof(event_cases[0]));
    tcase_add_test(tc, test_event_defaults);
    tcase_add_test(tc, test_properties_text);
    tcase_add_test(tc, test_text_limits);
    tcase_add_test(tc, test_batch_limits);
    tcase_add_test(tc, test_batch_mixed);
    tcase_add_test(tc, test_cursor);
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
