/*
 * Shared fixture for the token tests: RSA keys generated once per test
 * binary (before forking), and helpers that forge tokens with exact
 * control over header, payload and signature. Most negative cases start
 * from a token that verifies and change exactly one thing, so each fails
 * if its rule is not enforced (test_baseline_ok proves the starting point).
 */
#ifndef BASALT_TOKEN_TEST_FIXTURE_H
#define BASALT_TOKEN_TEST_FIXTURE_H

#include "token/token.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define NOW 1700000000LL
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* Generated once in main(); forked test processes inherit them. */
static EVP_PKEY *key_a, *key_b;
static char *priv_a, *pub_a, *priv_b, *pub_small, *pub_ec, *priv_enc;
static char kid_a[TOK_KID_MAX + 1];

static const struct tok_policy pol = { "basalt", "basalt", 0 };

/* FORGE_HS256_HALF: a MAC cut to 16 bytes. */
enum forge_mode {
    FORGE_NONE, FORGE_RS256, FORGE_HS256, FORGE_HS256_HALF
};

static inline char *pem_of(EVP_PKEY *k, int private_key,
                           const EVP_CIPHER *enc)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;
    int ok;

    if (!bio)
        abort();
    if (private_key)
        ok = PEM_write_bio_PrivateKey(bio, k, enc,
                                      (unsigned char *)(enc ? "pass" : NULL),
                                      enc ? 4 : 0, NULL, NULL);
    else
        ok = PEM_write_bio_PUBKEY(bio, k);
    /* Also called from main(), outside any test: no ck_assert here. */
    if (ok != 1) {
        fprintf(stderr, "test_token: cannot write a PEM\n");
        exit(1);
    }
    n = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

static inline char *b64s(const char *s)
{
    return tok_b64url_encode((const unsigned char *)s, strlen(s));
}

/* Signs "<h64>.<p64>" as given (segments already encoded). */
static inline char *forge_raw(const char *h64, const char *p64,
                              enum forge_mode m, const void *key,
                              size_t keylen)
{
    size_t n = strlen(h64) + strlen(p64) + 1;
    char *input = malloc(n + 1), *sig64 = NULL, *tok;
    unsigned char sig[512];
    size_t siglen = 0;

    snprintf(input, n + 1, "%s.%s", h64, p64);
    if (m == FORGE_RS256) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        siglen = sizeof(sig);
        ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
                                            (EVP_PKEY *)key), 1);
        ck_assert_int_eq(EVP_DigestSign(ctx, sig, &siglen,
                                        (unsigned char *)input, n), 1);
        EVP_MD_CTX_free(ctx);
    } else if (m == FORGE_HS256 || m == FORGE_HS256_HALF) {
        unsigned int len = 0;
        ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)keylen,
                                   (unsigned char *)input, n, sig, &len));
        siglen = m == FORGE_HS256 ? len : len / 2;
    }
    sig64 = tok_b64url_encode(sig, siglen);
    tok = malloc(n + strlen(sig64) + 2);
    snprintf(tok, n + strlen(sig64) + 2, "%s.%s", input, sig64);
    free(input);
    free(sig64);
    return tok;
}

static inline char *forge(const char *hdr, const char *pay,
                          enum forge_mode m, const void *key, size_t keylen)
{
    char *h = b64s(hdr), *p = b64s(pay);
    char *t = forge_raw(h, p, m, key, keylen);

    free(h);
    free(p);
    return t;
}

static inline json_t *base_header(void)
{
    return json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT",
                     "kid", kid_a);
}

static inline json_t *base_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:[s]}",
                     "iss", "basalt", "aud", "basalt", "sub", "user-1",
                     "exp", (json_int_t)(NOW + 600), "iat", (json_int_t)NOW,
                     "nbf", (json_int_t)NOW, "jti", "jti-1",
                     "email", "a@example.com", "roles", "user");
}

static inline char *hdr_str(void)
{
    json_t *h = base_header();
    char *s = json_dumps(h, JSON_COMPACT);

    json_decref(h);
    return s;
}

static inline struct tok_keyset *keyset_a(void)
{
    struct tok_keyset *ks = tok_keyset_new();

    ck_assert_ptr_nonnull(ks);
    ck_assert_int_eq(tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a), NULL,
                                            NULL), 0);
    return ks;
}

static struct tok_claims got;

/* Verifies hdr/claims (both consumed) signed by `m`/`key` against ks. */
static inline enum tok_err check_with(struct tok_keyset *ks,
                                      const struct tok_policy *p,
                                      json_t *hdr, json_t *claims,
                                      enum forge_mode m, const void *key,
                                      size_t keylen)
{
    char *h = json_dumps(hdr, JSON_COMPACT);
    char *c = json_dumps(claims, JSON_COMPACT);
    char *t = forge(h, c, m, key, keylen);
    enum tok_err rc = tok_verify(ks, p, t, strlen(t), NOW, &got);

    free(h);
    free(c);
    free(t);
    json_decref(hdr);
    json_decref(claims);
    return rc;
}

/* The common case: signed by key A, verified against public key A. */
static inline enum tok_err check_a(json_t *hdr, json_t *claims)
{
    struct tok_keyset *ks = keyset_a();
    enum tok_err rc = check_with(ks, &pol, hdr, claims, FORGE_RS256,
                                 key_a, 0);

    tok_keyset_free(ks);
    return rc;
}

static inline enum tok_err check_claim(const char *name, json_t *value)
{
    json_t *c = base_claims();

    if (value)
        json_object_set_new(c, name, value);
    else
        json_object_del(c, name);
    return check_a(base_header(), c);
}

static inline enum tok_err check_hdr(const char *name, json_t *value)
{
    json_t *h = base_header();

    if (value)
        json_object_set_new(h, name, value);
    else
        json_object_del(h, name);
    return check_a(h, base_claims());
}

static inline enum tok_err verify_str(struct tok_keyset *ks,
                                      const char *t)
{
    return tok_verify(ks, &pol, t, strlen(t), NOW, &got);
}

static inline void make_keys(void)
{
    EVP_PKEY *small = EVP_RSA_gen(1024), *ec = EVP_EC_gen("P-256");
    struct tok_keyset *ks = tok_keyset_new();

    key_a = EVP_RSA_gen(2048);
    key_b = EVP_RSA_gen(2048);
    if (!key_a || !key_b || !small || !ec || !ks) {
        fprintf(stderr, "test_token: key generation failed\n");
        exit(1);
    }
    priv_a = pem_of(key_a, 1, NULL);
    pub_a = pem_of(key_a, 0, NULL);
    priv_b = pem_of(key_b, 1, NULL);
    priv_enc = pem_of(key_b, 1, EVP_aes_128_cbc());
    pub_small = pem_of(small, 0, NULL);
    pub_ec = pem_of(ec, 0, NULL);
    if (tok_keyset_add_rsa_pem(ks, pub_a, strlen(pub_a), NULL, kid_a) != 0) {
        fprintf(stderr, "test_token: cannot load the test key\n");
        exit(1);
    }
    tok_keyset_free(ks);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

static inline void free_keys(void)
{
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    free(priv_a);
    free(pub_a);
    free(priv_b);
    free(priv_enc);
    free(pub_small);
    free(pub_ec);
}

/* Generates the keys, runs the suite, returns the process exit status. */
static inline int tok_test_run(Suite *s)
{
    SRunner *sr;
    int failed;

    make_keys();
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    free_keys();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
