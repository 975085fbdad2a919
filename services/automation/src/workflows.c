/*
 * workflows — the /automation/workflows HTTP API: CRUD, "run now" and the
 * run history with each step's job state, result and error. Callers see
 * their own workflows; admins see every one; another owner's workflow
 * answers 404. Runs themselves are created by automation.fire_slot()
 * (migrations/0002_workflows.sql), for manual runs as for cron slots.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "pgexec.h"
#include "workflows.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 100
#define WF_JSON "automation.workflow_json(w)::text"
#define OWNER_OK "($2::text IS NULL OR w.owner_id = $2)"

/* The workflows API checks values itself (workflows_check.c) and has
 * no 422 path for a data exception: it stays AUTO_EDB, a 500. */
static enum auto_res sql_run(struct pgpool *pg, const char *sql, int n,
                             const char *const *p, PGresult **res)
{
    enum auto_res rc = auto_pg_exec(pg, 5000, "workflow", sql, n, p, res);

    return rc == AUTO_EINVAL ? AUTO_EDB : rc;
}

/* Row 0 column 0 as JSON; ENOTFOUND without rows. */
static enum auto_res sql_json(struct pgpool *pg, const char *sql, int n,
                              const char *const *p, json_t **out)
{
    PGresult *r;
    enum auto_res rc = sql_run(pg, sql, n, p, &r);

    *out = NULL;
    if (rc != AUTO_OK)
        return rc;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
        rc = AUTO_ENOTFOUND;
    else if (!(*out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY,
                                 NULL)))
        rc = AUTO_EDB;
    PQclear(r);
    return rc;
}

static void invalid(struct httpd_req *r, const char *field, const char *why)
{
    char msg[512];

    snprintf(msg, sizeof msg, "%s %s", field, why);
    httpd_reply_json(r, 422,
                     json_pack("{s{ssssssss}}", "error", "code",
                               "validation_failed", "message", msg,
                               "field", field, "request_id", r->request_id));
}

static void fail(struct httpd_req *r, enum auto_res rc, const char *what)
{
    if (rc == AUTO_ENOTFOUND)
        httpd_error(r, 404, "not_found", "no such %s", what);
    else if (rc == AUTO_EUNAVAIL)
        httpd_error(r, 503, "unavailable", "the store is unavailable");
    else
        httpd_error(r, 500, "internal_error", "workflow store error");
}

/* {"kind":"workflow","id","state":created|updated|deleted,"owner_id"} */
static void wf_event(struct auto_wf_api *api, long long id,
                     const char *owner, const char *state)
{
    if (api->events && owner)
        auto_events_emit(api->events,
                         json_pack("{sssIssss}", "kind", "workflow", "id",
                                   (json_int_t)id, "state", state,
                                   "owner_id", owner));
}

static const char *owner_of(const struct auto_identity *who)
{
    return who->admin ? NULL : who->user_id;
}

/* Positive id from path parameter `name`; 0 after answering 404. */
static long long path_id(struct httpd_req *r, const char *name)
{
    const char *s = httpd_param(r, name);
    char *end = NULL;
    long long id;

    errno = 0;
    id = s && isdigit((unsigned char)*s) ? strtoll(s, &end, 10) : 0;
    if (id <= 0 || errno || !end || *end != '\0') {
        httpd_error(r, 404, "not_found", "no such workflow");
        return 0;
    }
    return id;
}

/* limit and cursor query parameters; -1 after answering 422. */
static int paging(struct httpd_req *r, long *limit, long long *cursor)
{
    const char *l = httpd_query(r, "limit"), *c = httpd_query(r, "cursor");
    char *end;

    *limit = LIST_LIMIT_DEFAULT;
    *cursor = 0;
    if (l) {
        errno = 0;
        *limit = strtol(l, &end, 10);
        if (errno || end == l || *end || *limit < 1 ||
            *limit > LIST_LIMIT_MAX) {
            invalid(r, "limit", "must be an integer from 1 to 100");
            return -1;
        }
    }
    if (c && *c) {
        errno = 0;
        *cursor = strtoll(c, &end, 10);
        if (errno || end == c || *end || *cursor < 1) {
            invalid(r, "cursor", "is not a valid cursor");
            return -1;
        }
    }
    return 0;
}

/* Text of a JSON value for a SQL parameter (NULL for JSON null). */
static char *param_text(const json_t *v)
{
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return strdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void h_create(struct httpd_req *r, void *arg)
{
    static const char *sql =
        "INSERT INTO automation.workflows AS w (owner_id, name, schedule,"
        " timezone, enabled, steps, missed_run, overlap)"
        " VALUES ($1, $2, $3, $4, $5::boolean, $6::jsonb, $7, $8)"
        " RETURNING " WF_JSON;
    static const char *const f[] = {"name", "schedule", "timezone",
                                    "enabled", "steps", "missed_run",
                                    "overlap"};
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    json_t *body = NULL, *wf = NULL;
    char field[128], why[256];
    char *v[7] = {0};
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        httpd_json_body(r, &body) != 0)
        return;
    if (auto_wf_check(body, 0, api->default_max_attempts, field,
                      sizeof field, why, sizeof why) != 0) {
        invalid(r, field, why);
        goto cleanup;
    }
    for (int i = 0; i < 7; i++)
        v[i] = param_text(json_object_get(body, f[i]));
    const char *p[8] = {who.user_id, v[0], v[1], v[2], v[3], v[4], v[5],
                        v[6]};
    rc = sql_json(api->pg, sql, 8, p, &wf);
    if (rc != AUTO_OK) {
        fail(r, rc == AUTO_ENOTFOUND ? AUTO_EDB : rc, "workflow");
        goto cleanup;
    }
    wf_event(api, (long long)json_integer_value(json_object_get(wf, "id")),
             who.user_id, "created");
    httpd_reply_json(r, 201, json_pack("{so}", "workflow", wf));
cleanup:
    for (int i = 0; i < 7; i++)
        free(v[i]);
    json_decref(body);
}

static void h_list(struct httpd_req *r, void *arg)
{
    static const char *sql =
        "SELECT coalesce(json_agg(x.j ORDER BY x.id DESC), '[]')::text FROM"
        " (SELECT w.id, automation.workflow_json(w) AS j"
        "  FROM automation.workflows w"
        "  WHERE ($1::text IS NULL OR w.owner_id = $1)"
        "  AND ($2::bigint IS NULL OR w.id < $2::bigint)"
        "  ORDER BY w.id DESC LIMIT $3::int) x";
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    long limit;
    long long cursor;
    char cur[32], lim[16];
    json_t *list;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        paging(r, &limit, &cursor) != 0)
        return;
    snprintf(cur, sizeof cur, "%lld", cursor);
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *p[3] = {owner_of(&who), cursor ? cur : NULL, lim};
    rc = sql_json(api->pg, sql, 3, p, &list);
    if (rc != AUTO_OK) {
        fail(r, rc, "workflow");
        return;
    }
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    json_t *next = json_array_size(list) == (size_t)limit && last
                       ? json_sprintf("%lld",
                                      (long long)json_integer_value(
                                          json_object_get(last, "id")))
                       : json_null();
    httpd_reply_json(r, 200, json_pack("{soso}", "workflows", list,
                                       "next_cursor", next));
}

static enum auto_res get_wf(struct pgpool *pg, long long id,
                            const char *owner, json_t **out)
{
    static const char *sql = "SELECT " WF_JSON " FROM automation.workflows w"
                             " WHERE w.id = $1::bigint AND " OWNER_OK;
    char ids[32];

    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[2] = {ids, owner};
    return sql_json(pg, sql, 2, p, out);
}

static void h_get(struct httpd_req *r, void *arg)
{
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    long long id;
    json_t *wf;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")))
        return;
    rc = get_wf(api->pg, id, owner_of(&who), &wf);
    if (rc != AUTO_OK)
        fail(r, rc, "workflow");
    else
        httpd_reply_json(r, 200, json_pack("{so}", "workflow", wf));
}

static void h_patch(struct httpd_req *r, void *arg)
{
    /* A changed schedule, zone or enabled flag restarts the cursor: the
     * new schedule never "catches up" on slots from before the edit. */
    static const char *sql =
        "UPDATE automation.workflows w SET name = $3, schedule = $4,"
        " timezone = $5, enabled = $6::boolean, steps = $7::jsonb,"
        " missed_run = $8, overlap = $9, updated_at = now(),"
        " slot_cursor = CASE WHEN w.schedule IS DISTINCT FROM $4"
        "  OR w.timezone <> $5 OR w.enabled <> $6::boolean"
        "  THEN greatest(now(), w.slot_cursor) ELSE w.slot_cursor END"
        " WHERE w.id = $1::bigint AND " OWNER_OK " RETURNING " WF_JSON;
    static const char *const f[] = {"name", "schedule", "timezone",
                                    "enabled", "steps", "missed_run",
                                    "overlap"};
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    json_t *patch = NULL, *wf = NULL, *out = NULL;
    char field[128], why[256], ids[32];
    char *v[7] = {0};
    long long id;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")) || httpd_json_body(r, &patch) != 0)
        return;
    if (auto_wf_check(patch, 1, api->default_max_attempts, field,
                      sizeof field, why, sizeof why) != 0) {
        invalid(r, field, why);
        goto cleanup;
    }
    rc = get_wf(api->pg, id, owner_of(&who), &wf);
    if (rc != AUTO_OK) {
        fail(r, rc, "workflow");
        goto cleanup;
    }
    /* Check the merged whole: a new zone must still suit the schedule. */
    json_object_update(wf, patch);
    if (auto_wf_check(wf, 0, api->default_max_attempts, field, sizeof field,
                      why, sizeof why) != 0) {
        invalid(r, field, why);
        goto cleanup;
    }
    for (int i = 0; i < 7; i++)
        v[i] = param_text(json_object_get(wf, f[i]));
    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[9] = {ids, owner_of(&who), v[0], v[1], v[2], v[3], v[4],
                        v[5], v[6]};
    rc = sql_json(api->pg, sql, 9, p, &out);
    if (rc != AUTO_OK) {
        fail(r, rc, "workflow");
        goto cleanup;
    }
    wf_event(api, id, json_string_value(json_object_get(out, "owner_id")),
             "updated");
    httpd_reply_json(r, 200, json_pack("{so}", "workflow", out));
cleanup:
    for (int i = 0; i < 7; i++)
        free(v[i]);
    json_decref(wf);
    json_decref(patch);
}

static void h_delete(struct httpd_req *r, void *arg)
{
    static const char *cancel =
        "SELECT automation.cancel_run(x.id, 'workflow deleted') FROM"
        " automation.runs x JOIN automation.workflows w"
        " ON w.id = x.workflow_id WHERE w.id = $1::bigint AND " OWNER_OK
        " AND x.state = 'running'";
    static const char *del =
        "DELETE FROM automation.workflows w WHERE w.id = $1::bigint AND "
        OWNER_OK " RETURNING w.owner_id";
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    PGresult *res;
    char ids[32];
    long long id;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")))
        return;
    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[2] = {ids, owner_of(&who)};
    rc = sql_run(api->pg, cancel, 2, p, &res);
    if (rc == AUTO_OK) {
        PQclear(res);
        rc = sql_run(api->pg, del, 2, p, &res);
    }
    if (rc == AUTO_OK) {
        int found = PQntuples(res) > 0;

        if (found)
            wf_event(api, id, PQgetvalue(res, 0, 0), "deleted");
        PQclear(res);
        if (!found)
            rc = AUTO_ENOTFOUND;
    }
    if (rc != AUTO_OK)
        fail(r, rc, "workflow");
    else
        httpd_reply_raw(r, 204, NULL, "", 0);
}

enum auto_res auto_wf_run_now(struct pgpool *pg, long long wid,
                              const char *owner, json_t **run_out)
{
    static const char *sql =
        "SELECT automation.fire_slot(w.id, NULL, 'manual', NULL)"
        " FROM automation.workflows w WHERE w.id = $1::bigint AND "
        OWNER_OK;
    static const char *get =
        "SELECT automation.run_json(r)::text FROM automation.runs r"
        " WHERE r.id = $1::bigint";
    PGresult *res;
    char ids[32];
    enum auto_res rc;

    *run_out = NULL;
    snprintf(ids, sizeof ids, "%lld", wid);
    const char *p[2] = {ids, owner};
    rc = sql_run(pg, sql, 2, p, &res);
    if (rc != AUTO_OK)
        return rc;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        return AUTO_ENOTFOUND;
    }
    const char *p2[1] = {PQgetvalue(res, 0, 0)};
    rc = sql_json(pg, get, 1, p2, run_out);
    PQclear(res);
    return rc;
}

static void h_run(struct httpd_req *r, void *arg)
{
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    long long id;
    json_t *run;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")))
        return;
    rc = auto_wf_run_now(api->pg, id, owner_of(&who), &run);
    if (rc != AUTO_OK) {
        fail(r, rc, "workflow");
        return;
    }
    auto_events_emit_run(api->events, run);
    httpd_reply_json(r, 202, json_pack("{so}", "run", run));
}

static void h_runs(struct httpd_req *r, void *arg)
{
    static const char *sql =
        "SELECT (SELECT coalesce(json_agg(automation.run_json(x)"
        "  ORDER BY x.id DESC), '[]') FROM (SELECT * FROM automation.runs"
        "  WHERE workflow_id = w.id"
        "  AND ($3::bigint IS NULL OR id < $3::bigint)"
        "  AND ($5::text IS NULL OR state = $5)"
        "  ORDER BY id DESC LIMIT $4::int) x)::text"
        " FROM automation.workflows w WHERE w.id = $1::bigint AND " OWNER_OK;
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    long limit;
    long long id, cursor;
    char ids[32], cur[32], lim[16];
    json_t *list;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")) || paging(r, &limit, &cursor) != 0)
        return;
    snprintf(ids, sizeof ids, "%lld", id);
    snprintf(cur, sizeof cur, "%lld", cursor);
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *p[5] = {ids, owner_of(&who), cursor ? cur : NULL, lim,
                        httpd_query(r, "state")};
    rc = sql_json(api->pg, sql, 5, p, &list);
    if (rc != AUTO_OK) {
        fail(r, rc, "workflow");
        return;
    }
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    json_t *next = json_array_size(list) == (size_t)limit && last
                       ? json_sprintf("%lld",
                                      (long long)json_integer_value(
                                          json_object_get(last, "id")))
                       : json_null();
    httpd_reply_json(r, 200, json_pack("{soso}", "runs", list,
                                       "next_cursor", next));
}

static void h_run_get(struct httpd_req *r, void *arg)
{
    static const char *sql =
        "SELECT automation.run_json(x)::text FROM automation.runs x"
        " JOIN automation.workflows w ON w.id = x.workflow_id"
        " WHERE w.id = $1::bigint AND " OWNER_OK " AND x.id = $3::bigint";
    struct auto_wf_api *api = arg;
    struct auto_identity who;
    long long id, rid;
    char ids[32], rids[32];
    json_t *run;
    enum auto_res rc;

    if (auto_identity_require(api->auth, r, &who) != 0 ||
        !(id = path_id(r, "id")) || !(rid = path_id(r, "run_id")))
        return;
    snprintf(ids, sizeof ids, "%lld", id);
    snprintf(rids, sizeof rids, "%lld", rid);
    const char *p[3] = {ids, owner_of(&who), rids};
    rc = sql_json(api->pg, sql, 3, p, &run);
    if (rc != AUTO_OK)
        fail(r, rc, "run");
    else
        httpd_reply_json(r, 200, json_pack("{so}", "run", run));
}

int auto_wf_routes(struct httpd_server *s, struct auto_wf_api *api)
{
    const char *base = "/automation/workflows";

    if (httpd_route(s, "POST", base, h_create, api, 0) ||
        httpd_route(s, "GET", base, h_list, api, 0) ||
        httpd_route(s, "GET", "/automation/workflows/{id}", h_get, api, 0) ||
        httpd_route(s, "PATCH", "/automation/workflows/{id}", h_patch, api,
                    0) ||
        httpd_route(s, "DELETE", "/automation/workflows/{id}", h_delete, api,
                    0) ||
        httpd_route(s, "POST", "/automation/workflows/{id}/run", h_run, api,
                    0) ||
        httpd_route(s, "GET", "/automation/workflows/{id}/runs", h_runs, api,
                    0) ||
        httpd_route(s, "GET", "/automation/workflows/{id}/runs/{run_id}",
                    h_run_get, api, 0))
        return -1;
    return 0;
}
