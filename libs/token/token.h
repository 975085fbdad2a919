/*
 * token — JWT access tokens: issuing (RS256 / HS256) and verification that
 * follows RFC 8725 (JWT BCP) and RFC 7519.
 *
 * Why not libjwt for verification: Debian's libjwt 1.10 takes the algorithm
 * from the token header (so an HS256 token keyed with the RSA public-key PEM
 * verifies), checks no claims, and re-parses the PEM on every call (about
 * 0.06 of OpenSSL's raw RSA verify). Verification here holds parsed keys
 * (EVP_PKEY) and binds each key to one algorithm. Issuing uses libjwt.
 *
 * Rules tok_verify() enforces:
 *  - exactly three base64url segments, no padding, total <= TOK_MAX_LEN;
 *  - header is a JSON object; "alg" must be the algorithm bound to the key
 *    named by "kid" (RFC 8725 §3.1); "none" is never accepted; a missing
 *    "kid" is accepted only when the keyset holds exactly one key;
 *    "typ", when present, must be "JWT" or "at+jwt" (RFC 8725 §3.11);
 *    "crit" is rejected (RFC 7515 §4.1.11: we understand no extensions);
 *  - signature checked with the key's algorithm (RS256: RSASSA-PKCS1-v1_5
 *    SHA-256, RFC 7518 §3.3; HS256: HMAC-SHA256 compared in constant time);
 *  - claims: "iss" equals the policy's issuer, "aud" equals or contains the
 *    policy's audience (RFC 7519 §4.1.3), "exp" required and
 *    now < exp + leeway (§4.1.4), "nbf" and "iat" not after now + leeway
 *    (§4.1.5), "sub" and "jti" non-empty strings; leeway <= 60 s.
 *
 * Thread-safety: a keyset is built by one thread, then tok_verify() may run
 * concurrently from any number of threads (it only reads the keyset).
 */
#ifndef BASALT_TOKEN_H
#define BASALT_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#define TOK_MAX_LEN 8192
#define TOK_KID_MAX 64
#define TOK_MAX_ROLES 8

enum tok_alg {
    TOK_ALG_RS256 = 1,
    TOK_ALG_HS256 = 2,
};

enum tok_err {
    TOK_OK = 0,
    TOK_EMALFORMED,   /* not three base64url segments / bad JSON */
    TOK_ETOOLONG,     /* over TOK_MAX_LEN */
    TOK_EALG,         /* alg none, unknown, or not the key's algorithm */
    TOK_EKID,         /* kid unknown (or missing with several keys) */
    TOK_ETYP,         /* typ not JWT / at+jwt, or crit present */
    TOK_ESIGNATURE,   /* signature does not verify */
    TOK_EEXPIRED,     /* exp in the past (beyond leeway) or missing */
    TOK_ENOTYET,      /* nbf / iat in the future (beyond leeway) */
    TOK_EISS,         /* iss missing or wrong */
    TOK_EAUD,         /* aud missing or wrong */
    TOK_ECLAIMS,      /* sub / jti missing or of the wrong type */
    TOK_ENOMEM,
};

/* Short stable text for an error ("expired", "bad_signature" ...). */
const char *tok_strerror(enum tok_err e);

struct tok_keyset;

/* What a verifier requires beyond the signature. Strings are borrowed. */
struct tok_policy {
    const char *issuer;    /* required "iss" */
    const char *audience;  /* required in "aud" */
    int leeway_s;          /* clock skew allowed, 0..60 */
};

/* Verified claims. Strings are NUL-terminated copies. */
struct tok_claims {
    char sub[64];
    char email[320];
    char jti[64];
    char kid[TOK_KID_MAX + 1];
    char roles[TOK_MAX_ROLES][32];
    size_t nroles;
    char roles_csv[TOK_MAX_ROLES * 33]; /* "user,admin" */
    long long exp, iat, nbf;
    enum tok_alg alg;
};

/* Empty keyset; NULL on OOM. */
struct tok_keyset *tok_keyset_new(void);
void tok_keyset_free(struct tok_keyset *ks);

/*
 * Adds an RSA key from PEM (public key, or private key whose public half is
 * used) for RS256. `kid` NULL derives it as the RFC 7638 JWK thumbprint
 * (base64url SHA-256). The kid used is copied to kid_out when not NULL
 * (TOK_KID_MAX + 1 bytes). Returns 0, or -1 on unparseable PEM / not RSA /
 * duplicate kid / OOM.
 */
int tok_keyset_add_rsa_pem(struct tok_keyset *ks, const char *pem,
                           size_t len, const char *kid, char *kid_out);

/*
 * Adds an HS256 secret (>= 32 bytes, RFC 7518 §3.2); `kid` NULL means
 * "hs256". Returns 0, or -1 when too short / duplicate kid / OOM.
 */
int tok_keyset_add_hmac(struct tok_keyset *ks, const void *secret,
                        size_t len, const char *kid);

/* Number of keys. */
size_t tok_keyset_count(const struct tok_keyset *ks);

/*
 * The public RSA keys as a JWKS document (RFC 7517 §5):
 * {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":..,"n":..,"e":..}]}
 * HMAC secrets are never published. New reference; NULL on OOM.
 */
json_t *tok_keyset_jwks(const struct tok_keyset *ks);

/*
 * Verifies `token` (len bytes, need not be NUL-terminated) against `ks` and
 * `pol` at time `now` (seconds since the epoch). Fills *out on TOK_OK;
 * *out is unspecified otherwise.
 */
enum tok_err tok_verify(const struct tok_keyset *ks,
                        const struct tok_policy *pol, const char *token,
                        size_t len, time_t now, struct tok_claims *out);

/* An issuer: one signing key (RS256 private PEM or HS256 secret). */
struct tok_signer;

/*
 * New RS256 signer from a private-key PEM; kid NULL derives the RFC 7638
 * thumbprint (the same value tok_keyset_add_rsa_pem derives from the public
 * half). NULL on bad key / OOM.
 */
struct tok_signer *tok_signer_new_rsa(const char *pem, size_t len,
                                      const char *kid);
/* New HS256 signer (secret >= 32 bytes); kid NULL means "hs256". */
struct tok_signer *tok_signer_new_hmac(const void *secret, size_t len,
                                       const char *kid);
void tok_signer_free(struct tok_signer *s);
const char *tok_signer_kid(const struct tok_signer *s);

/*
 * Adds this signer's verification key to `ks` (public half for RSA).
 * 0 or -1.
 */
int tok_signer_add_to_keyset(const struct tok_signer *s,
                             struct tok_keyset *ks);

/* Claims to issue. */
struct tok_issue {
    const char *issuer;
    const char *audience;
    const char *sub;
    const char *email;
    const char *const *roles;
    size_t nroles;
    long ttl_s;            /* exp = now + ttl_s */
    time_t now;
};

/*
 * Signs an access token with header {"alg","typ":"JWT","kid"} and claims
 * iss aud sub exp iat nbf jti email roles; jti is 128 random bits, hex.
 * Returns a malloc'd NUL-terminated token (caller frees) and copies the jti
 * into jti_out (33 bytes) when not NULL. NULL on failure.
 */
char *tok_sign(const struct tok_signer *s, const struct tok_issue *in,
               char *jti_out);

/*
 * SHA-256 (FIPS 180-4) of data[0..len) into out (32 bytes). The algorithm
 * is fetched from OpenSSL once per process (OpenSSL 3's one-shot SHA256()
 * fetches it on every call, a visible cost on hot paths). Thread-safe.
 */
void tok_sha256(const void *data, size_t len, unsigned char out[32]);

/* base64url without padding (RFC 4648 §5). Returns malloc'd string. */
char *tok_b64url_encode(const unsigned char *in, size_t len);
/* Decodes base64url without padding into malloc'd *out; -1 if invalid. */
int tok_b64url_decode(const char *in, size_t len, unsigned char **out,
                      size_t *outlen);

#endif
