#include "admin_users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth_common.h"
#include "log/log.h"
#include "revoke.h"
#include "validation.h"

#define LIST_DEFAULT 50
#define LIST_MAX 100

int plat_roles_parse(const json_t *arr, char *out, size_t outlen, char *why,
                     size_t whylen)
{
    int has_user = 0, has_admin = 0;
    size_t i;
    json_t *v;

    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(why, whylen, "roles must be a non-empty array");
        return -1;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        int *seen;

        if (s == NULL) {
            snprintf(why, whylen, "roles must hold strings");
            return -1;
        }
        if (strcmp(s, "user") == 0)
            seen = &has_user;
        else if (strcmp(s, "admin") == 0)
            seen = &has_admin;
        else {
            snprintf(why, whylen, "unknown role (use user, admin)");
            return -1;
        }
        if (*seen) {
            snprintf(why, whylen, "duplicate role");
            return -1;
        }
        *seen = 1;
    }
    snprintf(out, outlen, "{%s%s%s}", has_user ? "user" : "",
             has_user && has_admin ? "," : "", has_admin ? "admin" : "");
    return 0;
}

int plat_admin_bootstrap(struct plat_ctx *ctx)
{
    PGconn *c;
    enum plat_db rc;

    if (ctx->set->admin_email == NULL)
        return 0;
    c = pgpool_acquire(ctx->pg, 5000);
    if (c == NULL)
        return -1;
    rc = plat_users_grant_admin(c, NULL, ctx->set->admin_email);
    pgpool_release(ctx->pg, c, rc == PLAT_DB_UNAVAILABLE);
    if (rc != PLAT_DB_OK) {
        log_error(NULL, "ADMIN_EMAIL: cannot grant the admin role");
        return -1;
    }
    return 0;
}

/*
 * The caller, who must be an active admin according to the database.
 * Returns a connection (caller releases) or NULL after answering.
 */
static PGconn *require_admin(struct plat_ctx *ctx, struct httpd_req *r,
                             struct plat_caller *who)
{
    struct plat_user me;
    enum plat_db rc;
    PGconn *c;
    int ok = 0;

    if (plat_auth_caller(ctx, r, who) != 0)
        return NULL;
    if (!who->admin) {
        httpd_error(r, 403, "forbidden", "admin role required");
        return NULL;
    }
    if ((c = plat_auth_pg(ctx, r)) == NULL)
        return NULL;
    rc = plat_users_by_id(c, &r->log, who->id.user_id, &me);
    if (rc == PLAT_DB_OK) {
        for (size_t i = 0; i < me.nroles; i++)
            ok |= strcmp(me.roles[i], "admin") == 0;
        ok = ok && !me.disabled;
    }
    plat_user_cleanup(&me);
    if (rc != PLAT_DB_OK && rc != PLAT_DB_NOT_FOUND) {
        plat_auth_db_error(r, rc);
        plat_auth_pg_release(ctx, c, rc);
        return NULL;
    }
    if (!ok) {
        httpd_error(r, 403, "forbidden", "admin role required");
        plat_auth_pg_release(ctx, c, rc);
        return NULL;
    }
    return c;
}

static void h_list(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    const char *lim_s = httpd_query(r, "limit");
    const char *cursor = httpd_query(r, "cursor");
    char next[128];
    json_t *users = NULL;
    long limit = LIST_DEFAULT;
    enum plat_db rc;
    PGconn *c;

    if ((c = require_admin(ctx, r, &who)) == NULL)
        return;
    if (lim_s != NULL) {
        char *end;

        limit = strtol(lim_s, &end, 10);
        if (end == lim_s || *end != '\0' || limit < 1 || limit > LIST_MAX) {
            pgpool_release(ctx->pg, c, 0);
            httpd_error(r, 422, "validation_failed",
                        "limit must be an integer in 1..100");
            return;
        }
    }
    if (cursor != NULL && cursor[0] == '\0')
        cursor = NULL;
    rc = plat_users_list(c, &r->log, (int)limit, cursor, &users, next,
                         sizeof(next));
    plat_auth_pg_release(ctx, c, rc);
    if (rc == PLAT_DB_NOT_FOUND) {
        httpd_error(r, 422, "validation_failed", "cursor is invalid");
        return;
    }
    if (rc != PLAT_DB_OK) {
        plat_auth_db_error(r, rc);
        return;
    }
    httpd_add_header(r, "Cache-Control", "no-store");
    httpd_reply_json(r, 200,
                     json_pack("{s:o, s:o}", "users", users, "next_cursor",
                               next[0] ? json_string(next) : json_null()));
}

/* Reads the PATCH body; -1 after answering 422. */
static int read_patch(struct httpd_req *r, json_t *body, int *disabled,
                      char *roles, size_t roles_len)
{
    const char *key;
    json_t *v;
    char why[96];

    *disabled = -1;
    roles[0] = '\0';
    json_object_foreach(body, key, v) {
        if (strcmp(key, "disabled") == 0) {
            if (!json_is_boolean(v)) {
                httpd_error(r, 422, "validation_failed",
                            "disabled must be a boolean");
                return -1;
            }
            *disabled = json_is_true(v);
        } else if (strcmp(key, "roles") == 0) {
            if (plat_roles_parse(v, roles, roles_len, why, sizeof(why))) {
                httpd_error(r, 422, "validation_failed", "%s", why);
                return -1;
            }
        } else {
            httpd_error(r, 422, "validation_failed",
                        "unknown field (use disabled, roles)");
            return -1;
        }
    }
    if (*disabled < 0 && roles[0] == '\0') {
        httpd_error(r, 422, "validation_failed",
                    "nothing to change (disabled, roles)");
        return -1;
    }
    return 0;
}

static int roles_differ(const struct plat_user *a, const struct plat_user *b)
{
    if (a->nroles != b->nroles)
        return 1;
    for (size_t i = 0; i < a->nroles; i++)
        if (strcmp(a->roles[i], b->roles[i]) != 0)
            return 1;
    return 0;
}

static void h_patch(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct plat_caller who;
    const char *id = httpd_param(r, "id");
    char roles[32];
    json_t *body = NULL, *uj;
    struct plat_user before, after;
    struct plat_jtis dead;
    enum plat_db rc = PLAT_DB_OK;
    PGconn *c;
    int disabled;

    memset(&before, 0, sizeof(before));
    memset(&after, 0, sizeof(after));
    memset(&dead, 0, sizeof(dead));
    if ((c = require_admin(ctx, r, &who)) == NULL)
        return;
    if (httpd_json_body(r, &body) != 0 ||
        read_patch(r, body, &disabled, roles, sizeof(roles)) != 0)
        goto cleanup;
    if (id == NULL || !plat_is_uuid(id)) {
        httpd_error(r, 404, "not_found", "no such user");
        goto cleanup;
    }
    if (strcmp(id, who.id.user_id) == 0 &&
        (disabled == 1 || (roles[0] && strstr(roles, "admin") == NULL))) {
        httpd_error(r, 409, "self_lockout",
                    "admins cannot disable or demote themselves");
        goto cleanup;
    }
    rc = plat_users_by_id(c, &r->log, id, &before);
    if (rc == PLAT_DB_OK)
        rc = plat_users_update(c, &r->log, id, disabled,
                               roles[0] ? roles : NULL, &after);
    if (rc == PLAT_DB_NOT_FOUND) {
        httpd_error(r, 404, "not_found", "no such user");
        goto cleanup;
    }
    if (rc != PLAT_DB_OK) {
        plat_auth_db_error(r, rc);
        goto cleanup;
    }
    if (after.disabled && !before.disabled) {
        rc = plat_refresh_revoke(c, &r->log, id, NULL, NULL, "disabled",
                                 &dead);
        if (rc != PLAT_DB_OK) {
            plat_auth_db_error(r, rc);
            goto cleanup;
        }
        plat_revoke_jtis(ctx, &r->log, &dead);
    }
    if ((after.disabled && !before.disabled) || roles_differ(&before, &after))
        plat_revoke_user(ctx, &r->log, id, (long long)time(NULL));
    log_kv(LOG_LVL_INFO, &r->log, "user updated by admin", "user_id", id,
           "admin_id", who.id.user_id, "disabled",
           after.disabled ? "true" : "false", NULL);
    uj = plat_auth_user_json(&after);
    if (uj == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        goto cleanup;
    }
    json_object_set_new(uj, "disabled", json_boolean(after.disabled));
    json_object_set_new(uj, "updated_at", json_string(after.updated_at));
    httpd_reply_json(r, 200, json_pack("{s:o}", "user", uj));
cleanup:
    plat_auth_pg_release(ctx, c, rc);
    plat_jtis_cleanup(&dead);
    plat_user_cleanup(&before);
    plat_user_cleanup(&after);
    json_decref(body);
}

int plat_admin_routes(struct httpd_server *s, struct plat_ctx *ctx)
{
    if (httpd_route(s, "GET", "/users", h_list, ctx, 0) ||
        httpd_route(s, "PATCH", "/users/{id}", h_patch, ctx, 0))
        return -1;
    return 0;
}
