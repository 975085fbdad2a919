/* The admin API: upstream pools and blue-green weights at run time. */
#include "admin.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log/log.h"
#include "xfer.h"

#define GW_ADMIN_PREFIX "/admin/upstreams"

int gw_admin_path(const char *path)
{
    size_t n = strlen(GW_ADMIN_PREFIX);

    return strncmp(path, "/admin", 6) == 0 &&
           (path[6] == '\0' || path[6] == '/') &&
           (strncmp(path, GW_ADMIN_PREFIX, n) != 0 || path[n] == '\0' ||
            path[n] == '/');
}

/* The admin API's own check, as a route: a token with the admin role. */
static const struct gw_route admin_route = {
    .name = "admin", .auth = GW_AUTH_TOKEN, .roles = {"admin"}, .nroles = 1};

/*
 * 0 when the caller may use the admin API; else answered. ADMIN_TOKEN, or
 * an access token checked exactly as a route's (signature, claims,
 * revocation, role) by gw_authn_check.
 */
static int admin_auth(struct gw *g, struct httpd_req *r)
{
    const char *tok = NULL;
    size_t len = 0;
    struct tok_claims c;
    int has;

    if (g->admin_token[0] != '\0' &&
        gw_authn_bearer(httpd_header(r, "Authorization"), &tok, &len) ==
            GW_BEARER_OK &&
        len == strlen(g->admin_token) &&
        CRYPTO_memcmp(tok, g->admin_token, len) == 0)
        return 0;
    return gw_authn_check(g->authn, r, &admin_route, &c, &has);
}

/* The pool named by the path, or NULL (answered 404). "" = the list. */
static struct gw_pool *pool_of(struct gw *g, struct httpd_req *r,
                               const char **name)
{
    const char *rest = r->path + strlen(GW_ADMIN_PREFIX);
    struct gw_pool *p;

    *name = "";
    if (rest[0] == '\0' || strcmp(rest, "/") == 0)
        return NULL;
    *name = rest + 1;
    p = strchr(*name, '/') == NULL ? gw_pools_find(&g->pools, *name) : NULL;
    if (p == NULL)
        httpd_error(r, 404, "not_found", "no upstream called %.64s", *name);
    return p;
}

void gw_admin_begin(struct gw *g, struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;
    const char *name;
    struct gw_pool *p;

    r->route = "admin";
    if (strncmp(r->path, GW_ADMIN_PREFIX, strlen(GW_ADMIN_PREFIX)) != 0) {
        httpd_error(r, 404, "not_found", "no such admin resource");
        return;
    }
    if (admin_auth(g, r) != 0)
        return;
    p = pool_of(g, r, &name);
    if (p == NULL && name[0] != '\0')
        return;
    if (strcmp(r->method, "GET") == 0) {
        json_t *list;
        struct gw_pool *it;

        if (p != NULL) {
            httpd_reply_json(r, 200, gw_pool_json(p, httpd_now()));
            return;
        }
        list = json_array();
        pthread_mutex_lock(&g->pools.mu);
        for (it = g->pools.head; it != NULL; it = it->next)
            json_array_append_new(list, gw_pool_json(it, httpd_now()));
        pthread_mutex_unlock(&g->pools.mu);
        httpd_reply_json(r, 200, json_pack("{s:o}", "upstreams", list));
        return;
    }
    if (strcmp(r->method, "PUT") == 0 && p != NULL) {
        x->admin = 1;
        return;
    }
    httpd_add_header(r, "Allow", p != NULL ? "GET, PUT" : "GET");
    httpd_error(r, 405, "method_not_allowed", "method %.16s not allowed here",
                r->method);
}

int gw_admin_body(struct gw_xfer *x, const char *data, size_t n)
{
    char *nb;

    if (x->st.r.answered)
        return 0;
    if (n > GW_ADMIN_MAX_BODY - x->admin_len) {
        httpd_error(&x->st.r, 413, "payload_too_large",
                    "admin body over %d bytes", GW_ADMIN_MAX_BODY);
        return -1;
    }
    nb = realloc(x->admin_body, x->admin_len + n + 1);
    if (nb == NULL)
        return -1;
    memcpy(nb + x->admin_len, data, n);
    x->admin_len += n;
    nb[x->admin_len] = '\0';
    x->admin_body = nb;
    return 0;
}

void gw_admin_finish(struct gw *g, struct gw_xfer *x)
{
    struct httpd_req *r = &x->st.r;
    const char *name;
    struct gw_pool *p;
    json_error_t jerr;
    json_t *body;
    char err[256];

    if (r->answered)
        return;
    p = pool_of(g, r, &name);
    if (p == NULL)
        return;
    body = json_loadb(x->admin_body != NULL ? x->admin_body : "",
                      x->admin_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        httpd_error(r, 400, "invalid_json", "body must be a JSON object");
        return;
    }
    if (gw_pool_update(p, body, err, sizeof(err)) != 0) {
        json_decref(body);
        httpd_error(r, 400, "invalid_request", "%s", err);
        return;
    }
    json_decref(body);
    log_kv(LOG_LVL_INFO, &r->log, "upstream pool updated", "upstream",
           p->name, NULL);
    httpd_reply_json(r, 200, gw_pool_json(p, httpd_now()));
}
