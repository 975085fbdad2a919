/*
 * import_job — the state of one import_file run, shared by import.c
 * (the job, pass 1) and import_load.c (pass 2: table, COPY, index).
 * Internal to the import.
 */
#ifndef BASALT_AUTO_IMPORT_JOB_H
#define BASALT_AUTO_IMPORT_JOB_H

#include <jansson.h>
#include <libpq-fe.h>

#include "files.h"
#include "import.h"

/* One running import; owned by the worker thread running the job. */
struct imp_job {
    struct auto_files *f;
    struct auto_job_ctx *ctx;
    struct imp_read_opts ro;
    int pass;                         /* 1 or 2 */
    size_t ncols;
    char (*names)[IMP_NAME_MAX + 1];
    char **src;                       /* source names (owned) */
    json_t *keymap;                   /* JSON: key -> index */
    struct imp_infer *infer;
    enum imp_type *types;
    struct imp_stats *stats;
    uint64_t rows, bad, written;
    json_t *errors;
    char fatal[512];
    uint64_t size;
    double last_progress;
    int stop;                         /* outcome when a handler must stop */
    PGconn *conn;
    char *cbuf;
    size_t clen, ccap;
    int copy_failed;
    double t_start, t_read, t_copy, t_index;   /* monotonic, for the log */
};

double imp_mono(void);

/* Pass 2 for one good record: encodes it as a COPY binary tuple into
 * j->cbuf (flushing to the server as needed) and adds it to the stats.
 * 0, or -1 (out of memory or the server went away). */
int imp_copy_row(struct imp_job *j, const struct imp_field *f, size_t n);

/* The "columns" JSON: name, source_name, type, pg_type and stats (when
 * pass 2 ran). New reference. */
json_t *imp_columns_json(struct imp_job *j);

/*
 * Pass 2 on j->conn: creates automation.ds_<ds>, rereads fd through sink
 * with COPY, adds the primary key and marks the dataset ready, in one
 * transaction (rolled back on failure). 0, -1 with err, or 1 when a sink
 * call stopped the read (cancel, shutdown).
 */
int imp_load(struct imp_job *j, int fd, long long ds,
             const struct imp_sink *sink, char *err, size_t errlen);

#endif
