/*
 * log — one JSON object per line on stdout.
 *
 * Every line carries "ts" (RFC 3339 UTC with milliseconds), "level",
 * "service", "msg", and "request_id"/"trace_id" when a context gives them,
 * then the caller's fields. Never pass secrets or tokens as fields.
 *
 * Thread-safety: every function may be called from any thread after
 * log_init(); each line is written with a single write(2) under a mutex, so
 * lines from different threads never interleave.
 */
#ifndef BASALT_LOG_H
#define BASALT_LOG_H

#include <jansson.h>

enum log_level {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO = 1,
    LOG_LVL_WARN = 2,
    LOG_LVL_ERROR = 3,
};

/* Request identity attached to a line; either field may be NULL or "". */
struct log_ctx {
    const char *request_id;
    const char *trace_id;
};

/*
 * Sets the service name and the minimum level from `level_name`
 * ("debug", "info", "warn"/"warning", "error"; NULL means "info").
 * Returns 0, or -1 when level_name is not one of those (level stays info).
 * Call once from main before other threads start.
 */
int log_init(const char *service, const char *level_name);

/* Parses a level name; -1 when unknown. */
int log_level_parse(const char *name);

/* 1 when a line at `lvl` would be written (skip building costly fields). */
int log_enabled(enum log_level lvl);

/*
 * Writes a line. The variadic part is key/value pairs of C strings ending
 * with a single NULL key: log_kv(LOG_LVL_INFO, ctx, "listening",
 * "port", "8080", NULL). A NULL value is written as JSON null.
 */
void log_kv(enum log_level lvl, const struct log_ctx *ctx, const char *msg,
            ...);

/*
 * Writes a line with typed fields: every member of `fields` (a JSON object,
 * may be NULL) is added to the line. Takes ownership of `fields` (decref'd).
 */
void log_json(enum log_level lvl, const struct log_ctx *ctx, const char *msg,
              json_t *fields);

/* printf-style message, no extra fields. */
void log_fmt(enum log_level lvl, const struct log_ctx *ctx, const char *fmt,
             ...) __attribute__((format(printf, 3, 4)));

#define log_debug(ctx, ...) log_fmt(LOG_LVL_DEBUG, ctx, __VA_ARGS__)
#define log_info(ctx, ...) log_fmt(LOG_LVL_INFO, ctx, __VA_ARGS__)
#define log_warn(ctx, ...) log_fmt(LOG_LVL_WARN, ctx, __VA_ARGS__)
#define log_error(ctx, ...) log_fmt(LOG_LVL_ERROR, ctx, __VA_ARGS__)

#endif
