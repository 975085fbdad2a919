/*
 * Session endpoints: refresh rotation, logout, sessions, password change.
 * Contract in session_handlers.h and README.md.
 */
#include "session_handlers.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth_common.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "password.h"
#include "revoke.h"
#include "throttle.h"
#include "track.h"
#include "validation.h"

static struct metrics_family *m_refresh;

static void count_refresh(const char *result)
{
    const char *labels[1] = {result};

    if (m_refresh != NULL)
        metrics_inc_labels(m_refresh, labels, 1);
}

enum plat_grace plat_refresh_decide(int used, int revoked, int expired,
                                    double since_used, long grace_s)
{
    if (revoked || expired)
        return PLAT_REFRESH_INVALID;
    if (!used)
        return PLAT_REFRESH_ROTATE;
    /* A retry or a concurrent refresh moments after the first one. */
    if (grace_s > 0 && since_used <= (double)grace_s)
        return PLAT_REFRESH_GRACE;
    return PLAT_REFRESH_REUSED;
}

static void rollback(PGconn *c)
{
    PGresult *res = PQexec(c, "ROLLBACK");
    PQclear(res);
}

static void invalid_refresh(struct httpd_req *r, const char *why)
{
    count_refresh(why);
    log_kv(LOG_LVL_INFO, &r->log, "refresh refused", "reason", why, NULL);
    httpd_error(r, 401, "invalid_refresh_token",
                "refresh token is invalid or expired");
}

/* Reads a required string member; 422 naming it otherwise. */
static const char *req_string(struct httpd_req *r, json_t *body,
                              const char *name, size_t *len)
{
    json_t *v = json_object_get(body, name);

    if (v == NULL || json_is_null(v)) {
        httpd_error(r, 422, "validation_failed", "%s is required", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        httpd_error(r, 422, "validation_failed", "%s must be a string",
                    name);
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static void h_refresh(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    json_t *body = NULL, *resp;
    const char *text;
    size_t len = 0;
    unsigned char hash[PLAT_REFRESH_HASH_LEN];
    struct plat_refresh_row row;
    struct plat_user u;
    struct plat_auth_pair pair;
    struct plat_jtis dead;
    enum plat_db rc = PLAT_DB_OK;
    enum plat_grace d;
    PGconn *c = NULL;
    int in_tx = 0;

    memset(&u, 0, sizeof(u));
    memset(&pair, 0, sizeof(pair));
    memset(&dead, 0, sizeof(dead));
    if (httpd_json_body(r, &body) != 0)
        return;
    if ((text = req_string(r, body, "refresh_token", &len)) == NULL)
        goto cleanup;
    if (plat_refresh_hash(text, len, hash) != 0) {
        invalid_refresh(r, "malformed");
        goto cleanup;
    }
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        goto cleanup;
    if ((rc = plat_db_exec(c, &r->log, "BEGIN")) != PLAT_DB_OK)
        goto db_error;
    in_tx = 1;
    rc = plat_refresh_lock(c, &r->log, hash, &row);
    if (rc == PLAT_DB_NOT_FOUND) {
        rc = PLAT_DB_OK;
        invalid_refresh(r, "unknown");
        goto cleanup;
    }
    if (rc != PLAT_DB_OK)
        goto db_error;
    d = plat_refresh_decide(row.used, row.revoked, row.expired,
                            row.since_used, ctx->set->refresh_grace_s);
    if (d == PLAT_REFRESH_INVALID) {
        invalid_refresh(r, row.revoked ? "revoked" : "expired");
        goto cleanup;
    }
    rc = plat_users_by_id(c, &r->log, row.user_id, &u);
    if (rc != PLAT_DB_OK && rc != PLAT_DB_NOT_FOUND)
        goto db_error;
    if (d == PLAT_REFRESH_REUSED || rc == PLAT_DB_NOT_FOUND || u.disabled) {
        rc = plat_refresh_revoke(c, &r->log, row.user_id, row.family_id,
                                 NULL,
                                 d == PLAT_REFRESH_REUSED ? "reuse"
                                                          : "user_disabled",
                                 &dead);
        if (rc != PLAT_DB_OK ||
            (rc = plat_db_exec(c, &r->log, "COMMIT")) != PLAT_DB_OK)
            goto db_error;
        in_tx = 0;
        plat_revoke_jtis(ctx, &r->log, &dead);
        if (d == PLAT_REFRESH_REUSED) {
            count_refresh("reused");
            log_kv(LOG_LVL_WARN, &r->log,
                   "refresh token reused: family revoked", "user_id",
                   row.user_id, "family_id", row.family_id, NULL);
            httpd_error(r, 401, "refresh_token_reused",
                        "refresh token was already used; the session is "
                        "revoked");
        } else {
            invalid_refresh(r, "user_disabled");
        }
        goto cleanup;
    }
    if (d == PLAT_REFRESH_ROTATE &&
        (rc = plat_refresh_mark_used(c, &r->log, row.id)) != PLAT_DB_OK)
        goto db_error;
    rc = plat_auth_issue(ctx, r, c, &u, row.family_id, row.id, &pair);
    if (rc != PLAT_DB_OK ||
        (rc = plat_db_exec(c, &r->log, "COMMIT")) != PLAT_DB_OK)
        goto db_error;
    in_tx = 0;
    resp = plat_auth_pair_json(ctx, &pair, &u);
    if (resp == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        goto cleanup;
    }
    count_refresh(d == PLAT_REFRESH_GRACE ? "grace" : "rotated");
    plat_track(ctx, "token_refreshed", u.id,
               json_pack("{s:b}", "grace", d == PLAT_REFRESH_GRACE));
    httpd_add_header(r, "Cache-Control", "no-store");
    httpd_reply_json(r, 200, resp);
    goto cleanup;

db_error:
    plat_auth_db_error(r, rc);
cleanup:
    if (c != NULL && in_tx)
        rollback(c);
    plat_auth_pg_release(ctx, c, rc);
    plat_jtis_cleanup(&dead);
    plat_auth_pair_cleanup(&pair);
    plat_user_cleanup(&u);
    OPENSSL_cleanse(hash, sizeof(hash));
    json_decref(body);
}

enum plat_logout_scope plat_logout_scope_parse(const char *s)
{
    if (s == NULL || strcmp(s, "local") == 0)
        return PLAT_LOGOUT_LOCAL;
    if (strcmp(s, "global") == 0)
        return PLAT_LOGOUT_GLOBAL;
    if (strcmp(s, "others") == 0)
        return PLAT_LOGOUT_OTHERS;
    return PLAT_LOGOUT_BAD;
}

/* Revokes, commits nothing (autocommit), denylists; answers on error. */
static int end_sessions(struct plat_ctx *ctx, struct httpd_req *r,
                        PGconn *c, const char *uid, const char *family,
                        const char *except, const char *reason,
                        size_t *nfamilies, enum plat_db *rcp)
{
    struct plat_jtis dead;

    *rcp = plat_refresh_revoke(c, &r->log, uid, family, except, reason,
                               &dead);
    if (*rcp != PLAT_DB_OK) {
        plat_auth_db_error(r, *rcp);
        return -1;
    }
    plat_revoke_jtis(ctx, &r->log, &dead);
    if (nfamilies != NULL)
        *nfamilies = dead.nfamilies;
    plat_jtis_cleanup(&dead);
    return 0;
}

static void h_logout(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    json_t *body = NULL;
    const char *scope_s = httpd_query(r, "scope");
    enum plat_logout_scope scope;
    char family[37];
    enum plat_db rc = PLAT_DB_OK;
    PGconn *c = NULL;
    int has_family;

    if (plat_auth_caller(ctx, r, &who) != 0)
        return;
    if (r->body_len > 0) {
        json_t *s;

        if (httpd_json_body(r, &body) != 0)
            return;
        s = json_object_get(body, "scope");
        if (s != NULL && !json_is_string(s)) {
            httpd_error(r, 422, "validation_failed",
                        "scope must be a string");
            goto cleanup;
        }
        if (s != NULL)
            scope_s = json_string_value(s);
    }
    scope = plat_logout_scope_parse(scope_s);
    if (scope == PLAT_LOGOUT_BAD) {
        httpd_error(r, 422, "validation_failed",
                    "scope must be local, global or others");
        goto cleanup;
    }
    if (who.jti[0] == '\0' && scope != PLAT_LOGOUT_GLOBAL) {
        httpd_error(r, 400, "bearer_required",
                    "logout needs the session's bearer access token");
        goto cleanup;
    }
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        goto cleanup;
    rc = plat_refresh_family_of_jti(c, &r->log, who.id.user_id, who.jti,
                                    family);
    if (rc != PLAT_DB_OK && rc != PLAT_DB_NOT_FOUND) {
        plat_auth_db_error(r, rc);
        goto cleanup;
    }
    has_family = rc == PLAT_DB_OK;
    rc = PLAT_DB_OK;
    if (scope == PLAT_LOGOUT_GLOBAL) {
        if (end_sessions(ctx, r, c, who.id.user_id, NULL, NULL, "logout",
                         NULL, &rc) != 0)
            goto cleanup;
    } else if (scope == PLAT_LOGOUT_OTHERS) {
        if (end_sessions(ctx, r, c, who.id.user_id, NULL,
                         has_family ? family : NULL, "logout", NULL,
                         &rc) != 0)
            goto cleanup;
    } else if (has_family &&
               end_sessions(ctx, r, c, who.id.user_id, family, NULL,
                            "logout", NULL, &rc) != 0) {
        goto cleanup;
    }
    if (who.jti[0] != '\0' && scope != PLAT_LOGOUT_OTHERS)
        plat_revoke_jti(ctx, &r->log, who.jti, who.exp);
    log_kv(LOG_LVL_INFO, &r->log, "logout", "user_id", who.id.user_id,
           "scope", scope_s != NULL ? scope_s : "local", NULL);
    httpd_reply_json(r, 204, NULL);
cleanup:
    plat_auth_pg_release(ctx, c, rc);
    json_decref(body);
}

static void h_sessions(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    json_t *list = NULL;
    enum plat_db rc;
    PGconn *c;

    if (plat_auth_caller(ctx, r, &who) != 0)
        return;
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        return;
    rc = plat_sessions_list(c, &r->log, who.id.user_id, who.jti, &list);
    plat_auth_pg_release(ctx, c, rc);
    if (rc == PLAT_DB_NOT_FOUND) {
        plat_auth_unauthorized(r, 1);
        return;
    }
    if (rc != PLAT_DB_OK) {
        plat_auth_db_error(r, rc);
        return;
    }
    httpd_add_header(r, "Cache-Control", "no-store");
    httpd_reply_json(r, 200, json_pack("{s:o}", "sessions", list));
}

static void h_session_delete(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    const char *id = httpd_param(r, "id");
    enum plat_db rc = PLAT_DB_OK;
    size_t n = 0;
    PGconn *c;

    if (plat_auth_caller(ctx, r, &who) != 0)
        return;
    if (id == NULL || !plat_is_uuid(id)) {
        httpd_error(r, 404, "not_found", "no such session");
        return;
    }
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        return;
    if (end_sessions(ctx, r, c, who.id.user_id, id, NULL, "session_deleted",
                     &n, &rc) == 0) {
        if (n == 0)
            httpd_error(r, 404, "not_found", "no such session");
        else
            httpd_reply_json(r, 204, NULL);
    }
    plat_auth_pg_release(ctx, c, rc);
}

static void h_password(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    json_t *body = NULL;
    const char *cur, *npw;
    size_t cur_len = 0, npw_len = 0, n = 0;
    char why[128], hash[PLAT_PASSWORD_ENCODED_MAX], family[37];
    char ip[PLAT_IP_MAX];
    struct plat_user u;
    enum plat_db rc = PLAT_DB_OK;
    PGconn *c = NULL;
    long retry = 0;
    int ok;

    memset(&u, 0, sizeof(u));
    if (plat_auth_caller(ctx, r, &who) != 0)
        return;
    if (httpd_json_body(r, &body) != 0)
        return;
    if ((cur = req_string(r, body, "current_password", &cur_len)) == NULL ||
        (npw = req_string(r, body, "new_password", &npw_len)) == NULL)
        goto cleanup;
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        goto cleanup;
    rc = plat_users_by_id(c, &r->log, who.id.user_id, &u);
    if (rc == PLAT_DB_NOT_FOUND || (rc == PLAT_DB_OK && u.disabled)) {
        plat_auth_unauthorized(r, 1);
        goto cleanup;
    }
    if (rc != PLAT_DB_OK) {
        plat_auth_db_error(r, rc);
        goto cleanup;
    }
    if (plat_password_policy(npw, npw_len, u.email, why, sizeof(why)) != 0) {
        httpd_error(r, 422, "validation_failed", "new_password: %s", why);
        goto cleanup;
    }
    plat_auth_client_ip(ctx, r, ip, sizeof(ip));
    if (plat_throttle_login_blocked(ctx, &r->log, u.email, ip, &retry)) {
        plat_auth_too_many(r, retry);
        goto cleanup;
    }
    if (plat_argon2_acquire(ctx, PLAT_ARGON2_WAIT_MS) != 0) {
        httpd_error(r, 503, "overloaded", "too many sign-ins in progress");
        goto cleanup;
    }
    ok = u.password_hash != NULL &&
         plat_password_verify(u.password_hash, cur, cur_len) == 1;
    if (ok)
        ok = plat_password_hash(&ctx->set->argon2, npw, npw_len, hash,
                                sizeof(hash)) == 0
                 ? 1
                 : -1;
    plat_argon2_release(ctx);
    if (ok == 0) {
        plat_throttle_login_failed(ctx, &r->log, u.email, ip);
        httpd_error(r, 403, "invalid_credentials",
                    "current password is wrong");
        goto cleanup;
    }
    if (ok < 0) {
        httpd_error(r, 500, "internal_error", "internal error");
        goto cleanup;
    }
    rc = plat_users_set_password(c, &r->log, u.id, hash);
    if (rc != PLAT_DB_OK) {
        plat_auth_db_error(r, rc);
        goto cleanup;
    }
    rc = plat_refresh_family_of_jti(c, &r->log, u.id, who.jti, family);
    if (rc != PLAT_DB_OK && rc != PLAT_DB_NOT_FOUND) {
        plat_auth_db_error(r, rc);
        goto cleanup;
    }
    if (end_sessions(ctx, r, c, u.id, NULL,
                     rc == PLAT_DB_OK ? family : NULL, "password_changed",
                     &n, &rc) != 0)
        goto cleanup;
    log_kv(LOG_LVL_INFO, &r->log, "password changed", "user_id", u.id,
           NULL);
    httpd_reply_json(r, 200, json_pack("{s:I}", "revoked_sessions",
                                       (json_int_t)n));
cleanup:
    OPENSSL_cleanse(hash, sizeof(hash));
    plat_auth_pg_release(ctx, c, rc);
    plat_user_cleanup(&u);
    json_decref(body);
}

int plat_session_routes(struct httpd_server *s, struct plat_ctx *ctx)
{
    static const char *const result_label[1] = {"result"};

    m_refresh = metrics_family(metrics_default(), METRICS_COUNTER,
                               "auth_refreshes_total",
                               "Refresh attempts by result.", 1,
                               result_label, NULL, 0);
    if (httpd_route(s, "POST", "/auth/refresh", h_refresh, ctx, 0) ||
        httpd_route(s, "POST", "/auth/logout", h_logout, ctx, 0) ||
        httpd_route(s, "GET", "/auth/sessions", h_sessions, ctx, 0) ||
        httpd_route(s, "DELETE", "/auth/sessions/{id}", h_session_delete,
                    ctx, 0) ||
        httpd_route(s, "POST", "/auth/password", h_password, ctx, 0))
        return -1;
    return 0;
}
