/* token_cache: the verified-token cache and tok_cache_verify(). */
#include "token_fixture.h"

#include "token/token_cache.h"

#define CNOW 1700000000

static struct tok_claims claims(const char *sub, const char *jti,
                                long long exp)
{
    struct tok_claims c;

    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.jti, sizeof(c.jti), "%s", jti);
    c.exp = exp;
    c.iat = CNOW - 10;
    return c;
}

START_TEST(hit_miss_and_exact_key)
{
    struct tok_cache *tc = tok_cache_new(64, 60);
    struct tok_claims c = claims("u1", "j1", CNOW + 900), out;
    const char *tok = "aaa.bbb.ccc";

    ck_assert_ptr_nonnull(tc);
    ck_assert_int_eq(tok_cache_get(tc, tok, strlen(tok), CNOW, &out), 0);
    tok_cache_put(tc, tok, strlen(tok), &c, CNOW);
    ck_assert_int_eq(tok_cache_get(tc, tok, strlen(tok), CNOW, &out), 1);
    ck_assert_str_eq(out.sub, "u1");
    /* same signature, other payload: a different token, a miss */
    ck_assert_int_eq(tok_cache_get(tc, "aaa.bbX.ccc", 11, CNOW, &out),
                     0);
    /* a prefix of the token is not the token */
    ck_assert_int_eq(tok_cache_get(tc, tok, 10, CNOW, &out), 0);
    tok_cache_clear(tc);
    ck_assert_int_eq(tok_cache_get(tc, tok, strlen(tok), CNOW, &out), 0);
    tok_cache_free(tc);
}
END_TEST

START_TEST(expiry_is_min_of_exp_and_ttl)
{
    struct tok_cache *tc = tok_cache_new(64, 60);
    struct tok_claims soon = claims("u", "j", CNOW + 5), out;
    struct tok_claims later = claims("u", "k", CNOW + 900);

    tok_cache_put(tc, "t1", 2, &soon, CNOW);
    tok_cache_put(tc, "t2", 2, &later, CNOW);
    ck_assert_int_eq(tok_cache_get(tc, "t1", 2, CNOW + 4, &out), 1);
    ck_assert_int_eq(tok_cache_get(tc, "t1", 2, CNOW + 5, &out), 0);
    ck_assert_int_eq(tok_cache_get(tc, "t2", 2, CNOW + 59, &out), 1);
    ck_assert_int_eq(tok_cache_get(tc, "t2", 2, CNOW + 60, &out), 0);
    /* an expired token is never stored */
    tok_cache_put(tc, "t3", 2, &soon, CNOW + 10);
    ck_assert_int_eq(tok_cache_get(tc, "t3", 2, CNOW + 10, &out), 0);
    tok_cache_free(tc);
}
END_TEST

START_TEST(bounded)
{
    struct tok_cache *tc = tok_cache_new(8, 60);
    struct tok_claims c = claims("u", "j", CNOW + 900), out;
    char tok[32];
    int hits = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        tok_cache_put(tc, tok, strlen(tok), &c, CNOW);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        hits += tok_cache_get(tc, tok, strlen(tok), CNOW, &out);
    }
    ck_assert_int_le(hits, 8);
    ck_assert_int_ge(hits, 1);
    ck_assert_ptr_null(tok_cache_new(2, 60));
    ck_assert_ptr_null(tok_cache_new(64, 0));
    tok_cache_free(tc);
}
END_TEST

/* A token signed by key A, as a string (caller frees). */
static char *token_a(void)
{
    json_t *hj = base_header(), *cj = base_claims();
    char *h = json_dumps(hj, JSON_COMPACT), *c = json_dumps(cj, JSON_COMPACT);
    char *t = forge(h, c, FORGE_RS256, key_a, 0);

    free(h);
    free(c);
    json_decref(hj);
    json_decref(cj);
    return t;
}

START_TEST(verify_hits_skip_the_signature_check)
{
    struct tok_cache *tc = tok_cache_new(64, 60);
    struct tok_keyset *ks = keyset_a(), *empty = tok_keyset_new();
    struct tok_claims out;
    char *t = token_a();

    ck_assert_ptr_nonnull(empty);
    /* a miss verifies: the empty keyset knows no key */
    ck_assert_int_ne(tok_cache_verify(tc, empty, &pol, t, strlen(t), NOW,
                                      &out), TOK_OK);
    /* a failure is not remembered */
    ck_assert_int_eq(tok_cache_get(tc, t, strlen(t), NOW, &out), 0);
    ck_assert_int_eq(tok_cache_verify(tc, ks, &pol, t, strlen(t), NOW, &out),
                     TOK_OK);
    ck_assert_str_eq(out.sub, "user-1");
    /* now a hit: answered without the keyset, with the same claims */
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(tok_cache_verify(tc, empty, &pol, t, strlen(t), NOW,
                                      &out), TOK_OK);
    ck_assert_str_eq(out.sub, "user-1");
    ck_assert_str_eq(out.jti, "jti-1");
    /* expired entries verify again (and fail: exp passed) */
    ck_assert_int_ne(tok_cache_verify(tc, ks, &pol, t, strlen(t),
                                      NOW + 600 + 3600, &out), TOK_OK);
    /* no cache: every call verifies */
    ck_assert_int_ne(tok_cache_verify(NULL, empty, &pol, t, strlen(t), NOW,
                                      &out), TOK_OK);
    ck_assert_int_eq(tok_cache_verify(NULL, ks, &pol, t, strlen(t), NOW,
                                      &out), TOK_OK);
    free(t);
    tok_keyset_free(ks);
    tok_keyset_free(empty);
    tok_cache_free(tc);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("token_cache");
    TCase *tc = tcase_create("cache");

    tcase_add_test(tc, hit_miss_and_exact_key);
    tcase_add_test(tc, expiry_is_min_of_exp_and_ttl);
    tcase_add_test(tc, bounded);
    tcase_add_test(tc, verify_hits_skip_the_signature_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tok_test_run(cache_suite());
}
