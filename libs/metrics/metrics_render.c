#include "metrics/metrics.h"
#include "metrics/metrics_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable output buffer; `oom` sticks once an allocation fails. */
struct metrics_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
};

static void mb_put(struct metrics_buf *b, const char *s, size_t n)
{
    size_t ncap;
    char *np;

    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        ncap = b->cap != 0 ? b->cap : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void mb_puts(struct metrics_buf *b, const char *s)
{
    mb_put(b, s, strlen(s));
}

/*
 * Shortest "%g" text that reads back as the same double, so 1 prints as
 * "1" and 0.1 as "0.1"; infinities and NaN as Prometheus spells them.
 */
static void metrics_fmt_double(char *buf, size_t size, double v)
{
    int prec;

    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Integers that a double holds exactly: plain digits, not "1e+01". */
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
    snprintf(buf, size, "%.17g", v);
}

static void mb_double(struct metrics_buf *b, double v)
{
    char num[40];

    metrics_fmt_double(num, sizeof(num), v);
    mb_puts(b, num);
}

static void mb_u64(struct metrics_buf *b, uint64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    mb_puts(b, num);
}

/* Label values escape \, " and newline; HELP text escapes \ and newline. */
static void mb_escaped(struct metrics_buf *b, const char *s, int quotes)
{
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *esc = NULL;

        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quotes)
            esc = "\\\"";
        if (esc == NULL)
            continue;
        mb_put(b, run, (size_t)(s - run));
        mb_puts(b, esc);
        run = s + 1;
    }
    mb_put(b, run, (size_t)(s - run));
}

/* `{a="x",le="0.5"}`, or nothing when there are no labels at all. */
static void mb_labels(struct metrics_buf *b, const struct metrics_series *s,
                      const char *le)
{
    const struct metrics_family *f = s->fam;
    size_t i;

    if (f->nlabels == 0 && le == NULL)
        return;
    mb_puts(b, "{");
    for (i = 0; i < f->nlabels; i++) {
        if (i > 0)
            mb_puts(b, ",");
        mb_puts(b, f->labels[i]);
        mb_puts(b, "=\"");
        mb_escaped(b, s->values[i], 1);
        mb_puts(b, "\"");
    }
    if (le != NULL) {
        mb_puts(b, f->nlabels > 0 ? ",le=\"" : "le=\"");
        mb_puts(b, le);
        mb_puts(b, "\"");
    }
    mb_puts(b, "}");
}

static void mb_sample(struct metrics_buf *b, const struct metrics_series *s,
                      const char *suffix, const char *le)
{
    mb_puts(b, s->fam->name);
    mb_puts(b, suffix);
    mb_labels(b, s, le);
    mb_puts(b, " ");
}

static void metrics_render_histogram(struct metrics_buf *b,
                                     const struct metrics_series *s)
{
    const struct metrics_family *f = s->fam;
    uint64_t cum = 0;
    char le[40];
    size_t i;

    for (i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < f->nbounds)
            metrics_fmt_double(le, sizeof(le), f->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        mb_sample(b, s, "_bucket", le);
        mb_u64(b, cum);
        mb_puts(b, "\n");
    }
    mb_sample(b, s, "_sum", NULL);
    mb_double(b, metrics_u2d(atomic_load_explicit(&s->value,
                                                  memory_order_relaxed)));
    mb_puts(b, "\n");
    mb_sample(b, s, "_count", NULL);
    mb_u64(b, cum);
    mb_puts(b, "\n");
}

static void metrics_render_family(struct metrics_buf *b,
                                  struct metrics_family *f)
{
    static const char *const type_names[] = {"counter", "gauge",
                                             "histogram"};
    const struct metrics_series *s;

    pthread_rwlock_rdlock(&f->lock);
    if (f->first == NULL)
        goto done; /* nothing observed yet: no samples, no header */
    mb_puts(b, "# HELP ");
    mb_puts(b, f->name);
    mb_puts(b, " ");
    mb_escaped(b, f->help, 0);
    mb_puts(b, "\n# TYPE ");
    mb_puts(b, f->name);
    mb_puts(b, " ");
    mb_puts(b, type_names[f->type]);
    mb_puts(b, "\n");
    for (s = f->first; s != NULL; s = s->next) {
        if (f->type == METRICS_HISTOGRAM) {
            metrics_render_histogram(b, s);
            continue;
        }
        mb_sample(b, s, "", NULL);
        mb_double(b, metrics_u2d(atomic_load_explicit(
                         &s->value, memory_order_relaxed)));
        mb_puts(b, "\n");
    }
done:
    pthread_rwlock_unlock(&f->lock);
}

char *metrics_render(struct metrics_registry *reg, size_t *len)
{
    struct metrics_buf b = {0};
    struct metrics_family *f;

    if (reg == NULL)
        return NULL;
    mb_put(&b, "", 0); /* an empty registry still renders "" */
    pthread_mutex_lock(&reg->mu);
    for (f = reg->first; f != NULL; f = f->next)
        metrics_render_family(&b, f);
    pthread_mutex_unlock(&reg->mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return b.p;
}
