#include "password.h"

#include <argon2.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "validation.h"

/*
 * The most common passwords of at least 8 characters in public breach
 * corpora (NCSC top 100k, SecLists). A short list catches the worst
 * choices without shipping a dictionary; compared case-insensitively.
 */
static const char *const common_passwords[] = {
    "password",   "password1",  "password12", "password123", "passw0rd",
    "p@ssw0rd",   "12345678",   "123456789",  "1234567890",  "12345678910",
    "87654321",   "11111111",   "00000000",   "88888888",    "123123123",
    "qwertyui",   "qwerty12",   "qwerty123",  "qwertyuiop",  "1q2w3e4r",
    "1q2w3e4r5t", "zaq12wsx",   "asdfghjk",   "asdfghjkl",   "abc12345",
    "abcd1234",   "iloveyou",   "iloveyou1",  "sunshine",    "princess",
    "football",   "baseball",   "superman",   "trustno1",    "welcome1",
    "letmein1",   "changeme",   "admin123",   "administrator", "whatever",
    "starwars",   "computer",   "michelle",   "jennifer",    "11223344",
    "basketball", "qwerty1234", "Aa123456",   "aa12345678",  "dragon123",
};

int plat_password_hash(const struct plat_password_params *pp,
                       const char *pw, size_t len, char *out, size_t outlen)
{
    unsigned char salt[PLAT_PASSWORD_SALT_LEN];
    int rc;

    if (outlen > 0)
        out[0] = '\0';
    if (outlen < PLAT_PASSWORD_ENCODED_MAX)
        return -1;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    rc = argon2id_hash_encoded(pp->iterations, pp->memory_kib,
                               pp->parallelism, pw, len, salt, sizeof(salt),
                               PLAT_PASSWORD_HASH_LEN, out, outlen);
    if (rc != ARGON2_OK) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int plat_password_verify(const char *encoded, const char *pw, size_t len)
{
    int rc;

    if (encoded == NULL || strncmp(encoded, "$argon2id$", 10) != 0)
        return -1;
    rc = argon2id_verify(encoded, pw, len);
    if (rc == ARGON2_OK)
        return 1;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return 0;
    return -1;
}

int plat_password_policy(const char *pw, size_t len, const char *email,
                         char *why, size_t whylen)
{
    long chars = plat_utf8_len(pw, len);

    if (chars < 0) {
        snprintf(why, whylen, "password must be valid UTF-8 text");
        return -1;
    }
    if (chars < PLAT_PASSWORD_MIN_CHARS) {
        snprintf(why, whylen, "password must be at least %d characters",
                 PLAT_PASSWORD_MIN_CHARS);
        return -1;
    }
    if (chars > PLAT_PASSWORD_MAX_CHARS) {
        snprintf(why, whylen, "password must be at most %d characters",
                 PLAT_PASSWORD_MAX_CHARS);
        return -1;
    }
    /* plat_utf8_len rejected NULs, so pw is a C string up to len. */
    if (email != NULL && strlen(email) == len &&
        strncasecmp(pw, email, len) == 0) {
        snprintf(why, whylen, "password must not be the email address");
        return -1;
    }
    for (size_t i = 0;
         i < sizeof(common_passwords) / sizeof(common_passwords[0]); i++) {
        const char *c = common_passwords[i];
        if (strlen(c) == len && strncasecmp(pw, c, len) == 0) {
            snprintf(why, whylen, "password is too common");
            return -1;
        }
    }
    return 0;
}
