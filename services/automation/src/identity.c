/*
 * identity — who is calling, through libs/identity (the rules are the
 * platform's: gateway headers only with the internal token, otherwise a
 * verified, non-revoked bearer token). This file only adapts
 * struct auto_auth / struct auto_identity to it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auto.h"
#include "identity/identity.h"
#include "log/log.h"

int auto_roles_contain(const char *csv, const char *role)
{
    return ident_roles_contain(csv, role);
}

static int unauthorized(struct httpd_req *r)
{
    httpd_add_header(r, "WWW-Authenticate", "Bearer");
    httpd_error(r, 401, "unauthorized", "a valid bearer token is required");
    return -1;
}

int auto_identity_require(const struct auto_auth *a, struct httpd_req *r,
                          struct auto_identity *out)
{
    struct ident_cfg cfg;
    struct ident id;

    memset(out, 0, sizeof *out);
    memset(&cfg, 0, sizeof cfg);
    cfg.keyset = a->keys;
    cfg.policy = a->policy;
    cfg.internal_token = a->internal_token;
    cfg.rev = a->rev;
    cfg.cache = a->cache;
    cfg.rev_fail_open = 1;
    if (ident_from_req(&cfg, r, &id) != IDENT_OK)
        return unauthorized(r);
    snprintf(out->user_id, sizeof out->user_id, "%s", id.user_id);
    snprintf(out->email, sizeof out->email, "%s", id.email);
    snprintf(out->roles, sizeof out->roles, "%s", id.roles_csv);
    out->via_gateway = id.source == IDENT_GATEWAY;
    out->admin = auto_roles_contain(out->roles, "admin");
    return 0;
}
