/* import_parse.c and import_infer.c: CSV edge cases, type inference,
 * statistics, names; datasets.c filter parsing. No database needed. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "../src/import.h"
#include "../src/datasets.c"

struct rows {
    char text[64][256];
    long lines[64];
    size_t n;
    size_t hdr;
    char bad[8][128];
    size_t nbad;
};

static int t_header(void *arg, const struct imp_field *f, size_t n)
{
    (void)f;
    ((struct rows *)arg)->hdr = n;
    return 0;
}

static int t_column(void *arg, const char *name, size_t len)
{
    (void)arg;
    return len == 1 ? name[0] - 'a' : 3;
}

/* Each row as "f1|f2|<null>" with its line. */
static int t_row(void *arg, long line, const struct imp_field *f, size_t n)
{
    struct rows *r = arg;
    size_t o = 0;

    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(r->text[r->n] + o, 256 - o, "%s%.*s",
                              i ? "|" : "", f[i].p ? (int)f[i].len : 2,
                              f[i].p ? f[i].p : "<>");
    r->lines[r->n++] = line;
    return 0;
}

static int t_bad(void *arg, long line, const char *why)
{
    struct rows *r = arg;

    snprintf(r->bad[r->nbad++], 128, "%ld:%s", line, why);
    return 0;
}

static const struct imp_sink tsink = {t_header, t_column, t_row, t_bad,
                                      NULL};

static int parse(const char *text, enum imp_format fmt, struct rows *r,
                 char *err)
{
    char path[] = "/tmp/test_import_XXXXXX";
    int fd = mkstemp(path), rc;
    struct imp_read_opts o = {.format = fmt, .delimiter = ',', .header = 1};

    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    lseek(fd, 0, SEEK_SET);
    memset(r, 0, sizeof *r);
    rc = imp_read(fd, &o, &tsink, r, err, 256);
    close(fd);
    return rc;
}

START_TEST(test_csv_edges)
{
    struct rows r;
    char err[256];

    ck_assert_int_eq(parse("\xef\xbb\xbfname,qty\r\n\"a, \"\"b\"\"\",1\r\n"
                           "\"multi\nline\",2\n\nonly\n x ,,\"\"\n",
                           IMP_CSV, &r, err), 0);
    ck_assert_uint_eq(r.hdr, 2);
    ck_assert_uint_eq(r.n, 4);
    ck_assert_str_eq(r.text[0], "a, \"b\"|1");
    ck_assert_int_eq(r.lines[0], 2);
    ck_assert_str_eq(r.text[1], "multi\nline|2");
    ck_assert_int_eq(r.lines[1], 3);
    ck_assert_str_eq(r.text[2], "only");           /* ragged: short */
    ck_assert_int_eq(r.lines[2], 6);
    ck_assert_str_eq(r.text[3], " x |<>|");       /* spaces kept; "" */
    ck_assert_int_eq(r.lines[3], 7);
    ck_assert_int_eq(parse("a,b\n1,2\n3,\"open\n4,5\n", IMP_CSV, &r, err),
                     -1);
    ck_assert_str_eq(err, "line 3: quoted field not terminated");
}
END_TEST

START_TEST(test_json_readers)
{
    struct rows r;
    char err[256];

    ck_assert_int_eq(parse("[{\"a\":1,\"b\":\"x,]\"},\n 7,\n{\"c\":[1,2]}]",
                           IMP_JSON, &r, err), 0);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.text[0], "1|x,]");
    ck_assert_str_eq(r.text[1], "<>|<>|[1,2]");
    ck_assert_int_eq(r.lines[1], 3);
    ck_assert_uint_eq(r.nbad, 1);
    ck_assert(strncmp(r.bad[0], "2:", 2) == 0);   /* a bare 7 */
    ck_assert_int_eq(parse("{\"a\":1}\n\n{bad\n{\"b\":true}\n", IMP_NDJSON,
                           &r, err), 0);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_int_eq(r.lines[1], 4);
    ck_assert_uint_eq(r.nbad, 1);
    ck_assert(strncmp(r.bad[0], "3:invalid JSON", 14) == 0);
    ck_assert_int_eq(parse("[{\"a\":1}", IMP_JSON, &r, err), -1);
}
END_TEST

static enum imp_type infer(const char *const *vals)
{
    struct imp_infer in;

    imp_infer_init(&in);
    for (; *vals; vals++) {
        struct imp_field f = {*vals, strlen(*vals), IMP_K_TEXT};

        imp_infer_add(&in, &f);
    }
    return imp_infer_type(&in);
}

START_TEST(test_inference_table)
{
    static const struct {
        const char *vals[5];
        enum imp_type want;
    } cases[] = {
        {{"1", "-2", " 3 ", "", NULL}, IMP_INTEGER},
        {{"1", "2.5", "1e3", "NULL", NULL}, IMP_FLOAT},
        {{"02134", "12345", NULL}, IMP_STRING},        /* ZIP codes */
        {{"true", "False", "yes", "NO", NULL}, IMP_BOOLEAN},
        {{"2024-02-29", "2023-12-31", NULL}, IMP_DATE},
        {{"2023-02-29", NULL}, IMP_STRING},            /* not a leap year */
        {{"2024-01-01", "2024-01-01T10:00:00Z", NULL}, IMP_TIMESTAMP},
        {{"2024-01-01 10:00", "2024-01-01T10:00:00.5+02:00", NULL},
         IMP_TIMESTAMP},
        {{"1", "x", NULL}, IMP_STRING},
        {{"", "N/A", NULL}, IMP_STRING},
        {{"99999999999999999999", NULL}, IMP_FLOAT},   /* past int64 */
        {{"nan", "inf", NULL}, IMP_STRING},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(infer(cases[i].vals) == cases[i].want, "case %zu", i);
}
END_TEST

START_TEST(test_stats_and_emit)
{
    struct imp_stats s;
    char out[128];
    const char *vals[] = {"3", "1", "", "2", "3"};
    json_t *j;
    long n;
    int64_t us;

    imp_stats_init(&s);
    for (size_t i = 0; i < 5; i++) {
        struct imp_field f = {vals[i], strlen(vals[i]), IMP_K_TEXT};

        ck_assert_int_gt(imp_emit(&f, IMP_INTEGER, &s, out, sizeof out), 0);
    }
    j = imp_stats_json(&s, IMP_INTEGER);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "nulls")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "min")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "max")), 3);
    ck_assert_double_eq(json_real_value(json_object_get(j, "mean")), 2.25);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "distinct")), 3);
    json_decref(j);
    imp_stats_cleanup(&s);

    imp_stats_init(&s);
    struct imp_field t = {"a\tb\\c\nd", 7, IMP_K_TEXT};
    n = imp_emit(&t, IMP_STRING, &s, out, sizeof out);
    ck_assert_int_eq(n, 10);
    ck_assert(memcmp(out, "a\\tb\\\\c\\nd", 10) == 0);
    imp_stats_cleanup(&s);

    imp_stats_init(&s);
    struct imp_field ts = {"2024-01-01T10:00:00+02:00", 25, IMP_K_TEXT};
    n = imp_emit(&ts, IMP_TIMESTAMP, &s, out, sizeof out);
    out[n] = '\0';
    ck_assert_str_eq(out, "2024-01-01 08:00:00.000000+00");
    imp_stats_cleanup(&s);
    imp_stats_init(&s);
    struct imp_field d = {"2000-01-02", 10, IMP_K_TEXT};
    ck_assert_int_eq(imp_emit_bin(&d, IMP_DATE, &s, out, sizeof out), 8);
    ck_assert(memcmp(out, "\0\0\0\4\0\0\0\1", 8) == 0);
    struct imp_field i = {" -2 ", 4, IMP_K_TEXT};
    ck_assert_int_eq(imp_emit_bin(&i, IMP_INTEGER, &s, out, sizeof out), 12);
    ck_assert(memcmp(out, "\0\0\0\10\377\377\377\377\377\377\377\376",
                     12) == 0);
    struct imp_field nul = {"", 0, IMP_K_TEXT};
    ck_assert_int_eq(imp_emit_bin(&nul, IMP_STRING, &s, out, sizeof out), 4);
    ck_assert(memcmp(out, "\377\377\377\377", 4) == 0);
    imp_stats_cleanup(&s);
    ck_assert(imp_parse_ts("1969-12-31T23:59:59Z", 20, &us));
    ck_assert_int_eq(us, -1000000);
    ck_assert(!imp_utf8_ok("\xc0\xaf", 2));
    ck_assert(imp_utf8_ok("caf\xc3\xa9", 5));
}
END_TEST

START_TEST(test_column_names)
{
    char names[4][IMP_NAME_MAX + 1];

    imp_column_name("Full Name", 9, 0, names, 0, names[0]);
    ck_assert_str_eq(names[0], "full_name");
    imp_column_name("full-name!", 10, 1, names, 1, names[1]);
    ck_assert_str_eq(names[1], "full_name_2");
    imp_column_name("2nd", 3, 2, names, 2, names[2]);
    ck_assert_str_eq(names[2], "c_2nd");
    imp_column_name("\xc3\xa9\xc3\xa9", 4, 3, names, 3, names[3]);
    ck_assert_str_eq(names[3], "col_4");
}
END_TEST

START_TEST(test_filter_parsing)
{
    json_t *cols = json_loads("[{\"name\":\"age\",\"type\":\"integer\"},"
                              "{\"name\":\"n\",\"type\":\"string\"},"
                              "{\"name\":\"ok\",\"type\":\"boolean\"}]",
                              0, NULL);
    struct ds_filter f;
    char why[256];

    ck_assert_int_eq(parse_filter("age:gt:30", cols, &f, why, sizeof why),
                     0);
    ck_assert_str_eq(f.column, "age");
    ck_assert_str_eq(f.op->sql, ">");
    ck_assert_str_eq(f.value, "30");
    free(f.value);
    ck_assert_int_eq(parse_filter("n:contains:a%b:c", cols, &f, why,
                                  sizeof why), 0);
    ck_assert_str_eq(f.value, "%a\\%b:c%");
    free(f.value);
    ck_assert_int_eq(parse_filter("ok:eq:YES", cols, &f, why, sizeof why),
                     0);
    ck_assert_str_eq(f.value, "true");
    free(f.value);
    ck_assert_int_eq(parse_filter("n:is_null", cols, &f, why, sizeof why),
                     0);
    ck_assert_ptr_null(f.value);
    ck_assert_int_eq(parse_filter("age:gt:old", cols, &f, why, sizeof why),
                     -1);
    ck_assert_int_eq(parse_filter("age:drop:1", cols, &f, why, sizeof why),
                     -1);
    ck_assert_int_eq(parse_filter("x;--:eq:1", cols, &f, why, sizeof why),
                     -1);
    ck_assert_int_eq(parse_filter("age:contains:1", cols, &f, why,
                                  sizeof why), -1);
    ck_assert_int_eq(parse_filter("age", cols, &f, why, sizeof why), -1);
    json_decref(cols);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("automation_import");
    TCase *tc = tcase_create("import");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_csv_edges);
    tcase_add_test(tc, test_json_readers);
    tcase_add_test(tc, test_inference_table);
    tcase_add_test(tc, test_stats_and_emit);
    tcase_add_test(tc, test_column_names);
    tcase_add_test(tc, test_filter_parsing);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
