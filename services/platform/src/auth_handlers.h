/*
 * auth_handlers — the /auth/ endpoints and the JWKS document.
 *
 *   POST /auth/register          {email, password} -> 201 {user}
 *   POST /auth/login             {email, password} -> 200 tokens + user
 *   GET  /auth/me                bearer or gateway identity -> 200 {user}
 *   GET  /.well-known/jwks.json  public verification keys
 *
 * Shapes and error codes: services/platform/README.md.
 *
 * Handlers block (argon2, PostgreSQL), so the server must run with
 * httpd threads == 0 (a thread per connection).
 */
#ifndef PLAT_AUTH_HANDLERS_H
#define PLAT_AUTH_HANDLERS_H

#include "httpd/httpd.h"
#include "plat.h"

/*
 * Registers the routes on `s` with `ctx` (which must outlive the server)
 * as the handlers' argument, and the auth metrics in metrics_default():
 *   auth_registrations_total{result}, auth_logins_total{result}.
 * 0, or -1 on OOM / bad pattern.
 */
int plat_auth_routes(struct httpd_server *s, struct plat_ctx *ctx);

#endif
