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
    const char *params[7];
    int lengths[7] = {0};
    int formats[7] = {0};
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

    res = PQexecParams(
        c,
        "INSERT INTO platform.refresh_tokens "
        "(user_id, token_hash, family_id, parent_id, expires_at, "
        "user_agent, ip) VALUES ($1::uuid, $2::bytea, "
        "COALESCE($3::uuid, gen_random_uuid()), $4::uuid, "
        "now() + make_interval(secs => $5::bigint), $6, $7::inet) "
        "RETURNING id::text, family_id::text",
        7, NULL, params, lengths, formats, 0);
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
