#include "refresh.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "token/token.h"

int plat_refresh_generate(char *text, unsigned char *hash)
{
    unsigned char raw[PLAT_REFRESH_BYTES];
    char *enc;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    enc = tok_b64url_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    if (enc == NULL || strlen(enc) != PLAT_REFRESH_TEXT_LEN) {
        free(enc);
        return -1;
    }
    memcpy(text, enc, PLAT_REFRESH_TEXT_LEN + 1);
    OPENSSL_cleanse(enc, PLAT_REFRESH_TEXT_LEN);
    free(enc);
    SHA256((const unsigned char *)text, PLAT_REFRESH_TEXT_LEN, hash);
    return 0;
}

int plat_refresh_hash(const char *text, size_t len, unsigned char *hash)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;

    /* only what plat_refresh_generate() can produce */
    if (len != PLAT_REFRESH_TEXT_LEN ||
        tok_b64url_decode(text, len, &raw, &rawlen) != 0)
        return -1;
    OPENSSL_cleanse(raw, rawlen);
    free(raw);
    SHA256((const unsigned char *)text, len, hash);
    return 0;
}
