/*
 * import_parse — streaming readers for the import: CSV (RFC 4180, through
 * libcsv), JSON arrays (split element by element, so a large array is
 * never loaded whole) and NDJSON (one object per line). They track
 * physical line numbers so bad records can be reported by line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <csv.h>
#include <jansson.h>

#include "import.h"

#define READ_BUF (1 << 20)

/* A growing byte buffer plus a list of field spans into it. */
struct rowbuf {
    char *data;
    size_t len, cap;
    size_t *off, *flen;
    unsigned char *isnull;
    enum imp_kind *kind;
    size_t n, fcap;
    struct imp_field *fields;
    size_t fields_cap;
    int oom;
};

static int rb_bytes(struct rowbuf *b, const void *p, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *d;

        while (cap < b->len + len)
            cap *= 2;
        if (!(d = realloc(b->data, cap)))
            return b->oom = -1;
        b->data = d;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    return 0;
}

static int rb_grow_fields(struct rowbuf *b, size_t need)
{
    size_t cap = b->fcap ? b->fcap : 16;

    if (need <= b->fcap)
        return 0;
    while (cap < need)
        cap *= 2;
    b->off = realloc(b->off, cap * sizeof *b->off);
    b->flen = realloc(b->flen, cap * sizeof *b->flen);
    b->isnull = realloc(b->isnull, cap);
    b->kind = realloc(b->kind, cap * sizeof *b->kind);
    b->fields = realloc(b->fields, cap * sizeof *b->fields);
    if (!b->off || !b->flen || !b->isnull || !b->kind || !b->fields)
        return b->oom = -1;
    b->fcap = cap;
    return 0;
}

/* Sets field i (growing the list to i + 1 with nulls). */
static int rb_set(struct rowbuf *b, size_t i, const void *p, size_t len,
                  enum imp_kind kind)
{
    if (rb_grow_fields(b, i + 1) != 0)
        return -1;
    while (b->n <= i) {
        b->isnull[b->n] = 1;
        b->flen[b->n] = 0;
        b->off[b->n] = 0;
        b->kind[b->n++] = IMP_K_TEXT;
    }
    b->isnull[i] = p == NULL;
    b->kind[i] = kind;
    b->off[i] = b->len;
    b->flen[i] = len;
    return p ? rb_bytes(b, p, len) : 0;
}

static const struct imp_field *rb_fields(struct rowbuf *b)
{
    for (size_t i = 0; i < b->n; i++) {
        /* data is still NULL when every field so far is empty */
        b->fields[i].p = b->isnull[i] ? NULL
                         : b->data ? b->data + b->off[i] : "";
        b->fields[i].len = b->flen[i];
        b->fields[i].kind = b->kind[i];
    }
    return b->fields;
}

static void rb_reset(struct rowbuf *b)
{
    b->len = 0;
    b->n = 0;
}

static void rb_free(struct rowbuf *b)
{
    free(b->data);
    free(b->off);
    free(b->flen);
    free(b->isnull);
    free(b->kind);
    free(b->fields);
}

static const unsigned char bom[] = {0xef, 0xbb, 0xbf};

void imp_sniff(const char *buf, size_t len, enum imp_format *fmt,
               char *delimiter)
{
    static const char cands[] = {',', ';', '\t', '|'};
    size_t i = 0, counts[4] = {0};
    int quoted = 0, best = 0;

    if (len >= 3 && memcmp(buf, bom, 3) == 0)
        i = 3;
    while (i < len && strchr(" \t\r\n", buf[i]))
        i++;
    *fmt = i < len && buf[i] == '[' ? IMP_JSON
         : i < len && buf[i] == '{' ? IMP_NDJSON : IMP_CSV;
    for (; i < len && (quoted || (buf[i] != '\n' && buf[i] != '\r')); i++) {
        if (buf[i] == '"')
            quoted = !quoted;
        for (int k = 0; k < 4 && !quoted; k++)
            counts[k] += buf[i] == cands[k];
    }
    for (int k = 1; k < 4; k++)
        if (counts[k] > counts[best])
            best = k;
    *delimiter = cands[best];
}

/* ---- CSV ---------------------------------------------------------------- */

struct csvr {
    const struct imp_sink *sink;
    void *arg;
    struct rowbuf rb;
    int header_pending;
    long line, row_start;
    int stop;
};

static void csv_cb_field(void *s, size_t len, void *data)
{
    struct csvr *c = data;

    if (!c->stop && rb_set(&c->rb, c->rb.n, s, len, IMP_K_TEXT) != 0)
        c->stop = -1;
}

static void csv_cb_row(int term, void *data)
{
    struct csvr *c = data;
    const struct imp_field *f;
    int rc;

    (void)term;
    if (c->stop)
        return;
    f = rb_fields(&c->rb);
    if (c->header_pending) {
        c->header_pending = 0;
        rc = c->sink->header(c->arg, f, c->rb.n);
    } else {
        rc = c->sink->row(c->arg, c->row_start, f, c->rb.n);
    }
    if (rc != 0)
        c->stop = 1;
    rb_reset(&c->rb);
}

/* Spaces belong to the field (RFC 4180); libcsv trims them by default. */
static int csv_no_space(unsigned char ch)
{
    (void)ch;
    return 0;
}

static int read_csv(int fd, const struct imp_read_opts *o,
                    const struct imp_sink *sink, void *arg, char *err,
                    size_t errlen)
{
    struct csv_parser p;
    struct csvr c = {.sink = sink, .arg = arg, .line = 1, .row_start = 1};
    char *buf = malloc(READ_BUF);
    uint64_t total = 0;
    int first = 1, rc = -1;
    ssize_t n;

    c.header_pending = o->header;
    if (!buf || csv_init(&p, CSV_EMPTY_IS_NULL) != 0) {
        free(buf);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    csv_set_delim(&p, (unsigned char)o->delimiter);
    csv_set_space_func(&p, csv_no_space);
    while ((n = read(fd, buf, READ_BUF)) != 0) {
        const char *s = buf, *end;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "read failed: %s", strerror(errno));
            goto cleanup;
        }
        end = buf + n;
        if (first && n >= 3 && memcmp(buf, bom, 3) == 0)
            s += 3;
        first = 0;
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            size_t len = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);

            if (p.pstate == 0)       /* ROW_NOT_BEGUN: a record starts */
                c.row_start = c.line;
            if (csv_parse(&p, s, len, csv_cb_field, csv_cb_row, &c) != len ||
                c.stop < 0) {
                snprintf(err, errlen, "line %ld: out of memory", c.line);
                goto cleanup;
            }
            if (c.stop) {
                rc = 1;
                goto cleanup;
            }
            if (p.entry_pos > IMP_FIELD_MAX) {
                snprintf(err, errlen, "line %ld: a field is longer than "
                                      "16 MiB (an unbalanced quote?)",
                         c.row_start);
                goto cleanup;
            }
            if (nl)
                c.line++;
            s += len;
        }
        total += (uint64_t)n;
        if (sink->progress && sink->progress(arg, total) != 0) {
            rc = 1;
            goto cleanup;
        }
    }
    /* FIELD_BEGUN inside quotes at EOF: libcsv only flags it in strict
     * mode, which would also refuse stray quotes in unquoted fields */
    if ((p.pstate == 2 && p.quoted) ||
        csv_fini(&p, csv_cb_field, csv_cb_row, &c) != 0) {
        snprintf(err, errlen, "line %ld: quoted field not terminated",
                 c.row_start);
        goto cleanup;
    }
    rc = c.stop > 0 ? 1 : c.stop < 0 ? -1 : 0;
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
cleanup:
    csv_free(&p);
    rb_free(&c.rb);
    free(buf);
    return rc;
}

/* ---- JSON --------------------------------------------------------------- */

struct jsonr {
    const struct imp_sink *sink;
    void *arg;
    struct rowbuf rb;
    size_t ncols;
};

/* Hands one JSON text (an element or a line) to the sink as a row. */
static int json_record(struct jsonr *j, const char *text, size_t len,
                       long line)
{
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    const char *key;
    json_t *val;
    char num[64], why[256];
    int rc = 0;

    if (!v) {
        snprintf(why, sizeof why, "invalid JSON: %s", e.text);
        return j->sink->bad(j->arg, line, why);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return j->sink->bad(j->arg, line, "not a JSON object");
    }
    rb_reset(&j->rb);
    json_object_foreach(v, key, val) {
        int idx = j->sink->column(j->arg, key, strlen(key));
        const char *p = NULL;
        size_t plen = 0;
        enum imp_kind kind = IMP_K_TEXT;
        char *dump = NULL;

        if (idx < 0) {
            rc = -1;
            break;
        }
        if ((size_t)idx + 1 > j->ncols)
            j->ncols = (size_t)idx + 1;
        switch (json_typeof(val)) {
        case JSON_STRING:
            p = json_string_value(val);
            plen = json_string_length(val);
            break;
        case JSON_INTEGER:
            plen = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                                    json_integer_value(val));
            p = num;
            kind = IMP_K_NUMBER;
            break;
        case JSON_REAL:
            plen = (size_t)snprintf(num, sizeof num, "%.17g",
                                    json_real_value(val));
            p = num;
            kind = IMP_K_NUMBER;
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            p = json_is_true(val) ? "true" : "false";
            plen = strlen(p);
            kind = IMP_K_BOOL;
            break;
        case JSON_NULL:
            break;
        default:
            dump = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
            p = dump ? dump : "null";
            plen = strlen(p);
            kind = IMP_K_JSON;
            break;
        }
        if (rb_set(&j->rb, (size_t)idx, p, plen, kind) != 0)
            rc = -1;
        free(dump);
        if (rc)
            break;
    }
    json_decref(v);
    if (rc)
        return -1;
    if (j->rb.n < j->ncols && rb_set(&j->rb, j->ncols - 1, NULL, 0,
                                     IMP_K_TEXT) != 0)
        return -1;
    return j->sink->row(j->arg, line, rb_fields(&j->rb), j->rb.n);
}

/*
 * JSON array: a small scanner finds each top-level element (tracking
 * strings and nesting) and parses it alone.
 */
static int read_json(int fd, int ndjson, const struct imp_sink *sink,
                     void *arg, char *err, size_t errlen)
{
    struct jsonr j = {.sink = sink, .arg = arg};
    struct rowbuf el = {0};
    char *buf = malloc(READ_BUF);
    uint64_t total = 0;
    long line = 1, el_line = 1;
    int first = 1, rc = -1, began = 0, ended = 0;
    int depth = 0, in_str = 0, esc = 0, in_el = 0;
    ssize_t n;

    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while ((n = read(fd, buf, READ_BUF)) != 0) {
        ssize_t i = 0;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "read failed: %s", strerror(errno));
            goto cleanup;
        }
        if (first && n >= 3 && memcmp(buf, bom, 3) == 0)
            i = 3;
        first = 0;
        for (; i < n; i++) {
            char ch = buf[i];
            int done = 0;

            if (ndjson) {
                if (ch == '\n') {
                    size_t k = 0;

                    while (k < el.len && strchr(" \t\r", el.data[k]))
                        k++;
                    if (k < el.len &&
                        (rc = json_record(&j, el.data, el.len, line)) != 0)
                        goto stopped;
                    rb_reset(&el);
                    line++;
                } else if (rb_bytes(&el, &ch, 1) != 0) {
                    goto oom;
                }
                continue;
            }
            if (!in_el) {
                if (ch == '\n')
                    line++;
                if (strchr(" \t\r\n", ch))
                    continue;
                if (!began) {
                    if (ch != '[') {
                        snprintf(err, errlen, "line %ld: a JSON array "
                                              "must start with '['", line);
                        goto cleanup;
                    }
                    began = 1;
                    continue;
                }
                if (ended) {
                    snprintf(err, errlen, "line %ld: text after the array",
                             line);
                    goto cleanup;
                }
                if (ch == ',')
                    continue;
                if (ch == ']') {
                    ended = 1;
                    continue;
                }
                in_el = 1;
                el_line = line;
                depth = 0;
                rb_reset(&el);
            }
            if (ch == '\n')
                line++;
            if (in_str) {
                if (esc)
                    esc = 0;
                else if (ch == '\\')
                    esc = 1;
                else if (ch == '"') {
                    in_str = 0;
                    done = depth == 0;
                }
            } else if (ch == '"') {
                in_str = 1;
            } else if (ch == '{' || ch == '[') {
                depth++;
            } else if (ch == '}' || ch == ']') {
                if (depth == 0) {      /* the array's own ']' */
                    ended = 1;
                    done = 2;
                } else {
                    done = --depth == 0;
                }
            } else if (depth == 0 && (ch == ',' || strchr(" \t\r\n", ch))) {
                done = 2;              /* end of a scalar element */
            }
            if (done != 2 && rb_bytes(&el, &ch, 1) != 0)
                goto oom;
            if (el.len > IMP_FIELD_MAX) {
                snprintf(err, errlen, "line %ld: an element is longer than "
                                      "16 MiB", el_line);
                goto cleanup;
            }
            if (done) {
                in_el = 0;
                if (el.len && (rc = json_record(&j, el.data, el.len,
                                                el_line)) != 0)
                    goto stopped;
            }
        }
        total += (uint64_t)n;
        if (sink->progress && sink->progress(arg, total) != 0) {
            rc = 1;
            goto cleanup;
        }
    }
    if (ndjson) {
        size_t k = 0;

        while (k < el.len && strchr(" \t\r", el.data[k]))
            k++;
        if (k < el.len && (rc = json_record(&j, el.data, el.len, line)) != 0)
            goto stopped;
    } else if (in_el || in_str || !ended) {
        snprintf(err, errlen, "line %ld: the JSON array is not closed",
                 in_el ? el_line : line);
        rc = -1;
        goto cleanup;
    }
    rc = 0;
    goto cleanup;
stopped:
    if (rc < 0)
        snprintf(err, errlen, "line %ld: out of memory or too many columns",
                 ndjson ? line : el_line);
    else
        rc = 1;
    goto cleanup;
oom:
    snprintf(err, errlen, "out of memory");
    rc = -1;
cleanup:
    rb_free(&el);
    rb_free(&j.rb);
    free(buf);
    return rc;
}

int imp_read(int fd, const struct imp_read_opts *o,
             const struct imp_sink *sink, void *arg, char *err,
             size_t errlen)
{
    err[0] = '\0';
    if (o->format == IMP_CSV)
        return read_csv(fd, o, sink, arg, err, errlen);
    return read_json(fd, o->format == IMP_NDJSON, sink, arg, err, errlen);
}
