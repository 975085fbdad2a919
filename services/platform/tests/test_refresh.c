/* Opaque refresh tokens: shape, uniqueness, hashing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../src/refresh.c"

START_TEST(generate_shape)
{
    char a[PLAT_REFRESH_TEXT_LEN + 1], b[PLAT_REFRESH_TEXT_LEN + 1];
    unsigned char ha[PLAT_REFRESH_HASH_LEN], hb[PLAT_REFRESH_HASH_LEN];
    unsigned char again[PLAT_REFRESH_HASH_LEN];

    ck_assert_int_eq(plat_refresh_generate(a, ha), 0);
    ck_assert_int_eq(plat_refresh_generate(b, hb), 0);
    ck_assert_uint_eq(strlen(a), PLAT_REFRESH_TEXT_LEN);
    ck_assert_str_ne(a, b);
    ck_assert_int_ne(memcmp(ha, hb, sizeof(ha)), 0);
    ck_assert_uint_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                "opqrstuvwxyz0123456789-_"),
                      PLAT_REFRESH_TEXT_LEN);
    ck_assert_int_eq(plat_refresh_hash(a, strlen(a), again), 0);
    ck_assert_int_eq(memcmp(ha, again, sizeof(ha)), 0);
}
END_TEST

START_TEST(hash_rejects)
{
    unsigned char h[PLAT_REFRESH_HASH_LEN];
    char tok[PLAT_REFRESH_TEXT_LEN + 1];

    ck_assert_int_eq(plat_refresh_hash("", 0, h), -1);
    ck_assert_int_eq(plat_refresh_hash("abc", 3, h), -1);
    memset(tok, 'A', PLAT_REFRESH_TEXT_LEN);
    tok[PLAT_REFRESH_TEXT_LEN] = '\0';
    ck_assert_int_eq(plat_refresh_hash(tok, PLAT_REFRESH_TEXT_LEN, h), 0);
    tok[5] = '+';
    ck_assert_int_eq(plat_refresh_hash(tok, PLAT_REFRESH_TEXT_LEN, h), -1);
    /* the last character's two spare bits set: no generated token
     * looks like that (base64url of 32 bytes ends in 0, 4, 8, ... ) */
    tok[5] = 'A';
    tok[PLAT_REFRESH_TEXT_LEN - 1] = 'B';
    ck_assert_int_eq(plat_refresh_hash(tok, PLAT_REFRESH_TEXT_LEN, h), -1);
    tok[PLAT_REFRESH_TEXT_LEN - 1] = 'E';
    ck_assert_int_eq(plat_refresh_hash(tok, PLAT_REFRESH_TEXT_LEN, h), 0);
    tok[5] = '\0';
    ck_assert_int_eq(plat_refresh_hash(tok, PLAT_REFRESH_TEXT_LEN, h), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_refresh");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, generate_shape);
    tcase_add_test(tc, hash_rejects);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
