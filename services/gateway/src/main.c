/*
 * gateway — the edge of basalt: routes requests to upstream services,
 * verifying bearer tokens on the way (see services/gateway/README.md).
 * This file only wires settings to the modules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway.h"
#include "ratelimit.h"
#include "revocation.h"
#include "httpd/httpd.h"
#include "log/log.h"

#define GW_EXIT_CONFIG 2

struct settings {
    const char *host;
    long port;
    const char *log_level;
    const char *routes_file;
    const char *public_key_files;
    const char *secret;
    const char *issuer;
    const char *audience;
    long leeway_s;
    const char *internal_token;
    long connect_timeout_ms;
    long timeout_ms;
    long max_body;
    long threads;
    long idle_timeout_s;
    long max_conns;
    long max_header_bytes;
    long max_headers;
    long upstream_conns;
    long drain_s;
    const char *admin_token;
    const char *redis_url;
    const char *rl_fail;
    long rl_timeout_ms;
};

static void read_settings(struct cfg *c, struct settings *s)
{
    s->host = cfg_str(c, "HOST", "127.0.0.1");
    s->port = cfg_int(c, "PORT", 8080, 0, 65535);
    s->log_level = cfg_str(c, "LOG_LEVEL", "info");
    s->routes_file = cfg_str(c, "ROUTES_FILE", "services/gateway/routes.json");
    s->public_key_files = cfg_str(c, "JWT_PUBLIC_KEY_FILE", "");
    s->secret = cfg_str(c, "JWT_SECRET", "");
    s->issuer = cfg_str(c, "JWT_ISSUER", "basalt");
    s->audience = cfg_str(c, "JWT_AUDIENCE", "basalt");
    s->leeway_s = cfg_int(c, "JWT_LEEWAY_S", 30, 0, 60);
    s->internal_token = cfg_str(c, "INTERNAL_TOKEN", "");
    s->connect_timeout_ms =
        cfg_int(c, "UPSTREAM_CONNECT_TIMEOUT_MS", 1000, 1, 60000);
    s->timeout_ms = cfg_int(c, "UPSTREAM_TIMEOUT_MS", 30000, 1, 600000);
    s->max_body = cfg_int(c, "MAX_BODY_BYTES", 10485760, 0, 1L << 30);
    s->threads = cfg_int(c, "GATEWAY_THREADS", 0, 0, 256);
    s->idle_timeout_s = cfg_int(c, "CLIENT_IDLE_TIMEOUT_S", 60, 1, 3600);
    s->max_conns = cfg_int(c, "MAX_CONNECTIONS", 16384, 1, 1000000);
    s->max_header_bytes =
        cfg_int(c, "MAX_HEADER_BYTES", 8192, 4096, 1L << 20);
    s->max_headers = cfg_int(c, "MAX_HEADERS", 100, 8, 1000);
    s->upstream_conns = cfg_int(c, "UPSTREAM_MAX_HOST_CONNS", 256, 1, 65536);
    s->drain_s = cfg_int(c, "DRAIN_S", 25, 1, 3600);
    s->redis_url = cfg_str(c, "REDIS_URL", "");
    s->rl_fail = cfg_str(c, "RATE_LIMIT_FAIL", "open");
    s->rl_timeout_ms = cfg_int(c, "RATE_LIMIT_TIMEOUT_MS", 50, 1, 5000);
    if (strcmp(s->rl_fail, "open") != 0 && strcmp(s->rl_fail, "closed") != 0)
        cfg_fail(c, "RATE_LIMIT_FAIL", "must be open or closed");
    s->admin_token = cfg_str(c, "ADMIN_TOKEN", "");
    if (s->admin_token[0] != '\0' && strlen(s->admin_token) < 16)
        cfg_fail(c, "ADMIN_TOKEN", "must be at least 16 characters");
    if (strlen(s->admin_token) > 255)
        cfg_fail(c, "ADMIN_TOKEN", "must be at most 255 characters");
    if (log_level_parse(s->log_level) < 0)
        cfg_fail(c, "LOG_LEVEL", "must be debug, info, warn or error");
    if (s->public_key_files[0] == '\0' && s->secret[0] == '\0')
        cfg_fail(c, "JWT_PUBLIC_KEY_FILE", "set it (or JWT_SECRET)");
}

int main(void)
{
    struct cfg c;
    struct settings s;
    struct gw_route_defaults def;
    struct gw_authn_opts ao = {0};
    struct gw_proxy_opts po = {0};
    struct gw_authn *authn = NULL;
    struct gw_proxy *proxy = NULL;
    struct gw_routes *routes = NULL;
    struct gw_serve_opts so;
    struct gw g;
    char err[512];
    size_t body_cap;
    int rc = GW_EXIT_CONFIG;

    cfg_init(&c, "gateway");
    read_settings(&c, &s);
    if (cfg_check(&c) != 0)
        goto cleanup_cfg;
    log_init("gateway", s.log_level);

    ao.public_key_files = s.public_key_files;
    ao.secret = s.secret;
    ao.issuer = s.issuer;
    ao.audience = s.audience;
    ao.leeway_s = (int)s.leeway_s;
    authn = gw_authn_new(&ao, err, sizeof(err));
    if (authn == NULL ||
        gw_authn_setup_revocation(authn, err, sizeof(err)) != 0) {
        fprintf(stderr, "gateway: config: %s\n", err);
        gw_authn_free(authn);
        goto cleanup_cfg;
    }
    def.timeout_ms = s.timeout_ms;
    def.max_body = (size_t)s.max_body;
    routes = gw_routes_load(s.routes_file, &def, err, sizeof(err));
    if (routes == NULL) {
        /* An override error already names its UPSTREAM_*_URL. */
        fprintf(stderr, "gateway: config: %s%s\n",
                strncmp(err, "UPSTREAM_", 9) == 0 ? "" : "ROUTES_FILE: ", err);
        gw_authn_free(authn);
        goto cleanup_cfg;
    }
    po.connect_timeout_ms = s.connect_timeout_ms;
    po.internal_token = s.internal_token;
    po.max_host_conns = s.upstream_conns;
    proxy = gw_proxy_new(&po);
    if (proxy == NULL) {
        fputs("gateway: cannot initialise libcurl\n", stderr);
        gw_routes_release(routes);
        gw_authn_free(authn);
        rc = 1;
        goto cleanup_cfg;
    }
    body_cap = gw_routes_max_body(routes);
    if ((size_t)s.max_body > body_cap)
        body_cap = (size_t)s.max_body;
    gw_init(&g, routes, authn, proxy, s.routes_file, &def, body_cap);
    gw_set_admin_token(&g, s.admin_token);
    if (s.redis_url[0] != '\0') {
        struct gw_ratelimit *rl = gw_ratelimit_new(
            s.redis_url, s.threads > 0 ? (int)s.threads * 2 : 8,
            (int)s.rl_timeout_ms);

        if (rl == NULL) {
            fputs("gateway: config: REDIS_URL: not a redis:// URL\n", stderr);
            rc = GW_EXIT_CONFIG;
            gw_cleanup(&g);
            curl_global_cleanup();
            goto cleanup_cfg;
        }
        gw_set_ratelimit(&g, rl, strcmp(s.rl_fail, "closed") == 0);
    }

    rc = 1;
    gw_serve_opts_init(&so);
    so.host = s.host;
    so.port = (int)s.port;
    so.threads = (int)s.threads;
    so.conn_timeout_s = (unsigned)s.idle_timeout_s;
    so.max_conns = (unsigned)s.max_conns;
    so.max_header_bytes = (size_t)s.max_header_bytes;
    so.max_headers = (unsigned)s.max_headers;
    so.drain_s = (unsigned)s.drain_s;
    if (gw_serve_start(&g, &so) != 0) {
        log_error(NULL, "cannot start the HTTP server on %s:%ld", s.host,
                  s.port);
        goto cleanup;
    }
    log_info(NULL, "routes loaded from %s: %zu routes", s.routes_file,
             routes->nroutes);
    gw_serve_run(&g);
    rc = 0;

cleanup:
    gw_cleanup(&g);
    curl_global_cleanup();
cleanup_cfg:
    cfg_cleanup(&c);
    return rc;
}
