/*
 * import_load — pass 2 of an import: the typed table, COPY in binary
 * format (PostgreSQL parses nothing; pass 2 parses every value for the
 * statistics anyway), the primary key on _row and the dataset row, all in
 * one transaction so a failed import leaves no table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import_job.h"

#define COPY_BUF (1 << 20)

static int copy_flush(struct imp_job *j)
{
    if (j->clen && PQputCopyData(j->conn, j->cbuf, (int)j->clen) != 1) {
        j->copy_failed = 1;
        return -1;
    }
    j->clen = 0;
    return 0;
}

/* Big-endian integers into the COPY buffer (room checked by caller). */
static void put16(struct imp_job *j, uint16_t v)
{
    j->cbuf[j->clen++] = (char)(v >> 8);
    j->cbuf[j->clen++] = (char)v;
}

static void put32(struct imp_job *j, uint32_t v)
{
    put16(j, (uint16_t)(v >> 16));
    put16(j, (uint16_t)v);
}

int imp_copy_row(struct imp_job *j, const struct imp_field *f, size_t n)
{
    size_t need = 32;
    long w;

    for (size_t i = 0; i < n && i < j->ncols; i++)
        need += f[i].len + 16;
    need += 16 * j->ncols;
    if (j->ccap - j->clen < need) {
        if (copy_flush(j) != 0)
            return -1;
        if (need > j->ccap) {
            char *b = realloc(j->cbuf, need);

            if (!b)
                return -1;
            j->cbuf = b;
            j->ccap = need;
        }
    }
    /* COPY binary tuple: int16 fields, then _row and the columns */
    j->written++;
    put16(j, (uint16_t)(j->ncols + 1));
    put32(j, 8);
    put32(j, (uint32_t)(j->written >> 32));
    put32(j, (uint32_t)j->written);
    for (size_t i = 0; i < j->ncols; i++) {
        static const struct imp_field null = {NULL, 0, IMP_K_TEXT};

        w = imp_emit_bin(i < n ? &f[i] : &null, j->types[i], &j->stats[i],
                         j->cbuf + j->clen, j->ccap - j->clen);
        if (w < 0)
            return -1;
        j->clen += (size_t)w;
    }
    return 0;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t el)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
             PQresultStatus(r) == PGRES_TUPLES_OK;

    if (!ok)
        snprintf(err, el, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* The columns JSON with stats (after pass 2). */
json_t *imp_columns_json(struct imp_job *j)
{
    json_t *a = json_array();

    for (size_t i = 0; i < j->ncols; i++) {
        enum imp_type t = j->types ? j->types[i]
                                   : imp_infer_type(&j->infer[i]);

        json_array_append_new(
            a, json_pack("{ssssssssso*}", "name", j->names[i], "source_name",
                         j->src[i], "type", imp_type_name(t), "pg_type",
                         imp_type_sql(t), "stats",
                         j->stats ? imp_stats_json(&j->stats[i], t) : NULL));
    }
    return a;
}

/*
 * Pass 2 on conn: create the table, COPY, index, mark the dataset ready,
 * all in one transaction. 0, -1 (err set), or 1 when told to stop.
 */
int imp_load(struct imp_job *j, int fd, long long ds,
             const struct imp_sink *sink, char *err, size_t el)
{
    char sql[256], table[64];
    char *ddl = NULL, *id;
    size_t dl = 0, dcap = 256;
    PGresult *r;
    int rc = -1, in_copy = 0;

    snprintf(table, sizeof table, "automation.ds_%lld", ds);
    ddl = malloc(dcap);
    if (!ddl)
        goto oom;
    dl = (size_t)snprintf(ddl, dcap, "CREATE TABLE %s (_row bigint NOT NULL",
                          table);
    for (size_t i = 0; i < j->ncols; i++) {
        id = PQescapeIdentifier(j->conn, j->names[i], strlen(j->names[i]));
        if (!id)
            goto oom;
        if (dl + strlen(id) + 32 > dcap) {
            char *n;

            dcap = (dl + strlen(id) + 32) * 2;
            if (!(n = realloc(ddl, dcap))) {
                PQfreemem(id);
                goto oom;
            }
            ddl = n;
        }
        dl += (size_t)snprintf(ddl + dl, dcap - dl, ", %s %s", id,
                               imp_type_sql(j->types[i]));
        PQfreemem(id);
    }
    snprintf(ddl + dl, dcap - dl, ")");
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    if (exec_ok(j->conn, "BEGIN", err, el) ||
        exec_ok(j->conn, sql, err, el) || exec_ok(j->conn, ddl, err, el))
        goto cleanup;
    /* binary: PostgreSQL parses nothing (pass 2 parses every value for
     * the stats anyway); FREEZE: the table is new in this transaction */
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN (FORMAT binary, FREEZE)",
             table);
    r = PQexec(j->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, el, "%s", PQresultErrorMessage(r));
        PQclear(r);
        goto cleanup;
    }
    PQclear(r);
    in_copy = 1;
    j->pass = 2;
    j->ccap = COPY_BUF;
    if (!(j->cbuf = malloc(j->ccap)))
        goto oom;
    memcpy(j->cbuf, "PGCOPY\n\377\r\n\0", 11);
    j->clen = 11;
    put32(j, 0);                     /* flags */
    put32(j, 0);                     /* header extension length */
    if (lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(err, el, "cannot rewind the file");
        goto cleanup;
    }
    rc = imp_read(fd, &j->ro, sink, j, err, el);
    if (rc == 0 && j->ccap - j->clen < 2 && copy_flush(j) != 0)
        rc = -1;
    if (rc == 0) {
        put16(j, UINT16_MAX);        /* trailer: -1 */
        if (copy_flush(j) != 0)
            rc = -1;
    }
    in_copy = 0;
    if (PQputCopyEnd(j->conn, rc == 0 ? NULL : "import stopped") != 1)
        rc = rc ? rc : -1;
    while ((r = PQgetResult(j->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, el, "COPY failed: %s", PQresultErrorMessage(r));
            rc = -1;
        }
        PQclear(r);
    }
    if (rc != 0) {
        if (rc < 0 && !err[0])
            snprintf(err, el, "%s", j->copy_failed
                                        ? PQerrorMessage(j->conn)
                                        : "out of memory");
        goto cleanup;
    }
    rc = -1;
    j->t_copy = imp_mono();
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD PRIMARY KEY (_row)",
             table);
    if (exec_ok(j->conn, sql, err, el))
        goto cleanup;
    {
        json_t *cols = imp_columns_json(j);
        char *cj = json_dumps(cols, JSON_COMPACT);
        char *ej = json_dumps(j->errors, JSON_COMPACT);
        char ids[32], rows[32], bad[32];
        const char *p[5] = {ids, cj, ej, rows, bad};

        snprintf(ids, sizeof ids, "%lld", ds);
        snprintf(rows, sizeof rows, "%llu", (unsigned long long)j->written);
        snprintf(bad, sizeof bad, "%llu", (unsigned long long)j->bad);
        r = PQexecParams(j->conn,
                         "UPDATE automation.datasets SET state = 'ready',"
                         " columns = $2::jsonb, errors = $3::jsonb,"
                         " row_count = $4, bad_rows = $5, error = NULL,"
                         " finished_at = now() WHERE id = $1",
                         5, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rc = 0;
        else
            snprintf(err, el, "%s", PQresultErrorMessage(r));
        PQclear(r);
        json_decref(cols);
        free(cj);
        free(ej);
    }
    if (rc == 0)
        rc = exec_ok(j->conn, "COMMIT", err, el);
    j->t_index = imp_mono();
    goto cleanup;
oom:
    snprintf(err, el, "out of memory");
cleanup:
    if (in_copy) {
        PQputCopyEnd(j->conn, "import failed");
        while ((r = PQgetResult(j->conn)) != NULL)
            PQclear(r);
    }
    if (rc != 0)
        PQclear(PQexec(j->conn, "ROLLBACK"));
    free(ddl);
    return rc;
}
