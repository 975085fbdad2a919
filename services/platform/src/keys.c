#include "keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "plat.h"

#define PEM_MAX (64 * 1024)

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(PEM_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, PEM_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > PEM_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int add_one(struct plat_ctx *ctx, const char *path)
{
    char kid[TOK_KID_MAX + 1];
    size_t len = 0;
    char *pem = slurp(path, &len);
    int rc;

    if (pem == NULL) {
        log_error(NULL, "JWT_PREVIOUS_PUBLIC_KEY_FILES: cannot read %s",
                  path);
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
