/*
 * httpd — the HTTP scaffolding every basalt service shares, over
 * libmicrohttpd: routing by method and path, bounded request bodies, JSON
 * replies with the design's error shape, request identity (X-Request-Id,
 * W3C traceparent), /healthz /readyz /metrics, per-request metrics and an
 * access-log line, and a bounded drain on SIGTERM/SIGINT.
 *
 * Error shape (design.md, "Cross-service conventions"):
 *   {"error": {"code": "snake_case", "message": "...", "request_id": "..."}}
 *
 * Threads: with opts.threads == 0 every connection gets its own thread
 * (MHD_USE_THREAD_PER_CONNECTION) so handlers may block (PostgreSQL,
 * argon2); with opts.threads > 0 an epoll thread pool of that size runs the
 * handlers, which then must not block. A struct httpd_req belongs to the
 * thread running its handler and dies when the response is sent.
 *
 * Metrics recorded for every request in metrics_default():
 *   http_requests_total{method,route,status}
 *   http_request_duration_seconds{method,route}   (histogram)
 * where route is the matched route's pattern ("unmatched" for 404s), so
 * label cardinality stays bounded.
 */
#ifndef BASALT_HTTPD_H
#define BASALT_HTTPD_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

#include "log/log.h"

#define HTTPD_MAX_PARAMS 4
#define HTTPD_REQUEST_ID_MAX 64

struct httpd_server;
struct jarena;
struct httpd_req;
struct httpd_resp_header;

/*
 * A handler must answer with exactly one httpd_reply_* / httpd_error call.
 * If it returns without answering, httpd answers 500 internal_error.
 */
typedef void (*httpd_handler_fn)(struct httpd_req *r, void *arg);

/* Readiness probe for /readyz: 0 when ready; else writes why into `why`. */
typedef int (*httpd_ready_fn)(void *arg, char *why, size_t whylen);

struct httpd_opts {
    const char *service;     /* name in logs */
    const char *host;        /* bind address, e.g. "127.0.0.1" */
    int port;                /* 0 picks a free port (see httpd_port) */
    int threads;             /* 0: thread per connection; >0: epoll pool */
    size_t max_body;         /* default body limit in bytes (413 beyond) */
    unsigned conn_timeout_s; /* idle client timeout (slowloris), 0 = 60 */
    unsigned max_conns;      /* 0 = 10000 */
    unsigned drain_s;        /* SIGTERM drain bound, 0 = 25 */
    httpd_ready_fn ready;    /* NULL: always ready */
    void *ready_arg;
    /*
     * Optional hook for every request to a service route (not /healthz,
     * /readyz, /metrics), once its headers are in: before the body is
     * read and before the handler, on the connection's thread (so
     * concurrently). Returns 0 to go on, or 1 after answering (one
     * httpd_error / httpd_reply_*): the handler is then skipped. NULL:
     * none. Used for rehearsal fault injection (platform).
     */
    int (*before)(struct httpd_req *r, void *arg);
    void *before_arg;
};

struct httpd_req {
    struct httpd_server *srv;
    void *conn;                 /* struct MHD_Connection * */
    const char *method;         /* "GET", ... */
    const char *path;           /* decoded path, no query string */
    const char *route;          /* matched pattern, "unmatched" if none */
    char request_id[HTTPD_REQUEST_ID_MAX + 1];
    char trace_id[33];          /* 32 lowercase hex */
    char span_id[17];           /* 16 lowercase hex, this hop's span */
    char traceparent[56];       /* value to forward upstream */
    struct log_ctx log;         /* points at request_id / trace_id */
    char *body;                 /* NUL-terminated, body_len bytes */
    size_t body_len;
    size_t nparams;
    const char *param_names[HTTPD_MAX_PARAMS];
    char *param_values[HTTPD_MAX_PARAMS];
    int status;                 /* answered status, 0 before */
    int answered;
    double start;               /* monotonic seconds */
    struct httpd_resp_header *resp_headers;
    void *user;                 /* free slot for the service */
};

/* Default options (threads 0, max_body 1 MiB ...). Can't fail. */
void httpd_opts_init(struct httpd_opts *o, const char *service);

/*
 * New server (not yet listening); NULL on OOM. Strings in opts are copied.
 * Also blocks SIGTERM/SIGINT/SIGHUP in the calling thread (threads created
 * later inherit that, so httpd_run()'s sigwait() gets them) and ignores
 * SIGPIPE: call it from main before starting any other thread.
 */
struct httpd_server *httpd_new(const struct httpd_opts *o);

/*
 * Adds a route. `method` is "GET", "POST", ... or "*" for any. `pattern` is
 * an exact path ("/auth/me"), a path with parameters ("/users/{id}"; at most
 * HTTPD_MAX_PARAMS, each one path segment, read with httpd_param), or a
 * prefix whose last segment is "*" ("/automation/" "*", which also matches
 * "/automation"; "/" "*" matches everything).
 * Exact and parameter routes win over prefix routes; longer prefixes win.
 * A path that matches a pattern but not its method gets 405 with Allow.
 * `max_body` 0 means opts.max_body. Returns 0, or -1 on a bad pattern / OOM.
 * Call before httpd_start().
 */
int httpd_route(struct httpd_server *s, const char *method,
                const char *pattern, httpd_handler_fn fn, void *arg,
                size_t max_body);

/* Binds and starts serving. 0 on success, -1 (logged) on failure. */
int httpd_start(struct httpd_server *s);

/* The bound port (useful after port 0). */
int httpd_port(const struct httpd_server *s);

/*
 * Blocks until SIGTERM or SIGINT, then stops accepting, waits for in-flight
 * requests for at most opts.drain_s, and stops the daemon. Returns 0.
 * `on_signal`, when not NULL, runs once right after the signal (e.g. to stop
 * background workers) before draining. SIGHUP calls `on_hup` (may be NULL).
 */
int httpd_run(struct httpd_server *s, void (*on_signal)(void *),
              void (*on_hup)(void *), void *arg);

/*
 * The signal half of httpd_run(), for processes that run their own MHD
 * daemons: blocks SIGTERM, SIGINT and SIGHUP in the calling thread, calls
 * `on_hup(arg)` (may be NULL) for each SIGHUP, and returns SIGTERM or
 * SIGINT once one arrives, after logging "shutting down". Call from main.
 */
int httpd_wait_shutdown(void (*on_hup)(void *), void *arg);

/* Stops (if running) and frees. */
void httpd_free(struct httpd_server *s);

/* Number of requests being handled now (for drain, tests). */
long httpd_inflight(const struct httpd_server *s);

/* Request accessors. Returned strings live as long as the request. */
const char *httpd_header(struct httpd_req *r, const char *name);
const char *httpd_query(struct httpd_req *r, const char *name);
const char *httpd_param(struct httpd_req *r, const char *name);
/* Client IP address as text into buf; "" when unknown. */
void httpd_client_ip(struct httpd_req *r, char *buf, size_t len);

/*
 * Parses the body as JSON. On success stores a new reference in *out (caller
 * decrefs) and returns 0. On failure answers 400 invalid_json (or
 * 415 unsupported_media_type when Content-Type is set and not JSON, or
 * 400 when the top level is not an object) and returns -1.
 */
int httpd_json_body(struct httpd_req *r, json_t **out);

/*
 * httpd_json_body() with the parse tree allocated in `arena` (see
 * jsonarena.h: only json_loadb allocates from it; error replies do not).
 * The caller json_decref()s *out before jarena_end(arena).
 */
int httpd_json_body_in(struct httpd_req *r, json_t **out,
                       struct jarena *arena);

/* Adds a response header to the next reply (copied). */
void httpd_add_header(struct httpd_req *r, const char *name,
                      const char *value);

/* Answers with a JSON body; takes ownership of `body` (may be NULL: no
 * body). Adds Content-Type: application/json. */
void httpd_reply_json(struct httpd_req *r, int status, json_t *body);

/* Answers with raw bytes (copied); content_type may be NULL. */
void httpd_reply_raw(struct httpd_req *r, int status,
                     const char *content_type, const void *buf, size_t len);

/*
 * Streaming reply of unknown length (HTTP/1.1 chunked), e.g. server-sent
 * events. read_fn(arg, buf, max) fills at most max bytes and returns how
 * many (> 0), HTTPD_READ_END to finish or HTTPD_READ_ERROR to drop the
 * connection; it runs on the connection's thread (opts.threads 0) and may
 * block waiting for data, but must not return 0. free_fn(arg) (may be
 * NULL) runs exactly once, when the response is done, the client left, or
 * the reply could not be queued. Use httpd_draining() to end on SIGTERM.
 */
#define HTTPD_READ_END (-1L)
#define HTTPD_READ_ERROR (-2L)
typedef long (*httpd_read_fn)(void *arg, char *buf, size_t max);
void httpd_reply_stream(struct httpd_req *r, int status,
                        const char *content_type, httpd_read_fn read_fn,
                        void *arg, void (*free_fn)(void *));

/* 1 once the server is draining after SIGTERM/SIGINT (long-lived
 * streams should end), else 0. */
int httpd_draining(const struct httpd_server *s);

/* Answers with the error shape; message is printf-formatted. */
void httpd_error(struct httpd_req *r, int status, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Monotonic clock in seconds. */
double httpd_now(void);

/*
 * Streaming uploads: a route whose body is handed to the service chunk by
 * chunk as it arrives instead of being buffered (r->body stays NULL), so
 * a large upload never sits in memory. All three callbacks run on the
 * connection's thread (use opts.threads 0 when they block on disk I/O).
 *
 *   begin  once the headers are in, before any body byte. Returns 0 to
 *          accept (it may set *ctx for the other calls), or -1 after
 *          answering (401, 422, ...); then neither chunk nor end runs.
 *          A Content-Length above max_body gets 413 before begin runs.
 *   chunk  for every piece of the body, in order. Returns 0 to go on, or
 *          -1 to refuse the upload (e.g. disk full): the rest of the body
 *          is read and dropped, then end runs with HTTPD_STREAM_REFUSED.
 *   end    exactly once for every begin that returned 0; it owns ctx's
 *          cleanup. With DONE and REFUSED it must answer (one httpd_reply_*
 *          or httpd_error); with TOO_LARGE (the body passed max_body, called
 *          at once, httpd answers 413 when the client stops sending) and
 *          ABORTED (the connection ended first) it must not answer.
 */
enum httpd_stream_end {
    HTTPD_STREAM_DONE,        /* the whole body arrived */
    HTTPD_STREAM_REFUSED,     /* chunk returned -1 */
    HTTPD_STREAM_TOO_LARGE,   /* the body passed max_body */
    HTTPD_STREAM_ABORTED,     /* the connection ended before the body */
};

typedef int (*httpd_stream_begin_fn)(struct httpd_req *r, void *arg,
                                     void **ctx);
typedef int (*httpd_stream_chunk_fn)(struct httpd_req *r, void *ctx,
                                     const char *data, size_t len);
typedef void (*httpd_stream_end_fn)(struct httpd_req *r, void *ctx,
                                    enum httpd_stream_end how);

/*
 * Adds a streaming route (pattern rules as httpd_route). `max_body` 0
 * means opts.max_body. Returns 0, or -1 on a bad pattern / OOM. Call
 * before httpd_start().
 */
int httpd_route_stream(struct httpd_server *s, const char *method,
                       const char *pattern, httpd_stream_begin_fn begin,
                       httpd_stream_chunk_fn chunk, httpd_stream_end_fn end,
                       void *arg, size_t max_body);

/*
 * Answers with `size` bytes read from fd at its current offset, sent by
 * libmicrohttpd as the client takes them (sendfile where it can), so a
 * large file is never in memory. Takes ownership of fd: it is closed once
 * the response is done, or at once when the reply cannot be queued.
 * content_type may be NULL.
 */
void httpd_reply_fd(struct httpd_req *r, int status,
                    const char *content_type, int fd,
                    unsigned long long size);

/*
 * Pieces for code that runs its own MHD daemon (the gateway's engines)
 * with the same conventions as httpd_start(). httpd_listen.c.
 */
struct addrinfo;

/*
 * MHD_OPTION_EXTERNAL_LOGGER callback: each libmicrohttpd message becomes
 * one log line "libmicrohttpd" with the text as `detail` (trailing
 * newlines dropped, cut at 511 bytes). `cls`: a pointer to the enum
 * log_level to log at (NULL: warn), which must outlive the daemon. Any
 * thread.
 */
__attribute__((format(printf, 2, 0))) void
httpd_mhd_logger(void *cls, const char *fmt, va_list ap);

/*
 * The address to listen on for `host` ("127.0.0.1", "::", a name) and
 * `port` (numeric), for MHD_OPTION_SOCK_ADDR: getaddrinfo() with
 * AI_PASSIVE. Returns the list (free it with freeaddrinfo()), or NULL
 * after logging "<who>: cannot resolve HOST ..." at error.
 */
struct addrinfo *httpd_listen_addr(const char *who, const char *host,
                                   int port);

#endif
