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
    struct httpd_opts ho;
    struct httpd_server *srv = NULL;
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
    if (authn == NULL) {
        fprintf(stderr, "gateway: config: %s\n", err);
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

    rc = 1;
    httpd_opts_init(&ho, "gateway");
    ho.host = s.host;
    ho.port = (int)s.port;
    ho.threads = 0; /* handlers block on libcurl for now */
    ho.max_body = body_cap;
    srv = httpd_new(&ho);
    if (srv == NULL || httpd_route(srv, "*", "/*", gw_handle, &g, 0) != 0 ||
        httpd_start(srv) != 0) {
        log_error(NULL, "cannot start the HTTP server on %s:%ld", s.host,
                  s.port);
        goto cleanup;
    }
    log_info(NULL, "routes loaded from %s: %zu routes", s.routes_file,
             routes->nroutes);
    httpd_run(srv, NULL, gw_on_hup, &g);
    rc = 0;

cleanup:
    if (srv != NULL)
        httpd_free(srv);
    gw_cleanup(&g);
    curl_global_cleanup();
cleanup_cfg:
    cfg_cleanup(&c);
    return rc;
}
