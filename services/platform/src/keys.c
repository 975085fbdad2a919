#include "keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "plat.h"

#define PEM_MAX (64 * 1024)

static int add_one(struct plat_ctx *ctx, const char *path)
{
    char kid[TOK_KID_MAX + 1], why[300];
    size_t len = 0;
    char *pem = cfg_read_file(path, PEM_MAX, &len, why, sizeof(why));
    int rc;

    if (pem == NULL) {
        log_error(NULL, "JWT_PREVIOUS_PUBLIC_KEY_FILES: %s", why);
        return -1;
    }
    rc = tok_keyset_add_rsa_pem(ctx->keyset, pem, len, NULL, kid);
    free(pem);
    if (rc != 0) {
        log_error(NULL, "JWT_PREVIOUS_PUBLIC_KEY_FILES: %s is not an RSA "
                  "public key PEM (or the same key twice)", path);
        return -1;
    }
    log_kv(LOG_LVL_INFO, NULL, "previous verification key loaded", "kid",
           kid, "file", path, NULL);
    return 0;
}

int plat_keys_add_previous(struct plat_ctx *ctx)
{
    const char *p = ctx->set->previous_public_key_files;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
        char path[4096];

        while (l > 0 && isspace((unsigned char)*p)) {
            p++;
            l--;
        }
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            l--;
        if (l >= sizeof(path)) {
            log_error(NULL, "JWT_PREVIOUS_PUBLIC_KEY_FILES: path too long");
            return -1;
        }
        if (l > 0) {
            memcpy(path, p, l);
            path[l] = '\0';
            if (add_one(ctx, path) != 0)
                return -1;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}
