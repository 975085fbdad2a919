/*
 * fuzz — helpers shared by the libFuzzer harnesses (tests/fuzz/README.md).
 * Header-only so every harness stays one translation unit.
 */
#ifndef BASALT_FUZZ_H
#define BASALT_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated heap copy of the input (caller frees); aborts on OOM
 * so a failed allocation is not mistaken for a finding. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/*
 * Splits the input at the first `sep` byte: *head gets a NUL-terminated
 * copy of what is before it (caller frees), *rest and *restlen what is after
 * (borrowed). Without `sep` the head is the whole input, rest empty.
 */
static inline char *fuzz_split(const uint8_t *data, size_t size, uint8_t sep,
                               const uint8_t **rest, size_t *restlen)
{
    const uint8_t *p = size ? memchr(data, sep, size) : NULL;
    size_t n = p ? (size_t)(p - data) : size;

    *rest = p ? p + 1 : data + size;
    *restlen = p ? size - n - 1 : 0;
    return fuzz_strndup(data, n);
}

#endif
