/*
 * admin_users — roles and user administration.
 *
 * Roles are "user" and "admin" (the token's "roles" claim). The first
 * admin comes from ADMIN_EMAIL: the account with that address gets the
 * admin role at start and when it registers.
 *
 *   GET   /users?limit=&cursor=   admin: a page of users
 *   PATCH /users/{id}             admin: {"disabled": bool, "roles": [..]}
 *
 * The caller's admin role is checked against the database, not only the
 * token, so a demoted admin loses access at once. Disabling a user ends
 * every session, denylists their live access tokens and writes their
 * revocation marker (tokens issued before now are refused everywhere);
 * a role change writes the marker, so old tokens with the old roles stop
 * working and the client refreshes into the new roles.
 *
 * Thread-safety: handlers on any request thread; bootstrap at start.
 */
#ifndef PLAT_ADMIN_USERS_H
#define PLAT_ADMIN_USERS_H

#include <jansson.h>
#include <stddef.h>

#include "httpd/httpd.h"

struct plat_ctx;

/*
 * Parses a JSON roles array into a PostgreSQL array literal in `out`
 * ("{user,admin}"): only "user" and "admin", each at most once, at least
 * one. 0, or -1 with a client-safe reason in `why`. Pure.
 */
int plat_roles_parse(const json_t *arr, char *out, size_t outlen, char *why,
                     size_t whylen);

/* Grants admin to ADMIN_EMAIL's account, if set and registered. 0/-1. */
int plat_admin_bootstrap(struct plat_ctx *ctx);

/* Registers GET /users and PATCH /users/{id}. 0 or -1. */
int plat_admin_routes(struct httpd_server *s, struct plat_ctx *ctx);

#endif
