/*
 * Fuzzes JWT decoding and verification (tok_verify, libs/token) against a
 * fixed keyset: an RS256 public key (kid = its RFC 7638 thumbprint) and an
 * HS256 secret (kid "hs256"), and a second keyset holding only the secret
 * (so a token without "kid" is accepted there). Verification runs at a
 * fixed time so checked-in valid tokens stay valid. Also round-trips
 * base64url. An input holding a NUL is also read as "header\0claims"
 * (JSON texts) signed with the HS256 secret, so the header and claims
 * rules are reached past the signature check. Invariants: TOK_OK only
 * with non-empty sub/jti, alg never "none", and the claims strings
 * NUL-terminated.
 *
 * Seeds: FUZZ_TOKEN_SEEDS=<dir> FUZZ_TOKEN_KEY=<private PEM of the public
 * key below> build/fuzz/bin/fuzz_token writes structure-aware seeds (valid
 * RS256/HS256 tokens, alg none, key confusion, bad typ/crit, expired ...)
 * into dir and exits. The private key is not kept in the repository.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <time.h>

#include "../fuzz.h"
#include "token/token.h"

#define NOW ((time_t)1767225600)    /* 2026-01-01T00:00:00Z */

static const char pub_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtdunw54dA27/cHlzyGf9\n"
    "/IKH+CDVYB2HmtWpn1Fp+8ZCul8lncJnVimxRiOLJ3TQJKMBCuWptewz5X4sji8I\n"
    "GAV0NvVJXLghXGqbnp7U3gvEa7etwVOQlZN5o5dvjOq4XHpGK5mkuD+0DpcQgSoE\n"
    "OgSNouJo2EahH7rcbhv8+A9rpDAAMMvxsBhj3M3aLlmm+taAJU3pF4xkibucahve\n"
    "LfjGJeiVv0mk7mVv0Sf4YzCdSMOSqGGEFO4a6Jft8I8nNIBXsURk1Jhs8lJNPgT4\n"
    "R6rfznBzqYjYifLtwZIljQEdRBBjcnF1NIAmXTjQgHdQoQQmMMU7scQ0ER5TBd/X\n"
    "dQIDAQAB\n"
    "-----END PUBLIC KEY-----\n"
    ;

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

static struct tok_keyset *g_multi, *g_single;
static char g_kid[TOK_KID_MAX + 1];
static const struct tok_policy g_pol = {"basalt", "basalt", 30};

static void write_seed(const char *dir, const char *name, const char *tok)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f || fputs(tok, f) < 0 || fclose(f) != 0)
        abort();
}

/* header.claims signed with HS256 under `key` (or unsigned: key NULL). */
static char *craft(const char *hdr, const char *claims, const void *key,
                   size_t keylen)
{
    char *h = tok_b64url_encode((const unsigned char *)hdr, strlen(hdr));
    char *c = tok_b64url_encode((const unsigned char *)claims,
                                strlen(claims));
    char *sig = NULL, *out;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t n;

    n = strlen(h) + strlen(c) + 2;
    out = malloc(n + 128);
    if (!h || !c || !out)
        abort();
    snprintf(out, n, "%s.%s", h, c);
    if (key) {
        HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)out,
             strlen(out), mac, &maclen);
        sig = tok_b64url_encode(mac, maclen);
    }
    snprintf(out + strlen(out), 128, ".%s", sig ? sig : "");
    free(h), free(c), free(sig);
    return out;
}

#define CLAIMS(extra) \
    "{\"iss\":\"basalt\",\"aud\":\"basalt\",\"sub\":\"42\"," \
    "\"jti\":\"j1\",\"exp\":1767229200,\"iat\":1767225600" extra "}"

static void make_seeds(const char *dir, const char *keyfile)
{
    static const char *const roles[] = {"user", "admin"};
    struct tok_issue in = {"basalt", "basalt", "42", "u@example.com",
                           roles, 2, 3600, NOW};
    char pem[8192], hdr[256], *t;
    size_t n;
    FILE *f = fopen(keyfile, "r");
    struct tok_signer *rs, *hs;

    if (!f)
        abort();
    n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = '\0';
    rs = tok_signer_new_rsa(pem, n, NULL);
    hs = tok_signer_new_hmac(secret, strlen(secret), NULL);
    if (!rs || !hs || strcmp(tok_signer_kid(rs), g_kid) != 0)
        abort();
    write_seed(dir, "rs256_valid", t = tok_sign(rs, &in, NULL));
    free(t);
    write_seed(dir, "hs256_valid", t = tok_sign(hs, &in, NULL));
    free(t);
    in.now = NOW - 7200;            /* expired an hour before NOW */
    write_seed(dir, "rs256_expired", t = tok_sign(rs, &in, NULL));
    free(t);
    tok_signer_free(rs);
    tok_signer_free(hs);

    write_seed(dir, "alg_none", t = craft("{\"alg\":\"none\",\"typ\":\"JWT\"}",
                                          CLAIMS(""), NULL, 0));
    free(t);
    write_seed(dir, "hs_nokid", t = craft("{\"alg\":\"HS256\"}",
                                          CLAIMS(""), secret,
                                          strlen(secret)));
    free(t);
    /* HS256 keyed with the RSA public key PEM under the RSA kid */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", g_kid);
    write_seed(dir, "key_confusion", t = craft(hdr, CLAIMS(""), pub_pem,
                                               strlen(pub_pem)));
    free(t);
    write_seed(dir, "typ_crit", t = craft(
        "{\"alg\":\"HS256\",\"kid\":\"hs256\",\"typ\":\"at+jwt\","
        "\"crit\":[\"x\"]}", CLAIMS(""), secret, strlen(secret)));
    free(t);
    write_seed(dir, "aud_array", t = craft(
        "{\"alg\":\"HS256\",\"kid\":\"hs256\",\"typ\":\"JWT\"}",
        CLAIMS(",\"aud\":[\"x\",\"basalt\"],\"nbf\":1767225000,"
               "\"email\":\"a@b.c\",\"roles\":[\"admin\",\"user\"]"),
        secret, strlen(secret)));
    free(t);
    write_seed(dir, "bad_types", t = craft(
        "{\"alg\":\"HS256\",\"kid\":\"hs256\"}",
        "{\"iss\":1,\"aud\":{},\"sub\":\"\",\"jti\":null,\"exp\":1e300,"
        "\"iat\":-1,\"roles\":\"admin\"}", secret, strlen(secret)));
    free(t);
    write_seed(dir, "two_dots", "a.b");
    {
        static const char signed_seed[] =
            "{\"alg\":\"HS256\",\"kid\":\"hs256\",\"typ\":\"JWT\"}\0"
            CLAIMS(",\"nbf\":1767225000,\"email\":\"a@b.c\","
                   "\"roles\":[\"admin\",\"user\"]");
        char path[512];

        snprintf(path, sizeof path, "%s/signed_claims", dir);
        f = fopen(path, "w");
        if (!f || fwrite(signed_seed, 1, sizeof signed_seed - 1, f) !=
                      sizeof signed_seed - 1 || fclose(f) != 0)
            abort();
    }
    write_seed(dir, "padding", "eyJhbGciOiJIUzI1NiJ9=.e30=.AA==");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("FUZZ_TOKEN_SEEDS");

    (void)argc, (void)argv;
    g_multi = tok_keyset_new();
    g_single = tok_keyset_new();
    if (!g_multi || !g_single ||
        tok_keyset_add_rsa_pem(g_multi, pub_pem, strlen(pub_pem), NULL,
                               g_kid) != 0 ||
        tok_keyset_add_hmac(g_multi, secret, strlen(secret), NULL) != 0 ||
        tok_keyset_add_hmac(g_single, secret, strlen(secret), NULL) != 0)
        abort();
    if (dir) {
        make_seeds(dir, getenv("FUZZ_TOKEN_KEY"));
        exit(0);
    }
    return 0;
}

static void check_claims(enum tok_err rc, const struct tok_claims *c)
{
    if (tok_strerror(rc) == NULL)
        abort();
    if (rc != TOK_OK)
        return;
    if (!memchr(c->sub, 0, sizeof c->sub) || !c->sub[0] ||
        !memchr(c->jti, 0, sizeof c->jti) || !c->jti[0] ||
        !memchr(c->email, 0, sizeof c->email) ||
        !memchr(c->kid, 0, sizeof c->kid) ||
        !memchr(c->roles_csv, 0, sizeof c->roles_csv) ||
        c->nroles > TOK_MAX_ROLES ||
        (c->alg != TOK_ALG_RS256 && c->alg != TOK_ALG_HS256))
        abort();
    for (size_t i = 0; i < c->nroles; i++)
        if (!memchr(c->roles[i], 0, sizeof c->roles[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_claims c;
    unsigned char *raw = NULL, *back = NULL;
    size_t rawlen, backlen;
    char *enc;

    check_claims(tok_verify(g_multi, &g_pol, (const char *)data, size, NOW,
                            &c), &c);
    check_claims(tok_verify(g_single, &g_pol, (const char *)data, size, NOW,
                            &c), &c);
    if (memchr(data, 0, size)) {
        const uint8_t *rest;
        size_t restlen;
        char *hdr = fuzz_split(data, size, 0, &rest, &restlen);
        char *claims = fuzz_strndup(rest, restlen);
        char *t = craft(hdr, claims, secret, strlen(secret));

        check_claims(tok_verify(g_multi, &g_pol, t, strlen(t), NOW, &c), &c);
        check_claims(tok_verify(g_single, &g_pol, t, strlen(t), NOW, &c),
                     &c);
        free(t), free(claims), free(hdr);
    }
    if (tok_b64url_decode((const char *)data, size, &raw, &rawlen) == 0) {
        enc = tok_b64url_encode(raw, rawlen);
        if (!enc || strlen(enc) != size || memcmp(enc, data, size) != 0 ||
            tok_b64url_decode(enc, size, &back, &backlen) != 0 ||
            backlen != rawlen || (rawlen && memcmp(back, raw, rawlen)))
            abort();
        free(enc);
        free(back);
        free(raw);
    }
    return 0;
}
