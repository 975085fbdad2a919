/* What goes upstream and what comes back: headers and URL (pure). */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Growable string; aborts on OOM as services do. */
struct gw_str {
    char *p;
    size_t len, cap;
};

static void str_addn(struct gw_str *s, const char *src, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 128;
        char *np;

        while (s->len + n + 1 > cap)
            cap *= 2;
        np = realloc(s->p, cap);
        if (np == NULL) {
            fputs("gateway: out of memory\n", stderr);
            abort();
        }
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->len, src, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_add(struct gw_str *s, const char *src)
{
    str_addn(s, src, strlen(src));
}

/* Request headers that describe one hop, never forwarded (RFC 9110 §7.6.1)
 * plus those libcurl computes itself. */
static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive",        "Proxy-Connection",
    "TE",         "Trailer",           "Transfer-Encoding",
    "Upgrade",    "Host",              "Content-Length",
    "Expect",     NULL,
};

/* Headers only the gateway may set upstream. */
static const char *const gateway_owned[] = {
    "X-Internal-Token",  "X-Request-Id",     "traceparent",
    "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-For",
    NULL,
};

static int in_list(const char *name, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcasecmp(name, *list) == 0)
            return 1;
    return 0;
}

/* 1 when `name` is one of the comma-separated tokens of a Connection
 * header value (the hop-by-hop headers a client declares). */
static int connection_names(const char *conn, const char *name)
{
    size_t n = strlen(name);
    const char *p = conn;

    while (p != NULL && *p != '\0') {
        const char *end;
        size_t l;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        end = strchr(p, ',');
        l = end ? (size_t)(end - p) : strlen(p);
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == n && l > 0 && strncasecmp(p, name, n) == 0)
            return 1;
        p = end;
    }
    return 0;
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Appends "Name: value" ("Name;" for an empty value, which is how libcurl
 * sends an empty header). -1 on CR/LF or OOM. */
static int add_line(struct curl_slist **list, const char *name,
                    const char *value)
{
    struct gw_str line = {0};
    struct curl_slist *next;

    if (has_crlf(name) || has_crlf(value))
        return -1;
    str_add(&line, name);
    if (value[0] == '\0') {
        str_add(&line, ";");
    } else {
        str_add(&line, ": ");
        str_add(&line, value);
    }
    next = curl_slist_append(*list, line.p);
    free(line.p);
    if (next == NULL)
        return -1;
    *list = next;
    return 0;
}

static int add_opt(struct curl_slist **list, const char *name,
                   const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    return add_line(list, name, value);
}

int gw_proxy_upstream_headers(const struct gw_header *in, size_t nin,
                              const struct gw_fwd *fwd,
                              struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    struct gw_str xff = {0};
    const char *conn = NULL, *host = NULL;
    int has_accept = 0, has_ctype = 0, rc = -1;
    size_t i;

    for (i = 0; i < nin; i++)
        if (strcasecmp(in[i].name, "Connection") == 0 && in[i].value)
            conn = in[i].value;

    for (i = 0; i < nin; i++) {
        const char *name = in[i].name;
        const char *value = in[i].value ? in[i].value : "";

        if (strcasecmp(name, "Host") == 0)
            host = value;
        if (strcasecmp(name, "X-Forwarded-For") == 0 && value[0] != '\0') {
            if (xff.len > 0)
                str_add(&xff, ", ");
            str_add(&xff, value);
        }
        if (in_list(name, hop_by_hop) || in_list(name, gateway_owned) ||
            strncasecmp(name, "Proxy-", 6) == 0 ||
            strncasecmp(name, "X-User-", 7) == 0 ||
            (conn != NULL && connection_names(conn, name)))
            continue;
        if (strcasecmp(name, "Accept") == 0)
            has_accept = 1;
        if (strcasecmp(name, "Content-Type") == 0)
            has_ctype = 1;
        if (add_line(&list, name, value) != 0)
            goto cleanup;
    }

    if (fwd->client_ip != NULL && fwd->client_ip[0] != '\0') {
        if (xff.len > 0)
            str_add(&xff, ", ");
        str_add(&xff, fwd->client_ip);
    }
    if (add_opt(&list, "X-Forwarded-For", xff.p) != 0 ||
        add_opt(&list, "X-Forwarded-Proto", fwd->proto) != 0 ||
        add_opt(&list, "X-Forwarded-Host", host) != 0 ||
        add_opt(&list, "X-Request-Id", fwd->request_id) != 0 ||
        add_opt(&list, "traceparent", fwd->traceparent) != 0 ||
        add_opt(&list, "X-Internal-Token", fwd->internal_token) != 0)
        goto cleanup;
    if (fwd->claims != NULL &&
        (add_opt(&list, "X-User-Id", fwd->claims->sub) != 0 ||
         add_opt(&list, "X-User-Email", fwd->claims->email) != 0 ||
         add_opt(&list, "X-User-Roles", fwd->claims->roles_csv) != 0))
        goto cleanup;

    /* "Name:" tells libcurl to send no such header instead of a default. */
    if ((!has_accept && (list = curl_slist_append(list, "Accept:")) == NULL) ||
        (!has_ctype &&
         (list = curl_slist_append(list, "Content-Type:")) == NULL) ||
        (list = curl_slist_append(list, "Expect:")) == NULL)
        goto cleanup;
    rc = 0;

cleanup:
    free(xff.p);
    if (rc != 0) {
        curl_slist_free_all(list);
        list = NULL;
    }
    *out = list;
    return rc;
}

/* RFC 3986 unreserved characters. */
static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* pchar minus '%' (the path arrives decoded, so '%' is data). */
static int path_char(unsigned char c)
{
    return unreserved(c) || strchr("!$&'()*+,;=:@/", c) != NULL;
}

static void add_encoded(struct gw_str *s, const char *src,
                        int (*keep)(unsigned char))
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *src; src++) {
        unsigned char c = (unsigned char)*src;
        char esc[3];

        if (keep(c)) {
            str_addn(s, (const char *)&c, 1);
            continue;
        }
        esc[0] = '%';
        esc[1] = hex[c >> 4];
        esc[2] = hex[c & 15];
        str_addn(s, esc, 3);
    }
}

/*
 * Query names and values arrive decoded (libmicrohttpd also turns '+' into
 * a space), so everything but unreserved bytes is encoded again: a space
 * goes out as %20 and a literal '+' as %2B, which every upstream reads the
 * same way.
 */
char *gw_proxy_build_url(const char *target, const char *path,
                         const struct gw_header *args, size_t nargs)
{
    struct gw_str url = {0};
    size_t i;

    str_add(&url, target);
    add_encoded(&url, path[0] ? path : "/", path_char);
    for (i = 0; i < nargs; i++) {
        str_add(&url, i == 0 ? "?" : "&");
        add_encoded(&url, args[i].name, unreserved);
        if (args[i].value != NULL) {
            str_add(&url, "=");
            add_encoded(&url, args[i].value, unreserved);
        }
    }
    return url.p;
}

/* Response headers never relayed: hop-by-hop, the ones the server side
 * computes for the relayed body, ones httpd/libmicrohttpd set, and the
 * security headers the edge sets itself (edge.c; one copy each). */
static const char *const resp_dropped[] = {
    "Connection",     "Keep-Alive",   "Proxy-Connection", "Proxy-Authenticate",
    "TE",             "Trailer",      "Transfer-Encoding", "Upgrade",
    "Content-Length", "Content-Type", "Date",              "X-Request-Id",
    "X-Content-Type-Options",         "X-Frame-Options",   "Referrer-Policy",
    NULL,
};

int gw_proxy_response_header_kept(const char *name)
{
    return !in_list(name, resp_dropped);
}

int gw_proxy_idempotent(const char *method)
{
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE",
                                       "OPTIONS", NULL};

    return in_list(method, idem);
}
