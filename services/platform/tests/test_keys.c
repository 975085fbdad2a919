/*
 * Key rotation: previous public keys join the keyset, so the JWKS lists
 * them and tokens signed with them still verify; bad files fail start.
 */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/keys.h"
#include "../src/plat.h"

static char *pem(EVP_PKEY *k, int priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out;
    long n;

    ck_assert(priv ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
                                              NULL)
                   : PEM_write_bio_PUBKEY(b, k));
    n = BIO_get_mem_data(b, &data);
    out = calloc(1, (size_t)n + 1);
    memcpy(out, data, (size_t)n);
    BIO_free(b);
    return out;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(previous_keys_verify_and_publish)
{
    EVP_PKEY *cur = EVP_RSA_gen(2048), *old = EVP_RSA_gen(2048);
    char *cur_priv = pem(cur, 1), *old_priv = pem(old, 1);
    char *old_pub = pem(old, 0);
    char path[64], list[160];
    struct plat_settings set;
    struct plat_ctx ctx;
    struct tok_signer *old_signer;
    struct tok_claims cl;
    struct tok_issue in;
    static const char *const roles[] = {"user"};
    char *tok;
    json_t *jwks;

    snprintf(path, sizeof(path), "/tmp/basalt-keys-%d.pem", (int)getpid());
    write_file(path, old_pub);
    memset(&set, 0, sizeof(set));
    memset(&ctx, 0, sizeof(ctx));
    snprintf(list, sizeof(list), " %s ,", path);
    set.previous_public_key_files = list;
    ctx.set = &set;
    ctx.signer = tok_signer_new_rsa(cur_priv, strlen(cur_priv), NULL);
    ctx.keyset = tok_keyset_new();
    ck_assert_int_eq(tok_signer_add_to_keyset(ctx.signer, ctx.keyset), 0);
    ck_assert_int_eq(plat_keys_add_previous(&ctx), 0);
    ck_assert_uint_eq(tok_keyset_count(ctx.keyset), 2);
    jwks = tok_keyset_jwks(ctx.keyset);
    ck_assert_uint_eq(json_array_size(json_object_get(jwks, "keys")), 2);
    json_decref(jwks);
    /* a token signed before the rotation still verifies */
    old_signer = tok_signer_new_rsa(old_priv, strlen(old_priv), NULL);
    memset(&in, 0, sizeof(in));
    in.issuer = in.audience = "basalt";
    in.sub = "123e4567-e89b-12d3-a456-426614174000";
    in.email = "a@example.com";
    in.roles = roles;
    in.nroles = 1;
    in.ttl_s = 900;
    in.now = time(NULL);
    tok = tok_sign(old_signer, &in, NULL);
    ck_assert_int_eq(tok_verify(ctx.keyset,
                                &(struct tok_policy){"basalt", "basalt", 60},
                                tok, strlen(tok), time(NULL), &cl),
                     TOK_OK);
    ck_assert_str_eq(cl.kid, tok_signer_kid(old_signer));
    /* listing the current key again, or a missing file, is an error */
    write_file(path, cur_priv);
    ck_assert_int_eq(plat_keys_add_previous(&ctx), -1);
    snprintf(list, sizeof(list), "/nonexistent/k.pem");
    ck_assert_int_eq(plat_keys_add_previous(&ctx), -1);
    unlink(path);
    free(tok);
    tok_signer_free(old_signer);
    tok_signer_free(ctx.signer);
    tok_keyset_free(ctx.keyset);
    free(cur_priv);
    free(old_priv);
    free(old_pub);
    EVP_PKEY_free(cur);
    EVP_PKEY_free(old);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platform_keys");
    TCase *tc = tcase_create("rotation");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, previous_keys_verify_and_publish);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
