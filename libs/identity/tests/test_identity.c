/* Identity: bearer verification and the gateway header trust rules. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../identity.c"
#include "identity/revocation.h"
#include "redispool/redispool.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define OTHER_SECRET "fedcba9876543210fedcba9876543210-other"
#define INTERNAL "internal-token-0123456789"
#define UID "123e4567-e89b-12d3-a456-426614174000"

static struct tok_signer *signer;
static struct tok_keyset *keyset;
static struct ident_cfg cfg;
static time_t now;

static void setup(void)
{
    signer = tok_signer_new_hmac(SECRET, strlen(SECRET), NULL);
    ck_assert_ptr_nonnull(signer);
    keyset = tok_keyset_new();
    ck_assert_ptr_nonnull(keyset);
    ck_assert_int_eq(tok_signer_add_to_keyset(signer, keyset), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.keyset = keyset;
    cfg.policy.issuer = "basalt";
    cfg.policy.audience = "basalt";
    cfg.policy.leeway_s = 60;
    cfg.internal_token = NULL;
    now = time(NULL);
}

static void teardown(void)
{
    tok_keyset_free(keyset);
    tok_signer_free(signer);
}

/* "Bearer <token>" signed by `s`, valid from `at` for `ttl` seconds. */
static char *bearer(const struct tok_signer *s, const char *aud, time_t at,
                    long ttl)
{
    static const char *const roles[] = {"user", "admin"};
    struct tok_issue in;
    char *tok, *hdr;
    size_t n;

    memset(&in, 0, sizeof(in));
    in.issuer = "basalt";
    in.audience = aud;
    in.sub = UID;
    in.email = "alice@example.com";
    in.roles = roles;
    in.nroles = 2;
    in.ttl_s = ttl;
    in.now = at;
    tok = tok_sign(s, &in, NULL);
    ck_assert_ptr_nonnull(tok);
    n = strlen(tok) + 8;
    hdr = malloc(n);
    ck_assert_ptr_nonnull(hdr);
    snprintf(hdr, n, "Bearer %s", tok);
    free(tok);
    return hdr;
}

static const struct ident_headers gw_headers = {
    .authorization = NULL,
    .internal_token = INTERNAL,
    .user_id = "gw-user-1",
    .user_email = "gw@example.com",
    .user_roles = "user,admin",
};

START_TEST(headers_ignored_without_internal_token)
{
    struct ident id;

    /* no INTERNAL_TOKEN configured: gateway headers count for nothing */
    ck_assert_int_eq(ident_resolve(&cfg, &gw_headers, now, &id,
                                           NULL),
                     IDENT_MISSING);
    cfg.internal_token = "";
    ck_assert_int_eq(ident_resolve(&cfg, &gw_headers, now, &id,
                                           NULL),
                     IDENT_MISSING);
    {
        struct ident_headers h = gw_headers;
        h.internal_token = "";
        ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                         IDENT_MISSING);
    }
}
END_TEST

START_TEST(headers_ignored_with_wrong_internal_token)
{
    struct ident_headers h = gw_headers;
    struct ident id;

    cfg.internal_token = INTERNAL;
    h.internal_token = "internal-token-0123456788";   /* same length */
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);
    h.internal_token = "internal-token";              /* prefix */
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);
    h.internal_token = INTERNAL "x";                  /* longer */
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);
    h.internal_token = NULL;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);
}
END_TEST

START_TEST(wrong_internal_token_falls_back_to_bearer)
{
    struct ident_headers h = gw_headers;
    struct ident id;
    char *auth = bearer(signer, "basalt", now, 900);

    cfg.internal_token = INTERNAL;
    h.internal_token = "nope";
    h.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_OK);
    ck_assert_int_eq(id.source, IDENT_BEARER);
    ck_assert_str_eq(id.user_id, UID);   /* not the header's id */
    free(auth);
}
END_TEST

START_TEST(gateway_headers_trusted_with_matching_token)
{
    struct ident_headers h = gw_headers;
    struct ident id;
    char big[200];

    cfg.internal_token = INTERNAL;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_OK);
    ck_assert_int_eq(id.source, IDENT_GATEWAY);
    ck_assert_str_eq(id.user_id, "gw-user-1");
    ck_assert_str_eq(id.email, "gw@example.com");
    ck_assert_str_eq(id.roles_csv, "user,admin");
    ck_assert_str_eq(id.jti, "");

    /* a matching token without X-User-Id is no identity */
    h.user_id = NULL;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);

    /* values that do not fit are refused, not truncated */
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    h.user_id = big;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_INVALID);
}
END_TEST

START_TEST(bearer_ok)
{
    struct ident_headers h = {0};
    struct ident id;
    char *auth = bearer(signer, "basalt", now, 900);

    h.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_OK);
    ck_assert_int_eq(id.source, IDENT_BEARER);
    ck_assert_str_eq(id.user_id, UID);
    ck_assert_str_eq(id.email, "alice@example.com");
    ck_assert_str_eq(id.roles_csv, "user,admin");
    ck_assert_uint_eq(strlen(id.jti), 32);
    ck_assert_int_eq(id.exp, (long long)now + 900);

    /* scheme is case-insensitive */
    memcpy(auth, "bEaReR", 6);
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_OK);
    free(auth);
}
END_TEST

START_TEST(bearer_rejected)
{
    struct ident_headers h = {0};
    struct ident id;
    enum tok_err te;
    struct tok_signer *other;
    char *auth;

    h.authorization = "";
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_MISSING);
    h.authorization = "Basic YWxpY2U6c2VjcmV0";
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, &te),
                     IDENT_INVALID);
    ck_assert_int_eq(te, TOK_OK);
    h.authorization = "Bearer ";
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, NULL),
                     IDENT_INVALID);
    h.authorization = "Bearer not.a.jwt";
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, &te),
                     IDENT_INVALID);
    ck_assert_int_ne(te, TOK_OK);

    /* expired beyond the 60 s leeway */
    auth = bearer(signer, "basalt", now - 1000, 900);
    h.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, &te),
                     IDENT_INVALID);
    ck_assert_int_eq(te, TOK_EEXPIRED);
    free(auth);

    /* wrong audience */
    auth = bearer(signer, "someone-else", now, 900);
    h.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, &te),
                     IDENT_INVALID);
    ck_assert_int_eq(te, TOK_EAUD);
    free(auth);

    /* signed with a key we do not hold (same kid "hs256") */
    other = tok_signer_new_hmac(OTHER_SECRET, strlen(OTHER_SECRET), NULL);
    ck_assert_ptr_nonnull(other);
    auth = bearer(other, "basalt", now, 900);
    h.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &h, now, &id, &te),
                     IDENT_INVALID);
    ck_assert_int_eq(te, TOK_ESIGNATURE);
    free(auth);
    tok_signer_free(other);
}
END_TEST

START_TEST(revoked_bearer_rejected)
{
    struct ident_headers hd = {0};
    struct ident id;
    struct ident_rev *rv = ident_rev_new(NULL, 30);
    char msg[128];
    char *auth = bearer(signer, "basalt", now, 900);

    cfg.rev = rv;
    hd.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL), IDENT_OK);
    /* logout of that very token */
    snprintf(msg, sizeof(msg), "jti %s %lld", id.jti, id.exp + 60);
    ck_assert_int_eq(ident_rev_note(rv, msg, strlen(msg), now), 0);
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL),
                     IDENT_INVALID);
    cfg.rev = NULL;
    ident_rev_free(rv);
    free(auth);
}
END_TEST

/* With a token cache a bearer that verified is answered from it (the
 * keyset is not consulted again), and a revoked token stays refused. */
START_TEST(cached_bearer_still_checked_for_revocation)
{
    struct ident_headers hd = {0};
    struct ident id;
    struct ident_rev *rv = ident_rev_new(NULL, 30);
    struct tok_cache *tc = tok_cache_new(64, 60);
    struct tok_keyset *empty = tok_keyset_new();
    char msg[128];
    char *auth = bearer(signer, "basalt", now, 900);

    ck_assert_ptr_nonnull(tc);
    ck_assert_ptr_nonnull(empty);
    cfg.rev = rv;
    cfg.cache = tc;
    hd.authorization = auth;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL), IDENT_OK);
    /* a keyset that verifies nothing: only the cache can answer */
    cfg.keyset = empty;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL), IDENT_OK);
    ck_assert_str_eq(id.user_id, UID);
    snprintf(msg, sizeof(msg), "jti %s %lld", id.jti, id.exp + 60);
    ck_assert_int_eq(ident_rev_note(rv, msg, strlen(msg), now), 0);
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL),
                     IDENT_INVALID);
    /* without the cache the same keyset refuses the token */
    cfg.cache = NULL;
    cfg.rev = NULL;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL),
                     IDENT_INVALID);
    cfg.keyset = keyset;
    ident_rev_free(rv);
    tok_cache_free(tc);
    tok_keyset_free(empty);
    free(auth);
}
END_TEST

/* Revocation state unreachable (Redis down): a valid token is refused
 * when failing closed and accepted when failing open. */
START_TEST(revocation_unavailable_follows_policy)
{
    struct ident_headers hd = {0};
    struct ident id;
    struct redispool *pool =
        redispool_new("redis://127.0.0.1:1/0", 1, 200);
    struct ident_rev *rv = ident_rev_new(pool, 30);
    char *auth = bearer(signer, "basalt", now, 900);

    ck_assert_ptr_nonnull(rv);
    cfg.rev = rv;
    hd.authorization = auth;
    cfg.rev_fail_open = 0;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL),
                     IDENT_INVALID);
    cfg.rev_fail_open = 1;
    ck_assert_int_eq(ident_resolve(&cfg, &hd, now, &id, NULL), IDENT_OK);
    ck_assert_str_eq(id.user_id, UID);
    cfg.rev_fail_open = 0;
    cfg.rev = NULL;
    ident_rev_free(rv);
    redispool_free(pool);
    free(auth);
}
END_TEST

START_TEST(roles_contain)
{
    ck_assert(ident_roles_contain("user,admin", "admin"));
    ck_assert(ident_roles_contain("admin", "admin"));
    ck_assert(ident_roles_contain("user, admin ", "admin"));
    ck_assert(!ident_roles_contain("administrator,user", "admin"));
    ck_assert(!ident_roles_contain("", "admin"));
    ck_assert(!ident_roles_contain(NULL, "admin"));
}
END_TEST

START_TEST(bearer_parse)
{
    size_t n = 0;
    const char *t;

    t = ident_bearer("Bearer abc.def.ghi", &n);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(n, 11);
    ck_assert_int_eq(strncmp(t, "abc.def.ghi", n), 0);
    t = ident_bearer("Bearer   abc  ", &n);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_null(ident_bearer(NULL, &n));
    ck_assert_ptr_null(ident_bearer("Bearer", &n));
    ck_assert_ptr_null(ident_bearer("Bearerabc", &n));
    ck_assert_ptr_null(ident_bearer("Bearer    ", &n));
    ck_assert_ptr_null(ident_bearer("Token abc", &n));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, headers_ignored_without_internal_token);
    tcase_add_test(tc, headers_ignored_with_wrong_internal_token);
    tcase_add_test(tc, wrong_internal_token_falls_back_to_bearer);
    tcase_add_test(tc, gateway_headers_trusted_with_matching_token);
    tcase_add_test(tc, bearer_ok);
    tcase_add_test(tc, bearer_rejected);
    tcase_add_test(tc, bearer_parse);
    tcase_add_test(tc, revoked_bearer_rejected);
    tcase_add_test(tc, revocation_unavailable_follows_policy);
    tcase_add_test(tc, cached_bearer_still_checked_for_revocation);
    tcase_add_test(tc, roles_contain);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
