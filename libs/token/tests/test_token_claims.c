/* token: claim rules (iss, aud, exp, nbf, iat, sub, jti, email, roles). */
#include "token_fixture.h"

START_TEST(test_expiry)
{
    struct tok_keyset *ks = keyset_a();
    struct tok_policy lw = { "basalt", "basalt", 60 };
    struct tok_policy big = { "basalt", "basalt", 3600 };
    struct tok_policy neg = { "basalt", "basalt", -100 };
    json_t *c;

#define EXP_CASE(p, exp_value, want)                                        \
    do {                                                                    \
        c = base_claims();                                                  \
        json_object_set_new(c, "exp", json_integer(exp_value));             \
        ck_assert_int_eq(check_with(ks, p, base_header(), c, FORGE_RS256,   \
                                    key_a, 0), want);                       \
    } while (0)

    EXP_CASE(&pol, NOW + 1, TOK_OK);
    EXP_CASE(&pol, NOW, TOK_EEXPIRED);
    EXP_CASE(&pol, NOW - 30, TOK_EEXPIRED);
    EXP_CASE(&lw, NOW - 30, TOK_OK);
    EXP_CASE(&lw, NOW - 59, TOK_OK);
    EXP_CASE(&lw, NOW - 60, TOK_EEXPIRED);
    EXP_CASE(&lw, NOW - 3000, TOK_EEXPIRED);
    /* Leeway is clamped to 60 s. */
    EXP_CASE(&big, NOW - 30, TOK_OK);
    EXP_CASE(&big, NOW - 120, TOK_EEXPIRED);
    EXP_CASE(&neg, NOW, TOK_EEXPIRED);
    EXP_CASE(&neg, NOW + 1, TOK_OK);
    /* Hostile extremes must not wrap around. */
    EXP_CASE(&lw, (json_int_t)-9223372036854775807LL - 1, TOK_EEXPIRED);
#undef EXP_CASE
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_exp_type)
{
    ck_assert_int_eq(check_claim("exp", NULL), TOK_EEXPIRED);
    ck_assert_int_eq(check_claim("exp", json_string("1700000600")),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("exp", json_real(1700000600.5)),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("exp", json_null()), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("exp", json_true()), TOK_ECLAIMS);
}
END_TEST

START_TEST(test_nbf_iat)
{
    struct tok_keyset *ks = keyset_a();
    struct tok_policy lw = { "basalt", "basalt", 60 };
    json_t *c;

    ck_assert_int_eq(check_claim("nbf", json_integer(NOW + 120)),
                     TOK_ENOTYET);
    ck_assert_int_eq(check_claim("nbf", json_integer(NOW + 1)), TOK_ENOTYET);
    ck_assert_int_eq(check_claim("iat", json_integer(NOW + 120)),
                     TOK_ENOTYET);
    ck_assert_int_eq(check_claim("iat", json_integer(NOW + 1)), TOK_ENOTYET);
    ck_assert_int_eq(check_claim("nbf", json_string("0")), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("iat", json_real(1.5)), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("nbf", NULL), TOK_OK);
    ck_assert_int_eq(check_claim("iat", NULL), TOK_OK);
    ck_assert_int_eq(check_claim("nbf", json_integer(NOW - 100)), TOK_OK);

    c = base_claims();
    json_object_set_new(c, "nbf", json_integer(NOW + 30));
    json_object_set_new(c, "iat", json_integer(NOW + 30));
    ck_assert_int_eq(check_with(ks, &lw, base_header(), c, FORGE_RS256,
                                key_a, 0), TOK_OK);
    c = base_claims();
    json_object_set_new(c, "nbf", json_integer(NOW + 61));
    ck_assert_int_eq(check_with(ks, &lw, base_header(), c, FORGE_RS256,
                                key_a, 0), TOK_ENOTYET);
    c = base_claims();
    json_object_set_new(c, "nbf",
                        json_integer((json_int_t)9223372036854775807LL));
    ck_assert_int_eq(check_with(ks, &lw, base_header(), c, FORGE_RS256,
                                key_a, 0), TOK_ENOTYET);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_audience)
{
    ck_assert_int_eq(check_claim("aud", json_string("other")), TOK_EAUD);
    ck_assert_int_eq(check_claim("aud", json_string("basalt2")), TOK_EAUD);
    ck_assert_int_eq(check_claim("aud", json_pack("[s,s]", "x", "basalt")),
                     TOK_OK);
    ck_assert_int_eq(check_claim("aud", json_pack("[s,s]", "x", "y")),
                     TOK_EAUD);
    ck_assert_int_eq(check_claim("aud", json_array()), TOK_EAUD);
    ck_assert_int_eq(check_claim("aud", json_integer(1)), TOK_EAUD);
    ck_assert_int_eq(check_claim("aud", NULL), TOK_EAUD);
}
END_TEST

START_TEST(test_issuer)
{
    ck_assert_int_eq(check_claim("iss", json_string("evil")), TOK_EISS);
    ck_assert_int_eq(check_claim("iss", json_string("basal")), TOK_EISS);
    ck_assert_int_eq(check_claim("iss", json_integer(1)), TOK_EISS);
    ck_assert_int_eq(check_claim("iss", NULL), TOK_EISS);
}
END_TEST

START_TEST(test_subject_jti_email)
{
    char s63[64], s64[65];

    memset(s63, 's', sizeof(s63) - 1);
    s63[63] = '\0';
    memset(s64, 's', sizeof(s64) - 1);
    s64[64] = '\0';
    ck_assert_int_eq(check_claim("sub", json_string(s63)), TOK_OK);
    ck_assert_int_eq(check_claim("sub", json_string(s64)), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("sub", json_string("")), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("sub", json_integer(42)), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("sub", NULL), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("sub", json_string("1\r\nX-User-Roles: a")),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("jti", NULL), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("jti", json_string("")), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("jti", json_string(s64)), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("email", NULL), TOK_OK);
    ck_assert_str_eq(got.email, "");
    ck_assert_int_eq(check_claim("email", json_integer(1)), TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("email", json_string("a@b\nc")),
                     TOK_ECLAIMS);
}
END_TEST

START_TEST(test_roles)
{
    json_t *many = json_array();
    char r31[32], r32[33];
    int i;

    memset(r31, 'r', sizeof(r31) - 1);
    r31[31] = '\0';
    memset(r32, 'r', sizeof(r32) - 1);
    r32[32] = '\0';
    ck_assert_int_eq(check_claim("roles", json_pack("[s,s]", "user",
                                                    "admin")), TOK_OK);
    ck_assert_uint_eq(got.nroles, 2);
    ck_assert_str_eq(got.roles[0], "user");
    ck_assert_str_eq(got.roles[1], "admin");
    ck_assert_str_eq(got.roles_csv, "user,admin");
    ck_assert_int_eq(check_claim("roles", NULL), TOK_OK);
    ck_assert_uint_eq(got.nroles, 0);
    ck_assert_str_eq(got.roles_csv, "");
    ck_assert_int_eq(check_claim("roles", json_array()), TOK_OK);
    ck_assert_uint_eq(got.nroles, 0);

    for (i = 0; i < TOK_MAX_ROLES; i++)
        json_array_append_new(many, json_string(r31));
    ck_assert_int_eq(check_claim("roles", json_incref(many)), TOK_OK);
    ck_assert_uint_eq(got.nroles, TOK_MAX_ROLES);
    ck_assert_uint_eq(strlen(got.roles_csv), TOK_MAX_ROLES * 32 - 1);
    json_array_append_new(many, json_string("one-too-many"));
    ck_assert_int_eq(check_claim("roles", many), TOK_ECLAIMS);

    ck_assert_int_eq(check_claim("roles", json_pack("[s]", r32)),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("roles", json_pack("[s]", "user,admin")),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("roles", json_pack("[s]", "")),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("roles", json_pack("[i]", 1)),
                     TOK_ECLAIMS);
    ck_assert_int_eq(check_claim("roles", json_string("admin")),
                     TOK_ECLAIMS);
}
END_TEST

static Suite *token_claims_suite(void)
{
    Suite *s = suite_create("token_claims");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_expiry);
    tcase_add_test(tc, test_exp_type);
    tcase_add_test(tc, test_nbf_iat);
    tcase_add_test(tc, test_audience);
    tcase_add_test(tc, test_issuer);
    tcase_add_test(tc, test_subject_jti_email);
    tcase_add_test(tc, test_roles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tok_test_run(token_claims_suite());
}
