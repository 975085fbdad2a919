/*
 * import internals shared by import.c (the job, pass 1), import_load.c
 * (pass 2: COPY), import_parse.c (CSV/JSON/NDJSON readers),
 * import_infer.c (null tokens, value checks, type inference, names) and
 * import_stats.c (column statistics, COPY encodings). Not a contract
 * outside the import; the unit tests include it.
 */
#ifndef BASALT_AUTO_IMPORT_H
#define BASALT_AUTO_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#define IMP_MAX_COLUMNS 1600          /* PostgreSQL's limit per table */
#define IMP_FIELD_MAX ((size_t)16 << 20)
#define IMP_NAME_MAX 63               /* NAMEDATALEN - 1 */
#define IMP_HLL_P 14                  /* 16384 registers: ~0.8 % error */

enum imp_format { IMP_CSV, IMP_JSON, IMP_NDJSON };

/* Column types, most specific first (inference picks the first one every
 * non-null value fits). */
enum imp_type {
    IMP_INTEGER,      /* bigint */
    IMP_FLOAT,        /* double precision */
    IMP_BOOLEAN,      /* boolean */
    IMP_DATE,         /* date */
    IMP_TIMESTAMP,    /* timestamptz (no offset: UTC) */
    IMP_STRING,       /* text */
};

/* How a field arrived: text (CSV, JSON string) or a JSON scalar. */
enum imp_kind { IMP_K_TEXT, IMP_K_NUMBER, IMP_K_BOOL, IMP_K_JSON };

struct imp_field {
    const char *p;     /* not NUL-terminated; NULL when null */
    size_t len;
    enum imp_kind kind;
};

/* What a reader calls. Each returns 0 to go on or -1 to stop reading. */
struct imp_sink {
    /* CSV header row (fields as in the file). */
    int (*header)(void *arg, const struct imp_field *f, size_t n);
    /* JSON: a key seen for the first time; returns its column index, or
     * -1 (too many columns: stops). */
    int (*column)(void *arg, const char *name, size_t len);
    /* A record starting at 1-based `line`: CSV fields in file order; JSON
     * fields by column index (missing keys null), n = columns so far. */
    int (*row)(void *arg, long line, const struct imp_field *f, size_t n);
    /* A record the reader could not make a row of (bad JSON). */
    int (*bad)(void *arg, long line, const char *why);
    /* Bytes consumed so far (about once per MiB). */
    int (*progress)(void *arg, uint64_t bytes);
};

struct imp_read_opts {
    enum imp_format format;
    char delimiter;      /* CSV */
    int header;          /* CSV: first row names the columns */
};

/*
 * Reads fd from its current offset to the end. 0 when the whole input
 * was read, 1 when a sink call stopped it, -1 on a fatal error (I/O,
 * unterminated quoted field, over-long field) with "line N: why" in err.
 */
int imp_read(int fd, const struct imp_read_opts *o,
             const struct imp_sink *sink, void *arg, char *err,
             size_t errlen);

/* 1 when imp_read's error `err` is about the data ("line N: ..."; a
 * retry cannot fix it), 0 for I/O errors and out of memory (import.c). */
int imp_malformed(const char *err);

/* Sniffs the format from the first bytes (after a BOM and blanks): '['
 * JSON array, '{' NDJSON, else CSV; and the CSV delimiter from the first
 * line (most of , ; tab |; ties go to ','). */
void imp_sniff(const char *buf, size_t len, enum imp_format *fmt,
               char *delimiter);

/* ---- import_infer.c, import_stats.c ------------------------------- */

/* Per-column inference state (pass 1). */
struct imp_infer {
    unsigned could;    /* bit (1 << type) while every value fits type */
    uint64_t values;   /* non-null values seen */
};

void imp_infer_init(struct imp_infer *in);
void imp_infer_add(struct imp_infer *in, const struct imp_field *f);
enum imp_type imp_infer_type(const struct imp_infer *in);

/* 1 when the field is null: SQL null, or text that is empty or
 * "NULL"/"null"/"N/A" (trimmed). */
int imp_is_null(const struct imp_field *f);

/* Per-column statistics (pass 2). */
struct imp_stats {
    uint64_t count, nulls;
    int has;                        /* a min/max was seen */
    double dmin, dmax, sum;         /* numbers, booleans (0/1) */
    long long imin, imax;           /* integers exactly */
    int64_t tmin, tmax;             /* timestamps: microseconds */
    char *smin, *smax;              /* strings and dates (owned) */
    uint8_t hll[1 << IMP_HLL_P];
};

void imp_stats_init(struct imp_stats *s);
void imp_stats_cleanup(struct imp_stats *s);
/* JSON: {"count","nulls","min","max","mean"?,"distinct"}; NULL on OOM. */
void *imp_stats_json(const struct imp_stats *s, enum imp_type t);

/*
 * Appends the value of f as type t in COPY text format to out (escaped;
 * "\N" for null) and adds it to s. The value must fit t (pass 1 made
 * sure). Returns the bytes written, or -1 when out (cap bytes) is too
 * small.
 */
long imp_emit(const struct imp_field *f, enum imp_type t,
              struct imp_stats *s, char *out, size_t cap);

/* The same in COPY binary format: int32 length (-1 for null), then the
 * value in PostgreSQL's binary form for the type. */
long imp_emit_bin(const struct imp_field *f, enum imp_type t,
                  struct imp_stats *s, char *out, size_t cap);

/* Type name in the API ("integer", ...) and in PostgreSQL ("bigint"). */
const char *imp_type_name(enum imp_type t);
const char *imp_type_sql(enum imp_type t);
/* The type with API name `name`; -1 when none. */
int imp_type_parse(const char *name);

/*
 * Value checks shared with the datasets filter: 1 when the (untrimmed)
 * text fits. imp_parse_ts gives microseconds since the epoch (UTC).
 */
int imp_parse_int(const char *p, size_t len, long long *v);
int imp_parse_float(const char *p, size_t len, double *v);
int imp_parse_bool(const char *p, size_t len, int *v);
int imp_parse_date(const char *p, size_t len);
int imp_parse_ts(const char *p, size_t len, int64_t *us);

/* Narrows p/len past blanks (space, tab; CR at the end). */
void imp_trim(const char **p, size_t *len);

/* "YYYY-MM-DD HH:MM:SS.ffffff+00" (UTC) into out (>= 40 bytes); the
 * length written. */
int imp_format_ts(int64_t us, char *out, size_t len);

/* 1 when p[0..len) is valid UTF-8 without NUL bytes. */
int imp_utf8_ok(const char *p, size_t len);

/*
 * A safe column name from a source name: lower-case [a-z0-9_], at most
 * IMP_NAME_MAX bytes, not starting with a digit, "col_<i+1>" when
 * nothing is left; made unique against names[0..n) with _2, _3, ...
 * out must hold IMP_NAME_MAX + 1 bytes.
 */
void imp_column_name(const char *src, size_t len, size_t i,
                     char (*names)[IMP_NAME_MAX + 1], size_t n, char *out);

#endif
