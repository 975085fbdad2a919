/*
 * routes — the gateway's declarative routing table.
 *
 * A routes file (JSON) names upstream pools and the routes that lead to
 * them; see services/gateway/README.md for the format. gw_routes_parse()
 * validates it strictly and builds an immutable struct gw_routes, which
 * request threads share through a struct gw_route_table: a reload (SIGHUP)
 * builds a new table and swaps the pointer, while requests still running
 * keep the old one alive through its reference count.
 *
 * Matching (gw_routes_match): exact "path" routes first, then the longest
 * "prefix" that ends on a segment boundary ("/auth" matches "/auth" and
 * "/auth/x", not "/authx"). The most specific path match decides: if none
 * of the routes with that path/prefix accepts the method, the answer is
 * 405 with the methods they do accept.
 *
 * Thread-safety: a struct gw_routes is read-only once built (only the
 * upstreams' round-robin counters change, atomically) and may be read by
 * any thread holding a reference. The table functions may be called from
 * any thread.
 */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define GW_NAME_MAX 64
#define GW_ROLE_MAX 32
#define GW_MAX_ROLES 8

/* Bit per HTTP method a route may accept. */
enum gw_method {
    GW_M_GET = 1 << 0,
    GW_M_HEAD = 1 << 1,
    GW_M_POST = 1 << 2,
    GW_M_PUT = 1 << 3,
    GW_M_PATCH = 1 << 4,
    GW_M_DELETE = 1 << 5,
    GW_M_OPTIONS = 1 << 6,
};
#define GW_M_ANY 0x7f

enum gw_auth {
    GW_AUTH_NONE = 0, /* public route */
    GW_AUTH_TOKEN = 1, /* valid bearer access token required */
};

/* A pool of interchangeable targets ("http://host:port", no slash). */
struct gw_upstream {
    char name[GW_NAME_MAX];
    char **targets;
    size_t ntargets;
    atomic_uint rr; /* round-robin cursor, the only mutable field */
};

struct gw_route {
    char name[GW_NAME_MAX];
    char *path;         /* "/auth" — the exact path or the prefix */
    size_t path_len;
    int is_prefix;      /* 1: "prefix", 0: "path" (exact) */
    unsigned methods;   /* enum gw_method bits; GW_M_ANY when not listed */
    struct gw_upstream *upstream; /* points into the same gw_routes */
    int strip_prefix;   /* forward path minus the prefix ("/" if empty) */
    enum gw_auth auth;
    char roles[GW_MAX_ROLES][GW_ROLE_MAX]; /* any one of them suffices */
    size_t nroles;
    long timeout_ms;    /* whole upstream exchange */
    size_t max_body;    /* request body limit in bytes */
};

struct gw_routes {
    atomic_long refs;
    struct gw_upstream *upstreams;
    size_t nupstreams;
    struct gw_route *routes;
    size_t nroutes;
};

/* Values a route gets when the file leaves a field out. */
struct gw_route_defaults {
    long timeout_ms;
    size_t max_body;
};

/*
 * Parses and validates a routes document (`len` bytes of JSON). Returns a
 * new table with one reference (release with gw_routes_release), or NULL
 * with one line in `err` naming the route index / field at fault.
 */
struct gw_routes *gw_routes_parse(const char *json, size_t len,
                                  const struct gw_route_defaults *def,
                                  char *err, size_t errlen);

/*
 * Replaces an upstream's targets with those from UPSTREAM_<NAME>_URL (NAME
 * uppercased, '-' -> '_'; a comma list of base URLs) for every upstream
 * whose variable is set and non-empty. Returns 0, or -1 with `err` set when
 * a value is not a list of http(s) URLs (routes unchanged then).
 * Call before sharing the table.
 */
int gw_routes_apply_env(struct gw_routes *rt, char *err, size_t errlen);

/* Reads `path`, parses it and applies the env overrides. NULL + err. */
struct gw_routes *gw_routes_load(const char *path,
                                 const struct gw_route_defaults *def,
                                 char *err, size_t errlen);

/* The largest max_body of any route. */
size_t gw_routes_max_body(const struct gw_routes *rt);

/* Adds a reference. */
void gw_routes_retain(struct gw_routes *rt);
/* Drops a reference, freeing at zero. NULL is ignored. */
void gw_routes_release(struct gw_routes *rt);

struct gw_upstream *gw_routes_upstream(const struct gw_routes *rt,
                                       const char *name);

/* Method name -> enum gw_method bit; 0 when not one we route. */
unsigned gw_method_bit(const char *method);

/* Writes "GET, POST" for a method set into buf. */
void gw_methods_str(unsigned methods, char *buf, size_t len);

enum gw_match_rc {
    GW_MATCH_OK = 0,
    GW_MATCH_NOT_FOUND,  /* no route covers the path */
    GW_MATCH_METHOD,     /* path covered, method not; *allowed is set */
};

/*
 * Finds the route for (method, path). On GW_MATCH_OK *out points into rt.
 * On GW_MATCH_METHOD *allowed holds the methods of the most specific match.
 */
enum gw_match_rc gw_routes_match(const struct gw_routes *rt,
                                 const char *method, const char *path,
                                 const struct gw_route **out,
                                 unsigned *allowed);

/*
 * The path to send upstream: `path` itself, or with the route's prefix
 * removed when strip_prefix is set ("/llm/v1/x" -> "/v1/x", "/llm" -> "/").
 * Writes into buf; returns 0, or -1 when it does not fit.
 */
int gw_route_upstream_path(const struct gw_route *rt, const char *path,
                           char *buf, size_t len);

/*
 * The shared, swappable current table. Requests take a reference with
 * gw_route_table_get and drop it with gw_routes_release; a reload swaps in
 * a new table and releases the table's own reference to the old one.
 */
struct gw_route_table {
    pthread_mutex_t mu; /* guards cur (pointer read + retain, swap) */
    struct gw_routes *cur;
};

/* Takes ownership of `initial` (may be NULL). Can't fail. */
void gw_route_table_init(struct gw_route_table *t, struct gw_routes *initial);
/* Releases the current table. Call when no request runs. */
void gw_route_table_cleanup(struct gw_route_table *t);
/* The current table with a new reference; NULL if none. */
struct gw_routes *gw_route_table_get(struct gw_route_table *t);
/* Installs `next` (ownership moves in) and releases the old one. */
void gw_route_table_swap(struct gw_route_table *t, struct gw_routes *next);

#endif
