/*
 * Fuzzes redispool_parse_url (REDIS_URL): the whole input is the URL.
 * Checks the contract beyond "no crash": on success the host is a
 * non-empty NUL-terminated string that fits, port 1..65535, db >= 0.
 */
#include <stdio.h>

#include "../fuzz.h"
#include "redispool/redispool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_strndup(data, size);
    char host[256], pass[256], small[4];
    int port = -1, db = -1;

    if (redispool_parse_url(url, host, sizeof host, &port, pass, sizeof pass,
                            &db) == 0) {
        if (!host[0] || strlen(host) >= sizeof host ||
            strlen(pass) >= sizeof pass || port < 1 || port > 65535 ||
            db < 0)
            abort();
    }
    /* Tiny buffers: the length checks must hold, not overflow. */
    (void)redispool_parse_url(url, small, sizeof small, &port, small,
                              sizeof small, &db);
    free(url);
    return 0;
}
