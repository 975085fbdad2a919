/*
 * token issuing through libjwt. The signer keeps the key bytes because
 * libjwt takes (and re-parses) them on every token; the parsed RSA key is
 * kept for the thumbprint and the verification keyset.
 */
#include "token/token_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Owned by one thread to build; tok_sign() may then run from any thread. */
struct tok_signer {
    enum tok_alg alg;
    char kid[TOK_KID_MAX + 1];
    unsigned char *key;     /* PEM bytes (RS256) or secret (HS256) */
    size_t key_len;
    EVP_PKEY *pkey;         /* RS256 only */
};

static struct tok_signer *signer_new(enum tok_alg alg, const void *key,
                                     size_t len, const char *kid)
{
    struct tok_signer *s;

    if (kid && (kid[0] == '\0' || strlen(kid) > TOK_KID_MAX))
        return NULL;
    if (len == 0 || len > INT_MAX)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->alg = alg;
    s->key = malloc(len);
    if (!s->key) {
        free(s);
        return NULL;
    }
    memcpy(s->key, key, len);
    s->key_len = len;
    if (kid)
        snprintf(s->kid, sizeof(s->kid), "%s", kid);
    return s;
}

struct tok_signer *tok_signer_new_rsa(const char *pem, size_t len,
                                      const char *kid)
{
    struct tok_signer *s;
    /* Parsed without a passphrase first, so libjwt never prompts. */
    EVP_PKEY *pkey = tok_rsa_from_pem(pem, len, 1);

    if (!pkey)
        return NULL;
    s = signer_new(TOK_ALG_RS256, pem, len, kid);
    if (!s) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    s->pkey = pkey;
    if (!kid && tok_rsa_thumbprint(pkey, s->kid) != 0) {
        tok_signer_free(s);
        return NULL;
    }
    return s;
}

struct tok_signer *tok_signer_new_hmac(const void *secret, size_t len,
                                       const char *kid)
{
    if (!secret || len < TOK_HMAC_MIN_LEN)
        return NULL;
    return signer_new(TOK_ALG_HS256, secret, len, kid ? kid : "hs256");
}

void tok_signer_free(struct tok_signer *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->key, s->key_len);
    free(s->key);
    EVP_PKEY_free(s->pkey);
    free(s);
}

const char *tok_signer_kid(const struct tok_signer *s)
{
    return s ? s->kid : NULL;
}

int tok_signer_add_to_keyset(const struct tok_signer *s,
                             struct tok_keyset *ks)
{
    if (!s || !ks)
        return -1;
    if (s->alg == TOK_ALG_HS256)
        return tok_keyset_add_hmac(ks, s->key, s->key_len, s->kid);
    return tok_keyset_add_rsa_pem(ks, (const char *)s->key, s->key_len,
                                  s->kid, NULL);
}

/* Refuses what tok_verify() would refuse, so we never issue dud tokens. */
static int issue_ok(const struct tok_issue *in)
{
    size_t i;

    if (!in->issuer || !in->audience || !in->sub || in->ttl_s <= 0 ||
        in->nroles > TOK_MAX_ROLES || (in->nroles && !in->roles))
        return 0;
    if ((long long)in->now > LLONG_MAX - in->ttl_s)
        return 0;
    if (!tok_text_ok(in->sub, strlen(in->sub), 64))
        return 0;
    if (in->email && !tok_text_ok(in->email, strlen(in->email), 320))
        return 0;
    for (i = 0; i < in->nroles; i++)
        if (!in->roles[i] || !tok_role_ok(in->roles[i], strlen(in->roles[i])))
            return 0;
    return 1;
}

static json_t *claims_json(const struct tok_issue *in, const char *jti)
{
    json_t *c, *roles;
    size_t i;
    long long now = (long long)in->now;

    roles = json_array();
    if (!roles)
        return NULL;
    for (i = 0; i < in->nroles; i++) {
        if (json_array_append_new(roles, json_string(in->roles[i])) != 0) {
            json_decref(roles);
            return NULL;
        }
    }
    c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o}",
                  "iss", in->issuer, "aud", in->audience, "sub", in->sub,
                  "exp", (json_int_t)(now + in->ttl_s),
                  "iat", (json_int_t)now, "nbf", (json_int_t)now,
                  "jti", jti, "roles", roles);
    if (c && in->email &&
        json_object_set_new(c, "email", json_string(in->email)) != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

char *tok_sign(const struct tok_signer *s, const struct tok_issue *in,
               char *jti_out)
{
    unsigned char rnd[16];
    char jti[2 * sizeof(rnd) + 1];
    json_t *claims = NULL;
    char *claims_str = NULL, *token = NULL;
    jwt_t *jwt = NULL;
    jwt_alg_t alg;
    size_t i;

    if (!s || !in || !issue_ok(in))
        return NULL;
    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1)
        return NULL;
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    claims = claims_json(in, jti);
    if (!claims)
        goto cleanup;
    claims_str = json_dumps(claims, JSON_COMPACT);
    if (!claims_str)
        goto cleanup;
    alg = s->alg == TOK_ALG_RS256 ? JWT_ALG_RS256 : JWT_ALG_HS256;
    if (jwt_new(&jwt) != 0 ||
        jwt_set_alg(jwt, alg, s->key, (int)s->key_len) != 0 ||
        jwt_add_header(jwt, "kid", s->kid) != 0 ||
        jwt_add_header(jwt, "typ", "JWT") != 0 ||
        jwt_add_grants_json(jwt, claims_str) != 0)
        goto cleanup;
    /* libjwt 1.10 allocates with malloc(), so the caller's free() fits. */
    token = jwt_encode_str(jwt);
    if (token && jti_out)
        memcpy(jti_out, jti, sizeof(jti));
cleanup:
    if (jwt)
        jwt_free(jwt);
    free(claims_str);
    json_decref(claims);
    return token;
}
