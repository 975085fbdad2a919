/*
 * The gateway's cached token path against the raw primitive, one run:
 *   raw OpenSSL RSA-2048 verify (parsed key) of the token's signing input,
 *   tok_verify() RS256 (cache cold: every call verifies),
 *   cached path = gw_token_cache_get() + the revocation check the gateway
 *   runs on every request (ident_rev_check, local state), cache warm.
 * Goal: cached >= 5x the raw primitive. BENCH_SECONDS per measurement
 * (default 1.0).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../services/gateway/src/token_cache.c"
#include "identity/revocation.h"
#include "token/token.h"

struct ctx {
    const char *tok;
    size_t len;
    const unsigned char *input;
    size_t input_len;
    unsigned char *sig;
    size_t sig_len;
    EVP_PKEY *pkey;
    struct tok_keyset *ks;
    struct tok_policy pol;
    struct gw_token_cache *cache;
    struct ident_rev *rev;
};

typedef int (*op_fn)(struct ctx *c);

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double seconds(void)
{
    const char *s = getenv("BENCH_SECONDS");
    char *end = NULL;
    double v = s != NULL ? strtod(s, &end) : 1.0;

    return s == NULL || end == s || v <= 0 ? 1.0 : v;
}

static int op_raw(struct ctx *c)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL &&
             EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, c->pkey) ==
                 1 &&
             EVP_DigestVerify(m, c->sig, c->sig_len, c->input,
                              c->input_len) == 1;

    EVP_MD_CTX_free(m);
    return ok ? 0 : -1;
}

static int op_verify(struct ctx *c)
{
    struct tok_claims cl;

    return tok_verify(c->ks, &c->pol, c->tok, c->len, time(NULL), &cl) ==
                   TOK_OK
               ? 0
               : -1;
}

/* What authn.c does per request with the cache warm. */
static int op_cached(struct ctx *c)
{
    struct tok_claims cl;
    time_t now = time(NULL);

    if (!gw_token_cache_get(c->cache, c->tok, c->len, now, &cl) &&
        (tok_verify(c->ks, &c->pol, c->tok, c->len, now, &cl) != TOK_OK ||
         (gw_token_cache_put(c->cache, c->tok, c->len, &cl, now), 0)))
        return -1;
    return ident_rev_check(c->rev, cl.sub, cl.jti, cl.iat, cl.exp, now) ==
                   IDENT_REV_OK
               ? 0
               : -1;
}

static double measure(const char *name, op_fn fn, struct ctx *c)
{
    double limit = seconds(), t0 = now_s(), t, rate;
    long n = 0;

    do {
        for (int i = 0; i < 64; i++)
            if (fn(c) != 0) {
                fprintf(stderr, "%s: failed\n", name);
                exit(1);
            }
        n += 64;
        t = now_s() - t0;
    } while (t < limit);
    rate = (double)n / t;
    printf("%-36s %12.0f verifications/s\n", name, rate);
    return rate;
}

static char *private_pem(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    long n;

    if (b == NULL)
        return NULL;
    if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
        n = BIO_get_mem_data(b, &data);
        out = malloc((size_t)n + 1);
        if (out != NULL) {
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
    struct tok_issue in = {"basalt", "basalt",
                           "6f1c2c7e-1111-4d2c-9a65-1b0c2f1e7a10",
                           "ada@example.com", roles, 1, 900, time(NULL)};
    struct ctx c;
    struct tok_signer *signer = NULL;
    char *pem = NULL, *tok = NULL;
    const char *dot;
    size_t pem_len = 0;
    double raw, ver, cached;

    memset(&c, 0, sizeof(c));
    c.pol.issuer = "basalt";
    c.pol.audience = "basalt";
    c.pol.leeway_s = 30;
    c.pkey = EVP_RSA_gen(2048);
    if (c.pkey != NULL)
        pem = private_pem(c.pkey, &pem_len);
    if (pem != NULL)
        signer = tok_signer_new_rsa(pem, pem_len, NULL);
    c.ks = tok_keyset_new();
    c.cache = gw_token_cache_new(10000, 60);
    c.rev = ident_rev_new(NULL, 30);
    if (signer == NULL || c.ks == NULL || c.cache == NULL ||
        c.rev == NULL || tok_signer_add_to_keyset(signer, c.ks) != 0 ||
        (tok = tok_sign(signer, &in, NULL)) == NULL) {
        fprintf(stderr, "token_cache: set-up failed\n");
        return 1;
    }
    c.tok = tok;
    c.len = strlen(tok);
    dot = strrchr(tok, '.');
    c.input = (const unsigned char *)tok;
    c.input_len = (size_t)(dot - tok);
    if (tok_b64url_decode(dot + 1, strlen(dot + 1), &c.sig, &c.sig_len)) {
        fprintf(stderr, "token_cache: bad token\n");
        return 1;
    }
    printf("# gateway token path, one thread, %.1f s per measurement\n",
           seconds());
    raw = measure("openssl RSA-2048 verify (raw)", op_raw, &c);
    ver = measure("tok_verify RS256 (no cache)", op_verify, &c);
    cached = measure("cache + revocation check (warm)", op_cached, &c);
    printf("ratio tok_verify/raw RS256       %.2f  (goal >= 0.80)\n",
           ver / raw);
    printf("ratio cached/raw RS256           %.2f  (goal >= 5)\n",
           cached / raw);
    free(c.sig);
    free(tok);
    free(pem);
    ident_rev_free(c.rev);
    gw_token_cache_free(c.cache);
    tok_keyset_free(c.ks);
    tok_signer_free(signer);
    EVP_PKEY_free(c.pkey);
    return 0;
}
