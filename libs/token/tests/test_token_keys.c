/* token: keysets, thumbprints, JWKS, signer checks, base64url. */
#include "token_fixture.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

START_TEST(test_jwks)
{
    struct tok_keyset *ks = keyset_a();
    json_t *jwks, *keys, *k;
    char *dump;
    unsigned char *n;
    size_t nlen;
    const char *n64;

    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, strlen(SECRET), NULL),
                     0);
    ck_assert_uint_eq(tok_keyset_count(ks), 2);
    jwks = tok_keyset_jwks(ks);
    ck_assert_ptr_nonnull(jwks);
    keys = json_object_get(jwks, "keys");
    ck_assert(json_is_array(keys));
    ck_assert_uint_eq(json_array_size(keys), 1);
    k = json_array_get(keys, 0);
    ck_assert_str_eq(json_string_value(json_object_get(k, "kty")), "RSA");
    ck_assert_str_eq(json_string_value(json_object_get(k, "use")), "sig");
    ck_assert_str_eq(json_string_value(json_object_get(k, "alg")), "RS256");
    ck_assert_str_eq(json_string_value(json_object_get(k, "kid")), kid_a);
    ck_assert_str_eq(json_string_value(json_object_get(k, "e")), "AQAB");
    n64 = json_string_value(json_object_get(k, "n"));
    ck_assert_ptr_nonnull(n64);
    ck_assert_int_eq(tok_b64url_decode(n64, strlen(n64), &n, &nlen), 0);
    ck_assert_uint_eq(nlen, 256);
    ck_assert_uint_ne(n[0], 0);
    free(n);
    ck_assert_ptr_null(json_object_get(k, "d"));
    ck_assert_ptr_null(json_object_get(k, "k"));
    dump = json_dumps(jwks, 0);
    ck_assert_ptr_null(strstr(dump, SECRET));
    ck_assert_ptr_null(strstr(dump, "hs256"));
    ck_assert_ptr_null(strstr(dump, "HS256"));
    free(dump);
    json_decref(jwks);
    tok_keyset_free(ks);

    ks = tok_keyset_new();
    jwks = tok_keyset_jwks(ks);
    ck_assert_uint_eq(json_array_size(json_object_get(jwks, "keys")), 0);
    json_decref(jwks);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_thumbprint)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    struct tok_keyset *ks = tok_keyset_new();
    char kid_priv[TOK_KID_MAX + 1];

    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(tok_signer_kid(s), kid_a);
    ck_assert_uint_eq(strlen(kid_a), 43);
    /* A private PEM in the keyset yields the same kid (public half). */
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, priv_a, strlen(priv_a), NULL,
                                            kid_priv), 0);
    ck_assert_str_eq(kid_priv, kid_a);
    tok_keyset_free(ks);
    tok_signer_free(s);

    s = tok_signer_new_rsa(priv_b, strlen(priv_b), NULL);
    ck_assert_str_ne(tok_signer_kid(s), kid_a);
    tok_signer_free(s);
    s = tok_signer_new_rsa(priv_a, strlen(priv_a), "mine");
    ck_assert_str_eq(tok_signer_kid(s), "mine");
    tok_signer_free(s);
}
END_TEST

/* RFC 7638 §3.1 example key and thumbprint. */
START_TEST(test_thumbprint_rfc7638)
{
    static const char n64[] =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1"
        "RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5"
        "n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8K"
        "JZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF"
        "h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJz"
        "KnqDKgw";
    unsigned char *nbin, ebin[] = { 1, 0, 1 };
    size_t nlen;
    BIGNUM *n, *e;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    struct tok_keyset *ks = tok_keyset_new();
    char kid[TOK_KID_MAX + 1], *pem;

    ck_assert_int_eq(tok_b64url_decode(n64, strlen(n64), &nbin, &nlen), 0);
    n = BN_bin2bn(nbin, (int)nlen, NULL);
    e = BN_bin2bn(ebin, 3, NULL);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    params = OSSL_PARAM_BLD_to_param(bld);
    ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
                                       params), 1);
    pem = pem_of(pkey, 0, NULL);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pem, strlen(pem), NULL, kid),
                     0);
    ck_assert_str_eq(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    free(pem);
    tok_keyset_free(ks);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nbin);
}
END_TEST

START_TEST(test_keyset_rejects)
{
    struct tok_keyset *ks = tok_keyset_new();
    char long_kid[TOK_KID_MAX + 2];

    memset(long_kid, 'k', sizeof(long_kid) - 1);
    long_kid[sizeof(long_kid) - 1] = '\0';
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a), NULL,
                                            NULL), 0);
    /* duplicate kid, same key or another */
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a), NULL,
                                            NULL), -1);
    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, strlen(SECRET), kid_a),
                     -1);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, "garbage", 7, NULL, NULL),
                     -1);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_ec, strlen(pub_ec), NULL,
                                            NULL), -1);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_small, strlen(pub_small),
                                            NULL, NULL), -1);
    /* Encrypted: fails without prompting for a passphrase. */
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, priv_enc, strlen(priv_enc),
                                            NULL, NULL), -1);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a),
                                            long_kid, NULL), -1);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a), "",
                                            NULL), -1);
    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, 31, NULL), -1);
    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, 32, NULL), 0);
    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, 32, NULL), -1);
    ck_assert_uint_eq(tok_keyset_count(ks), 2);
    tok_keyset_free(ks);
    tok_keyset_free(NULL);
}
END_TEST

START_TEST(test_signer_rejects)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    const char *nine[TOK_MAX_ROLES + 1] = { "a", "b", "c", "d", "e", "f",
                                            "g", "h", "i" };
    const char *bad_role[] = { "a,b" };
    struct tok_issue in = { "basalt", "basalt", "1", NULL, NULL, 0, 60,
                            (time_t)NOW };
    struct tok_issue x;

    ck_assert_ptr_null(tok_signer_new_rsa(pub_a, strlen(pub_a), NULL));
    ck_assert_ptr_null(tok_signer_new_rsa(pub_ec, strlen(pub_ec), NULL));
    ck_assert_ptr_null(tok_signer_new_rsa(priv_enc, strlen(priv_enc), NULL));
    ck_assert_ptr_null(tok_signer_new_hmac(SECRET, 31, NULL));
    x = in;
    x.nroles = TOK_MAX_ROLES + 1;
    x.roles = nine;
    ck_assert_ptr_null(tok_sign(s, &x, NULL));
    x = in;
    x.nroles = 1;
    x.roles = bad_role;
    ck_assert_ptr_null(tok_sign(s, &x, NULL));
    x = in;
    x.sub = NULL;
    ck_assert_ptr_null(tok_sign(s, &x, NULL));
    x = in;
    x.ttl_s = 0;
    ck_assert_ptr_null(tok_sign(s, &x, NULL));
    x = in;
    x.email = "a@b\r\nX: y";
    ck_assert_ptr_null(tok_sign(s, &x, NULL));
    tok_signer_free(s);
    tok_signer_free(NULL);
}
END_TEST

START_TEST(test_b64url)
{
    static const struct { const char *raw, *enc; } v[] = {
        { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
        { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" },
    };
    static const char *const bad[] = {
        "Zg==", "Zg=", "Z", "Zm9vY", "+/8", "Zm 9v", "Zm9v\n", "Zh", "Zm9",
    };
    unsigned char *out;
    size_t i, n;
    char *e;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        e = tok_b64url_encode((const unsigned char *)v[i].raw,
                              strlen(v[i].raw));
        ck_assert_str_eq(e, v[i].enc);
        free(e);
        ck_assert_int_eq(tok_b64url_decode(v[i].enc, strlen(v[i].enc), &out,
                                           &n), 0);
        ck_assert_uint_eq(n, strlen(v[i].raw));
        ck_assert_int_eq(memcmp(out, v[i].raw, n), 0);
        free(out);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(tok_b64url_decode(bad[i], strlen(bad[i]), &out, &n)
                      == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(test_strerror)
{
    int i, j;

    for (i = TOK_OK; i <= TOK_ENOMEM; i++) {
        ck_assert_ptr_nonnull(tok_strerror((enum tok_err)i));
        for (j = TOK_OK; j < i; j++)
            ck_assert_str_ne(tok_strerror((enum tok_err)i),
                             tok_strerror((enum tok_err)j));
    }
    ck_assert_str_eq(tok_strerror(TOK_EEXPIRED), "expired");
    ck_assert_str_eq(tok_strerror(TOK_ESIGNATURE), "bad_signature");
}
END_TEST

static Suite *token_keys_suite(void)
{
    Suite *s = suite_create("token_keys");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_jwks);
    tcase_add_test(tc, test_thumbprint);
    tcase_add_test(tc, test_thumbprint_rfc7638);
    tcase_add_test(tc, test_keyset_rejects);
    tcase_add_test(tc, test_signer_rejects);
    tcase_add_test(tc, test_b64url);
    tcase_add_test(tc, test_strerror);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tok_test_run(token_keys_suite());
}
