#include "refresh.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding of exactly PLAT_REFRESH_BYTES bytes. */
static void encode(const unsigned char *in, char *out)
{
    size_t i = 0, o = 0;

    for (; i + 3 <= PLAT_REFRESH_BYTES; i += 3) {
        unsigned long v = ((unsigned long)in[i] << 16) |
                          ((unsigned long)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    /* 32 = 3 * 10 + 2: two bytes left, three characters. */
    {
        unsigned long v = ((unsigned long)in[i] << 16) |
                          ((unsigned long)in[i + 1] << 8);
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
}

int plat_refresh_generate(char *text, unsigned char *hash)
{
    unsigned char raw[PLAT_REFRESH_BYTES];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    encode(raw, text);
    OPENSSL_cleanse(raw, sizeof(raw));
    SHA256((const unsigned char *)text, PLAT_REFRESH_TEXT_LEN, hash);
    return 0;
}

int plat_refresh_hash(const char *text, size_t len, unsigned char *hash)
{
    if (len != PLAT_REFRESH_TEXT_LEN)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0' || strchr(b64url, text[i]) == NULL)
            return -1;
    SHA256((const unsigned char *)text, len, hash);
    return 0;
}
