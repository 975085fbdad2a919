/*
 * token verification: the rules listed in token.h, in this order —
 * shape, header (typ, crit, alg, kid), signature, then claims. The payload
 * is parsed only after its signature verified.
 */
#include "token/token_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>

#define TOK_MAX_LEEWAY_S 60

/* The three segments of a compact JWS, as offsets into the token. */
struct segments {
    const char *hdr, *pay, *sig;
    size_t hdr_len, pay_len, sig_len;
    size_t signed_len; /* "header.payload" */
};

static int split(const char *t, size_t len, struct segments *s)
{
    const char *end = t + len, *d1, *d2;

    d1 = memchr(t, '.', len);
    if (!d1)
        return -1;
    d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return -1;
    s->hdr = t;
    s->hdr_len = (size_t)(d1 - t);
    s->pay = d1 + 1;
    s->pay_len = (size_t)(d2 - d1 - 1);
    s->sig = d2 + 1;
    s->sig_len = (size_t)(end - d2 - 1);
    s->signed_len = (size_t)(d2 - t);
    return 0;
}

/* Decodes a segment holding a JSON object; NULL when it is anything else. */
static json_t *decode_object(const char *seg, size_t len, enum tok_err *err)
{
    unsigned char *raw;
    size_t rawlen;
    json_t *obj;
    json_error_t jerr;

    *err = TOK_EMALFORMED;
    if (len == 0 || tok_b64url_decode(seg, len, &raw, &rawlen) != 0)
        return NULL;
    /* Duplicate members are how parsers are played against each other. */
    obj = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES,
                     &jerr);
    free(raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

static enum tok_err check_header(const struct tok_keyset *ks, json_t *hdr,
                                 const struct tok_key **key_out)
{
    json_t *typ = json_object_get(hdr, "typ");
    json_t *alg = json_object_get(hdr, "alg");
    json_t *kid = json_object_get(hdr, "kid");
    const struct tok_key *key;
    const char *a;
    enum tok_alg want;

    if (json_object_get(hdr, "crit"))
        return TOK_ETYP;
    if (typ) {
        const char *t = json_string_value(typ);
        if (!t || (strcmp(t, "JWT") != 0 && strcmp(t, "at+jwt") != 0))
            return TOK_ETYP;
    }
    a = json_string_value(alg);
    if (!a)
        return TOK_EALG;
    if (strcmp(a, "RS256") == 0)
        want = TOK_ALG_RS256;
    else if (strcmp(a, "HS256") == 0)
        want = TOK_ALG_HS256;
    else
        return TOK_EALG; /* "none" and everything we do not implement */
    if (kid) {
        const char *k = json_string_value(kid);
        if (!k || json_string_length(kid) > TOK_KID_MAX)
            return TOK_EKID;
        key = tok_keyset_find(ks, k);
    } else {
        key = ks->n == 1 ? &ks->keys[0] : NULL;
    }
    if (!key)
        return TOK_EKID;
    /* RFC 8725 §3.1: the key decides the algorithm, never the token. */
    if (key->alg != want)
        return TOK_EALG;
    *key_out = key;
    return TOK_OK;
}

static enum tok_err check_signature(const struct tok_keyset *ks,
                                    const struct tok_key *key,
                                    const char *data, size_t len,
                                    const unsigned char *sig, size_t siglen)
{
    enum tok_err rc = TOK_ESIGNATURE;

    if (key->alg == TOK_ALG_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;

        if (!HMAC(ks->sha256, key->secret, (int)key->secret_len,
                  (const unsigned char *)data, len, mac, &maclen))
            rc = TOK_ENOMEM;
        else if (siglen == maclen && CRYPTO_memcmp(mac, sig, siglen) == 0)
            rc = TOK_OK;
        OPENSSL_cleanse(mac, sizeof(mac));
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        if (!ctx)
            return TOK_ENOMEM;
        if (siglen > 0 &&
            EVP_DigestVerifyInit(ctx, NULL, ks->sha256, NULL, key->pkey) == 1 &&
            EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data,
                             len) == 1)
            rc = TOK_OK;
        EVP_MD_CTX_free(ctx);
    }
    ERR_clear_error();
    return rc;
}

/* Optional integer claim. 1 present, 0 absent, -1 of the wrong type. */
static int get_int(json_t *claims, const char *name, long long *v)
{
    json_t *j = json_object_get(claims, name);

    *v = 0;
    if (!j)
        return 0;
    if (!json_is_integer(j))
        return -1;
    *v = json_integer_value(j);
    return 1;
}

/* Required or optional text claim copied into dst (size bytes). */
static int get_text(json_t *claims, const char *name, char *dst,
                    size_t size, int required)
{
    json_t *j = json_object_get(claims, name);
    const char *s = json_string_value(j);

    dst[0] = '\0';
    if (!j)
        return required ? -1 : 0;
    if (!s || !tok_text_ok(s, json_string_length(j), size))
        return -1;
    memcpy(dst, s, json_string_length(j) + 1);
    return 0;
}

static int audience_ok(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return 0;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

static int get_roles(json_t *claims, struct tok_claims *out)
{
    json_t *roles = json_object_get(claims, "roles"), *v;
    size_t i, pos = 0;

    out->nroles = 0;
    out->roles_csv[0] = '\0';
    if (!roles)
        return 0;
    if (!json_is_array(roles) || json_array_size(roles) > TOK_MAX_ROLES)
        return -1;
    json_array_foreach(roles, i, v) {
        const char *r = json_string_value(v);
        size_t rlen = json_string_length(v);

        if (!r || !tok_role_ok(r, rlen))
            return -1;
        memcpy(out->roles[i], r, rlen + 1);
        if (i > 0)
            out->roles_csv[pos++] = ',';
        memcpy(out->roles_csv + pos, r, rlen + 1);
        pos += rlen;
        out->nroles++;
    }
    return 0;
}

static enum tok_err check_claims(const struct tok_policy *pol, json_t *c,
                                 time_t now, struct tok_claims *out)
{
    const char *iss = json_string_value(json_object_get(c, "iss"));
    json_t *aud = json_object_get(c, "aud");
    long long t = (long long)now;
    int leeway = pol->leeway_s, has;

    if (leeway < 0)
        leeway = 0;
    if (leeway > TOK_MAX_LEEWAY_S)
        leeway = TOK_MAX_LEEWAY_S;
    if (!pol->issuer || !iss || strcmp(iss, pol->issuer) != 0)
        return TOK_EISS;
    if (!pol->audience || !aud || !audience_ok(aud, pol->audience))
        return TOK_EAUD;
    has = get_int(c, "exp", &out->exp);
    if (has == 0)
        return TOK_EEXPIRED;
    if (has < 0)
        return TOK_ECLAIMS;
    /* Written so that no sum can overflow for hostile values. */
    if (!(t - leeway < out->exp))
        return TOK_EEXPIRED;
    has = get_int(c, "nbf", &out->nbf);
    if (has < 0)
        return TOK_ECLAIMS;
    if (has && out->nbf > t + leeway)
        return TOK_ENOTYET;
    has = get_int(c, "iat", &out->iat);
    if (has < 0)
        return TOK_ECLAIMS;
    if (has && out->iat > t + leeway)
        return TOK_ENOTYET;
    if (get_text(c, "sub", out->sub, sizeof(out->sub), 1) != 0 ||
        get_text(c, "jti", out->jti, sizeof(out->jti), 1) != 0 ||
        get_text(c, "email", out->email, sizeof(out->email), 0) != 0 ||
        get_roles(c, out) != 0)
        return TOK_ECLAIMS;
    return TOK_OK;
}

/*
 * Per-thread memo of the last header segment this thread accepted. Tokens
 * from one issuer repeat the same header, so its decoding, JSON parse and
 * checks run once per thread instead of once per token. Keyed by the
 * keyset's id and key count (keys are only ever appended), so another or a
 * grown keyset misses. Only accepted headers are stored.
 */
struct hdr_memo {
    unsigned long long ks_id;
    size_t ks_n;
    size_t key_idx;
    size_t len;
    char seg[256];
};
static _Thread_local struct hdr_memo hdr_memo;

static const struct tok_key *hdr_memo_find(const struct tok_keyset *ks,
                                           const char *seg, size_t len)
{
    const struct hdr_memo *m = &hdr_memo;

    if (m->len == 0 || m->len != len || m->ks_id != ks->id ||
        m->ks_n != ks->n || memcmp(m->seg, seg, len) != 0)
        return NULL;
    return &ks->keys[m->key_idx];
}

static void hdr_memo_store(const struct tok_keyset *ks, const char *seg,
                           size_t len, const struct tok_key *key)
{
    struct hdr_memo *m = &hdr_memo;

    if (len > sizeof(m->seg))
        return;
    memcpy(m->seg, seg, len);
    m->len = len;
    m->ks_id = ks->id;
    m->ks_n = ks->n;
    m->key_idx = (size_t)(key - ks->keys);
}

enum tok_err tok_verify(const struct tok_keyset *ks,
                        const struct tok_policy *pol, const char *token,
                        size_t len, time_t now, struct tok_claims *out)
{
    struct segments seg;
    const struct tok_key *key = NULL;
    json_t *hdr = NULL, *claims = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    enum tok_err rc;

    if (!ks || !pol || !token || !out)
        return TOK_EMALFORMED;
    if (len > TOK_MAX_LEN)
        return TOK_ETOOLONG;
    if (split(token, len, &seg) != 0)
        return TOK_EMALFORMED;
    key = hdr_memo_find(ks, seg.hdr, seg.hdr_len);
    if (!key) {
        hdr = decode_object(seg.hdr, seg.hdr_len, &rc);
        if (!hdr)
            goto cleanup;
        rc = check_header(ks, hdr, &key);
        if (rc != TOK_OK)
            goto cleanup;
        hdr_memo_store(ks, seg.hdr, seg.hdr_len, key);
    }
    if (tok_b64url_decode(seg.sig, seg.sig_len, &sig, &siglen) != 0) {
        rc = TOK_EMALFORMED;
        goto cleanup;
    }
    rc = check_signature(ks, key, token, seg.signed_len, sig, siglen);
    if (rc != TOK_OK)
        goto cleanup;
    claims = decode_object(seg.pay, seg.pay_len, &rc);
    if (!claims)
        goto cleanup;
    memset(out, 0, sizeof(*out));
    rc = check_claims(pol, claims, now, out);
    if (rc != TOK_OK)
        goto cleanup;
    snprintf(out->kid, sizeof(out->kid), "%s", key->kid);
    out->alg = key->alg;
cleanup:
    json_decref(hdr);
    json_decref(claims);
    free(sig);
    return rc;
}
