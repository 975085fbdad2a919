/*
 * password — argon2id hashing (RFC 9106) and the password policy.
 *
 * Hashes are stored in the PHC encoded form
 *   $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>
 * with a 16-byte salt from RAND_bytes and a 32-byte hash, so verification
 * reads the parameters from the stored string and old hashes keep
 * verifying after the settings change.
 *
 * Thread-safety: every function may be called from any thread. Hashing
 * and verifying allocate memory_kib KiB each and take tens of
 * milliseconds: the caller bounds how many run at once.
 */
#ifndef PLAT_PASSWORD_H
#define PLAT_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#define PLAT_PASSWORD_MIN_CHARS 8
#define PLAT_PASSWORD_MAX_CHARS 128
#define PLAT_PASSWORD_SALT_LEN 16
#define PLAT_PASSWORD_HASH_LEN 32
/* Encoded hash buffer size; ample for any uint32 parameters. */
#define PLAT_PASSWORD_ENCODED_MAX 160

struct plat_password_params {
    uint32_t memory_kib;   /* m: KiB of memory per hash */
    uint32_t iterations;   /* t: passes over memory */
    uint32_t parallelism;  /* p: lanes (computed on one thread here) */
};

/*
 * Hashes `pw` (`len` bytes) into `out` (`outlen` bytes, at least
 * PLAT_PASSWORD_ENCODED_MAX) as an encoded argon2id string.
 * 0, or -1 when the RNG or argon2 fails (out is then "").
 */
int plat_password_hash(const struct plat_password_params *pp,
                       const char *pw, size_t len, char *out, size_t outlen);

/*
 * Checks `pw` against an encoded hash. 1 on match, 0 on mismatch,
 * -1 when `encoded` is not a valid argon2id string or argon2 fails
 * (out of memory). Compares in constant time (libargon2).
 */
int plat_password_verify(const char *encoded, const char *pw, size_t len);

/*
 * Applies the policy to a candidate password (`len` bytes, may hold no
 * NUL): valid UTF-8, PLAT_PASSWORD_MIN_CHARS..PLAT_PASSWORD_MAX_CHARS code
 * points, not equal to `email` (normalised; case-insensitive compare, may
 * be NULL), not one of the most common passwords. 0 when acceptable;
 * otherwise -1 and a client-safe reason in `why`.
 */
int plat_password_policy(const char *pw, size_t len, const char *email,
                         char *why, size_t whylen);

#endif
