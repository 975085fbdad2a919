#include "analytics_known.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* A keyed MAC context, or NULL (out of memory, no SipHash provider). */
static EVP_MAC_CTX *mac_new(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    unsigned char key[16];
    size_t size = 16;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
        OSSL_PARAM_END};

    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx == NULL || RAND_bytes(key, sizeof(key)) != 1 ||
        EVP_MAC_init(ctx, key, sizeof(key), params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int plat_an_known_hash(struct plat_an_known *k, const char *key, size_t len,
                       uint64_t out[2])
{
    unsigned char mac[16];
    size_t got = 0;

    out[0] = out[1] = 0;
    if (k->mac == NULL && (k->mac = mac_new()) == NULL)
        return -1;
    /* init with no key: start over with the key already set */
    if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(k->mac, (const unsigned char *)key, len) != 1 ||
        EVP_MAC_final(k->mac, mac, &got, sizeof(mac)) != 1 ||
        got != sizeof(mac))
        return -1;
    memcpy(out, mac, sizeof(mac));
    out[1] |= 1; /* {0, 0} marks an empty slot */
    return 0;
}

/* Slot holding `h`, or the empty slot where it would go. */
static size_t slot_of(const struct plat_an_known *k, const uint64_t h[2])
{
    size_t mask = k->cap - 1, s = (size_t)h[0] & mask;

    while (k->slots[s][1] != 0 &&
           (k->slots[s][0] != h[0] || k->slots[s][1] != h[1]))
        s = (s + 1) & mask;
    return s;
}

int plat_an_known_has_hash(const struct plat_an_known *k,
                           const uint64_t h[2])
{
    if (k->n == 0 || h[1] == 0)
        return 0;
    return k->slots[slot_of(k, h)][1] != 0;
}

void plat_an_known_add_hash(struct plat_an_known *k, const uint64_t h[2])
{
    size_t s;

    if (h[1] == 0)
        return;
    if (k->slots == NULL) {
        /* Load factor <= 1/2 at PLAT_AN_KNOWN_MAX keys. */
        k->slots = calloc(2 * (size_t)PLAT_AN_KNOWN_MAX, sizeof(*k->slots));
        if (k->slots == NULL)
            return;
        k->cap = 2 * (size_t)PLAT_AN_KNOWN_MAX;
    }
    if (k->n >= PLAT_AN_KNOWN_MAX)
        plat_an_known_clear(k);
    s = slot_of(k, h);
    if (k->slots[s][1] != 0)
        return;
    k->slots[s][0] = h[0];
    k->slots[s][1] = h[1];
    k->n++;
}

void plat_an_known_clear(struct plat_an_known *k)
{
    if (k->slots != NULL && k->n > 0)
        memset(k->slots, 0, k->cap * sizeof(*k->slots));
    k->n = 0;
}

void plat_an_known_cleanup(struct plat_an_known *k)
{
    free(k->slots);
    EVP_MAC_CTX_free(k->mac);
    memset(k, 0, sizeof(*k));
}
