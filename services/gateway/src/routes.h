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

enum gw_balance {
    GW_BALANCE_ROUND_ROBIN = 0,
    GW_BALANCE_LEAST_REQUESTS,
};

/* Blue-green colours; index into the per-colour arrays. */
enum gw_color {
    GW_BLUE = 0,
    GW_GREEN = 1,
};
#define GW_NCOLORS 2

/* Circuit breaker settings of a pool (see breaker.h). */
struct gw_breaker_opts {
    int failures;       /* consecutive failures that open it, 5 */
    double error_rate;  /* failed share of the window that opens it, 0.5 */
    int window;         /* results in the error-rate window, 20 (<= 64) */
    long open_ms;       /* time open before a half-open probe, 5000 */
};

struct gw_pool;

/*
 * A pool of interchangeable targets ("http://host:port", no slash) as the
 * routes file (and env) define it. `targets` are the blue ones, so the old
 * form {"targets": [...]} is blue with weight 100. The live state (weights
 * changed by the admin API, health, breakers) is in `pool`, which outlives
 * reloads (pool.h).
 */
struct gw_upstream {
    char name[GW_NAME_MAX];
    char **targets;              /* blue */
    size_t ntargets;
    char **green_targets;
    size_t green_ntargets;
    int weight[GW_NCOLORS];      /* 0..100, summing to 100 */
    enum gw_balance balance;
    int sticky;                  /* one user id stays on one colour */
    char hc_path[256];           /* active health check path, "" = off */
    long hc_interval_ms;
    long hc_timeout_ms;
    struct gw_breaker_opts breaker;
    struct gw_pool *pool;        /* set by gw_pools_sync */
    atomic_uint rr;              /* round-robin cursor */
};

enum gw_rl_fail {
    GW_RL_FAIL_DEFAULT = 0, /* RATE_LIMIT_FAIL */
    GW_RL_FAIL_OPEN,        /* Redis down: allow */
    GW_RL_FAIL_CLOSED,      /* Redis down: refuse (503) */
};

/* CORS policy of a route; norigins 0 = no CORS headers at all. */
struct gw_cors {
    char **origins;         /* exact origins, or one "*" */
    size_t norigins;
    int credentials;        /* Access-Control-Allow-Credentials: true */
    long max_age_s;         /* preflight cache, default 600 */
    char allow_headers[512];  /* "" = echo the requested ones */
    char expose_headers[512];
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
    long connect_timeout_ms;    /* per attempt, 0 = the gateway's setting */
    long first_byte_timeout_ms; /* until the status line, 0 = timeout_ms */
    size_t max_body;    /* request body limit in bytes */
    long rl_limit;      /* rate limit: requests per rl_period_ms, 0 = off */
    long rl_period_ms;
    enum gw_rl_fail rl_fail;
    struct gw_cors cors;
};

struct gw_routes {
    atomic_long refs;
    struct gw_upstream *upstreams;
    size_t nupstreams;
    struct gw_route *routes;
    size_t nroutes;
};

/*
 * Internal to routes*.c: parses upstreams.<name> into `up` (0, or -1 with
 * err set); checks a target base URL and returns a trimmed copy (NULL with
 * *why set); frees a target list.
 */
int gw_routes_parse_upstream(struct gw_upstream *up, const char *name,
                             void *json_obj, char *err, size_t errlen);
/* The route fields "rate_limit" and "cors" (0, or -1 with err set). */
int gw_routes_parse_route_ext(struct gw_route *r, void *json_obj,
                              size_t idx, char *err, size_t errlen);
char *gw_routes_target_dup(const char *url, const char **why);
void gw_routes_targets_free(char **targets, size_t n);

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
 * Replaces an upstream's blue targets with those from UPSTREAM_<NAME>_URL
 * and its green ones with UPSTREAM_<NAME>_GREEN_URL (NAME uppercased,
 * '-' -> '_'; a comma list of base URLs) for every variable set and
 * non-empty. Returns 0, or -1 with `err` set when
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
