/* token: signing round trips, header rules, signature and token shape. */
#include "token_fixture.h"

#include <pthread.h>

START_TEST(test_baseline_ok)
{
    ck_assert_int_eq(check_a(base_header(), base_claims()), TOK_OK);
    ck_assert_str_eq(got.sub, "user-1");
    ck_assert_str_eq(got.jti, "jti-1");
    ck_assert_str_eq(got.email, "a@example.com");
    ck_assert_str_eq(got.kid, kid_a);
    ck_assert_int_eq(got.alg, TOK_ALG_RS256);
    ck_assert_int_eq(got.exp, NOW + 600);
}
END_TEST

START_TEST(test_round_trip_rs256)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    struct tok_keyset *ks = keyset_a();
    const char *roles[] = { "user", "admin" };
    struct tok_issue in = { "basalt", "basalt", "42", "u@example.com",
                            roles, 2, 900, (time_t)NOW };
    char jti[33], *t, *dot;
    unsigned char *raw;
    size_t rawlen;
    json_t *hdr;

    ck_assert_ptr_nonnull(s);
    t = tok_sign(s, &in, jti);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    ck_assert_str_eq(got.sub, "42");
    ck_assert_str_eq(got.email, "u@example.com");
    ck_assert_str_eq(got.jti, jti);
    ck_assert_uint_eq(strlen(jti), 32);
    ck_assert_uint_eq(strspn(jti, "0123456789abcdef"), 32);
    ck_assert_str_eq(got.kid, kid_a);
    ck_assert_int_eq(got.alg, TOK_ALG_RS256);
    ck_assert_int_eq(got.exp, NOW + 900);
    ck_assert_int_eq(got.iat, NOW);
    ck_assert_int_eq(got.nbf, NOW);
    ck_assert_uint_eq(got.nroles, 2);
    ck_assert_str_eq(got.roles[0], "user");
    ck_assert_str_eq(got.roles[1], "admin");
    ck_assert_str_eq(got.roles_csv, "user,admin");
    ck_assert_int_eq(tok_verify(ks, &pol, t, strlen(t), NOW + 900, &got),
                     TOK_EEXPIRED);

    /* Header is exactly {"alg","typ":"JWT","kid"}. */
    dot = strchr(t, '.');
    ck_assert_int_eq(tok_b64url_decode(t, (size_t)(dot - t), &raw, &rawlen),
                     0);
    hdr = json_loadb((char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(hdr);
    ck_assert_uint_eq(json_object_size(hdr), 3);
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "alg")),
                     "RS256");
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "typ")), "JWT");
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "kid")), kid_a);
    json_decref(hdr);
    free(raw);

    /* Two tokens never share a jti. */
    {
        char jti2[33], *t2 = tok_sign(s, &in, jti2);
        ck_assert_ptr_nonnull(t2);
        ck_assert_str_ne(jti, jti2);
        free(t2);
    }
    free(t);
    tok_keyset_free(ks);
    tok_signer_free(s);
}
END_TEST

START_TEST(test_round_trip_hs256)
{
    struct tok_signer *s = tok_signer_new_hmac(SECRET, strlen(SECRET), NULL);
    struct tok_keyset *ks = tok_keyset_new(), *other = tok_keyset_new();
    struct tok_issue in = { "basalt", "basalt", "7", NULL, NULL, 0, 60,
                            (time_t)NOW };
    char *t;

    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(tok_signer_kid(s), "hs256");
    ck_assert_int_eq(tok_signer_add_to_keyset(s, ks), 0);
    ck_assert_int_eq(tok_keyset_add_hmac(other, SECRET "x",
                                         strlen(SECRET) + 1, NULL), 0);
    t = tok_sign(s, &in, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    ck_assert_int_eq(got.alg, TOK_ALG_HS256);
    ck_assert_str_eq(got.kid, "hs256");
    ck_assert_str_eq(got.sub, "7");
    ck_assert_str_eq(got.email, "");
    ck_assert_uint_eq(got.nroles, 0);
    ck_assert_str_eq(got.roles_csv, "");
    ck_assert_int_eq(verify_str(other, t), TOK_ESIGNATURE);
    free(t);
    tok_keyset_free(ks);
    tok_keyset_free(other);
    tok_signer_free(s);
}
END_TEST

START_TEST(test_signer_keyset_rsa)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    struct tok_keyset *ks = tok_keyset_new();
    struct tok_issue in = { "basalt", "basalt", "1", NULL, NULL, 0, 60,
                            (time_t)NOW };
    char *t;

    ck_assert_int_eq(tok_signer_add_to_keyset(s, ks), 0);
    ck_assert_uint_eq(tok_keyset_count(ks), 1);
    t = tok_sign(s, &in, NULL);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    free(t);
    tok_keyset_free(ks);
    tok_signer_free(s);
}
END_TEST

START_TEST(test_alg_none)
{
    static const char *const algs[] = { "none", "None", "NONE", "" };
    struct tok_keyset *ks = keyset_a();
    json_t *c = base_claims();
    char *cs = json_dumps(c, JSON_COMPACT);
    size_t i;

    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char hdr[160], *t;
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                 algs[i]);
        t = forge(hdr, cs, FORGE_NONE, NULL, 0);
        ck_assert_int_eq(verify_str(ks, t), TOK_EALG);
        free(t);
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}",
                 algs[i], kid_a);
        t = forge(hdr, cs, FORGE_NONE, NULL, 0);
        ck_assert_int_eq(verify_str(ks, t), TOK_EALG);
        free(t);
    }
    free(cs);
    json_decref(c);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_alg_other)
{
    ck_assert_int_eq(check_hdr("alg", json_string("RS512")), TOK_EALG);
    ck_assert_int_eq(check_hdr("alg", json_string("HS512")), TOK_EALG);
    ck_assert_int_eq(check_hdr("alg", json_string("ES256")), TOK_EALG);
    ck_assert_int_eq(check_hdr("alg", json_string("rs256")), TOK_EALG);
    ck_assert_int_eq(check_hdr("alg", json_integer(256)), TOK_EALG);
    ck_assert_int_eq(check_hdr("alg", NULL), TOK_EALG);
}
END_TEST

/* The classic confusion: HMAC keyed with the RSA public key's PEM bytes. */
START_TEST(test_hs256_with_rsa_public_key)
{
    struct tok_keyset *ks = keyset_a();
    json_t *h = base_header();

    json_object_set_new(h, "alg", json_string("HS256"));
    ck_assert_int_eq(check_with(ks, &pol, h, base_claims(), FORGE_HS256,
                                pub_a, strlen(pub_a)), TOK_EALG);
    h = base_header();
    json_object_set_new(h, "alg", json_string("HS256"));
    json_object_del(h, "kid");
    ck_assert_int_eq(check_with(ks, &pol, h, base_claims(), FORGE_HS256,
                                pub_a, strlen(pub_a)), TOK_EALG);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_mixed_keyset)
{
    struct tok_keyset *ks = keyset_a();
    json_t *h;

    ck_assert_int_eq(tok_keyset_add_hmac(ks, SECRET, strlen(SECRET), "hk"),
                     0);
    /* RS256 claimed under the HMAC key's kid. */
    h = base_header();
    json_object_set_new(h, "kid", json_string("hk"));
    ck_assert_int_eq(check_with(ks, &pol, h, base_claims(), FORGE_RS256,
                                key_a, 0), TOK_EALG);
    /* HS256 under the HMAC kid is fine. */
    h = base_header();
    json_object_set_new(h, "kid", json_string("hk"));
    json_object_set_new(h, "alg", json_string("HS256"));
    ck_assert_int_eq(check_with(ks, &pol, h, base_claims(), FORGE_HS256,
                                SECRET, strlen(SECRET)), TOK_OK);
    ck_assert_int_eq(got.alg, TOK_ALG_HS256);
    /* A truncated MAC is no MAC. */
    {
        char *hs, *t, buf[8192];
        h = base_header();
        json_object_set_new(h, "kid", json_string("hk"));
        json_object_set_new(h, "alg", json_string("HS256"));
        hs = json_dumps(h, JSON_COMPACT);
        json_decref(h);
        t = forge(hs, "{}", FORGE_HS256_HALF, SECRET, strlen(SECRET));
        ck_assert_int_eq(verify_str(ks, t), TOK_ESIGNATURE);
        free(t);
        t = forge(hs, "{}", FORGE_HS256, SECRET, strlen(SECRET));
        /* The 32-byte MAC is the last 43 characters. */
        snprintf(buf, sizeof(buf), "%.*s", (int)strlen(t) - 43, t);
        ck_assert_int_eq(verify_str(ks, buf), TOK_ESIGNATURE);
        free(hs);
        free(t);
    }
    /* Without kid, two keys are ambiguous. */
    h = base_header();
    json_object_del(h, "kid");
    ck_assert_int_eq(check_with(ks, &pol, h, base_claims(), FORGE_RS256,
                                key_a, 0), TOK_EKID);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_kid)
{
    char long_kid[TOK_KID_MAX + 2];

    memset(long_kid, 'k', sizeof(long_kid) - 1);
    long_kid[sizeof(long_kid) - 1] = '\0';
    ck_assert_int_eq(check_hdr("kid", json_string("nope")), TOK_EKID);
    ck_assert_int_eq(check_hdr("kid", json_string(long_kid)), TOK_EKID);
    ck_assert_int_eq(check_hdr("kid", json_integer(1)), TOK_EKID);
    /* A single key may be used without naming it. */
    ck_assert_int_eq(check_hdr("kid", NULL), TOK_OK);
    ck_assert_str_eq(got.kid, kid_a);
}
END_TEST

START_TEST(test_other_key_same_kid)
{
    struct tok_keyset *ks = keyset_a();

    ck_assert_int_eq(check_with(ks, &pol, base_header(), base_claims(),
                                FORGE_RS256, key_b, 0), TOK_ESIGNATURE);
    tok_keyset_free(ks);
}
END_TEST

/* The per-thread header memo must never outlive the keyset it was made
 * with, nor survive a key being added to it. */
START_TEST(test_header_memo_scoped_to_keyset)
{
    struct tok_keyset *a = keyset_a(), *other = tok_keyset_new();
    static const char secret[] = "0123456789abcdef0123456789abcdef!";
    json_t *nokid;

    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(tok_keyset_add_hmac(other, secret, sizeof(secret) - 1,
                                         NULL), 0);
    ck_assert_int_eq(check_with(a, &pol, base_header(), base_claims(),
                                FORGE_RS256, key_a, 0), TOK_OK);
    ck_assert_int_eq(check_with(other, &pol, base_header(), base_claims(),
                                FORGE_RS256, key_a, 0), TOK_EKID);
    ck_assert_int_eq(check_with(a, &pol, base_header(), base_claims(),
                                FORGE_RS256, key_a, 0), TOK_OK);

    nokid = base_header();
    json_object_del(nokid, "kid");
    ck_assert_int_eq(check_with(a, &pol, json_deep_copy(nokid),
                                base_claims(), FORGE_RS256, key_a, 0),
                     TOK_OK);
    ck_assert_int_eq(tok_keyset_add_hmac(a, secret, sizeof(secret) - 1,
                                         NULL), 0);
    /* a missing kid is only fine while the keyset holds one key */
    ck_assert_int_eq(check_with(a, &pol, nokid, base_claims(), FORGE_RS256,
                                key_a, 0), TOK_EKID);
    tok_keyset_free(a);
    tok_keyset_free(other);
}
END_TEST

START_TEST(test_tampered)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    struct tok_keyset *ks = keyset_a();
    struct tok_issue in = { "basalt", "basalt", "user-1", NULL, NULL, 0, 60,
                            (time_t)NOW };
    char *t = tok_sign(s, &in, NULL), *d1, *d2, *evil, *p64, *h64, buf[8192];
    json_t *c = base_claims();
    char *cs;

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    d1 = strchr(t, '.');
    d2 = strchr(d1 + 1, '.');

    /* Payload swapped for one naming another subject and role. */
    json_object_set_new(c, "sub", json_string("admin"));
    json_object_set_new(c, "roles", json_pack("[s]", "admin"));
    cs = json_dumps(c, JSON_COMPACT);
    p64 = b64s(cs);
    snprintf(buf, sizeof(buf), "%.*s.%s%s", (int)(d1 - t), t, p64, d2);
    ck_assert_int_eq(verify_str(ks, buf), TOK_ESIGNATURE);

    /* Header changed (still valid, same key). */
    h64 = b64s("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}");
    snprintf(buf, sizeof(buf), "%s%s", h64, d1);
    ck_assert_int_eq(verify_str(ks, buf), TOK_ESIGNATURE);

    /* One signature character changed (not the last: spare bits). */
    snprintf(buf, sizeof(buf), "%s", t);
    evil = buf + (d2 - t) + 1;
    *evil = *evil == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify_str(ks, buf), TOK_ESIGNATURE);

    /* Signature truncated by one byte's worth. */
    snprintf(buf, sizeof(buf), "%.*s", (int)strlen(t) - 4, t);
    ck_assert_int_ne(verify_str(ks, buf), TOK_OK);

    free(h64);
    free(p64);
    free(cs);
    json_decref(c);
    free(t);
    tok_keyset_free(ks);
    tok_signer_free(s);
}
END_TEST

START_TEST(test_truncated)
{
    struct tok_keyset *ks = keyset_a();
    json_t *c = base_claims();
    char *cs = json_dumps(c, JSON_COMPACT), *t, *d2, buf[8192];
    char *h = hdr_str();

    t = forge(h, cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    d2 = strrchr(t, '.');
    /* header.payload */
    snprintf(buf, sizeof(buf), "%.*s", (int)(d2 - t), t);
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    /* header.payload. (signature stripped) */
    snprintf(buf, sizeof(buf), "%.*s.", (int)(d2 - t), t);
    ck_assert_int_eq(verify_str(ks, buf), TOK_ESIGNATURE);
    /* four segments */
    snprintf(buf, sizeof(buf), "%s.%s", t, "AAAA");
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    /* .payload.signature */
    snprintf(buf, sizeof(buf), "%s", strchr(t, '.'));
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    ck_assert_int_eq(verify_str(ks, ""), TOK_EMALFORMED);
    ck_assert_int_eq(verify_str(ks, "."), TOK_EMALFORMED);
    ck_assert_int_eq(verify_str(ks, ".."), TOK_EMALFORMED);
    ck_assert_int_eq(verify_str(ks, "..."), TOK_EMALFORMED);
    ck_assert_int_eq(verify_str(ks, "abc"), TOK_EMALFORMED);
    free(t);
    /* Validly signed empty payload. */
    t = forge(h, "", FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    free(h);
    free(cs);
    json_decref(c);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_too_long)
{
    struct tok_keyset *ks = keyset_a();
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);

    memset(big, 'A', n);
    big[100] = '.';
    big[200] = '.';
    big[n] = '\0';
    ck_assert_int_eq(tok_verify(ks, &pol, big, n, NOW, &got), TOK_ETOOLONG);
    ck_assert_int_eq(tok_verify(ks, &pol, big, TOK_MAX_LEN + 1, NOW, &got),
                     TOK_ETOOLONG);
    ck_assert_int_ne(tok_verify(ks, &pol, big, TOK_MAX_LEN, NOW, &got),
                     TOK_ETOOLONG);
    free(big);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_not_nul_terminated)
{
    struct tok_keyset *ks = keyset_a();
    char *h = hdr_str();
    json_t *c = base_claims();
    char *cs = json_dumps(c, JSON_COMPACT);
    char *t = forge(h, cs, FORGE_RS256, key_a, 0);
    size_t n = strlen(t);
    char *buf = malloc(n + 8);

    memcpy(buf, t, n);
    memcpy(buf + n, ".AAAAAAA", 8);
    ck_assert_int_eq(tok_verify(ks, &pol, buf, n, NOW, &got), TOK_OK);
    ck_assert_int_eq(tok_verify(ks, &pol, buf, n + 8, NOW, &got),
                     TOK_EMALFORMED);
    free(buf);
    free(t);
    free(cs);
    free(h);
    json_decref(c);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_bad_json)
{
    struct tok_keyset *ks = keyset_a();
    json_t *c = base_claims();
    char *cs = json_dumps(c, JSON_COMPACT), *t, hdr[200];

    t = forge("not json", cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    t = forge("[\"RS256\"]", cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    t = forge("\"RS256\"", cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    /* Duplicate members: one parser's "RS256" is another's "none". */
    snprintf(hdr, sizeof(hdr),
             "{\"alg\":\"RS256\",\"kid\":\"%s\",\"alg\":\"RS256\"}", kid_a);
    t = forge(hdr, cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    /* Payloads are checked after the signature, but still must be objects. */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid_a);
    t = forge(hdr, "[1,2]", FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    t = forge(hdr, "{\"sub\":", FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    /* Sanity: the same header with the real claims verifies. */
    t = forge(hdr, cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    free(t);
    free(cs);
    json_decref(c);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_padding_and_alphabet)
{
    struct tok_keyset *ks = keyset_a();
    json_t *c = base_claims();
    char *cs = json_dumps(c, JSON_COMPACT);
    char *h = hdr_str(), *h2, *h64, *p64, *t;
    char padded[512], buf[8192];
    size_t hl;

    /* The signature (256 bytes) would carry "==" in padded base64. */
    t = forge(h, cs, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    snprintf(buf, sizeof(buf), "%s==", t);
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    snprintf(buf, sizeof(buf), "%s=", t);
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    /* '+' in place of '-' (standard alphabet) */
    snprintf(buf, sizeof(buf), "%s", t);
    *(strrchr(buf, '.') + 1) = '+';
    ck_assert_int_eq(verify_str(ks, buf), TOK_EMALFORMED);
    free(t);

    /* A padded header, validly signed over its padded form. */
    hl = strlen(h);
    h2 = malloc(hl + 2);
    snprintf(h2, hl + 2, "%s%s", h, hl % 3 == 0 ? " " : "");
    h64 = b64s(h2);
    snprintf(padded, sizeof(padded), "%s%s", h64,
             strlen(h64) % 4 == 2 ? "==" : "=");
    p64 = b64s(cs);
    t = forge_raw(h64, p64, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_OK);
    free(t);
    t = forge_raw(padded, p64, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    /* Whitespace inside a segment. */
    snprintf(padded, sizeof(padded), "%.4s %s", h64, h64 + 4);
    t = forge_raw(padded, p64, FORGE_RS256, key_a, 0);
    ck_assert_int_eq(verify_str(ks, t), TOK_EMALFORMED);
    free(t);
    free(p64);
    free(h64);
    free(h2);
    free(h);
    free(cs);
    json_decref(c);
    tok_keyset_free(ks);
}
END_TEST

START_TEST(test_typ_crit)
{
    ck_assert_int_eq(check_hdr("typ", json_string("JOSE+JSON")), TOK_ETYP);
    ck_assert_int_eq(check_hdr("typ", json_string("JOSE")), TOK_ETYP);
    ck_assert_int_eq(check_hdr("typ", json_integer(1)), TOK_ETYP);
    ck_assert_int_eq(check_hdr("typ", json_string("at+jwt")), TOK_OK);
    ck_assert_int_eq(check_hdr("typ", json_string("JWT")), TOK_OK);
    ck_assert_int_eq(check_hdr("typ", NULL), TOK_OK);
    ck_assert_int_eq(check_hdr("crit", json_pack("[s]", "exp")), TOK_ETYP);
    ck_assert_int_eq(check_hdr("crit", json_array()), TOK_ETYP);
}
END_TEST

struct thread_arg {
    struct tok_keyset *ks;
    const char *token;
    int failures;
};

static void *verify_many(void *p)
{
    struct thread_arg *a = p;
    struct tok_claims c;
    int i;

    for (i = 0; i < 50; i++)
        if (tok_verify(a->ks, &pol, a->token, strlen(a->token), NOW, &c) !=
            TOK_OK || strcmp(c.sub, "1") != 0)
            a->failures++;
    return NULL;
}

START_TEST(test_concurrent_verify)
{
    struct tok_signer *s = tok_signer_new_rsa(priv_a, strlen(priv_a), NULL);
    struct tok_keyset *ks = keyset_a();
    struct tok_issue in = { "basalt", "basalt", "1", NULL, NULL, 0, 60,
                            (time_t)NOW };
    char *t = tok_sign(s, &in, NULL);
    struct thread_arg args[4];
    pthread_t th[4];
    int i;

    for (i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){ ks, t, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, verify_many, &args[i]),
                         0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
    free(t);
    tok_keyset_free(ks);
    tok_signer_free(s);
}
END_TEST

static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_baseline_ok);
    tcase_add_test(tc, test_round_trip_rs256);
    tcase_add_test(tc, test_round_trip_hs256);
    tcase_add_test(tc, test_signer_keyset_rsa);
    tcase_add_test(tc, test_alg_none);
    tcase_add_test(tc, test_alg_other);
    tcase_add_test(tc, test_hs256_with_rsa_public_key);
    tcase_add_test(tc, test_mixed_keyset);
    tcase_add_test(tc, test_kid);
    tcase_add_test(tc, test_other_key_same_kid);
    tcase_add_test(tc, test_header_memo_scoped_to_keyset);
    tcase_add_test(tc, test_tampered);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_too_long);
    tcase_add_test(tc, test_not_nul_terminated);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_padding_and_alphabet);
    tcase_add_test(tc, test_typ_crit);
    tcase_add_test(tc, test_concurrent_verify);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tok_test_run(token_suite());
}
