/*
 * admin — the gateway's own admin API (served, never proxied):
 *   GET /admin/upstreams            {"upstreams": [<pool>...]}
 *   GET /admin/upstreams/{name}     <pool> (pool.h, gw_pool_json)
 *   PUT /admin/upstreams/{name}     {"weights":{"blue":90,"green":10},
 *                                    "targets":{"green":["http://..."]}}
 *                                   -> 200 with the new state, at once
 * Auth: Authorization: Bearer <ADMIN_TOKEN> (compared in constant time),
 * or a valid access token holding the role "admin". 401/403 otherwise.
 *
 * Thread: MHD threads (the handler of one connection at a time).
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

struct gw;
struct gw_xfer;

#define GW_ADMIN_MAX_BODY 65536

/* 1 when `path` is the admin API's. */
int gw_admin_path(const char *path);

/*
 * First call for an admin request: checks auth and method, answers GETs
 * and errors. Leaves PUTs unanswered (x->admin set) to collect the body.
 */
void gw_admin_begin(struct gw *g, struct gw_xfer *x);

/* Body bytes of a PUT. -1 when over GW_ADMIN_MAX_BODY (answered 413). */
int gw_admin_body(struct gw_xfer *x, const char *data, size_t n);

/* The body is complete: apply the PUT and answer. */
void gw_admin_finish(struct gw *g, struct gw_xfer *x);

#endif
