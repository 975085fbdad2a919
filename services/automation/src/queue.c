/*
 * queue — every SQL statement on automation.jobs. Each operation takes a
 * pooled connection for one statement (autocommit), so no transaction is
 * ever held open across a handler's run: the lease is the lock.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "auto.h"
#include "log/log.h"

#define JOB_JSON "automation.job_json(j)::text"

void auto_queue_init(struct auto_queue *q, struct pgpool *pg, int lease_s,
                     int retry_base_ms, int retry_max_ms)
{
    q->pg = pg;
    q->lease_s = lease_s;
    q->retry_base_ms = retry_base_ms;
    q->retry_max_ms = retry_max_ms;
    q->acquire_ms = 5000;
    q->kick = NULL;
    q->kick_arg = NULL;
}

void auto_job_cleanup(struct auto_job *j)
{
    json_decref(j->args);
    j->args = NULL;
}

long auto_backoff_ms(const struct auto_queue *q, int attempt)
{
    double d = q->retry_base_ms;
    uint32_t r = 0;

    for (int i = 1; i < attempt && d < q->retry_max_ms; i++)
        d *= 2;
    if (d > q->retry_max_ms)
        d = q->retry_max_ms;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)rand();
    /* +-20 %: spreads retries of jobs that failed together */
    d *= 0.8 + 0.4 * ((double)r / UINT32_MAX);
    return (long)d;
}

/*
 * Runs one parameterised statement on a pooled connection. On success
 * returns AUTO_OK with *res set (caller PQclear's); else maps the error.
 */
static enum auto_res run(struct auto_queue *q, const char *sql, int n,
                         const char *const *params, PGresult **res)
{
    PGconn *c = pgpool_acquire(q->pg, q->acquire_ms);
    PGresult *r;
    ExecStatusType st;
    enum auto_res rc;

    *res = NULL;
    if (!c)
        return AUTO_EUNAVAIL;
    r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        pgpool_release(q->pg, c, 0);
        *res = r;
        return AUTO_OK;
    }
    if (pgpool_is_unavailable(c, r)) {
        rc = AUTO_EUNAVAIL;
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        /* class 22: data exception (a bad timestamp, say) */
        rc = state && strncmp(state, "22", 2) == 0 ? AUTO_EINVAL : AUTO_EDB;
    }
    log_kv(rc == AUTO_EINVAL ? LOG_LVL_INFO : LOG_LVL_ERROR, NULL,
           "job queue statement failed", "error",
           PQresultErrorMessage(r), NULL);
    PQclear(r);
    pgpool_release(q->pg, c, rc == AUTO_EUNAVAIL);
    return rc;
}

/* Parses column 0 of row 0 as JSON into *out (new reference). */
static enum auto_res row_json(PGresult *r, json_t **out)
{
    json_error_t e;

    *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &e);
    if (!*out) {
        log_kv(LOG_LVL_ERROR, NULL, "job JSON from PostgreSQL unparseable",
               "error", e.text, NULL);
        return AUTO_EDB;
    }
    return AUTO_OK;
}

/* Runs sql expecting at most one row holding a JSON value. */
static enum auto_res one_json(struct auto_queue *q, const char *sql, int n,
                              const char *const *params, json_t **out)
{
    PGresult *r;
    enum auto_res rc = run(q, sql, n, params, &r);

    if (out)
        *out = NULL;
    if (rc != AUTO_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = AUTO_ENOTFOUND;
    else if (out)
        rc = row_json(r, out);
    PQclear(r);
    return rc;
}

/*
 * NOTIFY automation_jobs 'job' after a durable enqueue. Its own
 * transaction commits with synchronous_commit off: it has nothing to keep
 * (the job is already durable), so it holds the notify lock only for
 * moments. Best effort: idle workers also poll (POLL_MS).
 */
static void wake(struct auto_queue *q)
{
    static const char *sql =
        "SELECT pg_notify('" AUTO_NOTIFY_CHANNEL "', 'job')"
        " FROM (SELECT set_config('synchronous_commit', 'off', true)) s";
    PGresult *r;

    if (run(q, sql, 0, NULL, &r) == AUTO_OK)
        PQclear(r);
}

enum auto_res auto_queue_enqueue(struct auto_queue *q,
                                 const struct auto_enqueue *in,
                                 json_t **job_out, int *created)
{
    /*
     * automation.notify = off (this transaction only) keeps the insert
     * trigger from NOTIFYing: PostgreSQL serialises the commits of
     * notifying transactions on one lock held through their WAL flush, so
     * durable enqueues that NOTIFY cannot share an fsync (group commit).
     * The wake-up is sent after the commit instead (wake() below).
     */
    static const char *ins =
        "INSERT INTO automation.jobs AS j (type, args, priority, run_at,"
        " max_attempts, idempotency_key, owner_id, state)"
        " SELECT $1, $2::jsonb, $3::smallint,"
        " COALESCE($4::timestamptz, now()), $5::int, $6, $7,"
        " CASE WHEN $4::timestamptz > now() THEN 'scheduled'"
        " ELSE 'available' END"
        " FROM (SELECT set_config('automation.notify', 'off', true)) quiet"
        " ON CONFLICT (owner_id, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL DO NOTHING"
        " RETURNING " JOB_JSON;
    static const char *existing =
        "SELECT " JOB_JSON " FROM automation.jobs j"
        " WHERE owner_id = $1 AND idempotency_key = $2";
    char prio[16], maxa[16];
    char *args = json_dumps(in->args, JSON_COMPACT);
    const char *st;
    enum auto_res rc;

    *job_out = NULL;
    *created = 0;
    if (!args)
        return AUTO_EDB;
    snprintf(prio, sizeof prio, "%d", in->priority);
    snprintf(maxa, sizeof maxa, "%d", in->max_attempts);
    const char *p[7] = {in->type, args, prio, in->run_at, maxa,
                        in->idempotency_key, in->owner_id};
    rc = one_json(q, ins, 7, p, job_out);
    free(args);
    if (rc == AUTO_OK) {
        *created = 1;
        st = json_string_value(json_object_get(*job_out, "state"));
        if (st && strcmp(st, "available") == 0) {
            if (q->kick)
                q->kick(q->kick_arg);
            wake(q);
        }
        return AUTO_OK;
    }
    if (rc != AUTO_ENOTFOUND || !in->idempotency_key)
        return rc == AUTO_ENOTFOUND ? AUTO_EDB : rc;
    /* The key was taken: the other insert has committed (the unique index
     * made us wait for it), so this statement's snapshot sees its row. */
    const char *p2[2] = {in->owner_id, in->idempotency_key};
    rc = one_json(q, existing, 2, p2, job_out);
    return rc == AUTO_ENOTFOUND ? AUTO_ECONFLICT : rc;
}

enum auto_res auto_queue_claim(struct auto_queue *q, const char *worker_id,
                               int max, struct auto_job *out, size_t *n)
{
    /*
     * MATERIALIZED keeps the locking subqueries from being inlined and run
     * more than once. SKIP LOCKED: concurrent claimers pass over each
     * other's rows instead of queueing behind them; a row another claimer
     * already committed is rechecked (READ COMMITTED) and dropped.
     * Waiting jobs and expired leases are two scans, each an ordered walk
     * of its partial index that stops after $2 rows (one OR-ed WHERE made
     * PostgreSQL read and sort the whole backlog on every claim); rows the
     * final LIMIT drops are only locked until this statement commits.
     */
    static const char *sql =
        "WITH w AS MATERIALIZED ("
        "  SELECT id, false AS expired, 'running' AS dest,"
        "   priority, run_at FROM automation.jobs"
        "  WHERE state IN ('available', 'scheduled', 'retryable')"
        "   AND run_at <= now()"
        "  ORDER BY priority, run_at, id LIMIT $2::int"
        "  FOR UPDATE SKIP LOCKED),"
        " e AS MATERIALIZED ("
        "  SELECT id, true AS expired,"
        "   CASE WHEN cancel_requested THEN 'cancelled'"
        "        WHEN attempts >= max_attempts THEN 'dead'"
        "        ELSE 'running' END AS dest,"
        "   priority, run_at FROM automation.jobs"
        "  WHERE state = 'running' AND lease_expires_at < now()"
        "  ORDER BY lease_expires_at LIMIT $2::int"
        "  FOR UPDATE SKIP LOCKED),"
        " next AS MATERIALIZED ("
        "  SELECT id, expired, dest FROM (SELECT * FROM w UNION ALL"
        "   SELECT * FROM e) x"
        "  ORDER BY priority, run_at, id LIMIT $2::int),"
        " upd AS ("
        "  UPDATE automation.jobs j SET"
        "   state = n.dest,"
        "   attempts = j.attempts + (n.dest = 'running')::int,"
        "   locked_by = CASE WHEN n.dest = 'running' THEN $1 END,"
        "   lease_expires_at = CASE WHEN n.dest = 'running'"
        "    THEN now() + make_interval(secs => $3::int) END,"
        "   started_at = CASE WHEN n.dest = 'running' THEN now()"
        "    ELSE j.started_at END,"
        "   finished_at = CASE WHEN n.dest = 'running' THEN NULL"
        "    ELSE now() END,"
        "   last_error = CASE WHEN n.expired THEN 'lease expired'"
        "    ELSE j.last_error END,"
        "   errors = CASE WHEN n.expired THEN j.errors || jsonb_build_array("
        "    jsonb_build_object('attempt', j.attempts, 'at',"
        "     automation.rfc3339(now()), 'error', 'lease expired'))"
        "    ELSE j.errors END"
        "  FROM next n WHERE j.id = n.id"
        "  RETURNING j.id, j.type, j.args::text, j.attempts, j.max_attempts,"
        "   j.state, extract(epoch FROM now() - j.run_at)::float8,"
        "   j.priority, j.run_at, j.owner_id)"
        " SELECT * FROM upd ORDER BY priority, run_at, id";
    char maxs[16], lease[16];
    PGresult *r;
    enum auto_res rc;
    int rows;

    *n = 0;
    snprintf(maxs, sizeof maxs, "%d", max);
    snprintf(lease, sizeof lease, "%d", q->lease_s);
    const char *p[3] = {worker_id, maxs, lease};
    rc = auto_queue_run_prepared(q, "auto_claim", sql, 3, p, &r);
    if (rc != AUTO_OK)
        return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows && i < max; i++) {
        struct auto_job *j = &out[*n];
        json_error_t e;

        memset(j, 0, sizeof *j);
        j->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(j->type, sizeof j->type, "%s", PQgetvalue(r, i, 1));
        j->args = json_loads(PQgetvalue(r, i, 2), 0, &e);
        if (!j->args)
            j->args = json_object();
        j->attempts = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
        j->max_attempts = (int)strtol(PQgetvalue(r, i, 4), NULL, 10);
        snprintf(j->state, sizeof j->state, "%s", PQgetvalue(r, i, 5));
        j->wait_s = strtod(PQgetvalue(r, i, 6), NULL);
        snprintf(j->owner_id, sizeof j->owner_id, "%s", PQgetvalue(r, i, 9));
        (*n)++;
    }
    PQclear(r);
    return AUTO_OK;
}

/* Runs a guarded finishing statement: $1 id, $2 worker, $3 attempts, then
 * `extra` more params. AUTO_ELOST when no row matched. */
static enum auto_res finish(struct auto_queue *q, const char *sql,
                            const struct auto_job *j, const char *worker_id,
                            int extra, const char *const *more,
                            PGresult **res)
{
    char id[32], att[16];
    const char *p[8];
    PGresult *r;
    enum auto_res rc;

    snprintf(id, sizeof id, "%lld", j->id);
    snprintf(att, sizeof att, "%d", j->attempts);
    p[0] = id;
    p[1] = worker_id;
    p[2] = att;
    for (int i = 0; i < extra && i < 5; i++)
        p[3 + i] = more[i];
    rc = run(q, sql, 3 + extra, p, &r);
    if (rc != AUTO_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return AUTO_ELOST;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return AUTO_OK;
}

#define GUARD " WHERE id = $1::bigint AND locked_by = $2" \
              " AND attempts = $3::int AND state = 'running'"

enum auto_res auto_queue_complete(struct auto_queue *q,
                                  const struct auto_job *j,
                                  const char *worker_id, const json_t *result)
{
    static const char *sql =
        "UPDATE automation.jobs SET state = 'succeeded', result = $4::jsonb,"
        " progress = 100, finished_at = now(), lease_expires_at = NULL,"
        " locked_by = NULL" GUARD " RETURNING id";
    char *res = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY)
                       : NULL;
    const char *more[1] = {res ? res : "null"};
    enum auto_res rc = finish(q, sql, j, worker_id, 1, more, NULL);

    free(res);
    return rc;
}

enum auto_res auto_queue_fail(struct auto_queue *q, const struct auto_job *j,
                              const char *worker_id, const char *error,
                              int *dead)
{
    static const char *sql =
        "UPDATE automation.jobs SET"
        " state = CASE WHEN attempts >= max_attempts THEN 'dead'"
        "  ELSE 'retryable' END,"
        " run_at = CASE WHEN attempts >= max_attempts THEN run_at"
        "  ELSE now() + make_interval(secs => $5::float8 / 1000) END,"
        " finished_at = CASE WHEN attempts >= max_attempts THEN now() END,"
        " last_error = $4,"
        " errors = errors || jsonb_build_array(jsonb_build_object("
        "  'attempt', attempts, 'at', automation.rfc3339(now()),"
        "  'error', $4::text)),"
        " lease_expires_at = NULL, locked_by = NULL" GUARD
        " RETURNING state";
    char delay[32];
    PGresult *r = NULL;
    enum auto_res rc;

    snprintf(delay, sizeof delay, "%ld", auto_backoff_ms(q, j->attempts));
    const char *more[2] = {error && *error ? error : "failed", delay};
    rc = finish(q, sql, j, worker_id, 2, more, &r);
    if (rc == AUTO_OK) {
        if (dead)
            *dead = strcmp(PQgetvalue(r, 0, 0), "dead") == 0;
        PQclear(r);
    }
    return rc;
}

enum auto_res auto_queue_cancelled(struct auto_queue *q,
                                   const struct auto_job *j,
                                   const char *worker_id)
{
    static const char *sql =
        "UPDATE automation.jobs SET state = 'cancelled', finished_at = now(),"
        " lease_expires_at = NULL, locked_by = NULL" GUARD " RETURNING id";

    return finish(q, sql, j, worker_id, 0, NULL, NULL);
}

#define RELEASE_SET \
    "UPDATE automation.jobs SET state = 'available'," \
    " attempts = greatest(attempts - 1, 0), lease_expires_at = NULL," \
    " locked_by = NULL, started_at = NULL"

enum auto_res auto_queue_release(struct auto_queue *q,
                                 const struct auto_job *j,
                                 const char *worker_id)
{
    static const char *sql = RELEASE_SET GUARD " RETURNING id";

    return finish(q, sql, j, worker_id, 0, NULL, NULL);
}

enum auto_res auto_queue_release_all(struct auto_queue *q, const char *prefix,
                                     long *n)
{
    static const char *sql =
        RELEASE_SET " WHERE state = 'running'"
        " AND left(locked_by, length($1)) = $1 RETURNING id";
    const char *p[1] = {prefix};
    PGresult *r;
    enum auto_res rc = run(q, sql, 1, p, &r);

    if (rc != AUTO_OK)
        return rc;
    if (n)
        *n = PQntuples(r);
    PQclear(r);
    return AUTO_OK;
}

/* "{a,b,c}": a PostgreSQL array literal of v (or w); malloc'd. */
static char *int_array(const long long *v, const int *w, size_t n)
{
    size_t cap = 2 + n * 22, len = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "",
                                v ? v[i] : (long long)w[i]);
    snprintf(s + len, cap - len, "}");
    return s;
}

enum auto_res auto_queue_heartbeat(struct auto_queue *q, const char *prefix,
                                   const long long *ids, const int *attempts,
                                   size_t n,
                                   void (*on_cancel)(void *, long long),
                                   void *arg)
{
    static const char *sql =
        "UPDATE automation.jobs j SET lease_expires_at = now()"
        " + make_interval(secs => $4::int)"
        " FROM unnest($1::bigint[], $2::int[]) AS h(id, attempts)"
        " WHERE j.id = h.id AND j.attempts = h.attempts"
        " AND j.state = 'running' AND left(j.locked_by, length($3)) = $3"
        " RETURNING j.id, j.cancel_requested";
    char lease[16];
    char *a = NULL, *b = NULL;
    PGresult *r = NULL;
    enum auto_res rc = AUTO_EDB;

    if (n == 0)
        return AUTO_OK;
    a = int_array(ids, NULL, n);
    b = int_array(NULL, attempts, n);
    if (!a || !b)
        goto cleanup;
    snprintf(lease, sizeof lease, "%d", q->lease_s);
    const char *p[4] = {a, b, prefix, lease};
    rc = run(q, sql, 4, p, &r);
    if (rc != AUTO_OK)
        goto cleanup;
    for (int i = 0; i < PQntuples(r); i++)
        if (on_cancel && strcmp(PQgetvalue(r, i, 1), "t") == 0)
            on_cancel(arg, strtoll(PQgetvalue(r, i, 0), NULL, 10));
    PQclear(r);
cleanup:
    free(a);
    free(b);
    return rc;
}

enum auto_res auto_queue_progress(struct auto_queue *q,
                                  const struct auto_job *j,
                                  const char *worker_id, int pct,
                                  const char *msg, int *cancel)
{
    static const char *sql =
        "UPDATE automation.jobs SET progress = $4::smallint,"
        " progress_message = $5" GUARD " RETURNING cancel_requested";
    char p[8];
    PGresult *r = NULL;
    enum auto_res rc;

    snprintf(p, sizeof p, "%d", pct < 0 ? 0 : pct > 100 ? 100 : pct);
    const char *more[2] = {p, msg};
    *cancel = 0;
    rc = finish(q, sql, j, worker_id, 2, more, &r);
    if (rc == AUTO_OK) {
        *cancel = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }
    return rc;
}

enum auto_res auto_queue_depth(struct auto_queue *q, long *depth)
{
    static const char *sql =
        "SELECT count(*) FROM automation.jobs"
        " WHERE state IN ('available', 'scheduled', 'retryable')"
        " AND run_at <= now()";
    PGresult *r;
    enum auto_res rc = run(q, sql, 0, NULL, &r);

    if (rc != AUTO_OK)
        return rc;
    *depth = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return AUTO_OK;
}

enum auto_res auto_queue_get(struct auto_queue *q, long long id,
                             const char *owner, json_t **out)
{
    static const char *sql =
        "SELECT " JOB_JSON " FROM automation.jobs j WHERE id = $1::bigint"
        " AND ($2::text IS NULL OR owner_id = $2)";
    char ids[32];

    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[2] = {ids, owner};
    return one_json(q, sql, 2, p, out);
}

enum auto_res auto_queue_list(struct auto_queue *q,
                              const struct auto_list_filter *f, json_t **out)
{
    static const char *sql =
        "SELECT coalesce(json_agg(automation.job_json(s.j)"
        " ORDER BY (s.j).id DESC), '[]')::text"
        " FROM (SELECT j FROM automation.jobs j"
        " WHERE ($1::text IS NULL OR owner_id = $1)"
        " AND ($2::text IS NULL OR state = $2)"
        " AND ($3::text IS NULL OR type = $3)"
        " AND ($4::bigint = 0 OR id < $4::bigint)"
        " ORDER BY id DESC LIMIT $5::int) s";
    char before[32], lim[16];

    snprintf(before, sizeof before, "%lld", f->before_id);
    snprintf(lim, sizeof lim, "%d", f->limit);
    const char *p[5] = {f->owner_id, f->state, f->type, before, lim};
    return one_json(q, sql, 5, p, out);
}

enum auto_res auto_queue_cancel(struct auto_queue *q, long long id,
                                const char *owner, json_t **out,
                                int *running)
{
    /* A running job only gets the flag: its worker stops the handler and
     * records cancelled (the trigger tells it through NOTIFY). */
    static const char *sql =
        "UPDATE automation.jobs j SET"
        " cancel_requested = true,"
        " state = CASE WHEN state = 'running' THEN 'running'"
        "  ELSE 'cancelled' END,"
        " finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END"
        " WHERE id = $1::bigint AND ($2::text IS NULL OR owner_id = $2)"
        " AND state IN ('available', 'scheduled', 'retryable', 'running')"
        " RETURNING " JOB_JSON ", state = 'running'";
    char ids[32];
    PGresult *r;
    enum auto_res rc;

    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[2] = {ids, owner};
    *out = NULL;
    *running = 0;
    rc = run(q, sql, 2, p, &r);
    if (rc != AUTO_OK)
        return rc;
    if (PQntuples(r) == 1) {
        *running = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
        rc = row_json(r, out);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    rc = auto_queue_get(q, id, owner, out);
    return rc == AUTO_OK ? AUTO_ECONFLICT : rc;
}

enum auto_res auto_queue_retry(struct auto_queue *q, long long id,
                               const char *owner, json_t **out)
{
    static const char *sql =
        "UPDATE automation.jobs j SET state = 'available', attempts = 0,"
        " run_at = now(), cancel_requested = false, finished_at = NULL,"
        " started_at = NULL, progress = 0, progress_message = NULL,"
        " result = NULL"
        " WHERE id = $1::bigint AND ($2::text IS NULL OR owner_id = $2)"
        " AND state IN ('dead', 'cancelled', 'retryable')"
        " RETURNING " JOB_JSON;
    char ids[32];
    enum auto_res rc;

    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[2] = {ids, owner};
    rc = one_json(q, sql, 2, p, out);
    if (rc != AUTO_ENOTFOUND)
        return rc;
    rc = auto_queue_get(q, id, owner, out);
    return rc == AUTO_OK ? AUTO_ECONFLICT : rc;
}
