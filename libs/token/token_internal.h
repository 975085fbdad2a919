/*
 * token internals shared by token_keys.c, token_verify.c and token_sign.c.
 * Not part of the public contract; include only from libs/token.
 */
#ifndef BASALT_TOKEN_INTERNAL_H
#define BASALT_TOKEN_INTERNAL_H

#include <openssl/evp.h>

#include "token/token.h"

/* RSA keys below this size are refused (RFC 7518 §3.3: 2048 or larger). */
#define TOK_RSA_MIN_BITS 2048
/* HMAC secrets below this size are refused (RFC 7518 §3.2). */
#define TOK_HMAC_MIN_LEN 32

/* One verification key, bound to exactly one algorithm. */
struct tok_key {
    char kid[TOK_KID_MAX + 1];
    enum tok_alg alg;
    EVP_PKEY *pkey;          /* RS256: public half only */
    unsigned char *secret;   /* HS256: owned copy, cleansed on free */
    size_t secret_len;
    char *n_b64, *e_b64;     /* RS256: JWK "n" and "e" */
};

/*
 * Immutable after construction, so readers need no lock (see token.h).
 * sha256 is fetched once: implicit fetches per verify cost a lookup each.
 */
struct tok_keyset {
    struct tok_key *keys;
    size_t n, cap;
    EVP_MD *sha256;
    unsigned long long id; /* unique per keyset for the process lifetime */
};

/* Key named `kid` (NUL-terminated), or NULL. */
const struct tok_key *tok_keyset_find(const struct tok_keyset *ks,
                                      const char *kid);

/*
 * Parses an unencrypted PEM. want_private: only a private key is accepted;
 * otherwise a public key, or a private key reduced to its public half.
 * The key must be RSA of at least TOK_RSA_MIN_BITS. New key or NULL.
 */
EVP_PKEY *tok_rsa_from_pem(const char *pem, size_t len, int want_private);

/*
 * RFC 7638 thumbprint of an RSA key as base64url into kid
 * (TOK_KID_MAX + 1 bytes). 0 or -1 (OOM).
 */
int tok_rsa_thumbprint(const EVP_PKEY *pkey, char *kid);

/*
 * Whether s (len bytes) is 1..maxlen-1 bytes without control characters:
 * claims end up in HTTP headers (X-User-*), where CR/LF would split them.
 */
int tok_text_ok(const char *s, size_t len, size_t maxlen);

/* Whether a role is 1..31 printable ASCII bytes without ',' or space. */
int tok_role_ok(const char *s, size_t len);

#endif
