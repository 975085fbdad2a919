#include "jsonarena/jsonarena.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* First chunk; each further one doubles, up to CHUNK_MAX (a 1 MiB body
 * parses into a few MiB of values). */
#define CHUNK_MIN (64 * 1024)
#define CHUNK_MAX (8 * 1024 * 1024)
#define ALIGN 16

struct jarena_chunk {
    struct jarena_chunk *next;
    size_t size, used;          /* bytes of data[] */
    _Alignas(ALIGN) unsigned char data[];
};

/* The arena of this thread (set by _alloc_on, cleared by _end). */
static _Thread_local struct jarena *cur;

static int owns(const struct jarena *a, const void *p)
{
    const unsigned char *b = p;

    for (const struct jarena_chunk *c = a->chunks; c != NULL; c = c->next)
        if (b >= c->data && b < c->data + c->size)
            return 1;
    return 0;
}

static void *arena_alloc(struct jarena *a, size_t n)
{
    struct jarena_chunk *c = a->chunks;
    size_t size;
    void *p;

    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (n == 0)
        n = ALIGN;
    if (c == NULL || c->size - c->used < n) {
        size = c == NULL ? CHUNK_MIN : c->size * 2;
        if (size > CHUNK_MAX)
            size = CHUNK_MAX;
        if (size < n)
            size = n;
        c = malloc(sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        c->next = a->chunks;
        c->size = size;
        c->used = 0;
        a->chunks = c;
        a->nchunks++;
    }
    p = c->data + c->used;
    c->used += n;
    a->used += n;
    return p;
}

static void *hook_malloc(size_t n)
{
    struct jarena *a = cur;

    return a != NULL && a->allocating ? arena_alloc(a, n) : malloc(n);
}

static void hook_free(void *p)
{
    struct jarena *a = cur;

    if (p == NULL || (a != NULL && owns(a, p)))
        return;
    free(p);
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void install(void)
{
    json_set_alloc_funcs(hook_malloc, hook_free);
}

void jarena_install(void)
{
    pthread_once(&installed, install);
}

void jarena_init(struct jarena *a)
{
    a->chunks = NULL;
    a->allocating = 0;
    a->used = 0;
    a->nchunks = 0;
}

void jarena_alloc_on(struct jarena *a)
{
    cur = a;
    a->allocating = 1;
}

void jarena_alloc_off(struct jarena *a)
{
    a->allocating = 0;
}

void jarena_end(struct jarena *a)
{
    struct jarena_chunk *c, *next;

    for (c = a->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    jarena_init(a);
    if (cur == a)
        cur = NULL;
}
