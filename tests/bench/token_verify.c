/*
 * Token verification throughput on one core, side by side in one run:
 *   raw OpenSSL RSA-2048 verify (parsed key) of the token's signing input,
 *   tok_verify() on the same token (RS256), libjwt's jwt_decode() (PEM per
 *   call), and raw HMAC-SHA256 against tok_verify() for HS256.
 * Prints one line per measurement and the ratios against the primitive.
 * Each measurement runs for BENCH_SECONDS (default 1.0) of wall time.
 */
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "token/token.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench_seconds(void)
{
    const char *s = getenv("BENCH_SECONDS");
    char *end = NULL;
    double v = s ? strtod(s, &end) : 1.0;
    if (!s || end == s || v <= 0)
        v = 1.0;
    return v;
}

struct sample {
    const char *token;
    size_t token_len;
    const unsigned char *input; /* "header.payload" */
    size_t input_len;
    unsigned char *sig;
    size_t sig_len;
    EVP_PKEY *pkey;
    const unsigned char *secret;
    size_t secret_len;
    const struct tok_keyset *ks;
    const struct tok_policy *pol;
    const char *pem;
    size_t pem_len;
};

typedef int (*op_fn)(const struct sample *s);

static int op_raw_rsa(const struct sample *s)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx &&
             EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, s->pkey) ==
                 1 &&
             EVP_DigestVerify(ctx, s->sig, s->sig_len, s->input,
                              s->input_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int op_raw_hmac(const struct sample *s)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, s->input,
              s->input_len, mac, &maclen))
        return -1;
    return CRYPTO_memcmp(mac, s->sig, maclen) == 0 ? 0 : -1;
}

static int op_tok_verify(const struct sample *s)
{
    struct tok_claims c;
    return tok_verify(s->ks, s->pol, s->token, s->token_len, time(NULL),
                      &c) == TOK_OK
               ? 0
               : -1;
}

static int op_libjwt(const struct sample *s)
{
    jwt_t *j = NULL;
    int rc = jwt_decode(&j, s->token, (const unsigned char *)s->pem,
                        (int)s->pem_len);
    jwt_free(j);
    return rc == 0 ? 0 : -1;
}

static double measure(const char *name, op_fn fn, const struct sample *s)
{
    double limit = bench_seconds(), t0 = now_s(), t;
    long n = 0;
    do {
        for (int i = 0; i < 64; i++) {
            if (fn(s) != 0) {
                fprintf(stderr, "%s: verification failed\n", name);
                exit(1);
            }
        }
        n += 64;
        t = now_s() - t0;
    } while (t < limit);
    double rate = (double)n / t;
    printf("%-32s %12.0f verifications/s\n", name, rate);
    return rate;
}

/* Splits "h.p.s" into signing input and decoded signature. */
static int split_token(struct sample *s)
{
    const char *dot = strrchr(s->token, '.');
    if (!dot)
        return -1;
    s->input = (const unsigned char *)s->token;
    s->input_len = (size_t)(dot - s->token);
    return tok_b64url_decode(dot + 1, strlen(dot + 1), &s->sig, &s->sig_len);
}

static char *pem_of(EVP_PKEY *k, int priv, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    if (!b)
        return NULL;
    if (priv ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
             : PEM_write_bio_PUBKEY(b, k)) {
        long n = BIO_get_mem_data(b, &data);
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(b);
    return out;
}

int main(void)
{
    const char *roles[] = {"user"};
    struct tok_policy pol = {"basalt", "basalt", 30};
    struct tok_issue in = {"basalt", "basalt", "6f1c2c7e-1111-4d2c-9a65-1b0c2f1e7a10",
                           "ada@example.com", roles, 1, 900, time(NULL)};
    EVP_PKEY *key = EVP_RSA_gen(2048);
    size_t priv_len = 0, pub_len = 0;
    char *priv = key ? pem_of(key, 1, &priv_len) : NULL;
    char *pub = key ? pem_of(key, 0, &pub_len) : NULL;
    static const unsigned char secret[] =
        "bench-secret-bench-secret-bench-secret-0123456789";
    struct tok_signer *rs = priv ? tok_signer_new_rsa(priv, priv_len, NULL)
                                 : NULL;
    struct tok_signer *hs =
        tok_signer_new_hmac(secret, sizeof(secret) - 1, NULL);
    struct tok_keyset *ks_rs = tok_keyset_new(), *ks_hs = tok_keyset_new();
    if (!rs || !hs || !ks_rs || !ks_hs ||
        tok_signer_add_to_keyset(rs, ks_rs) != 0 ||
        tok_signer_add_to_keyset(hs, ks_hs) != 0) {
        fprintf(stderr, "token_verify: set-up failed\n");
        return 1;
    }
    char *t_rs = tok_sign(rs, &in, NULL), *t_hs = tok_sign(hs, &in, NULL);
    struct sample srs = {0}, shs = {0};
    srs.token = t_rs;
    srs.token_len = t_rs ? strlen(t_rs) : 0;
    srs.pkey = key;
    srs.ks = ks_rs;
    srs.pol = &pol;
    srs.pem = pub;
    srs.pem_len = pub_len;
    shs.token = t_hs;
    shs.token_len = t_hs ? strlen(t_hs) : 0;
    shs.secret = secret;
    shs.secret_len = sizeof(secret) - 1;
    shs.ks = ks_hs;
    shs.pol = &pol;
    if (!t_rs || !t_hs || split_token(&srs) != 0 || split_token(&shs) != 0) {
        fprintf(stderr, "token_verify: signing failed\n");
        return 1;
    }

    printf("# token verification, one thread, %.1f s per measurement\n",
           bench_seconds());
    double raw_rs = measure("openssl RSA-2048 verify (raw)", op_raw_rsa, &srs);
    double tok_rs = measure("tok_verify RS256", op_tok_verify, &srs);
    double jwt_rs = measure("libjwt jwt_decode RS256 (PEM)", op_libjwt, &srs);
    double raw_hs = measure("openssl HMAC-SHA256 (raw)", op_raw_hmac, &shs);
    double tok_hs = measure("tok_verify HS256", op_tok_verify, &shs);
    printf("ratio tok_verify/raw RS256   %.2f  (goal >= 0.80)\n",
           tok_rs / raw_rs);
    printf("ratio libjwt/raw RS256      %.2f\n", jwt_rs / raw_rs);
    printf("ratio tok_verify/raw HS256   %.2f  (goal >= 0.80)\n",
           tok_hs / raw_hs);

    free(srs.sig);
    free(shs.sig);
    free(t_rs);
    free(t_hs);
    free(priv);
    free(pub);
    tok_keyset_free(ks_rs);
    tok_keyset_free(ks_hs);
    tok_signer_free(rs);
    tok_signer_free(hs);
    EVP_PKEY_free(key);
    return 0;
}
