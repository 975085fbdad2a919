/*
 * Unit tests for the cron module. Expected instants were worked out by
 * hand and cross-checked with Python's zoneinfo (local wall time -> UTC);
 * the DST rules are documented in cron.h.
 */
#include "../src/cron.c"
#include "../src/cron_next.c"

#include <check.h>
#include <stdlib.h>
#include <time.h>

#define MAX_FIRES 8

/* "YYYY-MM-DDTHH:MM:SSZ" -> ms since the epoch; the test's own clock. */
static int64_t utc(const char *iso)
{
    struct tm tm;
    char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ck_assert_msg(end != NULL && *end == '\0', "bad test time %s", iso);
    return (int64_t)timegm(&tm) * 1000;
}

static void fmt_utc(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * One expression, one zone, a start instant and the successive fire
 * times (each fed back as the next after_ms); "NONE" expects ENONE.
 */
struct next_case {
    const char *expr;
    const char *tz;
    const char *after;
    const char *want[MAX_FIRES];
};

static void check_case(const struct next_case *tc)
{
    struct auto_cron c;
    char err[AUTO_CRON_ERR_MAX], got[32];
    int64_t t, next;
    int i, r;

    ck_assert_msg(auto_cron_parse(tc->expr, &c, err, sizeof(err)) == 0,
                  "parse '%s': %s", tc->expr, err);
    t = utc(tc->after);
    for (i = 0; i < MAX_FIRES && tc->want[i]; i++) {
        r = auto_cron_next(&c, tc->tz, t, &next, err, sizeof(err));
        if (strcmp(tc->want[i], "NONE") == 0) {
            ck_assert_msg(r == AUTO_CRON_ENONE, "'%s' %s: want ENONE, got %d",
                          tc->expr, tc->tz, r);
            ck_assert_str_eq(err, "expression never fires within 50 years");
            return;
        }
        ck_assert_msg(r == 0, "'%s' %s fire %d: %s", tc->expr, tc->tz, i,
                      err);
        fmt_utc(next, got, sizeof(got));
        ck_assert_msg(strcmp(got, tc->want[i]) == 0,
                      "'%s' %s fire %d after %s: want %s, got %s", tc->expr,
                      tc->tz, i, tc->after, tc->want[i], got);
        t = next;
    }
}

static const struct next_case basic_cases[] = {
    {"*/15 * * * *", "UTC", "2027-01-01T00:07:00Z",
     {"2027-01-01T00:15:00Z", "2027-01-01T00:30:00Z",
      "2027-01-01T00:45:00Z", "2027-01-01T01:00:00Z"}},
    {"5/20 * * * *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-01T00:05:00Z", "2027-01-01T00:25:00Z",
      "2027-01-01T00:45:00Z", "2027-01-01T01:05:00Z"}},
    {"0 9-17/4 * * MON-FRI", "UTC", "2027-01-01T10:00:00Z",
     {"2027-01-01T13:00:00Z", "2027-01-01T17:00:00Z",
      "2027-01-04T09:00:00Z", "2027-01-04T13:00:00Z"}},
    {"5,10 0 * JAN,jul *", "UTC", "2027-01-31T00:06:00Z",
     {"2027-01-31T00:10:00Z", "2027-07-01T00:05:00Z",
      "2027-07-01T00:10:00Z", "2027-07-02T00:05:00Z"}},
    {"0 0 1 jan,Jul *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-07-01T00:00:00Z", "2028-01-01T00:00:00Z",
      "2028-07-01T00:00:00Z"}},
    {"0 12 * * 5-7", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-01T12:00:00Z", "2027-01-02T12:00:00Z",
      "2027-01-03T12:00:00Z", "2027-01-08T12:00:00Z"}},
    {"0 0 * * 7", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z"}},
    {"0 0 * * sun", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z"}},
    /* Vixie: both day fields restricted -> the 13th OR any Friday */
    {"0 0 13 * FRI", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-08T00:00:00Z", "2027-01-13T00:00:00Z",
      "2027-01-15T00:00:00Z", "2027-01-22T00:00:00Z"}},
    /* day-of-month starts with '*': AND -> odd days that are Mondays */
    {"0 0 */2 * 1", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-11T00:00:00Z", "2027-01-25T00:00:00Z",
      "2027-02-01T00:00:00Z", "2027-02-15T00:00:00Z"}},
    {"0 0 ? * 1", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-04T00:00:00Z", "2027-01-11T00:00:00Z"}},
    {"*/20 * * * * *", "UTC", "2027-01-01T12:00:05Z",
     {"2027-01-01T12:00:20Z", "2027-01-01T12:00:40Z",
      "2027-01-01T12:01:00Z"}},
    {"30 0 0 * * *", "UTC", "2027-01-01T00:00:30Z",
     {"2027-01-02T00:00:30Z", "2027-01-03T00:00:30Z"}},
    {"0 9 * * *", "Asia/Kolkata", "2027-01-01T00:00:00Z",
     {"2027-01-01T03:30:00Z", "2027-01-02T03:30:00Z"}},
    {"0 9 * * *", "US/Eastern", "2027-01-01T00:00:00Z",
     {"2027-01-01T14:00:00Z"}},
};

static const struct next_case macro_cases[] = {
    {"@yearly", "UTC", "2027-03-15T12:34:56Z", {"2028-01-01T00:00:00Z"}},
    {"@annually", "UTC", "2027-03-15T12:34:56Z", {"2028-01-01T00:00:00Z"}},
    {"@monthly", "UTC", "2027-03-15T12:34:56Z", {"2027-04-01T00:00:00Z"}},
    {"@weekly", "UTC", "2027-03-15T12:34:56Z", {"2027-03-21T00:00:00Z"}},
    {"@daily", "UTC", "2027-03-15T12:34:56Z", {"2027-03-16T00:00:00Z"}},
    {"@midnight", "UTC", "2027-03-15T12:34:56Z", {"2027-03-16T00:00:00Z"}},
    {"@hourly", "UTC", "2027-03-15T12:34:56Z",
     {"2027-03-15T13:00:00Z", "2027-03-15T14:00:00Z"}},
    {" @Daily\t", "UTC", "2027-03-15T12:34:56Z", {"2027-03-16T00:00:00Z"}},
};

static const struct next_case special_cases[] = {
    {"0 0 L * *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z",
      "2027-03-31T00:00:00Z", "2027-04-30T00:00:00Z"}},
    {"0 0 L * *", "UTC", "2028-02-01T00:00:00Z", {"2028-02-29T00:00:00Z"}},
    {"0 0 L-3 * *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-28T00:00:00Z", "2027-02-25T00:00:00Z",
      "2027-03-28T00:00:00Z", "2027-04-27T00:00:00Z"}},
    /* May 15 is a Saturday, Aug 15 a Sunday */
    {"0 0 15W * *", "UTC", "2027-05-01T00:00:00Z",
     {"2027-05-14T00:00:00Z", "2027-06-15T00:00:00Z",
      "2027-07-15T00:00:00Z", "2027-08-16T00:00:00Z"}},
    /* May 1 is a Saturday: Monday the 3rd, never April 30 */
    {"0 0 1W * *", "UTC", "2027-04-15T00:00:00Z",
     {"2027-05-03T00:00:00Z", "2027-06-01T00:00:00Z",
      "2027-07-01T00:00:00Z", "2027-08-02T00:00:00Z"}},
    /* Jan 31 Sunday -> Fri 29; Jul 31 Saturday -> Fri 30; skip short */
    {"0 0 31W * *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-29T00:00:00Z", "2027-03-31T00:00:00Z",
      "2027-05-31T00:00:00Z", "2027-07-30T00:00:00Z"}},
    {"0 0 LW * *", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-29T00:00:00Z", "2027-02-26T00:00:00Z",
      "2027-03-31T00:00:00Z", "2027-04-30T00:00:00Z"}},
    {"0 0 * * 5L", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-29T00:00:00Z", "2027-02-26T00:00:00Z",
      "2027-03-26T00:00:00Z", "2027-04-30T00:00:00Z"}},
    {"0 0 * * 1#2", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-11T00:00:00Z", "2027-02-08T00:00:00Z",
      "2027-03-08T00:00:00Z", "2027-04-12T00:00:00Z"}},
    {"0 0 * * MON#1,FRI#5", "UTC", "2027-01-01T00:00:00Z",
     {"2027-01-04T00:00:00Z", "2027-01-29T00:00:00Z",
      "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"}},
    {"0 0 29 2 *", "UTC", "2027-01-01T00:00:00Z",
     {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
    {"0 0 30 2 *", "UTC", "2027-01-01T00:00:00Z", {"NONE"}},
    {"0 0 31 4,6,9,11 *", "UTC", "2027-01-01T00:00:00Z", {"NONE"}},
    {"0 0 31W 2 *", "Europe/Berlin", "2027-01-01T00:00:00Z", {"NONE"}},
};

static const struct next_case dst_cases[] = {
    /* Berlin 2027-03-28: 02:00 CET -> 03:00 CEST at 01:00Z */
    {"30 2 * * *", "Europe/Berlin", "2027-03-27T00:00:00Z",
     {"2027-03-27T01:30:00Z", "2027-03-28T01:00:00Z",
      "2027-03-29T00:30:00Z"}},
    {"0,30 2 * * *", "Europe/Berlin", "2027-03-27T23:00:00Z",
     {"2027-03-28T01:00:00Z", "2027-03-29T00:00:00Z",
      "2027-03-29T00:30:00Z"}},
    {"30 2,3 * * *", "Europe/Berlin", "2027-03-27T23:00:00Z",
     {"2027-03-28T01:00:00Z", "2027-03-28T01:30:00Z",
      "2027-03-29T00:30:00Z"}},
    {"15 30 2 * * *", "Europe/Berlin", "2027-03-27T23:00:00Z",
     {"2027-03-28T01:00:00Z", "2027-03-29T00:30:15Z"}},
    {"0 * * * *", "Europe/Berlin", "2027-03-27T23:30:00Z",
     {"2027-03-28T00:00:00Z", "2027-03-28T01:00:00Z",
      "2027-03-28T02:00:00Z"}},
    {"*/30 * * * *", "Europe/Berlin", "2027-03-28T00:15:00Z",
     {"2027-03-28T00:30:00Z", "2027-03-28T01:00:00Z",
      "2027-03-28T01:30:00Z"}},
    {"* * * * *", "Europe/Berlin", "2027-03-28T00:58:00Z",
     {"2027-03-28T00:59:00Z", "2027-03-28T01:00:00Z",
      "2027-03-28T01:01:00Z"}},
    /* Berlin 2027-10-31: 03:00 CEST -> 02:00 CET at 01:00Z */
    {"30 2 * * *", "Europe/Berlin", "2027-10-30T00:00:00Z",
     {"2027-10-30T00:30:00Z", "2027-10-31T00:30:00Z",
      "2027-11-01T01:30:00Z"}},
    {"0 * * * *", "Europe/Berlin", "2027-10-30T23:30:00Z",
     {"2027-10-31T00:00:00Z", "2027-10-31T01:00:00Z",
      "2027-10-31T02:00:00Z"}},
    /* wildcard minute: both copies of 02:xx */
    {"*/20 2 * * *", "Europe/Berlin", "2027-10-30T23:59:00Z",
     {"2027-10-31T00:00:00Z", "2027-10-31T00:20:00Z",
      "2027-10-31T00:40:00Z", "2027-10-31T01:00:00Z",
      "2027-10-31T01:20:00Z", "2027-10-31T01:40:00Z",
      "2027-11-01T01:00:00Z"}},
    /* New York 2027-03-14: 02:00 EST -> 03:00 EDT at 07:00Z */
    {"30 2 * * *", "America/New_York", "2027-03-13T00:00:00Z",
     {"2027-03-13T07:30:00Z", "2027-03-14T07:00:00Z",
      "2027-03-15T06:30:00Z"}},
    {"*/30 * * * *", "America/New_York", "2027-03-14T06:15:00Z",
     {"2027-03-14T06:30:00Z", "2027-03-14T07:00:00Z",
      "2027-03-14T07:30:00Z"}},
    /* New York 2027-11-07: 02:00 EDT -> 01:00 EST at 06:00Z */
    {"30 1 * * *", "America/New_York", "2027-11-06T00:00:00Z",
     {"2027-11-06T05:30:00Z", "2027-11-07T05:30:00Z",
      "2027-11-08T06:30:00Z"}},
    {"30 * * * *", "America/New_York", "2027-11-07T04:00:00Z",
     {"2027-11-07T04:30:00Z", "2027-11-07T05:30:00Z",
      "2027-11-07T06:30:00Z", "2027-11-07T07:30:00Z"}},
    {"0 * * * *", "America/New_York", "2027-11-07T04:30:00Z",
     {"2027-11-07T05:00:00Z", "2027-11-07T06:00:00Z",
      "2027-11-07T07:00:00Z"}},
    {"* * * * *", "America/New_York", "2027-11-07T05:58:00Z",
     {"2027-11-07T05:59:00Z", "2027-11-07T06:00:00Z",
      "2027-11-07T06:01:00Z"}},
    /* Santiago 2027-09-05: midnight does not exist, day starts 01:00 */
    {"0 0 * * *", "America/Santiago", "2027-09-03T00:00:00Z",
     {"2027-09-03T04:00:00Z", "2027-09-04T04:00:00Z",
      "2027-09-05T04:00:00Z", "2027-09-06T03:00:00Z"}},
    {"0 2 * * *", "UTC", "2027-03-28T00:00:00Z",
     {"2027-03-28T02:00:00Z", "2027-03-29T02:00:00Z"}},
};

static void run_cases(const struct next_case *cases, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        check_case(&cases[i]);
}

START_TEST(test_next_basic)
{
    run_cases(basic_cases, sizeof(basic_cases) / sizeof(basic_cases[0]));
}
END_TEST

START_TEST(test_next_macros)
{
    run_cases(macro_cases, sizeof(macro_cases) / sizeof(macro_cases[0]));
}
END_TEST

START_TEST(test_next_specials)
{
    run_cases(special_cases,
              sizeof(special_cases) / sizeof(special_cases[0]));
}
END_TEST

START_TEST(test_next_dst)
{
    run_cases(dst_cases, sizeof(dst_cases) / sizeof(dst_cases[0]));
}
END_TEST

/* after_ms has millisecond precision; fires are strictly after it. */
START_TEST(test_next_strictly_after)
{
    struct auto_cron c;
    int64_t t = utc("2027-01-01T12:00:20Z"), next = 0;

    ck_assert_int_eq(auto_cron_parse("*/20 * * * * *", &c, NULL, 0), 0);
    ck_assert_int_eq(auto_cron_next(&c, "UTC", t - 1, &next, NULL, 0), 0);
    ck_assert(next == t);
    ck_assert_int_eq(auto_cron_next(&c, "UTC", t, &next, NULL, 0), 0);
    ck_assert(next == t + 20000);
}
END_TEST

static const struct {
    const char *expr;
    const char *err;
} bad_exprs[] = {
    {"", "empty expression"},
    {" \t ", "empty expression"},
    {"* * * *", "expected 5 or 6 fields, got 4"},
    {"* * * * * * *", "expected 5 or 6 fields, got 7"},
    {"60 * * * *", "minute field, column 1: value 60 is out of range 0-59"},
    {"* 24 * * *", "hour field, column 3: value 24 is out of range 0-23"},
    {"* * 0 * *",
     "day-of-month field, column 5: value 0 is out of range 1-31"},
    {"* * * 13 *", "month field, column 7: value 13 is out of range 1-12"},
    {"* * * * 8",
     "day-of-week field, column 9: value 8 is out of range 0-7"},
    {"60 * * * * *",
     "second field, column 1: value 60 is out of range 0-59"},
    {"* * * FOO *", "month field, column 7: unknown name 'FOO'"},
    {"* * * * MONDAY", "day-of-week field, column 9: unknown name 'MONDAY'"},
    {"* JAN * * *", "hour field, column 3: unexpected 'J', expected a number"},
    {"*/0 * * * *", "minute field, column 3: step 0 is out of range 1-60"},
    {"* */25 * * *", "hour field, column 5: step 25 is out of range 1-24"},
    {"5-1 * * * *", "minute field, column 1: range 5-1 runs backwards"},
    {"1,,2 * * * *", "minute field, column 3: empty list item"},
    {",1 * * * *", "minute field, column 1: empty list item"},
    {"1, * * * *", "minute field, column 2: list ends with ','"},
    {"1-2-3 * * * *", "minute field, column 4: unexpected '-', expected ',' "
                      "or the end of the field"},
    {"1-5/ * * * *", "minute field, column 5: expected a number"},
    {"1000 * * * *", "minute field, column 1: number is too long"},
    {"? * * * *", "minute field, column 1: unexpected '?', expected a "
                  "number"},
    {"L * * * *", "minute field, column 1: unexpected 'L', expected a "
                  "number"},
    {"* * * * L", "day-of-week field, column 9: 'L' needs a weekday before "
                  "it, e.g. 5L"},
    {"* * 0W * *",
     "day-of-month field, column 5: value 0 is out of range 1-31"},
    {"* * W * *", "day-of-month field, column 5: unexpected 'W', expected "
                  "a number"},
    {"* * L-31 * *", "day-of-month field, column 7: offset 31 in L-n is out "
                     "of range 1-30"},
    {"* * LX * *", "day-of-month field, column 6: unexpected 'X', expected "
                   "',' or the end of the field"},
    {"* * 15W/2 * *", "day-of-month field, column 8: unexpected '/', "
                      "expected ',' or the end of the field"},
    {"* * * * 1#6", "day-of-week field, column 11: occurrence #6 is out of "
                    "range 1-5"},
    {"* * * * 1#", "day-of-week field, column 11: expected a number"},
    {"* * * * 5L/2", "day-of-week field, column 11: unexpected '/', "
                     "expected ',' or the end of the field"},
    {"* * * 5L *", "month field, column 8: unexpected 'L', expected ',' or "
                   "the end of the field"},
    {"* * * * ?/2", "day-of-week field, column 10: unexpected '/', "
                    "expected ',' or the end of the field"},
    {"*\xc3\xa9 * * * *", "minute field, column 2: unexpected byte 0xc3, "
                          "expected ',' or the end of the field"},
    {"@every 5m", "column 1: unknown or unsupported macro '@every'"},
    {"@reboot", "column 1: unknown or unsupported macro '@reboot'"},
    {"@daily *", "column 1: @daily takes no fields"},
};

START_TEST(test_parse_errors)
{
    struct auto_cron c;
    char err[AUTO_CRON_ERR_MAX];
    size_t i;

    for (i = 0; i < sizeof(bad_exprs) / sizeof(bad_exprs[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(auto_cron_parse(bad_exprs[i].expr, &c, err,
                                      sizeof(err)) == -1,
                      "'%s' parsed", bad_exprs[i].expr);
        ck_assert_str_eq(err, bad_exprs[i].err);
    }
    /* a tiny or missing buffer truncates or drops the message safely */
    ck_assert_int_eq(auto_cron_parse("61 * * * *", &c, err, 8), -1);
    ck_assert_str_eq(err, "minute ");
    ck_assert_int_eq(auto_cron_parse("61 * * * *", &c, NULL, 0), -1);
    ck_assert_int_eq(auto_cron_parse(NULL, &c, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_parse_fields)
{
    struct auto_cron c;

    ck_assert_int_eq(auto_cron_parse("0 0 * * 5-7", &c, NULL, 0), 0);
    ck_assert_uint_eq(c.sec, 1);
    ck_assert_uint_eq(c.dow, 0x61); /* Sun, Fri, Sat */
    ck_assert_uint_eq(c.flags, AUTO_CRON_DOM_STAR);

    ck_assert_int_eq(auto_cron_parse("*/20 1-3 2/5,L,L-2,15W,LW jan-MAR "
                                     "3L,tue#2,0#5",
                                     &c, NULL, 0), 0);
    ck_assert_uint_eq(c.min, (UINT64_C(1) << 0) | (UINT64_C(1) << 20) |
                                 (UINT64_C(1) << 40));
    ck_assert_uint_eq(c.hour, 0xe);
    ck_assert_uint_eq(c.dom, (1u << 2) | (1u << 7) | (1u << 12) |
                                 (1u << 17) | (1u << 22) | (1u << 27));
    ck_assert_uint_eq(c.dom_last, 0x5);
    ck_assert_uint_eq(c.dom_near, 1u << 15);
    ck_assert_uint_eq(c.month, 0xe);
    ck_assert_uint_eq(c.dow, 0);
    ck_assert_uint_eq(c.dow_last, 1u << 3);
    ck_assert_uint_eq(c.dow_nth[2], 1u << 2);
    ck_assert_uint_eq(c.dow_nth[0], 1u << 5);
    ck_assert_uint_eq(c.flags, AUTO_CRON_WILD | AUTO_CRON_DOM_LW);

    ck_assert_int_eq(auto_cron_parse("0 * * * 1/2", &c, NULL, 0), 0);
    ck_assert_uint_eq(c.dow, 0x2a); /* Mon, Wed, Fri; 7 is not implied */
    ck_assert_uint_eq(c.flags, AUTO_CRON_WILD | AUTO_CRON_DOM_STAR);
    ck_assert_int_eq(auto_cron_parse("0 0 * * 7/2", &c, NULL, 0), 0);
    ck_assert_uint_eq(c.dow, 0x1);
}
END_TEST

START_TEST(test_time_zones)
{
    struct auto_cron c;
    char err[AUTO_CRON_ERR_MAX];
    int64_t next = 42;

    ck_assert_int_eq(auto_cron_tz_check("Europe/Berlin", err, sizeof(err)),
                     AUTO_CRON_OK);
    ck_assert_int_eq(auto_cron_tz_check("UTC", NULL, 0), AUTO_CRON_OK);
    ck_assert_int_eq(auto_cron_tz_check("Etc/GMT+5", NULL, 0), AUTO_CRON_OK);
    ck_assert_int_eq(auto_cron_tz_check("Mars/Olympus", err, sizeof(err)),
                     AUTO_CRON_ETZ);
    ck_assert_str_eq(err, "unknown time zone 'Mars/Olympus'");
    ck_assert_int_eq(auto_cron_tz_check("Etc/Unknown", NULL, 0),
                     AUTO_CRON_ETZ);
    ck_assert_int_eq(auto_cron_tz_check("GMT+05:00", NULL, 0), AUTO_CRON_ETZ);
    ck_assert_int_eq(auto_cron_tz_check("europe/berlin", NULL, 0),
                     AUTO_CRON_ETZ);
    ck_assert_int_eq(auto_cron_tz_check("", err, sizeof(err)), AUTO_CRON_ETZ);
    ck_assert_str_eq(err, "time zone '' is not an IANA zone id");
    ck_assert_int_eq(auto_cron_tz_check("Europe/Berlin\n", NULL, 0),
                     AUTO_CRON_ETZ);
    ck_assert_int_eq(auto_cron_tz_check(NULL, NULL, 0), AUTO_CRON_EINVAL);

    ck_assert_int_eq(auto_cron_parse("@daily", &c, NULL, 0), 0);
    ck_assert_int_eq(auto_cron_next(&c, "Nowhere/City", 0, &next, err,
                                    sizeof(err)),
                     AUTO_CRON_ETZ);
    ck_assert_str_eq(err, "unknown time zone 'Nowhere/City'");
    ck_assert(next == 42);
    ck_assert_int_eq(auto_cron_next(&c, "UTC", -1, &next, NULL, 0),
                     AUTO_CRON_EINVAL);
    ck_assert_int_eq(auto_cron_next(&c, "UTC", AUTO_CRON_MAX_MS + 1, &next,
                                    NULL, 0),
                     AUTO_CRON_EINVAL);
    ck_assert_int_eq(auto_cron_next(&c, "UTC", AUTO_CRON_MAX_MS, &next,
                                    NULL, 0),
                     AUTO_CRON_OK);
    ck_assert(next == AUTO_CRON_MAX_MS + 86400000);
}
END_TEST

static Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_parse_fields);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_next_basic);
    tcase_add_test(tc, test_next_macros);
    tcase_add_test(tc, test_next_specials);
    tcase_add_test(tc, test_next_dst);
    tcase_add_test(tc, test_next_strictly_after);
    tcase_add_test(tc, test_time_zones);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cron_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
