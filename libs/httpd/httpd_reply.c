#include "httpd/httpd_int.h"
#include "jsonarena/jsonarena.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double httpd_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Random bytes for ids. These are correlation ids, not secrets: a
 * per-thread xoshiro256** generator seeded once from getrandom (a
 * time/counter mix when the kernel pool is unavailable) keeps the
 * syscalls off the per-request path.
 */
static uint64_t ident_rotl(uint64_t v, int k)
{
    return (v << k) | (v >> (64 - k));
}

static uint64_t ident_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void ident_random(unsigned char *buf, size_t len)
{
    static atomic_uint_fast64_t counter;
    static _Thread_local uint64_t st[4];
    static _Thread_local int seeded;
    size_t i;

    if (!seeded) {
        uint64_t seed;
        int k;

        if (getrandom(st, sizeof(st), 0) != (ssize_t)sizeof(st)) {
            seed = (uint64_t)(httpd_now() * 1e9) ^
                   (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ULL);
            for (k = 0; k < 4; k++)
                st[k] = ident_splitmix(&seed);
        }
        if ((st[0] | st[1] | st[2] | st[3]) == 0)
            st[0] = 1; /* the all-zero state never leaves zero */
        seeded = 1;
    }
    for (i = 0; i < len; i += 8) {
        uint64_t r = ident_rotl(st[1] * 5, 7) * 9, t = st[1] << 17;
        size_t j;

        st[2] ^= st[0];
        st[3] ^= st[1];
        st[1] ^= st[2];
        st[0] ^= st[3];
        st[2] ^= t;
        st[3] = ident_rotl(st[3], 45);
        for (j = 0; j < 8 && i + j < len; j++)
            buf[i + j] = (unsigned char)(r >> (8 * j));
    }
}

static void ident_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char buf[16];
    size_t i;

    do {
        ident_random(buf, nbytes);
        for (i = 0; i < nbytes; i++)
            if (buf[i] != 0)
                break;
    } while (i == nbytes); /* all-zero ids are invalid in traceparent */
    for (i = 0; i < nbytes; i++) {
        out[2 * i] = hex[buf[i] >> 4];
        out[2 * i + 1] = hex[buf[i] & 0xf];
    }
    out[2 * nbytes] = '\0';
}

/* 1..HTTPD_REQUEST_ID_MAX chars of [A-Za-z0-9._:-]. */
static int ident_valid_request_id(const char *s)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (i >= HTTPD_REQUEST_ID_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return 0;
    }
    return i > 0;
}

/* n lowercase hex digits, not all '0'. */
static int ident_hex_field(const char *s, size_t n, int allow_zero)
{
    size_t i;
    int nonzero = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            nonzero = 1;
    }
    return allow_zero || nonzero;
}

/*
 * W3C Trace Context: "vv-<32 hex trace>-<16 hex parent>-<2 hex flags>".
 * Version ff is invalid; version 00 has exactly 55 chars; later versions
 * may append "-..." fields. Copies the trace id into trace on success.
 */
static int ident_parse_traceparent(const char *s, char *trace)
{
    size_t len;

    if (s == NULL)
        return 0;
    len = strlen(s);
    if (len < 55 || !ident_hex_field(s, 2, 1) || strncmp(s, "ff", 2) == 0)
        return 0;
    if (strncmp(s, "00", 2) == 0 ? len != 55 : (len > 55 && s[55] != '-'))
        return 0;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return 0;
    if (!ident_hex_field(s + 3, 32, 0) || !ident_hex_field(s + 36, 16, 0) ||
        !ident_hex_field(s + 53, 2, 1))
        return 0;
    memcpy(trace, s + 3, 32);
    trace[32] = '\0';
    return 1;
}

void httpd_identity_init(struct httpd_req *r)
{
    const char *rid = httpd_header(r, "X-Request-Id");

    if (ident_valid_request_id(rid))
        snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    else
        ident_hex(r->request_id, 16);
    if (!ident_parse_traceparent(httpd_header(r, "traceparent"),
                                 r->trace_id))
        ident_hex(r->trace_id, 16);
    ident_hex(r->span_id, 8);
    snprintf(r->traceparent, sizeof(r->traceparent), "00-%s-%s-01",
             r->trace_id, r->span_id);
    r->log.request_id = r->request_id;
    r->log.trace_id = r->trace_id;
}

const char *httpd_header(struct httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_query(struct httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *httpd_param(struct httpd_req *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nparams; i++)
        if (strcmp(r->param_names[i], name) == 0)
            return r->param_values[i];
    return NULL;
}

void httpd_client_ip(struct httpd_req *r, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci;
    socklen_t slen;

    if (len == 0)
        return;
    buf[0] = '\0';
    ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    slen = ci->client_addr->sa_family == AF_INET6
               ? sizeof(struct sockaddr_in6)
               : sizeof(struct sockaddr_in);
    if (getnameinfo(ci->client_addr, slen, buf, len, NULL, 0,
                    NI_NUMERICHOST) != 0)
        buf[0] = '\0';
}

void httpd_add_header(struct httpd_req *r, const char *name,
                      const char *value)
{
    struct httpd_resp_header *h = calloc(1, sizeof(*h));
    struct httpd_resp_header **tail = &r->resp_headers;

    if (h == NULL)
        return;
    h->name = strdup(name);
    h->value = strdup(value);
    if (h->name == NULL || h->value == NULL) {
        free(h->name);
        free(h->value);
        free(h);
        return;
    }
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = h;
}

void httpd_req_free_resp_headers(struct httpd_req *r)
{
    struct httpd_resp_header *h = r->resp_headers;

    while (h != NULL) {
        struct httpd_resp_header *next = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = next;
    }
    r->resp_headers = NULL;
}

/* Queues resp (consumed) with the common headers; len is the body size. */
static void reply_send(struct httpd_req *r, int status,
                       struct MHD_Response *resp, size_t len)
{
    struct httpd_req_state *st = (struct httpd_req_state *)r;
    struct httpd_resp_header *h;

    if (resp == NULL) {
        log_error(&r->log, "httpd: cannot build a %d response", status);
        return;
    }
    if (r->answered) {
        log_warn(&r->log, "httpd: second reply (%d) ignored on %s", status,
                 r->route);
        MHD_destroy_response(resp);
        return;
    }
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    for (h = r->resp_headers; h != NULL; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (MHD_queue_response(r->conn, (unsigned)status, resp) == MHD_YES) {
        r->answered = 1;
        r->status = status;
        st->resp_bytes = len;
    } else {
        log_error(&r->log, "httpd: MHD_queue_response failed (%d)", status);
    }
    MHD_destroy_response(resp);
}

void httpd_reply_raw(struct httpd_req *r, int status,
                     const char *content_type, const void *buf, size_t len)
{
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer(len, (void *)buf,
                                           MHD_RESPMEM_MUST_COPY);
    if (resp != NULL && content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    reply_send(r, status, resp, len);
}

void httpd_reply_fd(struct httpd_req *r, int status,
                    const char *content_type, int fd,
                    unsigned long long size)
{
    struct MHD_Response *resp;
    off_t at = lseek(fd, 0, SEEK_CUR);

    /* MHD closes fd when it destroys the response */
    resp = MHD_create_response_from_fd_at_offset64(
        (uint64_t)size, fd, (uint64_t)(at > 0 ? at : 0));
    if (resp == NULL) {
        close(fd);
        log_error(&r->log, "httpd: cannot build a %d file response", status);
        return;
    }
    if (content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    reply_send(r, status, resp, (size_t)size);
}

/* Adapts httpd_read_fn to MHD's content reader. */
struct reply_stream {
    httpd_read_fn read_fn;
    void (*free_fn)(void *);
    void *arg;
};

static ssize_t reply_stream_read(void *cls, uint64_t pos, char *buf,
                                 size_t max)
{
    struct reply_stream *rs = cls;
    long n;

    (void)pos;
    n = rs->read_fn(rs->arg, buf, max);
    if (n > 0)
        return (ssize_t)(n > (long)max ? (long)max : n);
    if (n == HTTPD_READ_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reply_stream_free(void *cls)
{
    struct reply_stream *rs = cls;

    if (rs->free_fn != NULL)
        rs->free_fn(rs->arg);
    free(rs);
}

void httpd_reply_stream(struct httpd_req *r, int status,
                        const char *content_type, httpd_read_fn read_fn,
                        void *arg, void (*free_fn)(void *))
{
    struct reply_stream *rs = malloc(sizeof(*rs));
    struct MHD_Response *resp = NULL;

    if (rs != NULL) {
        rs->read_fn = read_fn;
        rs->free_fn = free_fn;
        rs->arg = arg;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                 reply_stream_read, rs,
                                                 reply_stream_free);
    }
    if (resp == NULL) {
        free(rs);
        if (free_fn != NULL)
            free_fn(arg);
        log_error(&r->log, "httpd: cannot build a stream response");
        return;
    }
    if (content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    /* reply_send destroys resp; MHD then calls reply_stream_free once */
    reply_send(r, status, resp, 0);
}

int httpd_draining(const struct httpd_server *s)
{
    return atomic_load(&((struct httpd_server *)s)->draining);
}

void httpd_reply_json(struct httpd_req *r, int status, json_t *body)
{
    struct MHD_Response *resp;
    char *text = NULL;
    size_t len = 0;

    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (text == NULL) {
            log_error(&r->log, "httpd: cannot encode JSON reply");
            return;
        }
        len = strlen(text);
    }
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
    } else {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
    }
    reply_send(r, status, resp, len);
}

void httpd_error(struct httpd_req *r, int status, const char *code,
                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message",
                     msg, "request_id", r->request_id);
    if (body == NULL) {
        /* Invalid UTF-8 in msg (it may echo client input); drop it. */
        body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code,
                         "message", "", "request_id", r->request_id);
    }
    httpd_reply_json(r, status, body);
}

/* "application/json" or any "application/<x>+json", parameters ignored. */
static int reply_is_json_type(const char *ct)
{
    const char *end = strchr(ct, ';');
    size_t len = end != NULL ? (size_t)(end - ct) : strlen(ct);

    while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    if (len == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    return len > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + len - 5, "+json", 5) == 0;
}

int httpd_json_body(struct httpd_req *r, json_t **out)
{
    return httpd_json_body_in(r, out, NULL);
}

int httpd_json_body_in(struct httpd_req *r, json_t **out,
                       struct jarena *arena)
{
    const char *ct = httpd_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    json_error_t jerr;
    json_t *v;

    *out = NULL;
    if (ct != NULL && ct[0] != '\0' && !reply_is_json_type(ct)) {
        httpd_error(r, 415, "unsupported_media_type",
                    "Content-Type must be application/json");
        return -1;
    }
    if (r->body_len == 0) {
        httpd_error(r, 400, "invalid_json", "request body is empty");
        return -1;
    }
    if (arena != NULL)
        jarena_alloc_on(arena);
    v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (arena != NULL)
        jarena_alloc_off(arena);
    if (v == NULL) {
        httpd_error(r, 400, "invalid_json", "invalid JSON at line %d: %s",
                    jerr.line, jerr.text);
        return -1;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        httpd_error(r, 400, "invalid_json", "body must be a JSON object");
        return -1;
    }
    *out = v;
    return 0;
}
