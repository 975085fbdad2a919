/*
 * datasets — GET /automation/datasets[/{id}[/rows]]: what imports made.
 *
 * Rows are read with filters ?filter=<column>:<op>:<value> (repeatable,
 * ANDed). Columns must exist in the dataset's schema and are quoted with
 * PQescapeIdentifier; operators come from a fixed list; values are bound
 * parameters, checked against the column's type first so a bad value is
 * a 422, never an SQL error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "files.h"
#include "import.h"

#define MAX_FILTERS 8
#define ROWS_LIMIT_DEFAULT 100
#define ROWS_LIMIT_MAX 1000

struct ds_op {
    const char *name;
    const char *sql;      /* between the column and the parameter */
    int has_value;
    int strings_only;
};

static const struct ds_op ops[] = {
    {"eq", "=", 1, 0},          {"ne", "<>", 1, 0},
    {"gt", ">", 1, 0},          {"gte", ">=", 1, 0},
    {"lt", "<", 1, 0},          {"lte", "<=", 1, 0},
    {"contains", "ILIKE", 1, 1}, {"is_null", "IS NULL", 0, 0},
    {"not_null", "IS NOT NULL", 0, 0},
};

struct ds_filter {
    char column[IMP_NAME_MAX + 1];
    const struct ds_op *op;
    enum imp_type type;
    char *value;          /* owned; NULL without a value */
};

/*
 * Parses "col:op:value" against the schema (a JSON array of {"name",
 * "type"}). 0, or -1 with why. The value may itself hold ':'.
 */
static int parse_filter(const char *s, const json_t *columns,
                        struct ds_filter *out, char *why, size_t wl)
{
    const char *c1 = strchr(s, ':'), *c2, *val;
    size_t oplen, i;
    json_t *col = NULL;
    long long iv;
    double dv;
    int bv;
    int64_t ts;

    memset(out, 0, sizeof *out);
    if (!c1 || (size_t)(c1 - s) > IMP_NAME_MAX || c1 == s) {
        snprintf(why, wl, "must look like column:op:value");
        return -1;
    }
    c2 = strchr(c1 + 1, ':');
    oplen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    val = c2 ? c2 + 1 : NULL;
    memcpy(out->column, s, (size_t)(c1 - s));
    out->column[c1 - s] = '\0';
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].name) == oplen &&
            strncmp(ops[i].name, c1 + 1, oplen) == 0)
            break;
    if (i == sizeof ops / sizeof ops[0]) {
        snprintf(why, wl, "has an unknown operator (eq ne gt gte lt lte "
                          "contains is_null not_null)");
        return -1;
    }
    out->op = &ops[i];
    json_array_foreach(columns, i, col)
        if (strcmp(json_string_value(json_object_get(col, "name")),
                   out->column) == 0)
            break;
    if (i == json_array_size(columns)) {
        snprintf(why, wl, "names an unknown column \"%s\"", out->column);
        return -1;
    }
    out->type = (enum imp_type)imp_type_parse(
        json_string_value(json_object_get(col, "type")));
    if ((int)out->type < 0)
        out->type = IMP_STRING;
    if (!out->op->has_value)
        return 0;
    if (!val) {
        snprintf(why, wl, "needs a value");
        return -1;
    }
    if (out->op->strings_only && out->type != IMP_STRING) {
        snprintf(why, wl, "contains works on string columns only");
        return -1;
    }
    if ((out->type == IMP_INTEGER && !imp_parse_int(val, strlen(val), &iv)) ||
        (out->type == IMP_FLOAT && !imp_parse_float(val, strlen(val), &dv) &&
         !imp_parse_int(val, strlen(val), &iv)) ||
        (out->type == IMP_BOOLEAN && !imp_parse_bool(val, strlen(val), &bv)) ||
        (out->type == IMP_DATE && !imp_parse_date(val, strlen(val))) ||
        (out->type == IMP_TIMESTAMP && !imp_parse_ts(val, strlen(val), &ts)) ||
        !imp_utf8_ok(val, strlen(val))) {
        snprintf(why, wl, "value does not fit column \"%s\" (%s)",
                 out->column, imp_type_name(out->type));
        return -1;
    }
    if (out->type == IMP_BOOLEAN) {
        out->value = strdup(bv ? "true" : "false");
    } else if (out->op->strings_only) {
        /* ILIKE '%v%' with the pattern characters escaped */
        size_t n = strlen(val), o = 0;

        out->value = malloc(2 * n + 3);
        if (out->value) {
            out->value[o++] = '%';
            for (size_t k = 0; k < n; k++) {
                if (strchr("%_\\", val[k]))
                    out->value[o++] = '\\';
                out->value[o++] = val[k];
            }
            out->value[o++] = '%';
            out->value[o] = '\0';
        }
    } else {
        out->value = strdup(val);
    }
    if (!out->value) {
        snprintf(why, wl, "out of memory");
        return -1;
    }
    return 0;
}

/* Dataset JSON (the caller's; admins any); NULL after answering. */
static json_t *dataset(struct httpd_req *r, struct auto_files *f,
                       long long *id_out)
{
    struct auto_identity who;
    const char *params[2];
    char ids[32];
    long long id;
    PGresult *res;
    json_t *d;
    enum auto_res rc;

    if (auto_identity_require(f->auth, r, &who) != 0 ||
        (id = auto_files_path_id(r, "dataset")) == 0)
        return NULL;
    snprintf(ids, sizeof ids, "%lld", id);
    params[0] = ids;
    params[1] = who.admin ? NULL : who.user_id;
    rc = auto_files_sql(f, "SELECT automation.dataset_json(d) FROM"
                           " automation.datasets d WHERE id = $1 AND"
                           " ($2::text IS NULL OR owner_id = $2)",
                        2, params, &res);
    if (rc == AUTO_OK && PQntuples(res) == 0) {
        PQclear(res);
        rc = AUTO_ENOTFOUND;
    }
    if (rc != AUTO_OK) {
        auto_files_fail(r, rc, "dataset");
        return NULL;
    }
    d = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!d)
        httpd_error(r, 500, "internal_error", "dataset store error");
    *id_out = id;
    return d;
}

static void h_get(struct httpd_req *r, void *arg)
{
    long long id;
    json_t *d = dataset(r, arg, &id);

    if (d)
        httpd_reply_json(r, 200, d);
}

static void h_list(struct httpd_req *r, void *arg)
{
    static const char sql[] =
        "SELECT coalesce(json_agg(automation.dataset_json(d)"
        " ORDER BY d.id DESC), '[]') FROM (SELECT * FROM automation.datasets"
        " WHERE ($1::text IS NULL OR owner_id = $1)"
        " AND ($2::bigint IS NULL OR id < $2)"
        " ORDER BY id DESC LIMIT $3) d";

    auto_files_list(r, arg, sql, "datasets", "dataset");
}

struct filter_walk {
    const json_t *columns;
    struct ds_filter *filters;
    size_t n;
    char why[256];
    int bad;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value)
{
    struct filter_walk *w = cls;

    (void)kind;
    if (strcmp(key, "filter") != 0 || !value || !*value || w->bad)
        return MHD_YES;
    if (w->n == MAX_FILTERS) {
        snprintf(w->why, sizeof w->why, "may be given at most 8 times");
        w->bad = 1;
        return MHD_NO;
    }
    if (parse_filter(value, w->columns, &w->filters[w->n], w->why,
                     sizeof w->why) != 0) {
        free(w->filters[w->n].value);
        w->bad = 1;
        return MHD_NO;
    }
    w->n++;
    return MHD_YES;
}

static void h_rows(struct httpd_req *r, void *arg)
{
    struct auto_files *f = arg;
    struct ds_filter filters[MAX_FILTERS];
    struct filter_walk w = {.filters = filters};
    const char *params[MAX_FILTERS + 2], *s;
    char sql[8192], lim[16], cur[32];
    size_t n = 0;
    int np = 0;
    long limit = ROWS_LIMIT_DEFAULT;
    long long id, cursor = 0;
    PGresult *res = NULL;
    json_t *d = dataset(r, f, &id), *rows, *next = json_null();
    PGconn *c = NULL;
    char *end;

    if (!d)
        return;
    if (strcmp(json_string_value(json_object_get(d, "state")), "ready")) {
        httpd_error(r, 409, "conflict", "dataset %lld is %s", id,
                    json_string_value(json_object_get(d, "state")));
        goto cleanup;
    }
    if ((s = httpd_query(r, "limit")) && *s) {
        limit = strtol(s, &end, 10);
        if (*end || limit < 1 || limit > ROWS_LIMIT_MAX) {
            auto_files_invalid(r, "limit", "must be an integer from 1 to 1000");
            goto cleanup;
        }
    }
    if ((s = httpd_query(r, "cursor")) && *s) {
        cursor = strtoll(s, &end, 10);
        if (*end || cursor < 1) {
            auto_files_invalid(r, "cursor", "is not a cursor from this API");
            goto cleanup;
        }
    }
    w.columns = json_object_get(d, "columns");
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_arg, &w);
    if (w.bad) {
        auto_files_invalid(r, "filter", w.why);
        goto cleanup;
    }
    c = pgpool_acquire(f->pg, f->acquire_ms > 0 ? f->acquire_ms : 5000);
    if (!c) {
        auto_files_fail(r, AUTO_EUNAVAIL, "dataset");
        goto cleanup;
    }
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(cur, sizeof cur, "%lld", cursor);
    params[np++] = cur;
    n = (size_t)snprintf(sql, sizeof sql,
                         "SELECT coalesce(json_agg(row_to_json(t) ORDER BY"
                         " t._row), '[]') FROM (SELECT * FROM"
                         " automation.ds_%lld WHERE _row > $1", id);
    for (size_t i = 0; i < w.n; i++) {
        char *q = PQescapeIdentifier(c, filters[i].column,
                                     strlen(filters[i].column));

        if (!q)
            break;
        if (filters[i].op->has_value) {
            params[np] = filters[i].value;
            np++;
            n += (size_t)snprintf(sql + n, sizeof sql - n,
                                  " AND %s %s $%d::%s", q, filters[i].op->sql,
                                  np, imp_type_sql(filters[i].type));
        } else {
            n += (size_t)snprintf(sql + n, sizeof sql - n, " AND %s %s", q,
                                  filters[i].op->sql);
        }
        PQfreemem(q);
    }
    params[np++] = lim;
    snprintf(sql + n, sizeof sql - n, " ORDER BY _row LIMIT $%d) t", np);
    res = PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int down = pgpool_is_unavailable(c, res);

        pgpool_release(f->pg, c, down);
        c = NULL;
        auto_files_fail(r, down ? AUTO_EUNAVAIL : AUTO_EDB, "dataset");
        goto cleanup;
    }
    pgpool_release(f->pg, c, 0);
    c = NULL;
    rows = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!rows) {
        httpd_error(r, 500, "internal_error", "dataset store error");
        goto cleanup;
    }
    if (json_array_size(rows) == (size_t)limit) {
        snprintf(cur, sizeof cur, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(
                     json_array_get(rows, json_array_size(rows) - 1),
                     "_row")));
        next = json_string(cur);
    }
    httpd_reply_json(r, 200, json_pack("{soso}", "rows", rows, "next_cursor",
                                       next));
cleanup:
    for (size_t i = 0; i < w.n; i++)
        free(filters[i].value);
    PQclear(res);
    json_decref(d);
}

int auto_datasets_routes(struct httpd_server *s, struct auto_files *f)
{
    if (httpd_route(s, "GET", "/automation/datasets", h_list, f, 0) ||
        httpd_route(s, "GET", "/automation/datasets/{id}", h_get, f, 0) ||
        httpd_route(s, "GET", "/automation/datasets/{id}/rows", h_rows, f,
                    0))
        return -1;
    return 0;
}
