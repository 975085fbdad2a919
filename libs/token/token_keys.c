/*
 * token keys: base64url, the verification keyset, RFC 7638 thumbprints and
 * the JWKS document.
 */
#include "token/token_internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *tok_strerror(enum tok_err e)
{
    switch (e) {
    case TOK_OK: return "ok";
    case TOK_EMALFORMED: return "malformed";
    case TOK_ETOOLONG: return "too_long";
    case TOK_EALG: return "bad_alg";
    case TOK_EKID: return "unknown_kid";
    case TOK_ETYP: return "bad_typ";
    case TOK_ESIGNATURE: return "bad_signature";
    case TOK_EEXPIRED: return "expired";
    case TOK_ENOTYET: return "not_yet_valid";
    case TOK_EISS: return "bad_issuer";
    case TOK_EAUD: return "bad_audience";
    case TOK_ECLAIMS: return "bad_claims";
    case TOK_ENOMEM: return "out_of_memory";
    }
    return "unknown";
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void tok_sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md == NULL ||
        EVP_Digest(data, len, out, NULL, sha256_md, NULL) != 1)
        SHA256((const unsigned char *)data, len, out);
}

char *tok_b64url_encode(const unsigned char *in, size_t len)
{
    size_t outlen, i, o = 0;
    char *out;

    if (len > (SIZE_MAX - 4) / 4 * 3)
        return NULL;
    outlen = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    out = malloc(outlen + 1);
    if (!out)
        return NULL;
    for (i = 0; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 |
                          (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned long v = (unsigned long)in[i] << 16 |
                          (unsigned long)in[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Strict: no padding, no '+' '/', no whitespace, and the unused low bits
 * of a partial group must be zero, so each byte string has exactly one
 * accepted encoding (no signature malleability through spare bits).
 */
int tok_b64url_decode(const char *in, size_t len, unsigned char **out,
                      size_t *outlen)
{
    unsigned char *buf;
    size_t i, o = 0, rem = len % 4;
    unsigned long v = 0;
    int d;

    if (!in || !out || !outlen || rem == 1)
        return -1;
    buf = malloc(len / 4 * 3 + 3);
    if (!buf)
        return -1;
    for (i = 0; i < len; i++) {
        d = b64url_value((unsigned char)in[i]);
        if (d < 0)
            goto fail;
        v = v << 6 | (unsigned long)d;
        if (i % 4 == 3) {
            buf[o++] = (unsigned char)(v >> 16);
            buf[o++] = (unsigned char)(v >> 8);
            buf[o++] = (unsigned char)v;
            v = 0;
        }
    }
    if (rem == 2) {
        if (v & 0xf)
            goto fail;
        buf[o++] = (unsigned char)(v >> 4);
    } else if (rem == 3) {
        if (v & 0x3)
            goto fail;
        buf[o++] = (unsigned char)(v >> 10);
        buf[o++] = (unsigned char)(v >> 2);
    }
    *out = buf;
    *outlen = o;
    return 0;
fail:
    free(buf);
    return -1;
}

int tok_text_ok(const char *s, size_t len, size_t maxlen)
{
    size_t i;

    if (len == 0 || len >= maxlen || strlen(s) != len)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

int tok_role_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len >= 32 || strlen(s) != len)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == ',')
            return 0;
    }
    return 1;
}

/* Never prompts: an encrypted PEM simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* A copy holding only the public half, so a keyset never keeps secrets. */
static EVP_PKEY *public_half(EVP_PKEY *pkey)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    EVP_PKEY *pub;
    int n = i2d_PUBKEY(pkey, &der);

    if (n <= 0)
        return NULL;
    p = der;
    pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pub;
}

EVP_PKEY *tok_rsa_from_pem(const char *pem, size_t len, int want_private)
{
    EVP_PKEY *pkey = NULL, *priv = NULL;
    BIO *bio;

    if (!pem || len == 0 || len > INT_MAX)
        return NULL;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return NULL;
    if (!want_private)
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (!pkey && BIO_reset(bio) == 1) {
        priv = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        if (priv && !want_private) {
            pkey = public_half(priv);
            EVP_PKEY_free(priv);
        } else {
            pkey = priv;
        }
    }
    BIO_free(bio);
    /* Failed attempts leave entries in this thread's error queue. */
    ERR_clear_error();
    if (pkey && (!EVP_PKEY_is_a(pkey, "RSA") ||
                 EVP_PKEY_get_bits(pkey) < TOK_RSA_MIN_BITS)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

/* JWK "n" and "e": unsigned big-endian, minimal length, base64url. */
static int rsa_jwk_members(const EVP_PKEY *pkey, char **n_out, char **e_out)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *buf = NULL;
    int rc = -1, nlen, elen;

    *n_out = *e_out = NULL;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        goto cleanup;
    nlen = BN_num_bytes(n);
    elen = BN_num_bytes(e);
    buf = malloc((size_t)(nlen > elen ? nlen : elen) + 1);
    if (!buf)
        goto cleanup;
    BN_bn2bin(n, buf);
    *n_out = tok_b64url_encode(buf, (size_t)nlen);
    BN_bn2bin(e, buf);
    *e_out = tok_b64url_encode(buf, (size_t)elen);
    if (*n_out && *e_out)
        rc = 0;
cleanup:
    if (rc != 0) {
        free(*n_out);
        free(*e_out);
        *n_out = *e_out = NULL;
    }
    free(buf);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return rc;
}

/* RFC 7638 §3: SHA-256 of the required members, sorted, no whitespace. */
static int thumbprint_of(const char *n_b64, const char *e_b64, char *kid)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *json, *b64;
    size_t size = strlen(n_b64) + strlen(e_b64) + 32;
    int w;

    json = malloc(size);
    if (!json)
        return -1;
    w = snprintf(json, size, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
                 e_b64, n_b64);
    if (w < 0 || (size_t)w >= size) {
        free(json);
        return -1;
    }
    tok_sha256(json, (size_t)w, digest);
    free(json);
    b64 = tok_b64url_encode(digest, sizeof(digest));
    if (!b64)
        return -1;
    snprintf(kid, TOK_KID_MAX + 1, "%s", b64);
    free(b64);
    return 0;
}

int tok_rsa_thumbprint(const EVP_PKEY *pkey, char *kid)
{
    char *n = NULL, *e = NULL;
    int rc;

    if (rsa_jwk_members(pkey, &n, &e) != 0)
        return -1;
    rc = thumbprint_of(n, e, kid);
    free(n);
    free(e);
    return rc;
}

struct tok_keyset *tok_keyset_new(void)
{
    static _Atomic unsigned long long next_id = 1;
    struct tok_keyset *ks = calloc(1, sizeof(*ks));

    if (!ks)
        return NULL;
    ks->id = atomic_fetch_add(&next_id, 1);
    ks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ks->sha256) {
        free(ks);
        return NULL;
    }
    return ks;
}

static void key_clear(struct tok_key *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k->n_b64);
    free(k->e_b64);
    memset(k, 0, sizeof(*k));
}

void tok_keyset_free(struct tok_keyset *ks)
{
    size_t i;

    if (!ks)
        return;
    for (i = 0; i < ks->n; i++)
        key_clear(&ks->keys[i]);
    free(ks->keys);
    EVP_MD_free(ks->sha256);
    free(ks);
}

size_t tok_keyset_count(const struct tok_keyset *ks)
{
    return ks ? ks->n : 0;
}

const struct tok_key *tok_keyset_find(const struct tok_keyset *ks,
                                      const char *kid)
{
    size_t i;

    for (i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

static int kid_ok(const char *kid)
{
    size_t len = strlen(kid);

    return len > 0 && len <= TOK_KID_MAX;
}

/* Takes the contents of *k on success; on failure *k is left to caller. */
static int keyset_push(struct tok_keyset *ks, struct tok_key *k)
{
    if (tok_keyset_find(ks, k->kid))
        return -1;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 4;
        struct tok_key *keys = realloc(ks->keys, cap * sizeof(*keys));
        if (!keys)
            return -1;
        ks->keys = keys;
        ks->cap = cap;
    }
    ks->keys[ks->n++] = *k;
    return 0;
}

int tok_keyset_add_rsa_pem(struct tok_keyset *ks, const char *pem,
                           size_t len, const char *kid, char *kid_out)
{
    struct tok_key k;

    memset(&k, 0, sizeof(k));
    if (!ks || (kid && !kid_ok(kid)))
        return -1;
    k.alg = TOK_ALG_RS256;
    k.pkey = tok_rsa_from_pem(pem, len, 0);
    if (!k.pkey || rsa_jwk_members(k.pkey, &k.n_b64, &k.e_b64) != 0)
        goto fail;
    if (kid)
        snprintf(k.kid, sizeof(k.kid), "%s", kid);
    else if (thumbprint_of(k.n_b64, k.e_b64, k.kid) != 0)
        goto fail;
    if (keyset_push(ks, &k) != 0)
        goto fail;
    if (kid_out)
        snprintf(kid_out, TOK_KID_MAX + 1, "%s", k.kid);
    return 0;
fail:
    key_clear(&k);
    return -1;
}

int tok_keyset_add_hmac(struct tok_keyset *ks, const void *secret,
                        size_t len, const char *kid)
{
    struct tok_key k;

    memset(&k, 0, sizeof(k));
    if (!ks || !secret || len < TOK_HMAC_MIN_LEN || len > INT_MAX)
        return -1;
    if (!kid)
        kid = "hs256";
    if (!kid_ok(kid))
        return -1;
    k.alg = TOK_ALG_HS256;
    snprintf(k.kid, sizeof(k.kid), "%s", kid);
    k.secret = malloc(len);
    if (!k.secret)
        return -1;
    memcpy(k.secret, secret, len);
    k.secret_len = len;
    if (keyset_push(ks, &k) != 0) {
        key_clear(&k);
        return -1;
    }
    return 0;
}

static json_t *rsa_jwk(const struct tok_key *k)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA",
                     "use", "sig", "alg", "RS256", "kid", k->kid,
                     "n", k->n_b64, "e", k->e_b64);
}

json_t *tok_keyset_jwks(const struct tok_keyset *ks)
{
    json_t *keys = json_array(), *doc;
    size_t i;

    if (!keys)
        return NULL;
    for (i = 0; ks && i < ks->n; i++) {
        if (ks->keys[i].alg != TOK_ALG_RS256)
            continue;
        if (json_array_append_new(keys, rsa_jwk(&ks->keys[i])) != 0) {
            json_decref(keys);
            return NULL;
        }
    }
    doc = json_pack("{s:o}", "keys", keys);
    return doc;
}
