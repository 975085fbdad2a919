/*
 * platform — auth (users, tokens); analytics joins later. Wiring only:
 * settings, context, migrations, routes, serve. See README.md.
 */
#include "analytics.h"
#include "analytics_writer.h"
#include "auth_handlers.h"
#include "config/config.h"
#include "fault.h"
#include "httpd/httpd.h"
#include "jsonarena/jsonarena.h"
#include "log/log.h"
#include "plat.h"

#define SERVICE "platform"
/* The cluster script starts PostgreSQL and services in parallel. */
#define DB_WAIT_S 30

int main(void)
{
    struct cfg c;
    struct plat_settings set;
    struct plat_an_settings an_set;
    struct plat_fault fault;
    struct plat_ctx ctx;
    struct httpd_opts opts;
    struct httpd_server *srv = NULL;
    int rc = 1;

    /* before any thread: POST /analytics/events parses into arenas */
    jarena_install();
    cfg_init(&c, SERVICE);
    plat_settings_load(&c, &set);
    plat_an_settings_load(&c, &an_set);
    plat_fault_load(&c, &fault);
    if (cfg_check(&c) != 0) {
        plat_settings_cleanup(&set);
        cfg_cleanup(&c);
        return 2;
    }
    log_init(SERVICE, set.log_level);

    if (plat_ctx_init(&ctx, &set) != 0)
        goto cleanup;
    /* The private key now lives only inside the signer. */
    plat_settings_cleanup(&set);
    if (plat_ctx_migrate(&ctx, DB_WAIT_S) != 0)
        goto cleanup;

    httpd_opts_init(&opts, SERVICE);
    opts.host = set.host;
    opts.port = set.port;
    opts.threads = 0; /* handlers block on argon2 and PostgreSQL */
    opts.max_body = set.max_body;
    opts.ready = plat_ready;
    opts.ready_arg = &ctx;
    opts.before = plat_fault_before; /* off unless FAULT_INJECT_5XX_RATE */
    opts.before_arg = &fault;
    srv = httpd_new(&opts);
    if (srv == NULL || plat_auth_routes(srv, &ctx) != 0) {
        log_error(NULL, "cannot set up the HTTP server");
        goto cleanup;
    }
    /* After httpd_new: the writer thread inherits its signal mask. */
    ctx.analytics = plat_an_writer_new(set.database_url, &an_set);
    if (ctx.analytics == NULL ||
        plat_an_ingest_routes(srv, &ctx, &an_set) != 0 ||
        plat_an_query_routes(srv, &ctx) != 0 ||
        plat_an_writer_start(ctx.analytics) != 0) {
        log_error(NULL, "cannot set up analytics");
        goto cleanup;
    }
    if (httpd_start(srv) != 0)
        goto cleanup;
    httpd_run(srv, NULL, NULL, NULL);
    rc = 0;
cleanup:
    if (srv != NULL)
        httpd_free(srv);
    /* Requests are drained: write what is still queued, then stop. */
    plat_an_writer_free(ctx.analytics);
    ctx.analytics = NULL;
    plat_ctx_cleanup(&ctx);
    plat_settings_cleanup(&set);
    cfg_cleanup(&c);
    return rc;
}
