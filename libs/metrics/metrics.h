/*
 * metrics — Prometheus counters, gauges and histograms with labels,
 * rendered in the text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * A family (name, help, label names) holds one series per distinct tuple of
 * label values. Hot path: look a series up once (metrics_series(); a hash
 * lookup under a read lock, creation under the write lock), then update it
 * with atomic operations only. Series pointers stay valid until the registry
 * is freed, so callers may cache them.
 *
 * Units are base units (seconds, bytes); counter names end in _total.
 *
 * Thread-safety: every function may be called from any thread, except
 * metrics_registry_free(), which must run when no other thread uses it.
 */
#ifndef BASALT_METRICS_H
#define BASALT_METRICS_H

#include <stddef.h>

enum metrics_type {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
};

#define METRICS_MAX_LABELS 8

struct metrics_registry;
struct metrics_family;
struct metrics_series;

/* The process-wide registry, created on first use. Never NULL. */
struct metrics_registry *metrics_default(void);

/* A private registry (tests); NULL on out-of-memory. */
struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *reg);

/*
 * Registers a family, or returns the existing one with the same name (type
 * and labels must then match, else NULL). `label_names` has `nlabels`
 * entries (<= METRICS_MAX_LABELS). For histograms, `buckets` are the upper
 * bounds in ascending order (`nbuckets` of them, +Inf is implicit); NULL
 * means the default latency buckets (0.0005 s .. 10 s). Strings are copied.
 * Returns NULL on invalid arguments or out-of-memory.
 */
struct metrics_family *metrics_family(struct metrics_registry *reg,
                                      enum metrics_type type,
                                      const char *name, const char *help,
                                      size_t nlabels,
                                      const char *const *label_names,
                                      const double *buckets, size_t nbuckets);

/*
 * The series for `label_values` (as many as the family has labels; values
 * are copied and escaped on output). NULL only on out-of-memory.
 */
struct metrics_series *metrics_series(struct metrics_family *fam,
                                      const char *const *label_values);

/* Counter: add v >= 0. Gauge: add any v. Not for histograms. */
void metrics_add(struct metrics_series *s, double v);

/* Gauge: set. */
void metrics_set(struct metrics_series *s, double v);

/* Histogram: record one observation (e.g. seconds). */
void metrics_observe(struct metrics_series *s, double v);

/* Convenience: series lookup + add / observe in one call. */
void metrics_inc_labels(struct metrics_family *fam,
                        const char *const *label_values, double v);
void metrics_observe_labels(struct metrics_family *fam,
                            const char *const *label_values, double v);

/*
 * Renders every family in exposition format into a malloc'd NUL-terminated
 * buffer (caller frees) and stores its length in *len. NULL on OOM.
 */
char *metrics_render(struct metrics_registry *reg, size_t *len);

#endif
