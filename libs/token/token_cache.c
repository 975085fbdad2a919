#include "token/token_cache.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4
#define STRIPES 64

struct entry {
    unsigned char key[SHA256_DIGEST_LENGTH];
    long long expires; /* 0: empty */
    struct tok_claims claims;
};

struct tok_cache {
    size_t nsets;                 /* power of two */
    int ttl_s;
    pthread_mutex_t locks[STRIPES]; /* set i under locks[i % STRIPES] */
    struct entry *e;              /* nsets * WAYS */
};

struct tok_cache *tok_cache_new(size_t capacity, int ttl_s)
{
    struct tok_cache *tc;
    size_t nsets = 1;

    if (capacity < WAYS || ttl_s < 1)
        return NULL;
    while (nsets * WAYS < capacity)
        nsets <<= 1;
    tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    tc->e = calloc(nsets * WAYS, sizeof(*tc->e));
    if (tc->e == NULL) {
        free(tc);
        return NULL;
    }
    tc->nsets = nsets;
    tc->ttl_s = ttl_s;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&tc->locks[i], NULL);
    return tc;
}

void tok_cache_free(struct tok_cache *tc)
{
    if (tc == NULL)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&tc->locks[i]);
    free(tc->e);
    free(tc);
}

/*
 * SHA-256 of the token: the cache key (a hash collision would hand one
 * token another's claims, so nothing weaker).
 */
static void token_key(const char *tok, size_t len,
                      unsigned char key[SHA256_DIGEST_LENGTH])
{
    tok_sha256(tok, len, key);
}

static size_t set_of(const struct tok_cache *tc,
                     const unsigned char *key)
{
    uint64_t h;

    memcpy(&h, key, sizeof(h));
    return (size_t)(h & (tc->nsets - 1));
}

static int get_key(struct tok_cache *tc,
                   const unsigned char key[SHA256_DIGEST_LENGTH], time_t now,
                   struct tok_claims *out)
{
    struct entry *set;
    size_t s;
    int hit = 0;

    s = set_of(tc, key);
    set = &tc->e[s * WAYS];
    pthread_mutex_lock(&tc->locks[s % STRIPES]);
    for (int w = 0; w < WAYS; w++) {
        if (set[w].expires > (long long)now &&
            CRYPTO_memcmp(set[w].key, key, SHA256_DIGEST_LENGTH) == 0) {
            *out = set[w].claims;
            hit = 1;
            break;
        }
    }
    pthread_mutex_unlock(&tc->locks[s % STRIPES]);
    return hit;
}

static void put_key(struct tok_cache *tc,
                    const unsigned char key[SHA256_DIGEST_LENGTH],
                    const struct tok_claims *c, time_t now)
{
    long long until = (long long)now + tc->ttl_s;
    struct entry *set, *victim;
    size_t s;

    if (c->exp < until)
        until = c->exp;
    if (until <= (long long)now)
        return;
    s = set_of(tc, key);
    set = &tc->e[s * WAYS];
    pthread_mutex_lock(&tc->locks[s % STRIPES]);
    victim = &set[0];
    for (int w = 0; w < WAYS; w++) {
        if (memcmp(set[w].key, key, SHA256_DIGEST_LENGTH) == 0 ||
            set[w].expires <= (long long)now) {
            victim = &set[w];
            break;
        }
        if (set[w].expires < victim->expires)
            victim = &set[w];
    }
    memcpy(victim->key, key, SHA256_DIGEST_LENGTH);
    victim->expires = until;
    victim->claims = *c;
    pthread_mutex_unlock(&tc->locks[s % STRIPES]);
}

int tok_cache_get(struct tok_cache *tc, const char *tok, size_t len,
                  time_t now, struct tok_claims *out)
{
    unsigned char key[SHA256_DIGEST_LENGTH];

    token_key(tok, len, key);
    return get_key(tc, key, now, out);
}

void tok_cache_put(struct tok_cache *tc, const char *tok, size_t len,
                   const struct tok_claims *c, time_t now)
{
    unsigned char key[SHA256_DIGEST_LENGTH];

    token_key(tok, len, key);
    put_key(tc, key, c, now);
}

enum tok_err tok_cache_verify(struct tok_cache *tc,
                              const struct tok_keyset *ks,
                              const struct tok_policy *pol, const char *tok,
                              size_t len, time_t now,
                              struct tok_claims *out)
{
    unsigned char key[SHA256_DIGEST_LENGTH];
    enum tok_err e;

    if (tc == NULL)
        return tok_verify(ks, pol, tok, len, now, out);
    token_key(tok, len, key);
    if (get_key(tc, key, now, out))
        return TOK_OK;
    e = tok_verify(ks, pol, tok, len, now, out);
    if (e == TOK_OK)
        put_key(tc, key, out, now);
    return e;
}

void tok_cache_clear(struct tok_cache *tc)
{
    for (size_t s = 0; s < tc->nsets; s++) {
        pthread_mutex_lock(&tc->locks[s % STRIPES]);
        for (int w = 0; w < WAYS; w++)
            tc->e[s * WAYS + w].expires = 0;
        pthread_mutex_unlock(&tc->locks[s % STRIPES]);
    }
}
