#include "auth_handlers.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "admin_users.h"
#include "auth_common.h"
#include "refresh.h"
#include "session_handlers.h"
#include "throttle.h"
#include "track.h"
#include "users_db.h"
#include "validation.h"

/* How long a request waits for a pooled connection / argon2 slot. */
#define PG_WAIT_MS 2000
#define ARGON2_WAIT_MS 5000

static struct metrics_family *m_registrations;
static struct metrics_family *m_logins;

static void count(struct metrics_family *fam, const char *result)
{
    const char *labels[1] = {result};

    if (fam != NULL)
        metrics_inc_labels(fam, labels, 1);
}

static json_t *user_json(const struct plat_user *u)
{
    json_t *roles = json_array();
    json_t *o;

    if (roles == NULL)
        return NULL;
    for (size_t i = 0; i < u->nroles; i++)
        json_array_append_new(roles, json_string(u->roles[i]));
    o = json_pack("{s:s, s:s, s:o, s:s}", "id", u->id, "email", u->email,
                  "roles", roles, "created_at", u->created_at);
    return o;
}

static void reply_user(struct httpd_req *r, int status,
                       const struct plat_user *u)
{
    json_t *uj = user_json(u);

    if (uj == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return;
    }
    httpd_reply_json(r, status, json_pack("{s:o}", "user", uj));
}

/* Answers the failure for a non-OK plat_db result. */
static void reply_db_error(struct httpd_req *r, enum plat_db rc)
{
    if (rc == PLAT_DB_UNAVAILABLE)
        httpd_error(r, 503, "db_unavailable", "database unavailable");
    else
        httpd_error(r, 500, "internal_error", "internal error");
}

static PGconn *pg_acquire(struct plat_ctx *ctx, struct httpd_req *r)
{
    PGconn *c = pgpool_acquire(ctx->pg, PG_WAIT_MS);

    if (c == NULL)
        httpd_error(r, 503, "db_unavailable", "database unavailable");
    return c;
}

static void pg_release(struct plat_ctx *ctx, PGconn *c, enum plat_db rc)
{
    if (c != NULL)
        pgpool_release(ctx->pg, c, rc == PLAT_DB_UNAVAILABLE);
}

/*
 * Reads {"email": string, "password": string}. Missing fields and wrong
 * types answer 422 validation_failed naming the field; returns -1 then.
 */
static int read_credentials(struct httpd_req *r, json_t *body,
                            const char **email, size_t *email_len,
                            const char **pw, size_t *pw_len)
{
    json_t *e = json_object_get(body, "email");
    json_t *p = json_object_get(body, "password");

    if (e == NULL || json_is_null(e)) {
        httpd_error(r, 422, "validation_failed", "email is required");
        return -1;
    }
    if (!json_is_string(e)) {
        httpd_error(r, 422, "validation_failed", "email must be a string");
        return -1;
    }
    if (p == NULL || json_is_null(p)) {
        httpd_error(r, 422, "validation_failed", "password is required");
        return -1;
    }
    if (!json_is_string(p)) {
        httpd_error(r, 422, "validation_failed",
                    "password must be a string");
        return -1;
    }
    *email = json_string_value(e);
    *email_len = json_string_length(e);
    *pw = json_string_value(p);
    *pw_len = json_string_length(p);
    return 0;
}

static void h_register(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    json_t *body = NULL;
    const char *email_in, *pw;
    size_t email_len, pw_len;
    char email[PLAT_EMAIL_MAX + 1], why[128];
    char hash[PLAT_PASSWORD_ENCODED_MAX], ip[PLAT_IP_MAX];
    struct plat_user u;
    PGconn *c = NULL;
    enum plat_db rc = PLAT_DB_OK;
    long retry = 0;
    int hrc;

    memset(&u, 0, sizeof(u));
    plat_auth_client_ip(ctx, r, ip, sizeof(ip));
    if (plat_throttle_rate(ctx, &r->log, "register", ip,
                           ctx->set->register_rate_per_min, &retry)) {
        count(m_registrations, "rate_limited");
        plat_auth_too_many(r, retry);
        return;
    }
    if (httpd_json_body(r, &body) != 0)
        return;
    if (read_credentials(r, body, &email_in, &email_len, &pw, &pw_len) != 0)
        goto cleanup;
    if (plat_email_normalize(email_in, email_len, email, sizeof(email), why,
                             sizeof(why)) != 0 ||
        plat_password_policy(pw, pw_len, email, why, sizeof(why)) != 0) {
        count(m_registrations, "invalid");
        httpd_error(r, 422, "validation_failed", "%s", why);
        goto cleanup;
    }

    if (plat_argon2_acquire(ctx, ARGON2_WAIT_MS) != 0) {
        httpd_error(r, 503, "overloaded", "too many sign-ins in progress");
        goto cleanup;
    }
    hrc = plat_password_hash(&ctx->set->argon2, pw, pw_len, hash,
                             sizeof(hash));
    plat_argon2_release(ctx);
    if (hrc != 0) {
        log_kv(LOG_LVL_ERROR, &r->log, "argon2id hashing failed", NULL);
        httpd_error(r, 500, "internal_error", "internal error");
        goto cleanup;
    }

    if ((c = pg_acquire(ctx, r)) == NULL)
        goto cleanup;
    rc = plat_users_create(c, &r->log, email, hash, &u);
    if (rc == PLAT_DB_OK && ctx->set->admin_email != NULL &&
        strcmp(email, ctx->set->admin_email) == 0 &&
        plat_users_grant_admin(c, &r->log, email) == PLAT_DB_OK) {
        plat_user_cleanup(&u);
        rc = plat_users_by_email(c, &r->log, email, &u);
    }
    switch (rc) {
    case PLAT_DB_OK:
        count(m_registrations, "created");
        log_kv(LOG_LVL_INFO, &r->log, "user registered", "user_id", u.id,
               NULL);
        plat_track(ctx, "user_registered", u.id, NULL);
        reply_user(r, 201, &u);
        break;
    case PLAT_DB_CONFLICT:
        count(m_registrations, "email_taken");
        httpd_error(r, 409, "email_taken",
                    "an account with this email already exists");
        break;
    default:
        reply_db_error(r, rc);
        break;
    }
cleanup:
    pg_release(ctx, c, rc);
    plat_user_cleanup(&u);
    json_decref(body);
}

/* Login failures all look the same to the client. */
static void reply_invalid_credentials(struct httpd_req *r, const char *why)
{
    count(m_logins, why);
    log_kv(LOG_LVL_INFO, &r->log, "login failed", "reason", why, NULL);
    httpd_error(r, 401, "invalid_credentials", "invalid email or password");
}

static void h_login(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    json_t *body = NULL, *uj = NULL;
    const char *email_in, *pw, *hash;
    size_t email_len, pw_len;
    char email[PLAT_EMAIL_MAX + 1], why[128];
    char ip[PLAT_IP_MAX];
    struct plat_user u;
    struct plat_auth_pair pair;
    PGconn *c = NULL;
    enum plat_db rc = PLAT_DB_NOT_FOUND;
    long retry = 0;
    int ok, valid_email;

    memset(&u, 0, sizeof(u));
    memset(&pair, 0, sizeof(pair));
    plat_auth_client_ip(ctx, r, ip, sizeof(ip));
    if (plat_throttle_rate(ctx, &r->log, "login", ip,
                           ctx->set->login_rate_per_min, &retry)) {
        count(m_logins, "rate_limited");
        plat_auth_too_many(r, retry);
        return;
    }
    if (httpd_json_body(r, &body) != 0)
        return;
    if (read_credentials(r, body, &email_in, &email_len, &pw, &pw_len) != 0)
        goto cleanup;

    /* An address that cannot be normalised cannot have an account. */
    valid_email = plat_email_normalize(email_in, email_len, email,
                                       sizeof(email), why, sizeof(why)) == 0;
    if (!valid_email)
        snprintf(email, sizeof(email), "%.*s",
                 (int)(email_len < PLAT_EMAIL_MAX ? email_len
                                                  : PLAT_EMAIL_MAX),
                 email_in);
    /* Known or not, a throttled account answers the same 429. */
    if (plat_throttle_login_blocked(ctx, &r->log, email, ip, &retry)) {
        count(m_logins, "throttled");
        plat_auth_too_many(r, retry);
        goto cleanup;
    }
    if (valid_email) {
        if ((c = pg_acquire(ctx, r)) == NULL)
            goto cleanup;
        rc = plat_users_by_email(c, &r->log, email, &u);
        pg_release(ctx, c, rc);
        c = NULL;
        if (rc != PLAT_DB_OK && rc != PLAT_DB_NOT_FOUND) {
            reply_db_error(r, rc);
            goto cleanup;
        }
    }

    /* Same argon2 work whether or not the account exists. */
    hash = rc == PLAT_DB_OK && u.password_hash != NULL ? u.password_hash
                                                       : ctx->dummy_hash;
    if (plat_argon2_acquire(ctx, ARGON2_WAIT_MS) != 0) {
        httpd_error(r, 503, "overloaded", "too many sign-ins in progress");
        goto cleanup;
    }
    ok = plat_password_verify(hash, pw, pw_len);
    plat_argon2_release(ctx);
    if (ok < 0 && hash != ctx->dummy_hash)
        log_kv(LOG_LVL_ERROR, &r->log, "stored password hash unusable",
               "user_id", u.id, NULL);

    if (rc != PLAT_DB_OK || u.password_hash == NULL || ok != 1 ||
        u.disabled)
        plat_throttle_login_failed(ctx, &r->log, email, ip);
    if (rc != PLAT_DB_OK || u.password_hash == NULL) {
        plat_track(ctx, "login_failed", NULL,
                   json_pack("{s:s}", "reason", "unknown_user"));
        reply_invalid_credentials(r, "unknown_user");
        goto cleanup;
    }
    if (ok != 1) {
        plat_track(ctx, "login_failed", u.id,
                   json_pack("{s:s}", "reason", "wrong_password"));
        reply_invalid_credentials(r, "wrong_password");
        goto cleanup;
    }
    if (u.disabled) {
        plat_track(ctx, "login_failed", u.id,
                   json_pack("{s:s}", "reason", "disabled"));
        reply_invalid_credentials(r, "disabled");
        goto cleanup;
    }

    if ((c = pg_acquire(ctx, r)) == NULL)
        goto cleanup;
    rc = plat_auth_issue(ctx, r, c, &u, NULL, NULL, &pair);
    if (rc != PLAT_DB_OK) {
        reply_db_error(r, rc);
        goto cleanup;
    }
    plat_throttle_login_ok(ctx, &r->log, email);
    uj = plat_auth_pair_json(ctx, &pair, &u);
    if (uj == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        goto cleanup;
    }
    count(m_logins, "success");
    log_kv(LOG_LVL_INFO, &r->log, "login", "user_id", u.id, NULL);
    plat_track(ctx, "user_login", u.id, NULL);
    httpd_add_header(r, "Cache-Control", "no-store");
    httpd_reply_json(r, 200, uj);
    uj = NULL;
cleanup:
    pg_release(ctx, c, rc);
    json_decref(uj);
    plat_auth_pair_cleanup(&pair);
    plat_user_cleanup(&u);
    json_decref(body);
}

static void unauthorized(struct httpd_req *r, int invalid)
{
    httpd_add_header(r, "WWW-Authenticate",
                     invalid ? "Bearer realm=\"basalt\", "
                               "error=\"invalid_token\""
                             : "Bearer realm=\"basalt\"");
    httpd_error(r, 401, "unauthorized",
                invalid ? "invalid or expired credentials"
                        : "authentication required");
}

static void h_me(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    struct ident id;
    struct plat_user u;
    enum ident_result ir;
    enum plat_db rc;
    PGconn *c;

    memset(&u, 0, sizeof(u));
    ir = ident_from_req(&ctx->identity, r, &id);
    if (ir != IDENT_OK) {
        unauthorized(r, ir == IDENT_INVALID);
        return;
    }
    if ((c = pg_acquire(ctx, r)) == NULL)
        return;
    rc = plat_users_by_id(c, &r->log, id.user_id, &u);
    pg_release(ctx, c, rc);
    if (rc == PLAT_DB_OK && !u.disabled) {
        httpd_add_header(r, "Cache-Control", "no-store");
        reply_user(r, 200, &u);
    } else if (rc == PLAT_DB_OK || rc == PLAT_DB_NOT_FOUND) {
        /* A valid token for a user who is gone or disabled. */
        log_kv(LOG_LVL_INFO, &r->log, "identity has no active user",
               "user_id", id.user_id, NULL);
        unauthorized(r, 1);
    } else {
        reply_db_error(r, rc);
    }
    plat_user_cleanup(&u);
}

static void h_jwks(struct httpd_req *r, void *arg)
{
    struct plat_ctx *ctx = arg;
    json_t *doc = tok_keyset_jwks(ctx->keyset);

    if (doc == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return;
    }
    httpd_add_header(r, "Cache-Control", "public, max-age=300");
    httpd_reply_json(r, 200, doc);
}

int plat_auth_routes(struct httpd_server *s, struct plat_ctx *ctx)
{
    static const char *const result_label[1] = {"result"};
    struct metrics_registry *reg = metrics_default();

    m_registrations = metrics_family(
        reg, METRICS_COUNTER, "auth_registrations_total",
        "Registration attempts by result.", 1, result_label, NULL, 0);
    m_logins = metrics_family(reg, METRICS_COUNTER, "auth_logins_total",
                              "Login attempts by result.", 1, result_label,
                              NULL, 0);
    if (httpd_route(s, "POST", "/auth/register", h_register, ctx, 0) ||
        httpd_route(s, "POST", "/auth/login", h_login, ctx, 0) ||
        httpd_route(s, "GET", "/auth/me", h_me, ctx, 0) ||
        httpd_route(s, "GET", "/.well-known/jwks.json", h_jwks, ctx, 0) ||
        plat_session_routes(s, ctx) != 0 || plat_admin_routes(s, ctx) != 0)
        return -1;
    return 0;
}
