/*
 * queue_batch — the worker hot path's statements: prepared per connection
 * (the claim is planned once per connection instead of once per call) and
 * batched (one UPDATE stores the outcome of many finished jobs). The rest
 * of the queue's SQL is in queue.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auto.h"
#include "log/log.h"

/*
 * Runs the statement `name` (prepared from `sql` on first use on this
 * connection: a pooled connection keeps its prepared statements) with the
 * params. Same results and error mapping as queue.c's run().
 */
enum auto_res auto_queue_run_prepared(struct auto_queue *q, const char *name,
                                      const char *sql, int n,
                                      const char *const *params,
                                      PGresult **res)
{
    PGconn *c = pgpool_acquire(q->pg, q->acquire_ms);
    PGresult *r;
    ExecStatusType st;
    enum auto_res rc;
    const char *state;

    *res = NULL;
    if (!c)
        return AUTO_EUNAVAIL;
    r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
    state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* 26000 invalid_sql_statement_name: not prepared here yet */
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && state &&
        strcmp(state, "26000") == 0) {
        PQclear(r);
        r = PQprepare(c, name, sql, n, NULL);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
        }
    }
    st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        pgpool_release(q->pg, c, 0);
        *res = r;
        return AUTO_OK;
    }
    if (pgpool_is_unavailable(c, r)) {
        rc = AUTO_EUNAVAIL;
    } else {
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state && strncmp(state, "22", 2) == 0 ? AUTO_EINVAL : AUTO_EDB;
    }
    log_kv(LOG_LVL_ERROR, NULL, "job queue statement failed", "statement",
           name, "error", PQresultErrorMessage(r), NULL);
    PQclear(r);
    pgpool_release(q->pg, c, rc == AUTO_EUNAVAIL);
    return rc;
}

enum auto_res auto_queue_complete_many(struct auto_queue *q,
                                       const struct auto_job *const *jobs,
                                       const char *const *worker_ids,
                                       const json_t *const *results,
                                       size_t n, int *ok)
{
    /*
     * The rows are locked in id order first, the order cancel_run() takes,
     * so a batch never deadlocks with it. The guard is auto_queue_
     * complete's: a job whose lease moved on is left alone.
     */
    static const char *sql =
        "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb)"
        "  AS d(id bigint, w text, a int, r jsonb)),"
        " l AS MATERIALIZED (SELECT j.id FROM automation.jobs j"
        "  JOIN d ON j.id = d.id ORDER BY j.id FOR UPDATE OF j)"
        " UPDATE automation.jobs j SET state = 'succeeded',"
        " result = COALESCE(d.r, 'null'::jsonb), progress = 100,"
        " finished_at = now(), lease_expires_at = NULL, locked_by = NULL"
        " FROM d WHERE j.id = d.id AND j.id IN (SELECT id FROM l)"
        " AND j.locked_by = d.w AND j.attempts = d.a AND j.state = 'running'"
        " RETURNING j.id";
    json_t *batch = json_array();
    char *text = NULL;
    PGresult *r = NULL;
    enum auto_res rc = AUTO_EDB;

    for (size_t i = 0; i < n; i++)
        ok[i] = 0;
    if (!batch)
        return AUTO_EDB;
    for (size_t i = 0; i < n; i++) {
        json_t *res = results[i] ? json_deep_copy(results[i]) : json_null();

        if (json_array_append_new(batch, json_pack(
                "{sIsssiso}", "id", (json_int_t)jobs[i]->id, "w",
                worker_ids[i], "a", jobs[i]->attempts, "r",
                res ? res : json_null())) != 0)
            goto cleanup;
    }
    text = json_dumps(batch, JSON_COMPACT);
    if (!text)
        goto cleanup;
    const char *p[1] = {text};
    rc = auto_queue_run_prepared(q, "auto_complete_many", sql, 1, p, &r);
    if (rc != AUTO_OK)
        goto cleanup;
    for (int k = 0; k < PQntuples(r); k++) {
        long long id = strtoll(PQgetvalue(r, k, 0), NULL, 10);

        for (size_t i = 0; i < n; i++)
            if (jobs[i]->id == id)
                ok[i] = 1;
    }
    PQclear(r);
cleanup:
    free(text);
    json_decref(batch);
    return rc;
}

enum auto_res auto_queue_fail_permanent(struct auto_queue *q,
                                        const struct auto_job *j,
                                        const char *worker_id,
                                        const char *error)
{
    static const char *sql =
        "UPDATE automation.jobs SET state = 'dead', finished_at = now(),"
        " last_error = $4,"
        " errors = errors || jsonb_build_array(jsonb_build_object("
        "  'attempt', attempts, 'at', automation.rfc3339(now()),"
        "  'error', $4::text)),"
        " lease_expires_at = NULL, locked_by = NULL"
        " WHERE id = $1::bigint AND locked_by = $2"
        " AND attempts = $3::int AND state = 'running' RETURNING id";
    char id[32], att[16];
    PGresult *r = NULL;
    enum auto_res rc;

    snprintf(id, sizeof id, "%lld", j->id);
    snprintf(att, sizeof att, "%d", j->attempts);
    const char *p[4] = {id, worker_id, att,
                        error && *error ? error : "failed"};
    rc = auto_queue_run_prepared(q, "auto_fail_permanent", sql, 4, p, &r);
    if (rc != AUTO_OK)
        return rc;
    rc = PQntuples(r) == 0 ? AUTO_ELOST : AUTO_OK;
    PQclear(r);
    return rc;
}
