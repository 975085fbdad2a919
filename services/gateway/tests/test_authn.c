/* Unit tests for authn.c: bearer header parsing, key loading (PEM files
 * with rotation, HS256 secret), verification policy, role checks. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/authn.c"

#define SECRET "0123456789abcdef0123456789abcdef-test"

START_TEST(test_bearer_parse)
{
    const char *tok = NULL;
    size_t len = 0;

    ck_assert_int_eq(gw_authn_bearer(NULL, &tok, &len), GW_BEARER_MISSING);
    ck_assert_int_eq(gw_authn_bearer("", &tok, &len), GW_BEARER_MISSING);
    ck_assert_int_eq(gw_authn_bearer("Basic dXNlcjpwdw==", &tok, &len),
                     GW_BEARER_MISSING);
    ck_assert_int_eq(gw_authn_bearer("Bearerabc", &tok, &len),
                     GW_BEARER_MISSING);
    ck_assert_int_eq(gw_authn_bearer("Bearer", &tok, &len),
                     GW_BEARER_MALFORMED);
    ck_assert_int_eq(gw_authn_bearer("Bearer   ", &tok, &len),
                     GW_BEARER_MALFORMED);
    ck_assert_int_eq(gw_authn_bearer("Bearer a.b.c d.e.f", &tok, &len),
                     GW_BEARER_MALFORMED);
    ck_assert_int_eq(gw_authn_bearer("Bearer a.b.c,d", &tok, &len),
                     GW_BEARER_MALFORMED);
    ck_assert_int_eq(gw_authn_bearer("Bearer a\"b", &tok, &len),
                     GW_BEARER_MALFORMED);

    ck_assert_int_eq(gw_authn_bearer("Bearer a.b.c", &tok, &len),
                     GW_BEARER_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(strncmp(tok, "a.b.c", len), 0);
    ck_assert_int_eq(gw_authn_bearer("bearer  x-y_z~+/== ", &tok, &len),
                     GW_BEARER_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert_int_eq(strncmp(tok, "x-y_z~+/==", len), 0);
    ck_assert_int_eq(gw_authn_bearer("BEARER t", &tok, &len), GW_BEARER_OK);
    ck_assert_uint_eq(len, 1);
}
END_TEST

START_TEST(test_roles)
{
    struct gw_route route;
    struct tok_claims c;

    memset(&route, 0, sizeof(route));
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(gw_authn_has_role(&route, &c), 1);
    snprintf(route.roles[0], sizeof(route.roles[0]), "admin");
    snprintf(route.roles[1], sizeof(route.roles[1]), "ops");
    route.nroles = 2;
    ck_assert_int_eq(gw_authn_has_role(&route, &c), 0);
    snprintf(c.roles[0], sizeof(c.roles[0]), "user");
    c.nroles = 1;
    ck_assert_int_eq(gw_authn_has_role(&route, &c), 0);
    snprintf(c.roles[1], sizeof(c.roles[1]), "ops");
    c.nroles = 2;
    ck_assert_int_eq(gw_authn_has_role(&route, &c), 1);
    snprintf(c.roles[1], sizeof(c.roles[1]), "Ops");
    ck_assert_int_eq(gw_authn_has_role(&route, &c), 0);
}
END_TEST

START_TEST(test_new_errors)
{
    struct gw_authn_opts o = {0};
    char err[256] = "";

    o.issuer = "basalt";
    o.audience = "basalt";
    o.leeway_s = 30;
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "JWT_PUBLIC_KEY_FILE") != NULL, "%s", err);
    o.secret = "too-short";
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "JWT_SECRET") != NULL, "%s", err);
    o.secret = NULL;
    o.public_key_files = "/nonexistent/key.pem";
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/key.pem") != NULL, "%s", err);
    o.public_key_files = " , ";
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));
    o.public_key_files = NULL;
    o.secret = SECRET;
    o.leeway_s = 61;
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "JWT_LEEWAY_S") != NULL, "%s", err);
}
END_TEST

static char *sign_hmac(const char *iss, const char *const *roles,
                       size_t nroles, long ttl)
{
    struct tok_signer *s = tok_signer_new_hmac(SECRET, strlen(SECRET), NULL);
    struct tok_issue in = {0};
    char *tok;

    ck_assert_ptr_nonnull(s);
    in.issuer = iss;
    in.audience = "basalt";
    in.sub = "user-1";
    in.email = "u@example.com";
    in.roles = roles;
    in.nroles = nroles;
    in.ttl_s = ttl;
    in.now = time(NULL);
    tok = tok_sign(s, &in, NULL);
    tok_signer_free(s);
    ck_assert_ptr_nonnull(tok);
    return tok;
}

START_TEST(test_verify_hmac)
{
    static const char *const roles[] = {"user", "admin"};
    struct gw_authn_opts o = {0};
    struct tok_claims c;
    char err[256] = "";
    struct gw_authn *a;
    char *tok;

    o.secret = SECRET;
    o.issuer = "basalt";
    o.audience = "basalt";
    o.leeway_s = 0;
    a = gw_authn_new(&o, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);

    tok = sign_hmac("basalt", roles, 2, 60);
    ck_assert_int_eq(gw_authn_verify(a, tok, strlen(tok), time(NULL), &c),
                     TOK_OK);
    ck_assert_str_eq(c.sub, "user-1");
    ck_assert_str_eq(c.roles_csv, "user,admin");
    /* Past expiry (leeway 0). */
    ck_assert_int_eq(gw_authn_verify(a, tok, strlen(tok), time(NULL) + 120,
                                     &c),
                     TOK_EEXPIRED);
    /* A flipped signature byte. */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    ck_assert_int_ne(gw_authn_verify(a, tok, strlen(tok), time(NULL), &c),
                     TOK_OK);
    free(tok);

    tok = sign_hmac("someone-else", roles, 1, 60);
    ck_assert_int_eq(gw_authn_verify(a, tok, strlen(tok), time(NULL), &c),
                     TOK_EISS);
    free(tok);
    gw_authn_free(a);
}
END_TEST

/* Writes a fresh RSA key pair: public PEM to pub_path, returns the
 * private PEM (malloc'd). */
static char *make_rsa(const char *pub_path)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    BIO *b = BIO_new(BIO_s_mem());
    FILE *f = fopen(pub_path, "w");
    char *data, *out;
    long n;

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
                                              NULL), 1);
    n = BIO_get_mem_data(b, &data);
    out = calloc(1, (size_t)n + 1);
    memcpy(out, data, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

static char *sign_rsa(const char *priv)
{
    struct tok_signer *s = tok_signer_new_rsa(priv, strlen(priv), NULL);
    struct tok_issue in = {0};
    char *tok;

    ck_assert_ptr_nonnull(s);
    in.issuer = "basalt";
    in.audience = "basalt";
    in.sub = "user-2";
    in.email = "v@example.com";
    in.ttl_s = 60;
    in.now = time(NULL);
    tok = tok_sign(s, &in, NULL);
    tok_signer_free(s);
    ck_assert_ptr_nonnull(tok);
    return tok;
}

/* Two PEM files (old and new key during rotation) both verify. */
START_TEST(test_verify_rsa_rotation)
{
    char p1[] = "/tmp/gw_pub1_XXXXXX", p2[] = "/tmp/gw_pub2_XXXXXX";
    char files[128], err[256] = "";
    struct gw_authn_opts o = {0};
    struct tok_claims c;
    struct gw_authn *a;
    char *k1, *k2, *t1, *t2;
    int fd1 = mkstemp(p1), fd2 = mkstemp(p2);

    ck_assert_int_ge(fd1, 0);
    ck_assert_int_ge(fd2, 0);
    close(fd1);
    close(fd2);
    k1 = make_rsa(p1);
    k2 = make_rsa(p2);
    snprintf(files, sizeof(files), "%s, %s", p1, p2);
    o.public_key_files = files;
    o.issuer = "basalt";
    o.audience = "basalt";
    o.leeway_s = 30;
    a = gw_authn_new(&o, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    t1 = sign_rsa(k1);
    t2 = sign_rsa(k2);
    ck_assert_int_eq(gw_authn_verify(a, t1, strlen(t1), time(NULL), &c),
                     TOK_OK);
    ck_assert_str_eq(c.sub, "user-2");
    ck_assert_int_eq(gw_authn_verify(a, t2, strlen(t2), time(NULL), &c),
                     TOK_OK);
    gw_authn_free(a);

    /* Only the new key: a token from the old one is refused. */
    o.public_key_files = p2;
    a = gw_authn_new(&o, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_int_ne(gw_authn_verify(a, t1, strlen(t1), time(NULL), &c),
                     TOK_OK);
    gw_authn_free(a);

    /* The same file twice is a configuration error. */
    snprintf(files, sizeof(files), "%s,%s", p1, p1);
    o.public_key_files = files;
    ck_assert_ptr_null(gw_authn_new(&o, err, sizeof(err)));

    free(t1);
    free(t2);
    free(k1);
    free(k2);
    unlink(p1);
    unlink(p2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_authn");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bearer_parse);
    tcase_add_test(tc, test_roles);
    tcase_add_test(tc, test_new_errors);
    tcase_add_test(tc, test_verify_hmac);
    tcase_add_test(tc, test_verify_rsa_rotation);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
