/* Email normalisation/validation, UTF-8 counting, UUID shape. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../src/validation.c"

struct email_case {
    const char *in;
    const char *want; /* NULL: must be rejected */
};

static const struct email_case email_cases[] = {
    {"alice@example.com", "alice@example.com"},
    {"  Alice@Example.COM\t\n", "alice@example.com"},
    {"a.b+tag@sub.example.co.uk", "a.b+tag@sub.example.co.uk"},
    {"o'brien_x-y@ex-ample.io", "o'brien_x-y@ex-ample.io"},
    {"x@a.b", "x@a.b"},
    {"", NULL},
    {"   ", NULL},
    {"alice", NULL},
    {"alice@", NULL},
    {"@example.com", NULL},
    {"alice@example", NULL},
    {"alice@@example.com", NULL},
    {"al@ice@example.com", NULL},
    {"al ice@example.com", NULL},
    {"alice@exa mple.com", NULL},
    {"ali\x01" "ce@example.com", NULL},
    {"alice@example.com\x7f", NULL},
    {".alice@example.com", NULL},
    {"alice.@example.com", NULL},
    {"al..ice@example.com", NULL},
    {"alice@.example.com", NULL},
    {"alice@example.com.", NULL},
    {"alice@example..com", NULL},
    {"alice@-example.com", NULL},
    {"alice@example-.com", NULL},
    {"alice@exa_mple.com", NULL},
    {"\"al\"@example.com", NULL},
    {"al(ice)@example.com", NULL},
    {"j\xc3\xb6rg@example.com", NULL},
};

START_TEST(email_table)
{
    const struct email_case *tc = &email_cases[_i];
    char out[PLAT_EMAIL_MAX + 1], why[128];
    int rc;

    why[0] = '\0';
    rc = plat_email_normalize(tc->in, strlen(tc->in), out, sizeof(out), why,
                              sizeof(why));
    if (tc->want != NULL) {
        ck_assert_msg(rc == 0, "%s rejected: %s", tc->in, why);
        ck_assert_str_eq(out, tc->want);
    } else {
        ck_assert_msg(rc == -1, "%s accepted as %s", tc->in, out);
        ck_assert_msg(why[0] != '\0', "no reason for %s", tc->in);
        ck_assert_ptr_nonnull(strstr(why, "email"));
    }
}
END_TEST

START_TEST(email_lengths)
{
    char in[400], out[PLAT_EMAIL_MAX + 1], why[128];
    size_t n;

    /* local part of exactly 64 is fine, 65 is not */
    memset(in, 'a', 64);
    memcpy(in + 64, "@example.com", 13);
    ck_assert_int_eq(plat_email_normalize(in, strlen(in), out, sizeof(out),
                                          why, sizeof(why)), 0);
    memset(in, 'a', 65);
    memcpy(in + 65, "@example.com", 13);
    ck_assert_int_eq(plat_email_normalize(in, strlen(in), out, sizeof(out),
                                          why, sizeof(why)), -1);

    /* total 254 accepted, 255 rejected (labels of <= 63) */
    n = 0;
    memcpy(in, "a@", 2);
    n = 2;
    while (n + 64 <= 250) {
        memset(in + n, 'b', 63);
        in[n + 63] = '.';
        n += 64;
    }
    while (n < 250)
        in[n++] = 'c';
    memcpy(in + n, ".com", 4);
    n += 4;
    ck_assert_uint_eq(n, 254);
    ck_assert_int_eq(plat_email_normalize(in, n, out, sizeof(out), why,
                                          sizeof(why)), 0);
    in[n - 1] = 'm';
    in[n] = 'x';
    ck_assert_int_eq(plat_email_normalize(in, n + 1, out, sizeof(out), why,
                                          sizeof(why)), -1);

    /* a 64-character label is too long */
    memset(in, 0, sizeof(in));
    memcpy(in, "a@", 2);
    memset(in + 2, 'd', 64);
    memcpy(in + 66, ".com", 4);
    ck_assert_int_eq(plat_email_normalize(in, 70, out, sizeof(out), why,
                                          sizeof(why)), -1);

    /* embedded NUL */
    ck_assert_int_eq(plat_email_normalize("a\0b@example.com", 15, out,
                                          sizeof(out), why, sizeof(why)),
                     -1);
}
END_TEST

START_TEST(utf8_len)
{
    ck_assert_int_eq(plat_utf8_len("", 0), 0);
    ck_assert_int_eq(plat_utf8_len("abc", 3), 3);
    ck_assert_int_eq(plat_utf8_len("\xc3\xa9t\xc3\xa9", 5), 3);
    ck_assert_int_eq(plat_utf8_len("\xe2\x82\xac", 3), 1);
    ck_assert_int_eq(plat_utf8_len("\xf0\x9f\x94\x91", 4), 1);
    ck_assert_int_eq(plat_utf8_len("a\0b", 3), -1);
    ck_assert_int_eq(plat_utf8_len("\xc0\xaf", 2), -1);     /* overlong */
    ck_assert_int_eq(plat_utf8_len("\xe0\x80\xaf", 3), -1); /* overlong */
    ck_assert_int_eq(plat_utf8_len("\xed\xa0\x80", 3), -1); /* surrogate */
    ck_assert_int_eq(plat_utf8_len("\xf4\x90\x80\x80", 4), -1);
    ck_assert_int_eq(plat_utf8_len("\xc3", 1), -1);         /* truncated */
    ck_assert_int_eq(plat_utf8_len("\xe2\x82", 2), -1);
    ck_assert_int_eq(plat_utf8_len("\x80", 1), -1);
    ck_assert_int_eq(plat_utf8_len("\xff", 1), -1);
}
END_TEST

START_TEST(uuid_shape)
{
    ck_assert_int_eq(plat_is_uuid("123e4567-e89b-12d3-a456-426614174000"),
                     1);
    ck_assert_int_eq(plat_is_uuid("123E4567-E89B-12D3-A456-426614174000"),
                     1);
    ck_assert_int_eq(plat_is_uuid(NULL), 0);
    ck_assert_int_eq(plat_is_uuid(""), 0);
    ck_assert_int_eq(plat_is_uuid("123e4567e89b12d3a456426614174000"), 0);
    ck_assert_int_eq(plat_is_uuid("123e4567-e89b-12d3-a456-4266141740000"),
                     0);
    ck_assert_int_eq(plat_is_uuid("123e4567-e89b-12d3-a456-42661417400g"),
                     0);
    ck_assert_int_eq(plat_is_uuid("' OR 1=1 --"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_validation");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, email_table, 0,
                        sizeof(email_cases) / sizeof(email_cases[0]));
    tcase_add_test(tc, email_lengths);
    tcase_add_test(tc, utf8_len);
    tcase_add_test(tc, uuid_shape);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
