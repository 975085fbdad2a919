/* Password policy table and argon2id hash/verify. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../src/password.c"

/* Unit tests only: far below the service's floor, to stay fast. */
static const struct plat_password_params small = {64, 1, 1};

struct policy_case {
    const char *pw;
    const char *email;
    int ok;
};

static const struct policy_case policy_cases[] = {
    {"correct horse battery", "a@example.com", 1},
    {"8chars!!", NULL, 1},
    {"short", NULL, 0},
    {"1234567", NULL, 0},
    {"", NULL, 0},
    /* 8 code points but 16 bytes: counts characters, not bytes */
    {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
     NULL, 1},
    /* 4 code points, 8 bytes: too short */
    {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL, 0},
    {"abcdefg\xff", NULL, 0},
    {"password", NULL, 0},
    {"PASSWORD", NULL, 0},
    {"Password1", NULL, 0},
    {"12345678", NULL, 0},
    {"qwertyuiop", NULL, 0},
    {"iloveyou", NULL, 0},
    {"bob@example.com", "bob@example.com", 0},
    {"BOB@example.com", "bob@example.com", 0},
    {"bob@example.com!", "bob@example.com", 1},
};

START_TEST(policy_table)
{
    const struct policy_case *tc = &policy_cases[_i];
    char why[128] = "";
    int rc = plat_password_policy(tc->pw, strlen(tc->pw), tc->email, why,
                                  sizeof(why));

    if (tc->ok) {
        ck_assert_msg(rc == 0, "\"%s\" rejected: %s", tc->pw, why);
    } else {
        ck_assert_msg(rc == -1, "\"%s\" accepted", tc->pw);
        ck_assert_ptr_nonnull(strstr(why, "password"));
    }
}
END_TEST

START_TEST(policy_limits)
{
    char pw[200], why[128];

    memset(pw, 'x', sizeof(pw));
    pw[0] = 'Q';
    ck_assert_int_eq(plat_password_policy(pw, 128, NULL, why, sizeof(why)),
                     0);
    ck_assert_int_eq(plat_password_policy(pw, 129, NULL, why, sizeof(why)),
                     -1);
    ck_assert_ptr_nonnull(strstr(why, "at most 128"));
    ck_assert_int_eq(plat_password_policy(pw, 7, NULL, why, sizeof(why)),
                     -1);
    ck_assert_ptr_nonnull(strstr(why, "at least 8"));
    /* an embedded NUL is not text */
    ck_assert_int_eq(plat_password_policy("abcd\0efgh", 9, NULL, why,
                                          sizeof(why)), -1);
}
END_TEST

START_TEST(hash_verify)
{
    char h1[PLAT_PASSWORD_ENCODED_MAX], h2[PLAT_PASSWORD_ENCODED_MAX];
    const char *pw = "correct horse battery";

    ck_assert_int_eq(plat_password_hash(&small, pw, strlen(pw), h1,
                                        sizeof(h1)), 0);
    ck_assert_int_eq(strncmp(h1, "$argon2id$v=19$m=64,t=1,p=1$", 28), 0);
    ck_assert_int_eq(plat_password_verify(h1, pw, strlen(pw)), 1);
    ck_assert_int_eq(plat_password_verify(h1, "correct horse batterY",
                                          strlen(pw)), 0);
    ck_assert_int_eq(plat_password_verify(h1, pw, strlen(pw) - 1), 0);

    /* fresh salt every time */
    ck_assert_int_eq(plat_password_hash(&small, pw, strlen(pw), h2,
                                        sizeof(h2)), 0);
    ck_assert_str_ne(h1, h2);
    ck_assert_int_eq(plat_password_verify(h2, pw, strlen(pw)), 1);
}
END_TEST

START_TEST(service_parameters)
{
    const struct plat_password_params svc = {19456, 2, 1};
    char h[PLAT_PASSWORD_ENCODED_MAX];
    const char *prefix = "$argon2id$v=19$m=19456,t=2,p=1$";
    const char *salt, *hash;

    ck_assert_int_eq(plat_password_hash(&svc, "hunter2hunter2", 14, h,
                                        sizeof(h)), 0);
    ck_assert_int_eq(strncmp(h, prefix, strlen(prefix)), 0);
    /* 16-byte salt -> 22 base64 chars; 32-byte hash -> 43 */
    salt = h + strlen(prefix);
    hash = strchr(salt, '$');
    ck_assert_ptr_nonnull(hash);
    ck_assert_int_eq((int)(hash - salt), 22);
    ck_assert_uint_eq(strlen(hash + 1), 43);
    ck_assert_int_eq(plat_password_verify(h, "hunter2hunter2", 14), 1);
}
END_TEST

START_TEST(verify_rejects_garbage)
{
    char h[PLAT_PASSWORD_ENCODED_MAX];

    ck_assert_int_eq(plat_password_verify(NULL, "x", 1), -1);
    ck_assert_int_eq(plat_password_verify("", "x", 1), -1);
    ck_assert_int_eq(plat_password_verify("$argon2i$v=19$m=64,t=1,p=1$"
                                          "c29tZXNhbHQ$aGFzaA", "x", 1),
                     -1);
    ck_assert_int_eq(plat_password_verify("$argon2id$garbage", "x", 1), -1);
    /* too small an output buffer is refused, not overflowed */
    ck_assert_int_eq(plat_password_hash(&small, "x", 1, h, 10), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_password");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, policy_table, 0,
                        sizeof(policy_cases) / sizeof(policy_cases[0]));
    tcase_add_test(tc, policy_limits);
    tcase_add_test(tc, hash_verify);
    tcase_add_test(tc, service_parameters);
    tcase_add_test(tc, verify_rejects_garbage);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
