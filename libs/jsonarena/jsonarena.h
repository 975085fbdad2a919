/*
 * jsonarena — a per-request bump allocator for jansson's parse trees.
 *
 * Parsing a 100-event batch with jansson makes ~2,500 small allocations
 * and freeing the tree as many frees; with many request threads glibc's
 * malloc, free and fastbin consolidation were ~7 % of all CPU during
 * analytics ingestion (tests/bench/README.md). Inside an arena, jansson's
 * allocations on the calling thread come from a few large chunks and its
 * frees of them cost nothing; the chunks go at jarena_end().
 *
 * It works through jansson's own hook, json_set_alloc_funcs() (jansson
 * "Custom memory allocation"), installed once per process by
 * jarena_install(). The hook is process-wide: outside an arena (other
 * threads, other code, libjwt) it is plain malloc/free.
 *
 * Rules (break one and a free() meets arena memory):
 *   - only values created while the arena ALLOCATES (between
 *     jarena_alloc_on() and jarena_alloc_off()) live in it: keep that
 *     window to the parse (httpd_json_body_in() does);
 *   - every such value is released (json_decref) on the same thread
 *     before jarena_end(), and none is kept (json_incref) past it.
 * One arena per thread at a time.
 *
 * Thread-safety: an arena belongs to the thread that uses it.
 */
#ifndef BASALT_JSONARENA_H
#define BASALT_JSONARENA_H

#include <stddef.h>

struct jarena_chunk;

struct jarena {
    struct jarena_chunk *chunks; /* newest first */
    int allocating;
    size_t used;                 /* bytes handed out, all chunks */
    size_t nchunks;
};

/* Installs the jansson hooks (idempotent). Call once at start, before
 * threads; without it arenas stay empty and everything uses malloc. */
void jarena_install(void);

/* An empty arena. Can't fail. */
void jarena_init(struct jarena *a);

/* Jansson allocations on this thread come from `a` until _off(). The
 * arena becomes this thread's (its frees are recognised) until _end(). */
void jarena_alloc_on(struct jarena *a);
void jarena_alloc_off(struct jarena *a);

/* Releases the chunks; the thread has no arena afterwards. Every value
 * allocated in `a` must be gone. Safe on an arena never turned on. */
void jarena_end(struct jarena *a);

#endif
