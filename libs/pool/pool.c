#include "pool/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int pool_slots_init(struct pool_slots *s, int size)
{
    pthread_condattr_t ca;

    if (size < 1)
        return -1;
    s->idle = calloc((size_t)size, sizeof(*s->idle));
    if (s->idle == NULL)
        return -1;
    s->nidle = 0;
    s->nout = 0;
    s->size = size;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void pool_slots_cleanup(struct pool_slots *s, void (*close_item)(void *))
{
    int i;

    for (i = 0; i < s->nidle; i++)
        close_item(s->idle[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->idle);
    s->idle = NULL;
    s->nidle = 0;
}

int pool_slots_take(struct pool_slots *s, int wait_ms, void **item)
{
    struct timespec deadline;

    *item = NULL;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (wait_ms > 0) {
        deadline.tv_sec += wait_ms / 1000;
        deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->mu);
    while (s->nout >= s->size) {
        if (wait_ms <= 0 ||
            pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) {
            if (s->nout < s->size)
                break;
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
    }
    s->nout++;
    if (s->nidle > 0)
        *item = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void pool_slots_put(struct pool_slots *s, void *item)
{
    pthread_mutex_lock(&s->mu);
    if (item != NULL)
        s->idle[s->nidle++] = item;
    s->nout--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}
