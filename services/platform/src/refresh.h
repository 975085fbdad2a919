/*
 * refresh — opaque refresh tokens: 256 random bits, base64url (43
 * characters, no padding), stored only as their SHA-256.
 *
 * Thread-safety: any thread (OpenSSL's RAND and SHA-256 are thread-safe).
 */
#ifndef PLAT_REFRESH_H
#define PLAT_REFRESH_H

#include <stddef.h>

#define PLAT_REFRESH_BYTES 32
#define PLAT_REFRESH_TEXT_LEN 43     /* base64url of 32 bytes */
#define PLAT_REFRESH_HASH_LEN 32     /* SHA-256 */

/*
 * Generates a token into `text` (PLAT_REFRESH_TEXT_LEN + 1 bytes) and its
 * hash into `hash` (PLAT_REFRESH_HASH_LEN bytes). 0, or -1 when the RNG
 * fails (nothing usable is written).
 */
int plat_refresh_generate(char *text, unsigned char *hash);

/*
 * Hashes a presented token (`len` bytes) into `hash`. -1 when it cannot
 * be one of ours (wrong length or alphabet), so lookups are skipped.
 */
int plat_refresh_hash(const char *text, size_t len, unsigned char *hash);

#endif
