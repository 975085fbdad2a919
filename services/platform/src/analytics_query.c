#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "analytics_group.h"
#include "httpd/httpd.h"
#include "log/log.h"
#include "plat.h"

#define PG_WAIT_MS 2000
/* Dense bucket arrays are bounded (e.g. 10000 hours is 13 months). */
#define MAX_BUCKETS 10000
#define DAY_US (86400LL * PLAT_AN_US_PER_S)
#define HOUR_US (3600LL * PLAT_AN_US_PER_S)
#define MINUTE_US (60LL * PLAT_AN_US_PER_S)
#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 1000
#define TOP_LIMIT_DEFAULT 10
#define TOP_LIMIT_MAX 1000

/* Up to this many query parameters and SQL text bytes per query. */
#define MAX_PARAMS 8
#define SQL_MAX 1024

struct q {
    char sql[SQL_MAX];
    size_t len;
    const char *vals[MAX_PARAMS];
    char own[MAX_PARAMS][PLAT_AN_TIME_LEN + 8];
    int n;
    int rollups;     /* reads rollup tables: apply pending rows first */
};

static void q_sql(struct q *q, const char *s)
{
    int w = snprintf(q->sql + q->len, sizeof(q->sql) - q->len, "%s", s);

    if (w > 0)
        q->len += (size_t)w < sizeof(q->sql) - q->len
                      ? (size_t)w
                      : sizeof(q->sql) - q->len - 1;
}

/* Adds a parameter (borrowed string) and returns its "$N" number. */
static int q_param(struct q *q, const char *v)
{
    q->vals[q->n] = v;
    return ++q->n;
}

/* Adds a timestamptz parameter from microseconds and its SQL text. */
static void q_time(struct q *q, int64_t us)
{
    char frag[80];

    snprintf(q->own[q->n], sizeof(q->own[q->n]), "%lld", (long long)us);
    snprintf(frag, sizeof(frag),
             "('epoch'::timestamptz + $%d::bigint * interval '1 us')",
             q_param(q, q->own[q->n]));
    q_sql(q, frag);
}

static void q_num(struct q *q, const char *prefix, const char *v)
{
    char frag[64];

    snprintf(frag, sizeof(frag), "%s$%d", prefix, q_param(q, v));
    q_sql(q, frag);
}

/*
 * Who is calling and what they may see: scope "*" for admins, else
 * their user id. Answers 401 and returns -1 when unauthenticated.
 */
static int caller_scope(struct httpd_req *r, struct plat_ctx *ctx,
                        char *scope, size_t len)
{
    struct ident id;
    enum ident_result ir = ident_from_req(&ctx->identity, r, &id);

    if (ir != IDENT_OK) {
        httpd_add_header(r, "WWW-Authenticate",
                         ir == IDENT_INVALID
                             ? "Bearer realm=\"basalt\", "
                               "error=\"invalid_token\""
                             : "Bearer realm=\"basalt\"");
        httpd_error(r, 401, "unauthorized",
                    ir == IDENT_INVALID ? "invalid or expired credentials"
                                        : "authentication required");
        return -1;
    }
    snprintf(scope, len, "%s",
             ident_roles_contain(id.roles_csv, "admin") ? "*" : id.user_id);
    return 0;
}

/* Optional RFC 3339 query parameter; answers 400 and -1 when bad. */
static int time_param(struct httpd_req *r, const char *name, int64_t def,
                      int64_t *out)
{
    const char *v = httpd_query(r, name);

    if (v == NULL || v[0] == '\0') {
        *out = def;
        return 0;
    }
    if (plat_an_time_parse(v, out) != 0) {
        httpd_error(r, 400, "invalid_parameter",
                    "%s must be an RFC 3339 date-time", name);
        return -1;
    }
    return 0;
}

static int limit_param(struct httpd_req *r, long def, long max, long *out)
{
    const char *v = httpd_query(r, "limit");
    char *end;

    *out = def;
    if (v == NULL || v[0] == '\0')
        return 0;
    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || *out < 1 || *out > max) {
        httpd_error(r, 400, "invalid_parameter",
                    "limit must be an integer from 1 to %ld", max);
        return -1;
    }
    return 0;
}

/* Optional event filter; NULL when absent. -1 (answered) when bad. */
static int event_param(struct httpd_req *r, const char **out)
{
    const char *v = httpd_query(r, "event");

    *out = NULL;
    if (v == NULL || v[0] == '\0')
        return 0;
    if (!plat_an_text_ok(v, strlen(v))) {
        httpd_error(r, 400, "invalid_parameter",
                    "event must be 1..%d bytes of printable text",
                    PLAT_AN_TEXT_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

static PGresult *run(struct plat_ctx *ctx, struct httpd_req *r,
                     const struct q *q)
{
    PGconn *c = pgpool_acquire(ctx->pg, PG_WAIT_MS);
    PGresult *res;

    if (c == NULL) {
        httpd_error(r, 503, "db_unavailable", "database unavailable");
        return NULL;
    }
    /* Rollups are exact once every pending group is folded in (0004). */
    res = q->rollups ? PQexec(c, PLAT_AN_ROLLUP_APPLY_SQL) : NULL;
    if (res == NULL || PQresultStatus(res) == PGRES_TUPLES_OK) {
        PQclear(res);
        res = PQexecParams(c, q->sql, q->n, NULL, q->vals, NULL, NULL, 0);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int down = pgpool_is_unavailable(c, res);

        if (down) {
            httpd_error(r, 503, "db_unavailable", "database unavailable");
        } else {
            log_kv(LOG_LVL_ERROR, &r->log, "analytics query failed",
                   "error", PQerrorMessage(c), NULL);
            httpd_error(r, 500, "internal_error", "internal error");
        }
        PQclear(res);
        pgpool_release(ctx->pg, c, down);
        return NULL;
    }
    pgpool_release(ctx->pg, c, 0);
    return res;
}

static long long cell_ll(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

struct bucket {
    long long count;
    long long uniq;
};

/* Adds `res` rows (epoch seconds, value) into buckets[].count or .uniq. */
static void fill(struct bucket *b, size_t nb, int64_t from, int64_t unit,
                 const PGresult *res, int col, int is_uniq)
{
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t at = cell_ll(res, i, 0) * PLAT_AN_US_PER_S;
        int64_t k = (at - from) / unit;

        if (at < from || k < 0 || (size_t)k >= nb)
            continue;
        if (is_uniq)
            b[k].uniq = cell_ll(res, i, col);
        else
            b[k].count = cell_ll(res, i, col);
    }
}

/* The per-bucket unique/count query over the rollups for hour or day. */
static void rollup_query(struct q *q, const char *table, const char *agg,
                         const char *unit, const char *scope,
                         const char *event, int64_t from, int64_t to)
{
    char frag[160];

    q->rollups = 1;
    snprintf(frag, sizeof(frag),
             "SELECT extract(epoch FROM date_trunc('%s', hour, 'UTC'))"
             "::bigint, %s FROM platform.%s WHERE ",
             unit, agg, table);
    q_sql(q, frag);
    q_num(q, "scope = ", scope);
    if (event != NULL)
        q_num(q, " AND event = ", event);
    q_sql(q, " AND hour >= ");
    q_time(q, from);
    q_sql(q, " AND hour < ");
    q_time(q, to);
    q_sql(q, " GROUP BY 1");
}

/*
 * GET /analytics/summary?event=&from=&to=&interval=minute|hour|day
 * Buckets aligned to the interval in UTC (from rounded down, to up).
 * Counts come from the hourly rollup (event "" = all events); unique
 * distinct_ids are exact: per hour from the rollup, per day as
 * COUNT(DISTINCT) over the hourly presence rows, per minute from the raw
 * events.
 */
static void h_summary(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    char scope[80], ts[PLAT_AN_TIME_LEN];
    const char *event, *iv = httpd_query(r, "interval");
    int64_t now = plat_an_now_us(), from, to, unit;
    struct bucket *b = NULL;
    struct q q;
    PGresult *res = NULL;
    json_t *arr = NULL;
    size_t nb;

    if (caller_scope(r, ctx, scope, sizeof(scope)) != 0 ||
        event_param(r, &event) != 0 || time_param(r, "to", now, &to) != 0 ||
        time_param(r, "from", to - DAY_US, &from) != 0)
        return;
    if (iv == NULL || iv[0] == '\0' || strcmp(iv, "hour") == 0) {
        iv = "hour";
        unit = HOUR_US;
    } else if (strcmp(iv, "day") == 0) {
        unit = DAY_US;
    } else if (strcmp(iv, "minute") == 0) {
        unit = MINUTE_US;
    } else {
        httpd_error(r, 400, "invalid_parameter",
                    "interval must be minute, hour or day");
        return;
    }
    from -= from % unit;
    to += (unit - to % unit) % unit;
    if (to <= from) {
        httpd_error(r, 400, "invalid_parameter", "from must be before to");
        return;
    }
    nb = (size_t)((to - from) / unit);
    if (nb > MAX_BUCKETS) {
        httpd_error(r, 400, "range_too_large",
                    "%zu buckets; at most %d per query", nb, MAX_BUCKETS);
        return;
    }
    b = calloc(nb, sizeof(*b));
    if (b == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return;
    }

    memset(&q, 0, sizeof(q));
    if (unit == MINUTE_US) {
        q_sql(&q, "SELECT extract(epoch FROM date_trunc('minute', ts, "
                  "'UTC'))::bigint, count(*), count(DISTINCT distinct_id)"
                  " FROM platform.analytics_events WHERE ts >= ");
        q_time(&q, from);
        q_sql(&q, " AND ts < ");
        q_time(&q, to);
        if (strcmp(scope, "*") != 0)
            q_num(&q, " AND owner = ", scope);
        if (event != NULL)
            q_num(&q, " AND event = ", event);
        q_sql(&q, " GROUP BY 1");
        if ((res = run(ctx, r, &q)) == NULL)
            goto cleanup;
        fill(b, nb, from, unit, res, 1, 0);
        fill(b, nb, from, unit, res, 2, 1);
    } else if (unit == HOUR_US) {
        /* Event "" is the all-events rollup. */
        rollup_query(&q, "analytics_hourly", "n, uniq", "hour", scope,
                     event != NULL ? event : "", from, to);
        /* One row per hour already: GROUP BY is a no-op; drop it. */
        q.len -= strlen(" GROUP BY 1");
        q.sql[q.len] = '\0';
        if ((res = run(ctx, r, &q)) == NULL)
            goto cleanup;
        fill(b, nb, from, unit, res, 1, 0);
        fill(b, nb, from, unit, res, 2, 1);
    } else {
        const char *u = "day";

        rollup_query(&q, "analytics_hourly", "sum(n)::bigint", u, scope,
                     event != NULL ? event : "", from, to);
        if ((res = run(ctx, r, &q)) == NULL)
            goto cleanup;
        fill(b, nb, from, unit, res, 1, 0);
        PQclear(res);
        memset(&q, 0, sizeof(q));
        rollup_query(&q, "analytics_hourly_ids",
                     "count(DISTINCT distinct_id)", u, scope,
                     event != NULL ? event : "", from, to);
        q.rollups = 0; /* the first query applied what was pending */
        if ((res = run(ctx, r, &q)) == NULL)
            goto cleanup;
        fill(b, nb, from, unit, res, 1, 1);
    }

    arr = json_array();
    for (size_t i = 0; arr != NULL && i < nb; i++) {
        plat_an_time_format(from + (int64_t)i * unit, ts, sizeof(ts));
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "start", ts,
                                             "count", (json_int_t)b[i].count,
                                             "unique",
                                             (json_int_t)b[i].uniq));
    }
    {
        char f[PLAT_AN_TIME_LEN], t[PLAT_AN_TIME_LEN];

        plat_an_time_format(from, f, sizeof(f));
        plat_an_time_format(to, t, sizeof(t));
        httpd_reply_json(r, 200,
                         json_pack("{s:s?, s:s, s:s, s:s, s:o}", "event",
                                   event, "interval", iv, "from", f, "to", t,
                                   "buckets", arr));
        arr = NULL;
    }
cleanup:
    json_decref(arr);
    PQclear(res);
    free(b);
}

/* GET /analytics/top?from=&to=&limit= — most frequent events. */
static void h_top(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    char scope[80], lim[24], f[PLAT_AN_TIME_LEN], t[PLAT_AN_TIME_LEN];
    int64_t now = plat_an_now_us(), from, to;
    long limit;
    struct q q;
    PGresult *res;
    json_t *arr;

    if (caller_scope(r, ctx, scope, sizeof(scope)) != 0 ||
        time_param(r, "to", now, &to) != 0 ||
        time_param(r, "from", to - DAY_US, &from) != 0 ||
        limit_param(r, TOP_LIMIT_DEFAULT, TOP_LIMIT_MAX, &limit) != 0)
        return;
    from -= from % HOUR_US;
    to += (HOUR_US - to % HOUR_US) % HOUR_US;
    if (to <= from) {
        httpd_error(r, 400, "invalid_parameter", "from must be before to");
        return;
    }
    snprintf(lim, sizeof(lim), "%ld", limit);
    memset(&q, 0, sizeof(q));
    q.rollups = 1;
    q_sql(&q, "SELECT event, sum(n)::bigint AS c FROM "
              "platform.analytics_hourly WHERE ");
    q_num(&q, "scope = ", scope);
    q_sql(&q, " AND hour >= ");
    q_time(&q, from);
    q_sql(&q, " AND hour < ");
    q_time(&q, to);
    /* Event "" is the all-events rollup, not an event. */
    q_num(&q, " AND event <> '' GROUP BY event ORDER BY c DESC, event "
              "LIMIT ", lim);
    if ((res = run(ctx, r, &q)) == NULL)
        return;
    arr = json_array();
    for (int i = 0; arr != NULL && i < PQntuples(res); i++)
        json_array_append_new(arr, json_pack("{s:s, s:I}", "event",
                                             PQgetvalue(res, i, 0), "count",
                                             (json_int_t)cell_ll(res, i, 1)));
    PQclear(res);
    plat_an_time_format(from, f, sizeof(f));
    plat_an_time_format(to, t, sizeof(t));
    httpd_reply_json(r, 200, json_pack("{s:s, s:s, s:o}", "from", f, "to", t,
                                       "events", arr));
}

static json_t *event_row(const PGresult *res, int i)
{
    char ts[PLAT_AN_TIME_LEN], recv[PLAT_AN_TIME_LEN];
    json_t *props = json_loads(PQgetvalue(res, i, 5), 0, NULL);

    plat_an_time_format(cell_ll(res, i, 1), ts, sizeof(ts));
    plat_an_time_format(cell_ll(res, i, 7), recv, sizeof(recv));
    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "id",
                     (json_int_t)cell_ll(res, i, 0), "event",
                     PQgetvalue(res, i, 2), "distinct_id",
                     PQgetvalue(res, i, 3), "owner", PQgetvalue(res, i, 4),
                     "properties", props != NULL ? props : json_object(),
                     "message_id", PQgetvalue(res, i, 6), "timestamp", ts,
                     "received_at", recv);
}

/*
 * GET /analytics/events?event=&from=&to=&cursor=&limit= — newest first,
 * keyset pagination on (ts, id): the cursor is the last row returned.
 */
static void h_events_list(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    char scope[80], lim[24], cur[PLAT_AN_CURSOR_MAX], idbuf[24];
    const char *event, *cursor = httpd_query(r, "cursor");
    int64_t from, to, cts = 0, cid = 0;
    long limit;
    struct q q;
    PGresult *res;
    json_t *arr;
    int n, more;

    if (caller_scope(r, ctx, scope, sizeof(scope)) != 0 ||
        event_param(r, &event) != 0 ||
        time_param(r, "from", INT64_MIN, &from) != 0 ||
        time_param(r, "to", INT64_MAX, &to) != 0 ||
        limit_param(r, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, &limit) != 0)
        return;
    if (cursor != NULL && cursor[0] != '\0' &&
        plat_an_cursor_decode(cursor, &cts, &cid) != 0) {
        httpd_error(r, 400, "invalid_parameter", "cursor is not valid");
        return;
    }
    memset(&q, 0, sizeof(q));
    q_sql(&q, "SELECT id, (extract(epoch FROM ts) * 1000000)::bigint, "
              "event, distinct_id, owner, properties::text, message_id, "
              "(extract(epoch FROM received_at) * 1000000)::bigint "
              "FROM platform.analytics_events WHERE true");
    if (strcmp(scope, "*") != 0)
        q_num(&q, " AND owner = ", scope);
    if (event != NULL)
        q_num(&q, " AND event = ", event);
    if (from != INT64_MIN) {
        q_sql(&q, " AND ts >= ");
        q_time(&q, from);
    }
    if (to != INT64_MAX) {
        q_sql(&q, " AND ts < ");
        q_time(&q, to);
    }
    if (cursor != NULL && cursor[0] != '\0') {
        snprintf(idbuf, sizeof(idbuf), "%lld", (long long)cid);
        q_sql(&q, " AND (ts, id) < (");
        q_time(&q, cts);
        q_num(&q, ", ", idbuf);
        q_sql(&q, "::bigint)");
    }
    snprintf(lim, sizeof(lim), "%ld", limit + 1);
    q_num(&q, " ORDER BY ts DESC, id DESC LIMIT ", lim);
    if ((res = run(ctx, r, &q)) == NULL)
        return;
    n = PQntuples(res);
    more = n > limit;
    if (more)
        n = (int)limit;
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++)
        json_array_append_new(arr, event_row(res, i));
    if (more)
        plat_an_cursor_encode(cell_ll(res, n - 1, 1), cell_ll(res, n - 1, 0),
                              cur, sizeof(cur));
    PQclear(res);
    httpd_reply_json(r, 200, json_pack("{s:o, s:s?}", "events", arr,
                                       "next_cursor", more ? cur : NULL));
}

int plat_an_query_routes(struct httpd_server *s, struct plat_ctx *ctx)
{
    if (httpd_route(s, "GET", "/analytics/summary", h_summary, ctx, 0) ||
        httpd_route(s, "GET", "/analytics/top", h_top, ctx, 0) ||
        httpd_route(s, "GET", "/analytics/events", h_events_list, ctx, 0))
        return -1;
    return 0;
}
