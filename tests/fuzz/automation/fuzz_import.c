/*
 * Fuzzes the dataset importers (automation import_parse.c: CSV via libcsv,
 * JSON array, NDJSON; import_infer.c / import_stats.c: null tokens, type
 * inference, column names, COPY text and binary encodings) the way the
 * import_file job drives them: pass 1 reads the file and infers a type per
 * column, pass 2 reads it again and encodes every accepted row.
 *
 * Input: one option byte, then the file. Option bits 0-1: 0 sniff the
 * format (imp_sniff, as when the job gets none), 1 CSV, 2 JSON, 3 NDJSON;
 * bit 2: CSV header row; bits 3-4: delimiter , ; tab |. The file goes
 * through a memfd, since imp_read takes a descriptor.
 * Invariants: encoding a value of its inferred type never fails when the
 * buffer is sized as import_load.c sizes it; both passes see the same
 * rows; statistics render as JSON.
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../fuzz.h"
#include "../../../services/automation/src/import.h"

#define MAX_COLS 24      /* fewer than the job allows: keeps execs fast */

struct job {
    int pass;
    struct imp_read_opts ro;
    size_t ncols;
    char names[MAX_COLS][IMP_NAME_MAX + 1];
    struct imp_infer infer[MAX_COLS];
    enum imp_type types[MAX_COLS];
    struct imp_stats *stats;
    json_t *keymap;
    long rows[3];            /* accepted rows per pass */
    char *buf;
};

static int add_column(struct job *j, const char *name, size_t len)
{
    if (j->ncols >= MAX_COLS)
        return -1;
    imp_column_name(name, len, j->ncols, j->names, j->ncols,
                    j->names[j->ncols]);
    if (!j->names[j->ncols][0] || strlen(j->names[j->ncols]) > IMP_NAME_MAX)
        abort();
    for (size_t i = 0; i < j->ncols; i++)
        if (strcmp(j->names[i], j->names[j->ncols]) == 0)
            abort();                /* names must be unique */
    imp_infer_init(&j->infer[j->ncols]);
    j->ncols++;
    return 0;
}

static int sink_header(void *arg, const struct imp_field *f, size_t n)
{
    struct job *j = arg;

    if (j->pass != 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (add_column(j, f[i].p ? f[i].p : "", f[i].p ? f[i].len : 0))
            return -1;
    return 0;
}

static int sink_column(void *arg, const char *name, size_t len)
{
    struct job *j = arg;
    json_t *v = json_object_getn(j->keymap, name, len);

    if (v)
        return (int)json_integer_value(v);
    if (j->pass != 1 || add_column(j, name, len) != 0)
        return -1;
    json_object_setn_new(j->keymap, name, len,
                         json_integer((json_int_t)j->ncols - 1));
    return (int)j->ncols - 1;
}

static int row_ok(struct job *j, const struct imp_field *f, size_t n)
{
    for (size_t i = j->ncols; i < n; i++)
        if (!imp_is_null(&f[i]))
            return 0;
    for (size_t i = 0; i < n && i < j->ncols; i++)
        if (f[i].p && !imp_utf8_ok(f[i].p, f[i].len))
            return 0;
    return 1;
}

static void encode_row(struct job *j, const struct imp_field *f, size_t n)
{
    static const struct imp_field null = {NULL, 0, IMP_K_TEXT};
    size_t need = 32, off = 0;
    long w;

    for (size_t i = 0; i < n && i < j->ncols; i++)
        need += f[i].len + 16;
    need += 16 * j->ncols;
    j->buf = realloc(j->buf, need * 2 + 64);
    if (!j->buf)
        abort();
    for (size_t i = 0; i < j->ncols; i++) {
        const struct imp_field *v = i < n ? &f[i] : &null;

        w = imp_emit_bin(v, j->types[i], &j->stats[i], j->buf + off,
                         need - off);
        if (w < 0)
            abort();
        off += (size_t)w;
    }
    /* the text encoding (escaped: up to 2 bytes per input byte) */
    off = 0;
    for (size_t i = 0; i < j->ncols; i++) {
        const struct imp_field *v = i < n ? &f[i] : &null;
        struct imp_stats *s = &j->stats[j->ncols + i];

        w = imp_emit(v, j->types[i], s, j->buf + off, need * 2 + 64 - off);
        if (w < 0)
            abort();
        off += (size_t)w;
    }
}

static int sink_row(void *arg, long line, const struct imp_field *f,
                    size_t n)
{
    struct job *j = arg;

    (void)line;
    if (j->ro.format == IMP_CSV && !j->ro.header && j->pass == 1)
        while (j->ncols < n)
            if (add_column(j, NULL, 0) != 0)
                return -1;
    if (!row_ok(j, f, n))
        return 0;
    j->rows[j->pass]++;
    if (j->pass == 1) {
        for (size_t i = 0; i < n && i < j->ncols; i++)
            imp_infer_add(&j->infer[i], &f[i]);
        return 0;
    }
    encode_row(j, f, n);
    return 0;
}

static int sink_bad(void *arg, long line, const char *why)
{
    (void)arg, (void)line;
    if (!why || !*why)
        abort();
    return 0;
}

static int sink_progress(void *arg, uint64_t bytes)
{
    (void)arg, (void)bytes;
    return 0;
}

static int g_fd = -1;

static const struct imp_sink sink = {sink_header, sink_column, sink_row,
                                     sink_bad, sink_progress};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = {',', ';', '\t', '|'};
    struct job j;
    char err[256];
    int fd, rc1, rc2;

    if (size < 1)
        return 0;
    memset(&j, 0, sizeof j);
    j.ro.header = (data[0] >> 2) & 1;
    j.ro.delimiter = delims[(data[0] >> 3) & 3];
    switch (data[0] & 3) {
    case 0:
        imp_sniff((const char *)data + 1, size - 1, &j.ro.format,
                  &j.ro.delimiter);
        break;
    case 1: j.ro.format = IMP_CSV; break;
    case 2: j.ro.format = IMP_JSON; break;
    default: j.ro.format = IMP_NDJSON; break;
    }
    /* one memfd for the process, refilled per input */
    if (g_fd < 0)
        g_fd = memfd_create("fuzz_import", MFD_CLOEXEC);
    fd = g_fd;
    if (fd < 0 || ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
        (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)))
        abort();
    j.keymap = json_object();

    j.pass = 1;
    lseek(fd, 0, SEEK_SET);
    rc1 = imp_read(fd, &j.ro, &sink, &j, err, sizeof err);
    if (rc1 != 0 || j.ncols == 0)
        goto done;
    j.stats = calloc(2 * j.ncols, sizeof *j.stats);
    if (!j.stats)
        abort();
    for (size_t i = 0; i < 2 * j.ncols; i++)
        imp_stats_init(&j.stats[i]);
    for (size_t i = 0; i < j.ncols; i++) {
        j.types[i] = imp_infer_type(&j.infer[i]);
        if (imp_type_parse(imp_type_name(j.types[i])) != (int)j.types[i] ||
            !imp_type_sql(j.types[i]))
            abort();
    }
    j.pass = 2;
    lseek(fd, 0, SEEK_SET);
    rc2 = imp_read(fd, &j.ro, &sink, &j, err, sizeof err);
    if (rc2 != rc1 || j.rows[2] != j.rows[1])
        abort();
    /* two columns are enough: the HyperLogLog estimate is slow */
    for (size_t i = 0; i < j.ncols && i < 2; i++) {
        json_t *s = imp_stats_json(&j.stats[i], j.types[i]);

        if (!s)
            abort();
        json_decref(s);
    }
    for (size_t i = 0; i < 2 * j.ncols; i++)
        imp_stats_cleanup(&j.stats[i]);
    free(j.stats);
done:
    if (rc1 < 0 && !memchr(err, '\0', sizeof err))
        abort();
    json_decref(j.keymap);
    free(j.buf);
    return 0;
}
