/*
 * Internals shared by metrics.c (registry, series, updates) and
 * metrics_render.c (exposition text). Not for use outside libs/metrics.
 */
#ifndef BASALT_METRICS_INTERNAL_H
#define BASALT_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "metrics/metrics.h"

/*
 * One tuple of label values. The value fields are only touched with atomic
 * operations; everything else is fixed at creation. Doubles are kept as
 * their IEEE-754 bit patterns so a CAS on a uint64 can update them.
 * A histogram keeps one non-cumulative count per bucket (the last one is
 * +Inf); its _count is their sum, so a scrape never sees _count disagree
 * with the +Inf bucket.
 */
struct metrics_series {
    struct metrics_series *hnext; /* hash chain, guarded by fam->lock */
    struct metrics_series *next;  /* creation order, guarded by fam->lock */
    struct metrics_family *fam;
    uint64_t hash;
    char *values[METRICS_MAX_LABELS]; /* point into this allocation */
    _Atomic uint64_t value;           /* counter/gauge; histogram sum */
    _Atomic uint64_t buckets[];       /* histogram: nbounds + 1 counts */
};

/*
 * A family. Name, help, labels and bounds are fixed at registration;
 * `lock` guards the hash table and the series list (read lock to find or
 * render, write lock to insert or grow). `next` is guarded by reg->mu.
 */
struct metrics_family {
    struct metrics_family *next;
    enum metrics_type type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[METRICS_MAX_LABELS];
    double *bounds; /* histogram upper bounds, ascending, +Inf implicit */
    size_t nbounds;
    pthread_rwlock_t lock;
    struct metrics_series **table; /* tsize buckets, power of two */
    size_t tsize;
    size_t nseries;
    struct metrics_series *first, *last;
};

/* `mu` guards the family list: registration and rendering. */
struct metrics_registry {
    pthread_mutex_t mu;
    struct metrics_family *first, *last;
};

static inline double metrics_u2d(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

#endif
