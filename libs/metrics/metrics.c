#include "metrics/metrics.h"
#include "metrics/metrics_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_TABLE_MIN 16

static const double metrics_default_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10,
};

static uint64_t metrics_d2u(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

static void metrics_atomic_add(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(
        p, &old, metrics_d2u(metrics_u2d(old) + v), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

static struct metrics_registry metrics_default_reg = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
};

struct metrics_registry *metrics_default(void)
{
    /* Static storage: creating it cannot fail, so it is never NULL. */
    return &metrics_default_reg;
}

struct metrics_registry *metrics_registry_new(void)
{
    struct metrics_registry *reg = calloc(1, sizeof(*reg));

    if (reg == NULL)
        return NULL;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

static void metrics_family_free(struct metrics_family *fam)
{
    struct metrics_series *s, *next;
    size_t i;

    if (fam == NULL)
        return;
    for (s = fam->first; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    free(fam->table);
    for (i = 0; i < fam->nlabels; i++)
        free(fam->labels[i]);
    free(fam->bounds);
    free(fam->help);
    free(fam->name);
    pthread_rwlock_destroy(&fam->lock);
    free(fam);
}

void metrics_registry_free(struct metrics_registry *reg)
{
    struct metrics_family *f, *next;

    /* The default registry lives for the whole process. */
    if (reg == NULL || reg == &metrics_default_reg)
        return;
    for (f = reg->first; f != NULL; f = next) {
        next = f->next;
        metrics_family_free(f);
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]* */
static int metrics_valid_name(const char *s, int colon)
{
    size_t i;

    if (s == NULL || s[0] == '\0')
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 ch == '_' || (colon && ch == ':') ||
                 (i > 0 && ch >= '0' && ch <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int metrics_valid_labels(enum metrics_type type, size_t nlabels,
                                const char *const *names)
{
    size_t i, j;

    if (nlabels > METRICS_MAX_LABELS || (nlabels > 0 && names == NULL))
        return 0;
    for (i = 0; i < nlabels; i++) {
        if (!metrics_valid_name(names[i], 0) ||
            strncmp(names[i], "__", 2) == 0 ||
            (type == METRICS_HISTOGRAM && strcmp(names[i], "le") == 0))
            return 0;
        for (j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return 0;
    }
    return 1;
}

/*
 * Resolves histogram bounds: defaults for NULL, a trailing +Inf dropped
 * (it is implicit). Returns the count, or -1 when not strictly ascending.
 */
static long metrics_resolve_bounds(const double **b, size_t n)
{
    size_t i;

    if (*b == NULL) {
        *b = metrics_default_bounds;
        return (long)(sizeof(metrics_default_bounds) /
                      sizeof(metrics_default_bounds[0]));
    }
    if (n > 0 && isinf((*b)[n - 1]) && (*b)[n - 1] > 0)
        n--;
    for (i = 0; i < n; i++) {
        if (isnan((*b)[i]) || isinf((*b)[i]))
            return -1;
        if (i > 0 && !((*b)[i] > (*b)[i - 1]))
            return -1;
    }
    return (long)n;
}

static int metrics_family_matches(const struct metrics_family *f,
                                  enum metrics_type type, size_t nlabels,
                                  const char *const *names,
                                  const double *bounds, size_t nbounds)
{
    size_t i;

    if (f->type != type || f->nlabels != nlabels)
        return 0;
    for (i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], names[i]) != 0)
            return 0;
    if (type != METRICS_HISTOGRAM)
        return 1;
    if (f->nbounds != nbounds)
        return 0;
    for (i = 0; i < nbounds; i++)
        if (f->bounds[i] != bounds[i])
            return 0;
    return 1;
}

static struct metrics_family *
metrics_family_new(enum metrics_type type, const char *name, const char *help,
                   size_t nlabels, const char *const *names,
                   const double *bounds, size_t nbounds)
{
    struct metrics_family *f = calloc(1, sizeof(*f));
    size_t i;

    if (f == NULL)
        return NULL;
    if (pthread_rwlock_init(&f->lock, NULL) != 0) {
        free(f);
        return NULL;
    }
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    f->tsize = METRICS_TABLE_MIN;
    f->table = calloc(f->tsize, sizeof(*f->table));
    if (f->name == NULL || f->help == NULL || f->table == NULL)
        goto fail;
    for (i = 0; i < nlabels; i++) {
        f->labels[i] = strdup(names[i]);
        if (f->labels[i] == NULL)
            goto fail;
        f->nlabels = i + 1;
    }
    if (type == METRICS_HISTOGRAM && nbounds > 0) {
        f->bounds = malloc(nbounds * sizeof(*f->bounds));
        if (f->bounds == NULL)
            goto fail;
        memcpy(f->bounds, bounds, nbounds * sizeof(*f->bounds));
        f->nbounds = nbounds;
    }
    return f;

fail:
    metrics_family_free(f);
    return NULL;
}

struct metrics_family *metrics_family(struct metrics_registry *reg,
                                      enum metrics_type type,
                                      const char *name, const char *help,
                                      size_t nlabels,
                                      const char *const *label_names,
                                      const double *buckets, size_t nbuckets)
{
    struct metrics_family *f;
    long nb = 0;

    if (reg == NULL || !metrics_valid_name(name, 1) ||
        (type != METRICS_COUNTER && type != METRICS_GAUGE &&
         type != METRICS_HISTOGRAM) ||
        !metrics_valid_labels(type, nlabels, label_names))
        return NULL;
    if (type == METRICS_HISTOGRAM) {
        nb = metrics_resolve_bounds(&buckets, nbuckets);
        if (nb < 0)
            return NULL;
    }
    pthread_mutex_lock(&reg->mu);
    for (f = reg->first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (!metrics_family_matches(f, type, nlabels, label_names,
                                        buckets, (size_t)nb))
                f = NULL;
            pthread_mutex_unlock(&reg->mu);
            return f;
        }
    }
    f = metrics_family_new(type, name, help, nlabels, label_names, buckets,
                           (size_t)nb);
    if (f != NULL) {
        if (reg->last != NULL)
            reg->last->next = f;
        else
            reg->first = f;
        reg->last = f;
    }
    pthread_mutex_unlock(&reg->mu);
    /* A label-less family has exactly one series; show it from the start. */
    if (f != NULL && nlabels == 0)
        (void)metrics_series(f, NULL);
    return f;
}

/* FNV-1a over the values, each with its NUL so ("ab","") != ("a","b"). */
static uint64_t metrics_hash(size_t n, const char *const *values)
{
    uint64_t h = 14695981039346656037ULL;
    const unsigned char *p;
    size_t i;

    for (i = 0; i < n; i++) {
        p = (const unsigned char *)(values[i] != NULL ? values[i] : "");
        do {
            h ^= *p;
            h *= 1099511628211ULL;
        } while (*p++ != '\0');
    }
    return h;
}

static struct metrics_series *metrics_find(struct metrics_family *f,
                                           uint64_t h,
                                           const char *const *values)
{
    struct metrics_series *s;
    size_t i;

    for (s = f->table[h & (f->tsize - 1)]; s != NULL; s = s->hnext) {
        if (s->hash != h)
            continue;
        for (i = 0; i < f->nlabels; i++)
            if (strcmp(s->values[i],
                       values[i] != NULL ? values[i] : "") != 0)
                break;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

static struct metrics_series *metrics_series_new(struct metrics_family *f,
                                                 uint64_t h,
                                                 const char *const *values)
{
    size_t nb = f->type == METRICS_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t len[METRICS_MAX_LABELS];
    size_t size, i;
    struct metrics_series *s;
    char *p;

    size = sizeof(*s) + nb * sizeof(s->buckets[0]);
    for (i = 0; i < f->nlabels; i++) {
        len[i] = strlen(values[i] != NULL ? values[i] : "") + 1;
        size += len[i];
    }
    s = calloc(1, size);
    if (s == NULL)
        return NULL;
    s->fam = f;
    s->hash = h;
    atomic_init(&s->value, metrics_d2u(0.0));
    for (i = 0; i < nb; i++)
        atomic_init(&s->buckets[i], 0);
    p = (char *)&s->buckets[nb];
    for (i = 0; i < f->nlabels; i++) {
        memcpy(p, values[i] != NULL ? values[i] : "", len[i]);
        s->values[i] = p;
        p += len[i];
    }
    return s;
}

/* Doubles the hash table when it gets full; the caller write-locks. */
static void metrics_grow(struct metrics_family *f)
{
    size_t nsize = f->tsize * 2, i;
    struct metrics_series **nt, *s, *next;

    if (f->nseries < f->tsize - f->tsize / 4)
        return;
    nt = calloc(nsize, sizeof(*nt));
    if (nt == NULL)
        return; /* longer chains, still correct */
    for (i = 0; i < f->tsize; i++) {
        for (s = f->table[i]; s != NULL; s = next) {
            next = s->hnext;
            s->hnext = nt[s->hash & (nsize - 1)];
            nt[s->hash & (nsize - 1)] = s;
        }
    }
    free(f->table);
    f->table = nt;
    f->tsize = nsize;
}

struct metrics_series *metrics_series(struct metrics_family *fam,
                                      const char *const *label_values)
{
    struct metrics_series *s, *fresh;
    uint64_t h;
    size_t slot;

    if (fam == NULL || (fam->nlabels > 0 && label_values == NULL))
        return NULL;
    h = metrics_hash(fam->nlabels, label_values);
    pthread_rwlock_rdlock(&fam->lock);
    s = metrics_find(fam, h, label_values);
    pthread_rwlock_unlock(&fam->lock);
    if (s != NULL)
        return s;

    /* Allocate outside the write lock to keep the readers' wait short. */
    fresh = metrics_series_new(fam, h, label_values);
    if (fresh == NULL)
        return NULL;
    pthread_rwlock_wrlock(&fam->lock);
    s = metrics_find(fam, h, label_values);
    if (s == NULL) {
        s = fresh;
        fresh = NULL;
        slot = h & (fam->tsize - 1);
        s->hnext = fam->table[slot];
        fam->table[slot] = s;
        if (fam->last != NULL)
            fam->last->next = s;
        else
            fam->first = s;
        fam->last = s;
        fam->nseries++;
        metrics_grow(fam);
    }
    pthread_rwlock_unlock(&fam->lock);
    free(fresh); /* another thread created it first */
    return s;
}

void metrics_add(struct metrics_series *s, double v)
{
    if (s == NULL)
        return;
    switch (s->fam->type) {
    case METRICS_COUNTER:
        if (!(v >= 0))
            return; /* counters only go up; NaN is dropped too */
        break;
    case METRICS_GAUGE:
        break;
    default:
        return;
    }
    metrics_atomic_add(&s->value, v);
}

void metrics_set(struct metrics_series *s, double v)
{
    if (s == NULL || s->fam->type != METRICS_GAUGE)
        return;
    atomic_store_explicit(&s->value, metrics_d2u(v), memory_order_relaxed);
}

void metrics_observe(struct metrics_series *s, double v)
{
    const struct metrics_family *f;
    size_t lo, hi, mid;

    if (s == NULL || s->fam->type != METRICS_HISTOGRAM)
        return;
    f = s->fam;
    /* First bound >= v (Prometheus "le"); none (or NaN) means +Inf. */
    lo = 0;
    hi = f->nbounds;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    metrics_atomic_add(&s->value, v);
}

void metrics_inc_labels(struct metrics_family *fam,
                        const char *const *label_values, double v)
{
    metrics_add(metrics_series(fam, label_values), v);
}

void metrics_observe_labels(struct metrics_family *fam,
                            const char *const *label_values, double v)
{
    metrics_observe(metrics_series(fam, label_values), v);
}
