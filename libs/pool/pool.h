/*
 * pool — the slot logic shared by pgpool and redispool: at most `size`
 * connections out at once, a stack of idle ones to reuse, and a bounded
 * wait for a free slot. It never opens or closes a connection itself
 * (except closing idle ones at cleanup): the caller opens one when
 * pool_slots_take hands it a slot without an idle item, outside the
 * lock, so a slow connect never stalls other threads' releases.
 *
 * Items are opaque pointers (PGconn *, redisContext *).
 */
#ifndef POOL_POOL_H
#define POOL_POOL_H

#include <pthread.h>

/*
 * Caller-owned storage (pool_slots_init / pool_slots_cleanup). mu guards
 * idle, nidle and nout; cv is signalled whenever nout drops. Every
 * function but init/cleanup is safe from any thread.
 */
struct pool_slots {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* CLOCK_MONOTONIC */
    void **idle;         /* open items nobody holds (a stack) */
    int nidle;
    int nout;            /* handed out, or being opened for a caller */
    int size;
};

/* size >= 1. 0, or -1 (bad size or out of memory; s is then unusable). */
int pool_slots_init(struct pool_slots *s, int size);

/* Closes every idle item with close_item and frees s's storage. Call
 * once no item is out and no thread is inside the pool. */
void pool_slots_cleanup(struct pool_slots *s, void (*close_item)(void *));

/*
 * Takes a slot, waiting up to wait_ms (<= 0: no wait) for one. On 0 the
 * slot is the caller's and *item is an idle item to reuse, or NULL: then
 * the caller opens a new one, and gives the slot back with
 * pool_slots_put(s, NULL) if that fails. -1 when every slot stayed busy.
 */
int pool_slots_take(struct pool_slots *s, int wait_ms, void **item);

/* Returns a slot: item goes back on the idle stack, or NULL when the
 * caller closed it (broken) or never opened one. Wakes one waiter. */
void pool_slots_put(struct pool_slots *s, void *item);

#endif
