/*
 * Fuzzes how platform and automation decide who is calling (libs/identity):
 * ident_resolve over the request headers (Authorization bearer token, or
 * the gateway's X-User-* headers trusted only with the right
 * X-Internal-Token), ident_bearer, ident_roles_contain, and the revocation
 * pub/sub message parser ident_rev_note.
 *
 * Input: five lines — Authorization, X-Internal-Token, X-User-Id,
 * X-User-Email, X-User-Roles (a line "-" or a missing line is an absent
 * header) — then the rest is one pub/sub message. Keyset: the HS256 secret
 * of fuzz_token; internal token "fuzz-internal-token".
 * Invariants: the X-User-* identity is taken only with the exact internal
 * token; an accepted identity has a non-empty user id and NUL-terminated
 * fields.
 */
#include <stdio.h>

#include "../fuzz.h"
#include "identity/identity.h"
#include "identity/revocation.h"

#define NOW ((time_t)1767225600)
#define INTERNAL "fuzz-internal-token"

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
static struct tok_keyset *g_ks;
static struct ident_rev *g_rev;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    g_ks = tok_keyset_new();
    g_rev = ident_rev_new(NULL, 60);    /* notes only: never asks Redis */
    if (!g_ks || !g_rev ||
        tok_keyset_add_hmac(g_ks, secret, strlen(secret), NULL) != 0)
        abort();
    return 0;
}

static char *next_line(char **p)
{
    char *s = *p, *nl;

    if (!s)
        return NULL;
    nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return strcmp(s, "-") == 0 ? NULL : s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_strndup(data, size), *p = buf;
    struct ident_headers h;
    struct ident_cfg cfg;
    struct ident id;
    enum tok_err terr;
    enum ident_result rc;
    size_t len;
    const char *tok;

    memset(&cfg, 0, sizeof cfg);
    cfg.keyset = g_ks;
    cfg.policy.issuer = "basalt";
    cfg.policy.audience = "basalt";
    cfg.policy.leeway_s = 30;
    cfg.internal_token = INTERNAL;
    h.authorization = next_line(&p);
    h.internal_token = next_line(&p);
    h.user_id = next_line(&p);
    h.user_email = next_line(&p);
    h.user_roles = next_line(&p);

    rc = ident_resolve(&cfg, &h, NOW, &id, &terr);
    if (rc == IDENT_OK) {
        if (!id.user_id[0] || !memchr(id.user_id, 0, sizeof id.user_id) ||
            !memchr(id.email, 0, sizeof id.email) ||
            !memchr(id.roles_csv, 0, sizeof id.roles_csv) ||
            !memchr(id.jti, 0, sizeof id.jti))
            abort();
        if (id.source == IDENT_GATEWAY &&
            (!h.internal_token || strcmp(h.internal_token, INTERNAL) != 0))
            abort();
        (void)ident_roles_contain(id.roles_csv, "admin");
    }
    /* without an internal token configured, X-User-* must never count */
    cfg.internal_token = NULL;
    if (ident_resolve(&cfg, &h, NOW, &id, &terr) == IDENT_OK &&
        id.source != IDENT_BEARER)
        abort();
    if (h.authorization) {
        tok = ident_bearer(h.authorization, &len);
        if (tok && (tok < h.authorization ||
                    tok + len > h.authorization + strlen(h.authorization)))
            abort();
    }
    (void)ident_roles_contain(h.user_roles, "admin");
    (void)ident_internal_ok(&cfg, h.internal_token);
    if (p)
        (void)ident_rev_note(g_rev, p, strlen(p), NOW);
    free(buf);
    return 0;
}
