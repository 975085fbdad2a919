/*
 * analytics_known — the presence keys (owner, event, hour, distinct_id)
 * one analytics writer connection has seen committed, so rows with such a
 * key skip the analytics_hourly_ids insert (analytics_copy.c).
 *
 * Keys are remembered as 128-bit SipHash-2-4 values (OpenSSL's EVP_MAC
 * "SIPHASH"; Aumasson & Bernstein, "SipHash", 2012) under a random key
 * drawn per set: 16 bytes a key instead of the ~80-byte string, so one
 * set holds PLAT_AN_KNOWN_MAX keys in 8 MiB. Nobody who does not know
 * the SipHash key can make two presence keys collide, and an accidental
 * collision (which would drop one distinct_id from one hour's uniques)
 * has probability ~n^2 / 2^128.
 *
 * The set is a cache: when it holds PLAT_AN_KNOWN_MAX keys it starts
 * over empty; plat_an_known_clear() forgets everything (a new database
 * session may follow a restore). Memory is allocated on first use.
 *
 * Thread-safety: a set belongs to one thread (its writer connection's).
 */
#ifndef PLAT_ANALYTICS_KNOWN_H
#define PLAT_ANALYTICS_KNOWN_H

#include <stddef.h>
#include <stdint.h>

#define PLAT_AN_KNOWN_MAX (1u << 18)

struct plat_an_known {
    uint64_t (*slots)[2]; /* open addressing; {0, 0} is empty */
    size_t cap, n;        /* cap: power of two, 2 * PLAT_AN_KNOWN_MAX */
    void *mac;            /* EVP_MAC_CTX keyed with the random key */
};

/*
 * The set's value for `key` (len bytes) into `out`: 0, or -1 (no MAC:
 * out is {0, 0}, which is never known and never added). Computing it
 * once lets a caller look a key up and add it later without hashing
 * twice.
 */
int plat_an_known_hash(struct plat_an_known *k, const char *key, size_t len,
                       uint64_t out[2]);

/* Whether the key of value `h` was added since the last clear. */
int plat_an_known_has_hash(const struct plat_an_known *k,
                           const uint64_t h[2]);

/* Remembers the key of value `h`. Best effort: without memory, nothing. */
void plat_an_known_add_hash(struct plat_an_known *k, const uint64_t h[2]);

/* Forgets every key (keeps the memory and the MAC). */
void plat_an_known_clear(struct plat_an_known *k);

/* Frees the memory; the struct is zeroed and usable again. */
void plat_an_known_cleanup(struct plat_an_known *k);

#endif
