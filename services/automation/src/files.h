/*
 * files — uploaded files (files.c), the import_file job that turns one
 * into a dataset (import*.c) and the datasets API (datasets.c).
 *
 *   POST /automation/files?name=...   raw body or multipart/form-data,
 *                                     streamed to storage (never held in
 *                                     memory) with SHA-256 and size
 *   GET  /automation/files[/{id}[/content]]
 *   GET  /automation/datasets[/{id}[/rows]]
 *
 * Callers see their own files and datasets; admins see all; another
 * owner's answers 404.
 */
#ifndef BASALT_AUTO_FILES_H
#define BASALT_AUTO_FILES_H

#include <stdint.h>

#include "auto.h"
#include "storage.h"

#define AUTO_FILES_MAX_BYTES_DEFAULT ((uint64_t)256 << 20)
#define AUTO_IMPORT_MAX_ERROR_RATE_DEFAULT 0.01

/* Shared settings of the files, import and datasets modules; immutable
 * once set up, read by HTTP and worker threads. */
struct auto_files {
    struct pgpool *pg;              /* borrowed */
    struct auto_storage *storage;   /* borrowed */
    const struct auto_auth *auth;   /* borrowed */
    uint64_t max_bytes;             /* upload limit (413 beyond) */
    double max_error_rate;          /* import: bad rows / rows allowed */
    int acquire_ms;                 /* wait for a pooled connection */
};

/* Registers the /automation/files and /automation/datasets routes. 0/-1. */
int auto_files_routes(struct httpd_server *s, struct auto_files *f);

/*
 * The settings the import_file job handler uses (job handlers get no
 * service state of their own). Call once at start, before workers run;
 * f must outlive them. NULL until then (the handler then fails).
 */
void auto_files_set(struct auto_files *f);
struct auto_files *auto_files_get(void);

/*
 * Runs one parameterised statement on a pooled connection; *res is set
 * on AUTO_OK (caller PQclear's). Maps failures like queue.c does
 * (AUTO_EUNAVAIL when PostgreSQL is away, AUTO_EINVAL for SQLSTATE class
 * 22, else AUTO_EDB; logged).
 */
enum auto_res auto_files_sql(struct auto_files *f, const char *sql, int n,
                             const char *const *params, PGresult **res);

/* Answers a failed call: 404 not_found ("no such <what>"), 503
 * unavailable, 500 internal_error. */
void auto_files_fail(struct httpd_req *r, enum auto_res rc,
                     const char *what);

/* The positive {id} path parameter; 0 after answering 404. */
long long auto_files_path_id(struct httpd_req *r, const char *what);

/* ?limit= (1..100, default 50) and ?cursor= (an id; 0 = none); -1 after
 * answering 422. */
int auto_files_page(struct httpd_req *r, int *limit, long long *cursor);

/*
 * Answers a list request: one page of `sql` as {"<key>": [...],
 * "next_cursor": "<id>"|null}, newest first. sql takes $1 the owner
 * (NULL for an admin: everyone's), $2 the cursor (NULL: from the
 * newest; else ids below it) and $3 the limit, and returns one row with
 * one JSON array of objects that carry "id". `what` names the object in
 * errors ("file", "dataset").
 */
void auto_files_list(struct httpd_req *r, struct auto_files *f,
                     const char *sql, const char *key, const char *what);

/* 422 validation_failed naming `field`. */
void auto_files_invalid(struct httpd_req *r, const char *field,
                        const char *why);

/* import.c: the import_file job type (registered in job_types.c). */
int auto_import_check(const json_t *args, char *field, size_t fieldlen,
                      char *why, size_t whylen);
enum auto_outcome auto_import_run(struct auto_job_ctx *ctx,
                                  const json_t *args);

/* datasets.c: registers the /automation/datasets routes. 0 or -1. */
int auto_datasets_routes(struct httpd_server *s, struct auto_files *f);

#endif
