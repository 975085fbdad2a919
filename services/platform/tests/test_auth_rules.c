/*
 * The pure rules of auth hardening: refresh rotation / grace decisions,
 * logout scopes, role parsing, admin list cursors, login back-off maths.
 */
#include <check.h>
#include <jansson.h>
#include <string.h>

#include "../src/admin_users.h"
#include "../src/session_handlers.h"
#include "../src/throttle.h"
#include "../src/users_db.h"

START_TEST(refresh_decisions)
{
    /* unused, live: rotate */
    ck_assert_int_eq(plat_refresh_decide(0, 0, 0, 0, 10), PLAT_REFRESH_ROTATE);
    /* revoked or expired: invalid whatever else */
    ck_assert_int_eq(plat_refresh_decide(0, 1, 0, 0, 10),
                     PLAT_REFRESH_INVALID);
    ck_assert_int_eq(plat_refresh_decide(1, 0, 1, 0.1, 10),
                     PLAT_REFRESH_INVALID);
    ck_assert_int_eq(plat_refresh_decide(1, 1, 0, 0.1, 10),
                     PLAT_REFRESH_INVALID);
    /* used within the grace window: another child */
    ck_assert_int_eq(plat_refresh_decide(1, 0, 0, 0.0, 10),
                     PLAT_REFRESH_GRACE);
    ck_assert_int_eq(plat_refresh_decide(1, 0, 0, 10.0, 10),
                     PLAT_REFRESH_GRACE);
    /* just past it: reuse */
    ck_assert_int_eq(plat_refresh_decide(1, 0, 0, 10.001, 10),
                     PLAT_REFRESH_REUSED);
    /* grace 0 disables the window: concurrent second use is reuse */
    ck_assert_int_eq(plat_refresh_decide(1, 0, 0, 0.0, 0),
                     PLAT_REFRESH_REUSED);
}
END_TEST

START_TEST(logout_scopes)
{
    ck_assert_int_eq(plat_logout_scope_parse(NULL), PLAT_LOGOUT_LOCAL);
    ck_assert_int_eq(plat_logout_scope_parse("local"), PLAT_LOGOUT_LOCAL);
    ck_assert_int_eq(plat_logout_scope_parse("global"), PLAT_LOGOUT_GLOBAL);
    ck_assert_int_eq(plat_logout_scope_parse("others"), PLAT_LOGOUT_OTHERS);
    ck_assert_int_eq(plat_logout_scope_parse("GLOBAL"), PLAT_LOGOUT_BAD);
    ck_assert_int_eq(plat_logout_scope_parse(""), PLAT_LOGOUT_BAD);
    ck_assert_int_eq(plat_logout_scope_parse("global'--"), PLAT_LOGOUT_BAD);
}
END_TEST

static int roles(const char *json, char *out)
{
    char why[96];
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    int rc;

    ck_assert_ptr_nonnull(v);
    rc = plat_roles_parse(v, out, 32, why, sizeof(why));
    if (rc != 0)
        ck_assert_str_ne(why, "");
    json_decref(v);
    return rc;
}

START_TEST(roles_parsing)
{
    char out[32];

    ck_assert_int_eq(roles("[\"user\"]", out), 0);
    ck_assert_str_eq(out, "{user}");
    ck_assert_int_eq(roles("[\"admin\",\"user\"]", out), 0);
    ck_assert_str_eq(out, "{user,admin}");
    ck_assert_int_eq(roles("[\"admin\"]", out), 0);
    ck_assert_str_eq(out, "{admin}");
    ck_assert_int_eq(roles("[]", out), -1);
    ck_assert_int_eq(roles("[\"user\",\"user\"]", out), -1);
    ck_assert_int_eq(roles("[\"root\"]", out), -1);
    ck_assert_int_eq(roles("[\"Admin\"]", out), -1);
    ck_assert_int_eq(roles("[\"admin}\"]", out), -1);
    ck_assert_int_eq(roles("[1]", out), -1);
    ck_assert_int_eq(roles("\"admin\"", out), -1);
    ck_assert_int_eq(roles("{\"a\":1}", out), -1);
}
END_TEST

START_TEST(cursor_parsing)
{
    long long us = 0;
    char id[37];

    ck_assert_int_eq(plat_users_cursor_parse(
                         "1700000000123456_123e4567-e89b-12d3-a456-"
                         "426614174000",
                         &us, id),
                     0);
    ck_assert_int_eq(us, 1700000000123456LL);
    ck_assert_str_eq(id, "123e4567-e89b-12d3-a456-426614174000");
    ck_assert_int_eq(plat_users_cursor_parse(NULL, &us, id), -1);
    ck_assert_int_eq(plat_users_cursor_parse("", &us, id), -1);
    ck_assert_int_eq(plat_users_cursor_parse("_x", &us, id), -1);
    ck_assert_int_eq(plat_users_cursor_parse("-1_123e4567-e89b-12d3-a456-"
                                             "426614174000",
                                             &us, id),
                     -1);
    ck_assert_int_eq(plat_users_cursor_parse("12_' OR 1=1 --", &us, id),
                     -1);
    ck_assert_int_eq(plat_users_cursor_parse(
                         "99999999999999999999_123e4567-e89b-12d3-a456-"
                         "426614174000",
                         &us, id),
                     -1);
}
END_TEST

START_TEST(backoff_maths)
{
    /* below the free failures: no wait */
    ck_assert_int_eq(plat_throttle_backoff_s(0, 5, 1, 900), 0);
    ck_assert_int_eq(plat_throttle_backoff_s(4, 5, 1, 900), 0);
    /* then doubling from base */
    ck_assert_int_eq(plat_throttle_backoff_s(5, 5, 1, 900), 1);
    ck_assert_int_eq(plat_throttle_backoff_s(6, 5, 1, 900), 2);
    ck_assert_int_eq(plat_throttle_backoff_s(9, 5, 1, 900), 16);
    ck_assert_int_eq(plat_throttle_backoff_s(7, 5, 30, 900), 120);
    /* capped, also for absurd counts (no shift overflow) */
    ck_assert_int_eq(plat_throttle_backoff_s(15, 5, 1, 900), 900);
    ck_assert_int_eq(plat_throttle_backoff_s(100000, 5, 1, 900), 900);
    ck_assert_int_eq(plat_throttle_backoff_s(40, 5, 3600, 86400), 86400);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_auth_rules");
    TCase *tc = tcase_create("rules");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, refresh_decisions);
    tcase_add_test(tc, logout_scopes);
    tcase_add_test(tc, roles_parsing);
    tcase_add_test(tc, cursor_parsing);
    tcase_add_test(tc, backoff_maths);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
