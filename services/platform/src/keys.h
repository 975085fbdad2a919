/*
 * keys — signing-key rotation. The platform signs with one key (its
 * JWT_PRIVATE_KEY_FILE, or JWT_SECRET) and also trusts the public keys in
 * JWT_PREVIOUS_PUBLIC_KEY_FILES (comma list of RSA public-key PEM files):
 * they are published in the JWKS next to the current key and verify
 * bearer tokens here, so tokens signed before a rotation keep working
 * until they expire. See README "Key rotation".
 */
#ifndef PLAT_KEYS_H
#define PLAT_KEYS_H

struct plat_ctx;

/*
 * Adds every previous public key to ctx->keyset (kid = RFC 7638
 * thumbprint). 0, or -1 (logged, naming the file) when one cannot be read
 * or is not an RSA key (listing the current key again is an error).
 * Main thread, at start.
 */
int plat_keys_add_previous(struct plat_ctx *ctx);

#endif
