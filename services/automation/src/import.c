/*
 * import — the import_file job: a stored file becomes a dataset, a typed
 * table automation.ds_<id> plus its automation.datasets row.
 *
 * Two passes over the file, both streaming: pass 1 reads every record,
 * finds bad ones (by line) and infers each column's type from all of its
 * values; when the bad records stay within the error threshold, pass 2
 * reads again and sends the good records with COPY (text format) in one
 * transaction that creates the table, so a failed import leaves no table
 * (import_load.c). Statistics are computed in pass 2 on the typed values.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "import.h"
#include "import_job.h"
#include "log/log.h"

#define ERRORS_KEPT 100
#define PROGRESS_EVERY_S 1.0

double imp_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int auto_import_check(const json_t *args, char *field, size_t fl, char *why,
                      size_t wl)
{
    json_t *id = json_object_get(args, "file_id");
    json_t *fmt = json_object_get(args, "format");
    json_t *d = json_object_get(args, "delimiter");
    json_t *h = json_object_get(args, "header");
    json_t *r = json_object_get(args, "max_error_rate");
    const char *s;

    if (!json_is_integer(id) || json_integer_value(id) < 1) {
        snprintf(field, fl, "args.file_id");
        snprintf(why, wl, "must be a file id");
        return -1;
    }
    s = json_string_value(fmt);
    if (fmt && (!s || (strcmp(s, "csv") && strcmp(s, "json") &&
                       strcmp(s, "ndjson")))) {
        snprintf(field, fl, "args.format");
        snprintf(why, wl, "must be csv, json or ndjson");
        return -1;
    }
    s = json_string_value(d);
    if (d && (!s || strlen(s) != 1 || strchr("\"\r\n", *s))) {
        snprintf(field, fl, "args.delimiter");
        snprintf(why, wl, "must be one character (not a quote or newline)");
        return -1;
    }
    if (h && !json_is_boolean(h)) {
        snprintf(field, fl, "args.header");
        snprintf(why, wl, "must be a boolean");
        return -1;
    }
    if (r && (!json_is_number(r) || json_number_value(r) < 0 ||
              json_number_value(r) > 1)) {
        snprintf(field, fl, "args.max_error_rate");
        snprintf(why, wl, "must be a number from 0 to 1");
        return -1;
    }
    return 0;
}

static void record_error(struct imp_job *j, long line, const char *why)
{
    j->bad++;
    if (json_array_size(j->errors) < ERRORS_KEPT)
        json_array_append_new(j->errors, json_pack("{sIss}", "line",
                                                   (json_int_t)line, "error",
                                                   why));
}

static int add_column(struct imp_job *j, const char *name, size_t len)
{
    size_t i = j->ncols;
    void *p;

    if (i >= IMP_MAX_COLUMNS) {
        snprintf(j->fatal, sizeof j->fatal, "more than %d columns",
                 IMP_MAX_COLUMNS);
        return -1;
    }
    if (!(p = realloc(j->names, (i + 1) * sizeof *j->names)))
        return -1;
    j->names = p;
    if (!(p = realloc(j->src, (i + 1) * sizeof *j->src)))
        return -1;
    j->src = p;
    if (!(p = realloc(j->infer, (i + 1) * sizeof *j->infer)))
        return -1;
    j->infer = p;
    imp_column_name(name, len, i, j->names, i, j->names[i]);
    j->src[i] = name && imp_utf8_ok(name, len) ? strndup(name, len)
                                               : strdup(j->names[i]);
    imp_infer_init(&j->infer[i]);
    j->ncols++;
    return j->src[i] ? 0 : -1;
}

static int sink_header(void *arg, const struct imp_field *f, size_t n)
{
    struct imp_job *j = arg;

    if (j->pass != 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (add_column(j, f[i].p ? f[i].p : "", f[i].p ? f[i].len : 0) != 0)
            return -1;
    return 0;
}

static int sink_column(void *arg, const char *name, size_t len)
{
    struct imp_job *j = arg;
    json_t *v = json_object_getn(j->keymap, name, len);

    if (v)
        return (int)json_integer_value(v);
    if (j->pass != 1 || add_column(j, name, len) != 0)
        return -1;
    json_object_setn_new(j->keymap, name, len,
                         json_integer((json_int_t)j->ncols - 1));
    return (int)j->ncols - 1;
}

/* Why a record cannot be imported, or NULL when it can. */
static const char *row_problem(struct imp_job *j, const struct imp_field *f,
                               size_t n, char *why, size_t wl)
{
    for (size_t i = j->ncols; i < n; i++)
        if (!imp_is_null(&f[i])) {
            snprintf(why, wl, "expected %zu fields, got %zu", j->ncols, n);
            return why;
        }
    for (size_t i = 0; i < n && i < j->ncols; i++)
        if (f[i].p && !imp_utf8_ok(f[i].p, f[i].len)) {
            snprintf(why, wl, "column %s is not valid UTF-8 (or has a NUL)",
                     j->names[i]);
            return why;
        }
    return NULL;
}

static int sink_row(void *arg, long line, const struct imp_field *f,
                    size_t n)
{
    struct imp_job *j = arg;
    char why[256];

    if (j->ro.format == IMP_CSV && !j->ro.header && j->pass == 1)
        while (j->ncols < n)
            if (add_column(j, NULL, 0) != 0)
                return -1;
    if (row_problem(j, f, n, why, sizeof why)) {
        if (j->pass == 1)
            record_error(j, line, why);
        return 0;
    }
    if (j->pass == 1) {
        for (size_t i = 0; i < n && i < j->ncols; i++)
            imp_infer_add(&j->infer[i], &f[i]);
        j->rows++;
        return 0;
    }
    return imp_copy_row(j, f, n);
}

static int sink_bad(void *arg, long line, const char *why)
{
    struct imp_job *j = arg;

    if (j->pass == 1)
        record_error(j, line, why);
    return 0;
}

static int sink_progress(void *arg, uint64_t bytes)
{
    struct imp_job *j = arg;
    double now = imp_mono();
    int stop = auto_job_should_stop(j->ctx);

    if (stop) {
        j->stop = stop;
        return -1;
    }
    if (now - j->last_progress >= PROGRESS_EVERY_S && j->size) {
        int pct = (int)((j->pass == 1 ? 0 : 40) +
                        (j->pass == 1 ? 40 : 55) * (double)bytes /
                            (double)j->size);
        j->last_progress = now;
        if (auto_job_progress(j->ctx, pct, j->pass == 1 ? "reading"
                                                        : "loading") != 0 &&
            (stop = auto_job_should_stop(j->ctx)) != 0) {
            j->stop = stop;
            return -1;
        }
    }
    return 0;
}

static const struct imp_sink sink = {sink_header, sink_column, sink_row,
                                     sink_bad, sink_progress};

static void job_cleanup(struct imp_job *j)
{
    for (size_t i = 0; i < j->ncols; i++) {
        free(j->src[i]);
        if (j->stats)
            imp_stats_cleanup(&j->stats[i]);
    }
    free(j->src);
    free(j->names);
    free(j->infer);
    free(j->types);
    free(j->stats);
    free(j->cbuf);
    json_decref(j->keymap);
    json_decref(j->errors);
}

/* Marks the dataset failed (best effort; the job carries the error). */
static void mark_failed(struct auto_files *f, long long ds, const char *why,
                        struct imp_job *j)
{
    char ids[32], bad[32];
    char *ej = json_dumps(j->errors, JSON_COMPACT);
    json_t *cols = imp_columns_json(j);
    char *cj = json_dumps(cols, JSON_COMPACT);
    const char *p[6] = {ids, why, ej ? ej : "[]", bad, "0",
                        cj ? cj : "[]"};
    PGresult *r;

    snprintf(ids, sizeof ids, "%lld", ds);
    snprintf(bad, sizeof bad, "%llu", (unsigned long long)j->bad);
    if (auto_files_sql(f,
                       "UPDATE automation.datasets SET state = 'failed',"
                       " error = $2, errors = $3::jsonb, bad_rows = $4,"
                       " row_count = $5, columns = $6::jsonb,"
                       " finished_at = now() WHERE id = $1",
                       6, p, &r) == AUTO_OK)
        PQclear(r);
    json_decref(cols);
    free(ej);
    free(cj);
}

/*
 * 1 when imp_read's fatal error `err` is about the data ("line N: ..."),
 * so a retry cannot fix it; 0 for I/O errors and out of memory.
 */
int imp_malformed(const char *err)
{
    return strncmp(err, "line ", 5) == 0 && !strstr(err, "out of memory");
}

/* "line 3: why; line 9: why; ..." from the first bad records. */
static void error_lines(json_t *errors, char *out, size_t len)
{
    size_t n = 0, i;
    json_t *e;

    out[0] = '\0';
    json_array_foreach(errors, i, e) {
        if (i == 3 || n >= len)
            break;
        n += (size_t)snprintf(out + n, len - n, "%sline %" JSON_INTEGER_FORMAT
                              ": %s", i ? "; " : "",
                              json_integer_value(json_object_get(e, "line")),
                              json_string_value(json_object_get(e, "error")));
    }
}

enum auto_outcome auto_import_run(struct auto_job_ctx *ctx,
                                  const json_t *args)
{
    struct auto_files *f = auto_files_get();
    struct imp_job j = {.f = f, .ctx = ctx, .pass = 1};
    char ids[32], fids[32], err[1024] = "", lines[600], head[4096];
    const char *p[3];
    const char *fmt = json_string_value(json_object_get(args, "format"));
    const char *delim = json_string_value(json_object_get(args, "delimiter"));
    json_t *h = json_object_get(args, "header");
    json_t *rate = json_object_get(args, "max_error_rate");
    double max_rate;
    PGresult *r = NULL;
    long long ds = 0;
    uint64_t size = 0;
    enum auto_outcome out = AUTO_JOB_FAIL;
    ssize_t hn;
    int fd = -1, rc;
    enum auto_res ar;

    if (!f) {
        auto_job_set_error(ctx, "file storage is not configured");
        return AUTO_JOB_FAIL;
    }
    max_rate = rate ? json_number_value(rate) : f->max_error_rate;
    j.keymap = json_object();
    j.errors = json_array();
    snprintf(ids, sizeof ids, "%lld", ctx->job->id);
    snprintf(fids, sizeof fids, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(args, "file_id")));
    p[0] = ids;
    p[1] = fids;
    /* the job's owner must own the file */
    ar = auto_files_sql(f,
                        "SELECT f.storage_key, f.name FROM automation.files f"
                        " JOIN automation.jobs j ON j.owner_id = f.owner_id"
                        " WHERE j.id = $1 AND f.id = $2",
                        2, p, &r);
    if (ar != AUTO_OK || PQntuples(r) == 0) {
        auto_job_set_error(ctx, ar == AUTO_OK ? "no such file %s"
                                              : "database error (%s)", fids);
        goto cleanup;
    }
    rc = auto_storage_get(f->storage, PQgetvalue(r, 0, 0), &fd, &size);
    if (rc != 0) {
        auto_job_set_error(ctx, "the content of file %s is missing", fids);
        goto cleanup;
    }
    j.size = size;
    hn = read(fd, head, sizeof head);
    imp_sniff(head, hn > 0 ? (size_t)hn : 0, &j.ro.format, &j.ro.delimiter);
    if (lseek(fd, 0, SEEK_SET) != 0) {
        auto_job_set_error(ctx, "cannot read file %s", fids);
        goto cleanup;
    }
    if (fmt)
        j.ro.format = !strcmp(fmt, "csv") ? IMP_CSV
                    : !strcmp(fmt, "json") ? IMP_JSON : IMP_NDJSON;
    if (delim)
        j.ro.delimiter = *delim;
    j.ro.header = h ? json_is_true(h) : 1;
    p[2] = j.ro.format == IMP_CSV ? "csv"
         : j.ro.format == IMP_JSON ? "json" : "ndjson";
    PQclear(r);
    ar = auto_files_sql(f,
                        "INSERT INTO automation.datasets (job_id, file_id,"
                        " owner_id, name, format) SELECT $1, f.id, f.owner_id,"
                        " f.name, $3 FROM automation.files f WHERE f.id = $2"
                        " ON CONFLICT (job_id) DO UPDATE SET state ="
                        " 'importing', error = NULL, finished_at = NULL"
                        " RETURNING id",
                        3, p, &r);
    if (ar != AUTO_OK || PQntuples(r) != 1) {
        r = ar == AUTO_OK ? r : NULL;
        auto_job_set_error(ctx, "cannot create the dataset");
        goto cleanup;
    }
    ds = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    r = NULL;

    j.t_start = imp_mono();
    rc = imp_read(fd, &j.ro, &sink, &j, err, sizeof err);
    j.t_read = imp_mono();
    if (rc == 1 && j.stop) {
        out = (enum auto_outcome)j.stop;
        goto stopped;
    }
    if (rc != 0 || j.fatal[0]) {
        if (j.fatal[0])
            snprintf(err, sizeof err, "%s", j.fatal);
        auto_job_set_error(ctx, "dataset %lld: %s", ds, err);
        mark_failed(f, ds, err, &j);
        /* a malformed file stays malformed: no retries (I/O errors and
         * out of memory may pass, so they are retried) */
        if (j.fatal[0] || imp_malformed(err))
            out = AUTO_JOB_FAIL_PERMANENT;
        goto cleanup;
    }
    if (j.ncols == 0) {
        auto_job_set_error(ctx, "dataset %lld: the file has no columns", ds);
        mark_failed(f, ds, "the file has no columns", &j);
        out = AUTO_JOB_FAIL_PERMANENT;
        goto cleanup;
    }
    if (j.bad > 0 && (double)j.bad > max_rate * (double)(j.rows + j.bad)) {
        error_lines(j.errors, lines, sizeof lines);
        snprintf(err, sizeof err, "%llu of %llu records are bad (more than "
                 "%g%%): %s", (unsigned long long)j.bad,
                 (unsigned long long)(j.rows + j.bad), max_rate * 100, lines);
        auto_job_set_error(ctx, "dataset %lld: %s", ds, err);
        mark_failed(f, ds, err, &j);
        out = AUTO_JOB_FAIL_PERMANENT;
        goto cleanup;
    }
    j.types = calloc(j.ncols, sizeof *j.types);
    j.stats = calloc(j.ncols, sizeof *j.stats);
    if (!j.types || !j.stats) {
        auto_job_set_error(ctx, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < j.ncols; i++) {
        j.types[i] = imp_infer_type(&j.infer[i]);
        imp_stats_init(&j.stats[i]);
    }
    auto_job_progress(ctx, 40, "loading");
    j.conn = pgpool_acquire(f->pg, f->acquire_ms > 0 ? f->acquire_ms : 5000);
    if (!j.conn) {
        auto_job_set_error(ctx, "database unavailable");
        goto cleanup;
    }
    err[0] = '\0';
    rc = imp_load(&j, fd, ds, &sink, err, sizeof err);
    pgpool_release(f->pg, j.conn, rc < 0 && PQstatus(j.conn) != CONNECTION_OK);
    j.conn = NULL;
    if (rc == 1 && j.stop) {
        out = (enum auto_outcome)j.stop;
        goto stopped;
    }
    if (rc != 0) {
        auto_job_set_error(ctx, "dataset %lld: %s", ds, err);
        mark_failed(f, ds, err, &j);
        goto cleanup;
    }
    auto_job_set_result(ctx, json_pack("{sIsIsIsI}", "dataset_id",
                                       (json_int_t)ds, "rows",
                                       (json_int_t)j.written, "bad_rows",
                                       (json_int_t)j.bad, "columns",
                                       (json_int_t)j.ncols));
    log_json(LOG_LVL_INFO, NULL, "dataset imported",
             json_pack("{sIsIsfsfsf}", "dataset", (json_int_t)ds, "rows",
                       (json_int_t)j.written, "read_s",
                       j.t_read - j.t_start, "copy_s", j.t_copy - j.t_read,
                       "index_s", j.t_index - j.t_copy));
    out = AUTO_JOB_OK;
    goto cleanup;
stopped:
    if (out == AUTO_JOB_CANCELLED)
        mark_failed(f, ds, "cancelled", &j);
cleanup:
    PQclear(r);
    if (fd >= 0)
        close(fd);
    job_cleanup(&j);
    return out;
}
