/*
 * session_handlers — the session side of auth (README.md has the bodies):
 *   POST   /auth/refresh        rotate a refresh token (single use)
 *   POST   /auth/logout         end this session (scope local), every
 *                               session (global) or all others (others)
 *   GET    /auth/sessions       the caller's live sessions
 *   DELETE /auth/sessions/{id}  end one of them
 *   POST   /auth/password       change the password; ends other sessions
 *
 * Refresh rotation runs in one transaction holding the presented token's
 * row lock (SELECT ... FOR UPDATE), so two concurrent refreshes of one
 * token are serialised: the second sees it used. A used token presented
 * again within REFRESH_REUSE_GRACE_S of its first use gets a fresh child
 * of the same family (a client that lost the response, or two tabs);
 * later, it is reuse: the whole family is revoked, its live access tokens
 * denylisted, and the answer is 401 refresh_token_reused.
 *
 * Thread-safety: handlers run on any request thread.
 */
#ifndef PLAT_SESSION_HANDLERS_H
#define PLAT_SESSION_HANDLERS_H

#include "httpd/httpd.h"
#include "plat.h"

enum plat_grace {
    PLAT_REFRESH_ROTATE = 0, /* unused: rotate it */
    PLAT_REFRESH_GRACE,      /* used moments ago: issue another child */
    PLAT_REFRESH_REUSED,     /* used before the grace window: revoke */
    PLAT_REFRESH_INVALID,    /* revoked or expired */
};

/* The rotation rule (pure): what to do with a presented token. */
enum plat_grace plat_refresh_decide(int used, int revoked, int expired,
                                    double since_used, long grace_s);

enum plat_logout_scope {
    PLAT_LOGOUT_LOCAL = 0,
    PLAT_LOGOUT_GLOBAL,
    PLAT_LOGOUT_OTHERS,
    PLAT_LOGOUT_BAD,
};

/* "local" (or NULL), "global", "others"; anything else PLAT_LOGOUT_BAD. */
enum plat_logout_scope plat_logout_scope_parse(const char *s);

/* Registers the routes above. 0 or -1. */
int plat_session_routes(struct httpd_server *s, struct plat_ctx *ctx);

#endif
