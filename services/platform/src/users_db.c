#include "users_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgpool/pgpool.h"
#include "validation.h"

/* Column list every user query returns, in this order. */
#define USER_COLS                                                           \
    "id::text, email, password_hash, array_to_string(roles, ','), "       \
    "disabled_at IS NOT NULL, "                                           \
    "to_char(created_at AT TIME ZONE 'UTC', "                             \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                              \
    "to_char(updated_at AT TIME ZONE 'UTC', "                             \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

void plat_user_cleanup(struct plat_user *u)
{
    free(u->password_hash);
    u->password_hash = NULL;
}

/* Classifies a failed result and logs it (never returned to clients). */
static enum plat_db db_fail(PGconn *c, const PGresult *res,
                            const struct log_ctx *lc, const char *what)
{
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state != NULL && strcmp(state, "23505") == 0)
        return PLAT_DB_CONFLICT;
    if (pgpool_is_unavailable(c, res)) {
        log_kv(LOG_LVL_WARN, lc, "database unavailable", "query", what,
               "error", PQerrorMessage(c), NULL);
        return PLAT_DB_UNAVAILABLE;
    }
    log_kv(LOG_LVL_ERROR, lc, "database error", "query", what, "sqlstate",
           state, "error",
           res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c),
           NULL);
    return PLAT_DB_ERROR;
}

static void copy_text(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src != NULL ? src : "");
}

/* Splits "a,b" into u->roles; extra or oversize roles are dropped. */
static void parse_roles(struct plat_user *u, const char *csv)
{
    const char *p = csv;

    u->nroles = 0;
    while (p != NULL && *p != '\0' && u->nroles < PLAT_USER_ROLES_MAX) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && n < sizeof(u->roles[0])) {
            memcpy(u->roles[u->nroles], p, n);
            u->roles[u->nroles][n] = '\0';
            u->nroles++;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
}

/* Fills *u from row 0 of a USER_COLS result; -1 on out-of-memory. */
static int user_from_row(const PGresult *res, struct plat_user *u)
{
    memset(u, 0, sizeof(*u));
    copy_text(u->id, sizeof(u->id), PQgetvalue(res, 0, 0));
    copy_text(u->email, sizeof(u->email), PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2)) {
        u->password_hash = strdup(PQgetvalue(res, 0, 2));
        if (u->password_hash == NULL)
            return -1;
    }
    parse_roles(u, PQgetvalue(res, 0, 3));
    u->disabled = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    copy_text(u->created_at, sizeof(u->created_at), PQgetvalue(res, 0, 5));
    copy_text(u->updated_at, sizeof(u->updated_at), PQgetvalue(res, 0, 6));
    return 0;
}

/* Runs a query expected to return at most one USER_COLS row. */
static enum plat_db user_query(PGconn *c, const struct log_ctx *lc,
                               const char *what, const char *sql, int n,
                               const char *const *params,
                               struct plat_user *out)
{
    PGresult *res;
    enum plat_db rc;

    memset(out, 0, sizeof(*out));
    res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = db_fail(c, res, lc, what);
        PQclear(res);
        return rc;
    }
    if (PQntuples(res) == 0)
        rc = PLAT_DB_NOT_FOUND;
    else if (user_from_row(res, out) != 0)
        rc = PLAT_DB_ERROR;
    else
        rc = PLAT_DB_OK;
    PQclear(res);
    return rc;
}

enum plat_db plat_users_create(PGconn *c, const struct log_ctx *lc,
                               const char *email, const char *password_hash,
                               struct plat_user *out)
{
    const char *params[2] = {email, password_hash};
    enum plat_db rc;

    rc = user_query(c, lc, "users_create",
                    "INSERT INTO platform.users (email, password_hash) "
                    "VALUES ($1, $2) RETURNING " USER_COLS,
                    2, params, out);
    if (rc == PLAT_DB_NOT_FOUND)
        rc = PLAT_DB_ERROR; /* INSERT ... RETURNING always yields a row */
    if (rc == PLAT_DB_OK)
        plat_user_cleanup(out); /* the caller has the hash already */
    return rc;
}

enum plat_db plat_users_by_email(PGconn *c, const struct log_ctx *lc,
                                 const char *email, struct plat_user *out)
{
    const char *params[1] = {email};

    return user_query(c, lc, "users_by_email",
                      "SELECT " USER_COLS
                      " FROM platform.users WHERE email = $1",
                      1, params, out);
}

enum plat_db plat_users_by_id(PGconn *c, const struct log_ctx *lc,
                              const char *id, struct plat_user *out)
{
    const char *params[1] = {id};

    /* A malformed id would be a SQL error (22P02), not "no such user". */
    if (!plat_is_uuid(id)) {
        memset(out, 0, sizeof(*out));
        return PLAT_DB_NOT_FOUND;
    }
    return user_query(c, lc, "users_by_id",
                      "SELECT " USER_COLS
                      " FROM platform.users WHERE id = $1::uuid",
                      1, params, out);
}

enum plat_db plat_refresh_insert(PGconn *c, const struct log_ctx *lc,
                                 const struct plat_refresh_new *in,
                                 char *id_out, char *family_out)
{
    char ttl[32];
    char aexp[32];
    const char *params[9];
    int lengths[9] = {0};
    int formats[9] = {0};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    snprintf(ttl, sizeof(ttl), "%ld", in->ttl_s);
    params[0] = in->user_id;
    params[1] = (const char *)in->token_hash;
    lengths[1] = 32;
    formats[1] = 1; /* binary bytea */
    params[2] = in->family_id;
    params[3] = in->parent_id;
    params[4] = ttl;
    params[5] = in->user_agent != NULL && in->user_agent[0] != '\0'
                    ? in->user_agent
                    : NULL;
    params[6] = in->ip != NULL && in->ip[0] != '\0' ? in->ip : NULL;
    snprintf(aexp, sizeof(aexp), "%lld", in->access_exp);
    params[7] = in->access_jti != NULL && in->access_jti[0] != '\0'
                    ? in->access_jti
                    : NULL;
    params[8] = params[7] != NULL ? aexp : NULL;

    res = PQexecParams(
        c,
        "INSERT INTO platform.refresh_tokens "
        "(user_id, token_hash, family_id, parent_id, expires_at, "
        "user_agent, ip, access_jti, access_exp) VALUES ($1::uuid, "
        "$2::bytea, COALESCE($3::uuid, gen_random_uuid()), $4::uuid, "
        "now() + make_interval(secs => $5::bigint), $6, $7::inet, $8, "
        "to_timestamp($9::bigint)) "
        "RETURNING id::text, family_id::text",
        9, NULL, params, lengths, formats, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
        PQntuples(res) != 1) {
        rc = db_fail(c, res, lc, "refresh_insert");
        if (rc == PLAT_DB_OK)
            rc = PLAT_DB_ERROR;
        goto cleanup;
    }
    if (id_out != NULL)
        copy_text(id_out, 37, PQgetvalue(res, 0, 0));
    if (family_out != NULL)
        copy_text(family_out, 37, PQgetvalue(res, 0, 1));
cleanup:
    PQclear(res);
    return rc;
}

enum plat_db plat_db_fail(PGconn *c, const PGresult *res,
                          const struct log_ctx *lc, const char *what)
{
    return db_fail(c, res, lc, what);
}


enum plat_db plat_users_grant_admin(PGconn *c, const struct log_ctx *lc,
                                    const char *email)
{
    const char *params[1] = {email};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    res = PQexecParams(c,
                       "UPDATE platform.users SET roles = "
                       "array_append(roles, 'admin') WHERE email = $1 AND "
                       "NOT ('admin' = ANY (roles))",
                       1, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = db_fail(c, res, lc, "users_grant_admin");
    PQclear(res);
    return rc;
}

enum plat_db plat_users_update(PGconn *c, const struct log_ctx *lc,
                               const char *id, int disabled,
                               const char *roles_array,
                               struct plat_user *out)
{
    char dis[8];
    const char *params[3] = {id, NULL, roles_array};

    if (!plat_is_uuid(id)) {
        memset(out, 0, sizeof(*out));
        return PLAT_DB_NOT_FOUND;
    }
    if (disabled >= 0) {
        snprintf(dis, sizeof(dis), "%d", disabled ? 1 : 0);
        params[1] = dis;
    }
    /*
     * Disabling or changing roles moves tokens_valid_after: every access
     * token issued before it is refused (the marker in Redis).
     */
    return user_query(
        c, lc, "users_update",
        "UPDATE platform.users SET "
        "tokens_valid_after = CASE WHEN ($2::int = 1 AND disabled_at IS "
        "NULL) OR ($3::text[] IS NOT NULL AND $3::text[] <> roles) THEN "
        "now() ELSE tokens_valid_after END, "
        "disabled_at = CASE WHEN $2::int IS NULL THEN disabled_at "
        "WHEN $2::int = 1 THEN COALESCE(disabled_at, now()) ELSE NULL END, "
        "roles = COALESCE($3::text[], roles) "
        "WHERE id = $1::uuid RETURNING " USER_COLS,
        3, params, out);
}

/* "<microseconds since epoch>_<uuid>": opaque to clients. */
int plat_users_cursor_parse(const char *s, long long *us, char *id)
{
    const char *us_end;
    char *end;
    long long v;

    if (s == NULL)
        return -1;
    us_end = strchr(s, '_');
    if (us_end == NULL || us_end == s || us_end - s > 19)
        return -1;
    for (const char *p = s; p < us_end; p++)
        if (*p < '0' || *p > '9')
            return -1;
    v = strtoll(s, &end, 10);
    if (end != us_end || v < 0 || !plat_is_uuid(us_end + 1))
        return -1;
    *us = v;
    snprintf(id, 37, "%s", us_end + 1);
    return 0;
}

enum plat_db plat_users_list(PGconn *c, const struct log_ctx *lc, int limit,
                             const char *cursor, json_t **out,
                             char *next_cursor, size_t next_len)
{
    char lim[16], usbuf[24], id[37];
    long long us = 0;
    const char *params[3] = {NULL, NULL, lim};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;
    json_t *arr = NULL;
    int n;

    *out = NULL;
    if (cursor != NULL) {
        if (plat_users_cursor_parse(cursor, &us, id) != 0)
            return PLAT_DB_NOT_FOUND;
        snprintf(usbuf, sizeof(usbuf), "%lld", us);
        params[0] = usbuf;
        params[1] = id;
    }
    /* After parsing: callers may pass the same buffer for both. */
    next_cursor[0] = '\0';
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    res = PQexecParams(
        c,
        "SELECT " USER_COLS ", (extract(epoch FROM created_at) * 1000000)"
        "::bigint FROM platform.users WHERE $1::bigint IS NULL OR "
        "(created_at, id) > (timestamptz 'epoch' + $1::bigint * "
        "interval '1 microsecond', $2::uuid) "
        "ORDER BY created_at, id LIMIT $3::int",
        3, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = db_fail(c, res, lc, "users_list");
        goto cleanup;
    }
    n = PQntuples(res);
    arr = json_array();
    if (arr == NULL) {
        rc = PLAT_DB_ERROR;
        goto cleanup;
    }
    for (int i = 0; i < n && i < limit; i++) {
        json_t *roles = json_array(), *o;
        struct plat_user u;

        memset(&u, 0, sizeof(u));
        parse_roles(&u, PQgetvalue(res, i, 3));
        for (size_t k = 0; roles != NULL && k < u.nroles; k++)
            json_array_append_new(roles, json_string(u.roles[k]));
        o = json_pack("{s:s, s:s, s:o*, s:b, s:s, s:s}", "id",
                      PQgetvalue(res, i, 0), "email", PQgetvalue(res, i, 1),
                      "roles", roles, "disabled",
                      PQgetvalue(res, i, 4)[0] == 't', "created_at",
                      PQgetvalue(res, i, 5), "updated_at",
                      PQgetvalue(res, i, 6));
        if (o == NULL) {
            rc = PLAT_DB_ERROR;
            goto cleanup;
        }
        json_array_append_new(arr, o);
        if (i == limit - 1 && n > limit)
            snprintf(next_cursor, next_len, "%s_%s", PQgetvalue(res, i, 7),
                     PQgetvalue(res, i, 0));
    }
    *out = arr;
    arr = NULL;
cleanup:
    json_decref(arr);
    PQclear(res);
    return rc;
}
