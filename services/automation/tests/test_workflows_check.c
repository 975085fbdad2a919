/* workflows_check.c: the workflow body validation table. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../src/workflows.h"

static const struct {
    const char *body;
    int partial;
    const char *field;   /* NULL: valid */
} cases[] = {
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"noop\"}]}", 0, NULL},
    {"{\"name\":\"a\",\"schedule\":\"*/5 * * * * *\",\"timezone\":"
     "\"Europe/Berlin\",\"steps\":[{\"type\":\"noop\"}]}", 0, NULL},
    {"{\"name\":\"a\",\"schedule\":\"@hourly\",\"steps\":[{\"type\":"
     "\"noop\"}],\"missed_run\":\"run_once\",\"overlap\":\"replace\"}", 0,
     NULL},
    {"{\"name\":\"a\",\"schedule\":\"0 0 LW * *\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, NULL},
    {"{\"name\":\"a\",\"schedule\":\"0 9 * * 1#2\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, NULL},
    {"{\"name\":\"a\",\"schedule\":\"0 9 15W * *\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, NULL},
    {"{\"name\":\"a\",\"schedule\":\"0 0 29 2 *\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, NULL},                       /* leap days exist */
    {"{\"name\":\"a\",\"id\":3,\"owner_id\":\"x\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, NULL},                       /* read-only dropped */
    {"{\"enabled\":false}", 1, NULL},
    {"{\"steps\":[{\"type\":\"noop\"}]}", 0, "name"},
    {"{\"name\":\"\",\"steps\":[{\"type\":\"noop\"}]}", 0, "name"},
    {"{\"name\":\"a\"}", 0, "steps"},
    {"{\"name\":\"a\",\"steps\":[]}", 0, "steps"},
    {"{\"name\":\"a\",\"steps\":{}}", 0, "steps"},
    {"{\"name\":\"a\",\"schedule\":\"0 0 30 2 *\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "schedule"},                 /* never fires */
    {"{\"name\":\"a\",\"schedule\":\"0 0 31 4,6,9,11 *\",\"steps\":[{"
     "\"type\":\"noop\"}]}", 0, "schedule"},
    {"{\"name\":\"a\",\"schedule\":\"60 * * * *\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "schedule"},
    {"{\"name\":\"a\",\"schedule\":5,\"steps\":[{\"type\":\"noop\"}]}", 0,
     "schedule"},
    {"{\"name\":\"a\",\"schedule\":\"@often\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "schedule"},
    {"{\"name\":\"a\",\"timezone\":\"Mars/Olympus\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "timezone"},
    {"{\"name\":\"a\",\"timezone\":\"GMT+05:00\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "timezone"},
    {"{\"name\":\"a\",\"enabled\":\"yes\",\"steps\":[{\"type\":\"noop\"}]}",
     0, "enabled"},
    {"{\"name\":\"a\",\"missed_run\":\"all\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "missed_run"},
    {"{\"name\":\"a\",\"overlap\":\"queue\",\"steps\":[{\"type\":"
     "\"noop\"}]}", 0, "overlap"},
    {"{\"name\":\"a\",\"extra\":1,\"steps\":[{\"type\":\"noop\"}]}", 0,
     "extra"},
    {"{\"name\":\"a\",\"steps\":[1]}", 0, "steps[0]"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"nope\"}]}", 0, "steps[0].type"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"noop\",\"x\":1}]}", 0,
     "steps[0].x"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"noop\"},{\"type\":\"http\","
     "\"args\":{\"url\":\"ftp://x\"}}]}", 0, "steps[1].args.url"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"noop\",\"args\":[]}]}", 0,
     "steps[0].args"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"noop\",\"max_attempts\":0}]}",
     0, "steps[0].max_attempts"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"emit_event\",\"args\":{}}]}", 0,
     "steps[0].args.event"},
    {"{\"name\":\"a\",\"steps\":[{\"type\":\"emit_event\",\"args\":{"
     "\"event\":\"e\",\"properties\":3}}]}", 0, "steps[0].args.properties"},
    {"{\"timezone\":\"Nowhere/X\"}", 1, "timezone"},
};

START_TEST(test_table)
{
    json_t *body = json_loads(cases[_i].body, 0, NULL);
    char field[128] = "", why[256] = "";
    int rc;

    ck_assert_ptr_nonnull(body);
    rc = auto_wf_check(body, cases[_i].partial, 3, field, sizeof field, why,
                       sizeof why);
    if (cases[_i].field) {
        ck_assert_msg(rc == -1, "case %d accepted: %s", _i, cases[_i].body);
        ck_assert_str_eq(field, cases[_i].field);
        ck_assert_msg(why[0] != '\0', "case %d: no reason", _i);
    } else {
        ck_assert_msg(rc == 0, "case %d refused: %s %s", _i, field, why);
    }
    json_decref(body);
}
END_TEST

START_TEST(test_defaults_filled)
{
    json_t *b = json_loads("{\"name\":\"a\",\"id\":1,\"steps\":[{\"type\":"
                           "\"noop\"},{\"type\":\"noop\",\"max_attempts\":"
                           "7}]}", 0, NULL);
    char field[64], why[128];

    ck_assert_int_eq(auto_wf_check(b, 0, 4, field, sizeof field, why,
                                   sizeof why), 0);
    ck_assert_ptr_null(json_object_get(b, "id"));
    ck_assert_str_eq(json_string_value(json_object_get(b, "timezone")),
                     "UTC");
    ck_assert(json_is_null(json_object_get(b, "schedule")));
    ck_assert(json_is_true(json_object_get(b, "enabled")));
    ck_assert_str_eq(json_string_value(json_object_get(b, "missed_run")),
                     "skip");
    ck_assert_str_eq(json_string_value(json_object_get(b, "overlap")),
                     "allow");
    json_t *s = json_object_get(b, "steps");
    ck_assert(json_is_object(json_object_get(json_array_get(s, 0), "args")));
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(s, 0), "max_attempts")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(s, 1), "max_attempts")), 7);
    json_decref(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("workflows_check");
    TCase *tc = tcase_create("check");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_table, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_defaults_filled);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
