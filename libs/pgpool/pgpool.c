#include "pgpool/pgpool.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"
#include "pool/pool.h"

/* The pool: connections come and go through slots (pool/pool.h). */
struct pgpool {
    char *conninfo;
    int connect_timeout_s;
    struct pool_slots slots;
};

/* Server notices would go to stderr and break the one-JSON-line log. */
static void pg_notice(void *arg, const char *msg)
{
    char buf[512];
    size_t n;

    (void)arg;
    snprintf(buf, sizeof(buf), "%s", msg);
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_kv(LOG_LVL_DEBUG, NULL, "postgres notice", "detail", buf, NULL);
}

/* Last line of libpq's error text, without the trailing newline. */
static void pg_errtext(const char *msg, char *buf, size_t len)
{
    size_t n;

    snprintf(buf, len, "%s", msg != NULL ? msg : "unknown error");
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

/* Opens a connection; NULL (reason in err) on failure. */
static PGconn *pg_connect(const char *conninfo, int timeout_s, char *err,
                          size_t errlen)
{
    /* Later keywords override the expanded conninfo: our timeout wins. */
    const char *keys[] = {"dbname", "connect_timeout",
                          "fallback_application_name", NULL};
    const char *vals[] = {conninfo, NULL, "basalt", NULL};
    char ts[16];
    PGconn *c;

    snprintf(ts, sizeof(ts), "%d", timeout_s > 0 ? timeout_s : 5);
    vals[1] = ts;
    c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pg_errtext(PQerrorMessage(c), err, errlen);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_notice, NULL);
    return c;
}

struct pgpool *pgpool_new(const char *conninfo, int size,
                          int connect_timeout_s)
{
    struct pgpool *p;

    if (conninfo == NULL || size < 1)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->conninfo = strdup(conninfo);
    if (p->conninfo == NULL || pool_slots_init(&p->slots, size) != 0) {
        free(p->conninfo);
        free(p);
        return NULL;
    }
    p->connect_timeout_s = connect_timeout_s;
    return p;
}

static void pg_close(void *c)
{
    PQfinish(c);
}

void pgpool_free(struct pgpool *p)
{
    if (p == NULL)
        return;
    pool_slots_cleanup(&p->slots, pg_close);
    free(p->conninfo);
    free(p);
}

PGconn *pgpool_acquire(struct pgpool *p, int wait_ms)
{
    void *idle;
    PGconn *c;
    char err[256];

    if (pool_slots_take(&p->slots, wait_ms, &idle) != 0) {
        log_warn(NULL, "pgpool: all %d connections busy for %d ms",
                 p->slots.size, wait_ms);
        return NULL;
    }
    c = idle;
    if (c != NULL && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    if (c == NULL) {
        c = pg_connect(p->conninfo, p->connect_timeout_s, err, sizeof(err));
        if (c == NULL) {
            pool_slots_put(&p->slots, NULL);
            log_kv(LOG_LVL_WARN, NULL, "pgpool: cannot connect to postgres",
                   "error", err, NULL);
            return NULL;
        }
    }
    return c;
}

void pgpool_release(struct pgpool *p, PGconn *c, int broken)
{
    if (c == NULL)
        return;
    /* A connection left mid-transaction would leak it into the next use. */
    if (broken || PQstatus(c) != CONNECTION_OK ||
        PQtransactionStatus(c) != PQTRANS_IDLE) {
        PQfinish(c);
        c = NULL;
    }
    pool_slots_put(&p->slots, c);
}

int pgpool_ping(struct pgpool *p)
{
    PGconn *c = pgpool_acquire(p, 1000);
    PGresult *res;
    int ok;

    if (c == NULL)
        return -1;
    res = PQexec(c, "SELECT 1");
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    pgpool_release(p, c, !ok);
    return ok ? 0 : -1;
}

int pgpool_is_unavailable(PGconn *c, const PGresult *res)
{
    const char *code;
    ExecStatusType st;

    if (c == NULL || PQstatus(c) != CONNECTION_OK || res == NULL)
        return 1;
    st = PQresultStatus(res);
    if (st != PGRES_FATAL_ERROR && st != PGRES_BAD_RESPONSE)
        return 0;
    code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* Errors raised by libpq itself (lost connection) carry no SQLSTATE. */
    if (code == NULL)
        return 1;
    if (strncmp(code, "08", 2) == 0)  /* connection exception */
        return 1;
    return strcmp(code, "57P01") == 0 || /* admin_shutdown */
           strcmp(code, "57P02") == 0 || /* crash_shutdown */
           strcmp(code, "57P03") == 0 || /* cannot_connect_now */
           strcmp(code, "53300") == 0;   /* too_many_connections */
}

/* Migration files are "NNNN_<anything>.sql". */
static int mig_filter(const struct dirent *d)
{
    const char *n = d->d_name;
    size_t len = strlen(n);
    int i;

    if (len < 9 || strcmp(n + len - 4, ".sql") != 0 || n[4] != '_')
        return 0;
    for (i = 0; i < 4; i++)
        if (n[i] < '0' || n[i] > '9')
            return 0;
    return 1;
}

/* Byte order, not the locale's: four-digit prefixes sort numerically. */
static int mig_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Whole file into a malloc'd NUL-terminated buffer; NULL on error. */
/* [a-z_][a-z0-9_]*, at most 63 bytes: no quoting surprises. */
static int mig_valid_schema(const char *s)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) > 63 ||
        (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (i = 0; s[i] != '\0'; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* Runs a command; 0 when it succeeded, else logs and returns -1. */
static int mig_exec(PGconn *c, const char *sql, const char *what,
                    int nparams, const char *const *params)
{
    PGresult *res = nparams > 0
                        ? PQexecParams(c, sql, nparams, NULL, params, NULL,
                                       NULL, 0)
                        : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    char err[512];

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
        st == PGRES_EMPTY_QUERY) {
        PQclear(res);
        return 0;
    }
    pg_errtext(res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c),
               err, sizeof(err));
    PQclear(res);
    log_kv(LOG_LVL_ERROR, NULL, "pgpool: migration failed", "step", what,
           "error", err, NULL);
    return -1;
}

/* 1 when version is recorded, 0 when not, -1 on error. */
static int mig_applied(PGconn *c, const char *table, const char *version)
{
    char sql[256];
    const char *params[1] = {version};
    PGresult *res;
    int rc;

    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE version = $1", table);
    res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char err[512];
        pg_errtext(PQresultErrorMessage(res), err, sizeof(err));
        log_kv(LOG_LVL_ERROR, NULL, "pgpool: migration failed", "step",
               "read schema_migrations", "error", err, NULL);
        rc = -1;
    } else {
        rc = PQntuples(res) > 0;
    }
    PQclear(res);
    return rc;
}

/* Applies one file in its own transaction; -1 leaves it rolled back. */
static int mig_apply(PGconn *c, const char *qschema, const char *table,
                     const char *dir, const char *file, const char *version)
{
    char path[4096];
    char sql[512];
    const char *params[2] = {version, file};
    char why[600];
    size_t text_len = 0;
    char *text;
    PGresult *res;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    /* no sane migration is over 64 MiB */
    text = cfg_read_file(path, (size_t)64 << 20, &text_len, why, sizeof(why));
    if (text == NULL) {
        log_kv(LOG_LVL_ERROR, NULL, "pgpool: cannot read migration", "file",
               path, "error", why, NULL);
        return -1;
    }
    snprintf(sql, sizeof(sql), "SET LOCAL search_path TO %s, public",
             qschema);
    if (mig_exec(c, "BEGIN", "begin", 0, NULL) != 0 ||
        mig_exec(c, sql, "search_path", 0, NULL) != 0 ||
        mig_exec(c, text, file, 0, NULL) != 0)
        goto fail;
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (version, name) VALUES ($1, $2)", table);
    if (mig_exec(c, sql, "record version", 2, params) != 0 ||
        mig_exec(c, "COMMIT", "commit", 0, NULL) != 0)
        goto fail;
    free(text);
    log_kv(LOG_LVL_INFO, NULL, "migration applied", "file", file, NULL);
    return 0;
fail:
    free(text);
    res = PQexec(c, "ROLLBACK");
    PQclear(res);
    log_kv(LOG_LVL_ERROR, NULL, "migration rolled back", "file", path, NULL);
    return -1;
}

int pgpool_migrate(struct pgpool *p, const char *schema, const char *dir)
{
    struct dirent **files = NULL;
    const char *lock_params[1] = {schema};
    PGconn *c = NULL;
    char *qschema = NULL;
    char table[160];
    char sql[512];
    char err[256];
    int nfiles = -1;
    int rc = -1;
    int i;

    if (!mig_valid_schema(schema)) {
        log_kv(LOG_LVL_ERROR, NULL, "pgpool: invalid schema name", "schema",
               schema, NULL);
        return -1;
    }
    nfiles = scandir(dir, &files, mig_filter, mig_cmp);
    if (nfiles < 0) {
        log_kv(LOG_LVL_ERROR, NULL, "pgpool: cannot read migrations", "dir",
               dir, "error", strerror(errno), NULL);
        return -1;
    }
    for (i = 1; i < nfiles; i++) {
        if (strncmp(files[i - 1]->d_name, files[i]->d_name, 4) == 0) {
            log_kv(LOG_LVL_ERROR, NULL, "pgpool: duplicate migration version",
                   "file", files[i]->d_name, NULL);
            goto cleanup;
        }
    }
    /* Session-level advisory lock: a dedicated connection, not a pooled
     * one that might go back to the pool still holding it. */
    c = pg_connect(p->conninfo, p->connect_timeout_s, err, sizeof(err));
    if (c == NULL) {
        log_kv(LOG_LVL_ERROR, NULL, "pgpool: migrate cannot connect", "error",
               err, NULL);
        goto cleanup;
    }
    qschema = PQescapeIdentifier(c, schema, strlen(schema));
    if (qschema == NULL)
        goto cleanup;
    snprintf(table, sizeof(table), "%s.schema_migrations", qschema);
    if (mig_exec(c, "SELECT pg_advisory_lock(hashtext('basalt:' || $1))",
                 "advisory lock", 1, lock_params) != 0)
        goto cleanup;
    snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", qschema);
    if (mig_exec(c, sql, "create schema", 0, NULL) != 0)
        goto cleanup;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (version integer PRIMARY KEY, "
             "name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())",
             table);
    if (mig_exec(c, sql, "create schema_migrations", 0, NULL) != 0)
        goto cleanup;
    for (i = 0; i < nfiles; i++) {
        char version[8];
        int applied;

        snprintf(version, sizeof(version), "%.4s", files[i]->d_name);
        applied = mig_applied(c, table, version);
        if (applied < 0)
            goto cleanup;
        if (applied)
            continue;
        if (mig_apply(c, qschema, table, dir, files[i]->d_name, version) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (c != NULL) {
        /* Closing the session releases the advisory lock as well. */
        PQfinish(c);
    }
    PQfreemem(qschema);
    for (i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    return rc;
}
