/* Refresh token rotation, revocation and sessions (see users_db.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "users_db.h"
#include "validation.h"

#define SESSIONS_MAX 100

static void copy37(char *dst, const char *src)
{
    snprintf(dst, 37, "%s", src != NULL ? src : "");
}

enum plat_db plat_db_exec(PGconn *c, const struct log_ctx *lc,
                          const char *sql)
{
    PGresult *res = PQexec(c, sql);
    enum plat_db rc = PLAT_DB_OK;

    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = plat_db_fail(c, res, lc, sql);
    PQclear(res);
    return rc;
}

enum plat_db plat_refresh_lock(PGconn *c, const struct log_ctx *lc,
                               const unsigned char *hash,
                               struct plat_refresh_row *out)
{
    const char *params[1] = {(const char *)hash};
    int lengths[1] = {32}, formats[1] = {1};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    memset(out, 0, sizeof(*out));
    res = PQexecParams(
        c,
        "SELECT id::text, family_id::text, user_id::text, "
        "used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now(), "
        "COALESCE(extract(epoch FROM clock_timestamp() - used_at), 0)"
        "::float8 FROM platform.refresh_tokens WHERE token_hash = $1 "
        "FOR UPDATE",
        1, NULL, params, lengths, formats, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = plat_db_fail(c, res, lc, "refresh_lock");
        goto cleanup;
    }
    if (PQntuples(res) == 0) {
        rc = PLAT_DB_NOT_FOUND;
        goto cleanup;
    }
    copy37(out->id, PQgetvalue(res, 0, 0));
    copy37(out->family_id, PQgetvalue(res, 0, 1));
    copy37(out->user_id, PQgetvalue(res, 0, 2));
    out->used = PQgetvalue(res, 0, 3)[0] == 't';
    out->revoked = PQgetvalue(res, 0, 4)[0] == 't';
    out->expired = PQgetvalue(res, 0, 5)[0] == 't';
    out->since_used = strtod(PQgetvalue(res, 0, 6), NULL);
cleanup:
    PQclear(res);
    return rc;
}

enum plat_db plat_refresh_mark_used(PGconn *c, const struct log_ctx *lc,
                                    const char *id)
{
    const char *params[1] = {id};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    res = PQexecParams(c,
                       "UPDATE platform.refresh_tokens SET used_at = "
                       "COALESCE(used_at, now()), last_used_at = now() "
                       "WHERE id = $1::uuid",
                       1, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = plat_db_fail(c, res, lc, "refresh_mark_used");
    PQclear(res);
    return rc;
}

void plat_jtis_cleanup(struct plat_jtis *j)
{
    free(j->v);
    memset(j, 0, sizeof(*j));
}

enum plat_db plat_refresh_revoke(PGconn *c, const struct log_ctx *lc,
                                 const char *user_id, const char *family_id,
                                 const char *except_family,
                                 const char *reason, struct plat_jtis *out)
{
    const char *params[4] = {user_id, family_id, except_family, reason};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;
    int n;

    memset(out, 0, sizeof(*out));
    if (!plat_is_uuid(user_id) ||
        (family_id != NULL && !plat_is_uuid(family_id)) ||
        (except_family != NULL && !plat_is_uuid(except_family)))
        return PLAT_DB_NOT_FOUND;
    res = PQexecParams(
        c,
        "WITH upd AS (UPDATE platform.refresh_tokens SET revoked_at = now(),"
        " revoked_reason = $4 WHERE user_id = $1::uuid AND revoked_at IS "
        "NULL AND ($2::uuid IS NULL OR family_id = $2::uuid) AND "
        "($3::uuid IS NULL OR family_id <> $3::uuid) "
        "RETURNING family_id, access_jti, access_exp) "
        "SELECT (SELECT count(DISTINCT family_id) FROM upd), access_jti, "
        "extract(epoch FROM access_exp)::bigint FROM upd "
        "UNION ALL SELECT (SELECT count(DISTINCT family_id) FROM upd), "
        "NULL, NULL",
        4, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = plat_db_fail(c, res, lc, "refresh_revoke");
        goto cleanup;
    }
    n = PQntuples(res);
    out->v = calloc((size_t)n + 1, sizeof(*out->v));
    if (out->v == NULL) {
        rc = PLAT_DB_ERROR;
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        long long exp;

        out->nfamilies = (size_t)strtoull(PQgetvalue(res, i, 0), NULL, 10);
        if (PQgetisnull(res, i, 1) || PQgetisnull(res, i, 2))
            continue;
        exp = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        snprintf(out->v[out->n].jti, sizeof(out->v[0].jti), "%s",
                 PQgetvalue(res, i, 1));
        out->v[out->n].exp = exp;
        out->n++;
    }
cleanup:
    PQclear(res);
    return rc;
}

enum plat_db plat_refresh_family_of_jti(PGconn *c, const struct log_ctx *lc,
                                        const char *user_id, const char *jti,
                                        char *family_out)
{
    const char *params[2] = {user_id, jti};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    family_out[0] = '\0';
    if (!plat_is_uuid(user_id) || jti == NULL || jti[0] == '\0')
        return PLAT_DB_NOT_FOUND;
    res = PQexecParams(c,
                       "SELECT family_id::text FROM platform.refresh_tokens "
                       "WHERE user_id = $1::uuid AND access_jti = $2 AND "
                       "revoked_at IS NULL LIMIT 1",
                       2, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = plat_db_fail(c, res, lc, "refresh_family_of_jti");
    else if (PQntuples(res) == 0)
        rc = PLAT_DB_NOT_FOUND;
    else
        copy37(family_out, PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

#define TS(col)                                                             \
    "to_char(" col " AT TIME ZONE 'UTC', "                                \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static json_t *nullable(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null()
                                      : json_string(PQgetvalue(res, row, col));
}

enum plat_db plat_sessions_list(PGconn *c, const struct log_ctx *lc,
                                const char *user_id, const char *jti,
                                json_t **out)
{
    const char *params[2] = {user_id, jti != NULL && jti[0] ? jti : NULL};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;
    json_t *arr;

    *out = NULL;
    if (!plat_is_uuid(user_id))
        return PLAT_DB_NOT_FOUND;
    res = PQexecParams(
        c,
        "SELECT family_id::text, " TS("min(created_at)") ", "
        TS("max(created_at)") ", " TS("max(expires_at)") ", "
        "(array_agg(user_agent ORDER BY created_at DESC))[1], "
        "(array_agg(host(ip) ORDER BY created_at DESC))[1], "
        "COALESCE(bool_or(access_jti = $2), false) "
        "FROM platform.refresh_tokens WHERE user_id = $1::uuid "
        "GROUP BY family_id "
        "HAVING bool_and(revoked_at IS NULL) AND "
        "bool_or(used_at IS NULL AND expires_at > now()) "
        "ORDER BY max(created_at) DESC LIMIT " "100",
        2, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = plat_db_fail(c, res, lc, "sessions_list");
        goto cleanup;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < PQntuples(res) && i < SESSIONS_MAX;
         i++) {
        json_t *o = json_object();

        if (o == NULL)
            break;
        json_object_set_new(o, "id", json_string(PQgetvalue(res, i, 0)));
        json_object_set_new(o, "created_at", nullable(res, i, 1));
        json_object_set_new(o, "last_used_at", nullable(res, i, 2));
        json_object_set_new(o, "expires_at", nullable(res, i, 3));
        json_object_set_new(o, "user_agent", nullable(res, i, 4));
        json_object_set_new(o, "ip", nullable(res, i, 5));
        json_object_set_new(o, "current",
                            json_boolean(PQgetvalue(res, i, 6)[0] == 't'));
        json_array_append_new(arr, o);
    }
    if (arr == NULL)
        rc = PLAT_DB_ERROR;
    *out = arr;
cleanup:
    PQclear(res);
    return rc;
}

enum plat_db plat_users_set_password(PGconn *c, const struct log_ctx *lc,
                                     const char *id, const char *hash)
{
    const char *params[2] = {id, hash};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    if (!plat_is_uuid(id))
        return PLAT_DB_NOT_FOUND;
    res = PQexecParams(c,
                       "UPDATE platform.users SET password_hash = $2 "
                       "WHERE id = $1::uuid",
                       2, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = plat_db_fail(c, res, lc, "users_set_password");
    else if (strcmp(PQcmdTuples(res), "1") != 0)
        rc = PLAT_DB_NOT_FOUND;
    PQclear(res);
    return rc;
}

enum plat_db plat_revocations_each(
    PGconn *c, const struct log_ctx *lc, long max_age_s,
    void (*on_jti)(void *arg, const char *jti, long long exp),
    void (*on_user)(void *arg, const char *id, long long t), void *arg)
{
    char age[32];
    const char *params[1] = {age};
    PGresult *res;
    enum plat_db rc = PLAT_DB_OK;

    res = PQexec(c, "SELECT access_jti, extract(epoch FROM access_exp)"
                    "::bigint FROM platform.refresh_tokens WHERE revoked_at "
                    "IS NOT NULL AND access_exp > now() AND access_jti IS "
                    "NOT NULL");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = plat_db_fail(c, res, lc, "revocations_jti");
        PQclear(res);
        return rc;
    }
    for (int i = 0; i < PQntuples(res); i++)
        on_jti(arg, PQgetvalue(res, i, 0),
               strtoll(PQgetvalue(res, i, 1), NULL, 10));
    PQclear(res);
    snprintf(age, sizeof(age), "%ld", max_age_s);
    res = PQexecParams(c,
                       "SELECT id::text, floor(extract(epoch FROM "
                       "tokens_valid_after))::bigint FROM platform.users "
                       "WHERE tokens_valid_after > now() - "
                       "make_interval(secs => $1::bigint)",
                       1, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = plat_db_fail(c, res, lc, "revocations_users");
        PQclear(res);
        return rc;
    }
    for (int i = 0; i < PQntuples(res); i++)
        on_user(arg, PQgetvalue(res, i, 0),
                strtoll(PQgetvalue(res, i, 1), NULL, 10));
    PQclear(res);
    return rc;
}
