#include "auth_common.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"

PGconn *plat_auth_pg(struct plat_ctx *ctx, struct httpd_req *r)
{
    PGconn *c = pgpool_acquire(ctx->pg, PLAT_PG_WAIT_MS);

    if (c == NULL)
        httpd_error(r, 503, "db_unavailable", "database unavailable");
    return c;
}

void plat_auth_pg_release(struct plat_ctx *ctx, PGconn *c, enum plat_db rc)
{
    if (c != NULL)
        pgpool_release(ctx->pg, c, rc == PLAT_DB_UNAVAILABLE);
}

void plat_auth_db_error(struct httpd_req *r, enum plat_db rc)
{
    if (rc == PLAT_DB_UNAVAILABLE)
        httpd_error(r, 503, "db_unavailable", "database unavailable");
    else
        httpd_error(r, 500, "internal_error", "internal error");
}

json_t *plat_auth_user_json(const struct plat_user *u)
{
    json_t *roles = json_array();

    if (roles == NULL)
        return NULL;
    for (size_t i = 0; i < u->nroles; i++)
        json_array_append_new(roles, json_string(u->roles[i]));
    return json_pack("{s:s, s:s, s:o, s:s}", "id", u->id, "email", u->email,
                     "roles", roles, "created_at", u->created_at);
}

void plat_auth_client_ip(struct plat_ctx *ctx, struct httpd_req *r,
                         char *buf, size_t len)
{
    const char *xff = httpd_header(r, "X-Forwarded-For");
    const char *itok = httpd_header(r, "X-Internal-Token");
    unsigned char tmp[sizeof(struct in6_addr)];

    buf[0] = '\0';
    if (xff != NULL && ident_internal_ok(&ctx->identity, itok)) {
        /* The gateway appends the peer it saw: the last entry. */
        const char *last = strrchr(xff, ',');
        size_t n;

        last = last != NULL ? last + 1 : xff;
        while (*last == ' ')
            last++;
        snprintf(buf, len, "%s", last);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == ' ')
            buf[--n] = '\0';
    } else {
        httpd_client_ip(r, buf, len);
    }
    if (inet_pton(AF_INET, buf, tmp) != 1 &&
        inet_pton(AF_INET6, buf, tmp) != 1)
        buf[0] = '\0';
}

void plat_auth_user_agent(struct httpd_req *r, char *buf, size_t len)
{
    const char *ua = httpd_header(r, "User-Agent");
    size_t i = 0;

    for (; ua != NULL && ua[i] != '\0' && i + 1 < len; i++) {
        unsigned char ch = (unsigned char)ua[i];
        buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    buf[i] = '\0';
}

void plat_auth_pair_cleanup(struct plat_auth_pair *p)
{
    free(p->access);
    OPENSSL_cleanse(p, sizeof(*p));
}

enum plat_db plat_auth_issue(struct plat_ctx *ctx, struct httpd_req *r,
                             PGconn *c, const struct plat_user *u,
                             const char *family_id, const char *parent_id,
                             struct plat_auth_pair *out)
{
    const char *roles[PLAT_USER_ROLES_MAX];
    unsigned char hash[PLAT_REFRESH_HASH_LEN];
    char ip[PLAT_IP_MAX], ua[PLAT_USER_AGENT_MAX + 1];
    struct plat_refresh_new rn;
    struct tok_issue in;
    enum plat_db rc;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < u->nroles; i++)
        roles[i] = u->roles[i];
    memset(&in, 0, sizeof(in));
    in.issuer = ctx->set->jwt_issuer;
    in.audience = ctx->set->jwt_audience;
    in.sub = u->id;
    in.email = u->email;
    in.roles = roles;
    in.nroles = u->nroles;
    in.ttl_s = ctx->set->access_ttl_s;
    in.now = time(NULL);
    out->access = tok_sign(ctx->signer, &in, out->jti);
    out->access_exp = (long long)in.now + in.ttl_s;
    if (out->access == NULL ||
        plat_refresh_generate(out->refresh, hash) != 0) {
        log_kv(LOG_LVL_ERROR, &r->log, "token issue failed", NULL);
        return PLAT_DB_ERROR;
    }
    plat_auth_client_ip(ctx, r, ip, sizeof(ip));
    plat_auth_user_agent(r, ua, sizeof(ua));
    memset(&rn, 0, sizeof(rn));
    rn.user_id = u->id;
    rn.token_hash = hash;
    rn.family_id = family_id;
    rn.parent_id = parent_id;
    rn.ttl_s = ctx->set->refresh_ttl_s;
    rn.user_agent = ua;
    rn.ip = ip;
    rn.access_jti = out->jti;
    rn.access_exp = out->access_exp;
    rc = plat_refresh_insert(c, &r->log, &rn, NULL, out->family_id);
    OPENSSL_cleanse(hash, sizeof(hash));
    return rc;
}

json_t *plat_auth_pair_json(struct plat_ctx *ctx,
                            const struct plat_auth_pair *p,
                            const struct plat_user *u)
{
    json_t *uj = plat_auth_user_json(u);

    if (uj == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:I, s:s, s:I, s:o}", "access_token",
                     p->access, "token_type", "Bearer", "expires_in",
                     (json_int_t)ctx->set->access_ttl_s, "refresh_token",
                     p->refresh, "refresh_expires_in",
                     (json_int_t)ctx->set->refresh_ttl_s, "user", uj);
}

void plat_auth_unauthorized(struct httpd_req *r, int invalid)
{
    httpd_add_header(r, "WWW-Authenticate",
                     invalid ? "Bearer realm=\"basalt\", "
                               "error=\"invalid_token\""
                             : "Bearer realm=\"basalt\"");
    httpd_error(r, 401, "unauthorized",
                invalid ? "invalid or expired credentials"
                        : "authentication required");
}

int plat_auth_caller(struct plat_ctx *ctx, struct httpd_req *r,
                     struct plat_caller *out)
{
    enum ident_result ir;
    const char *tok;
    size_t len = 0;
    struct tok_claims cl;

    memset(out, 0, sizeof(*out));
    ir = ident_from_req(&ctx->identity, r, &out->id);
    if (ir != IDENT_OK) {
        plat_auth_unauthorized(r, ir == IDENT_INVALID);
        return -1;
    }
    if (out->id.source == IDENT_BEARER) {
        snprintf(out->jti, sizeof(out->jti), "%s", out->id.jti);
        out->exp = out->id.exp;
    } else {
        /* Via the gateway: the bearer token still names the session. */
        tok = ident_bearer(httpd_header(r, "Authorization"), &len);
        if (tok != NULL &&
            tok_verify(ctx->keyset, &ctx->identity.policy, tok, len,
                       time(NULL), &cl) == TOK_OK &&
            strcmp(cl.sub, out->id.user_id) == 0) {
            snprintf(out->jti, sizeof(out->jti), "%s", cl.jti);
            out->exp = cl.exp;
        }
    }
    out->admin = ident_roles_contain(out->id.roles_csv, "admin");
    return 0;
}

void plat_auth_too_many(struct httpd_req *r, long secs)
{
    char v[24];

    snprintf(v, sizeof(v), "%ld", secs < 1 ? 1 : secs);
    httpd_add_header(r, "Retry-After", v);
    httpd_error(r, 429, "rate_limited", "too many attempts; retry later");
}
