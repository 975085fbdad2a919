/*
 * egress — the address policy of the `http` job type (see egress.h).
 */
#include "egress.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HOST_MAX 256
#define PIN_MAX 8             /* addresses pinned per transfer */

/* Set once by auto_egress_init before workers start; read-only after. */
static char **allow_hosts;
static size_t allow_n;
static int allow_private;

static const char *const class_names[] = {
    "public", "loopback", "private", "link-local", "unique-local",
    "unspecified", "multicast", "reserved",
};

const char *auto_addr_class_name(enum auto_addr_class c)
{
    if ((size_t)c >= sizeof class_names / sizeof class_names[0])
        return "reserved";
    return class_names[c];
}

/* a is in host byte order. */
static enum auto_addr_class classify_v4(uint32_t a)
{
    if ((a >> 24) == 0)
        return AUTO_ADDR_UNSPECIFIED;
    if ((a >> 24) == 127)
        return AUTO_ADDR_LOOPBACK;
    if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 ||
        (a >> 22) == (100u << 2 | 1))        /* 100.64/10, carrier NAT */
        return AUTO_ADDR_PRIVATE;
    if ((a >> 16) == 0xa9fe)
        return AUTO_ADDR_LINK_LOCAL;
    if ((a >> 28) == 0xe)
        return AUTO_ADDR_MULTICAST;
    if ((a >> 28) == 0xf ||                  /* 240/4 and broadcast */
        (a >> 8) == 0xc00000 ||              /* 192.0.0/24 */
        (a >> 8) == 0xc00002 ||              /* 192.0.2/24 */
        (a >> 17) == (0xc612u >> 1) ||       /* 198.18/15 */
        (a >> 8) == 0xc63364 ||              /* 198.51.100/24 */
        (a >> 8) == 0xcb0071)                /* 203.0.113/24 */
        return AUTO_ADDR_RESERVED;
    return AUTO_ADDR_PUBLIC;
}

static uint32_t v4_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static enum auto_addr_class classify_v6(const unsigned char *b)
{
    static const unsigned char zero[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0,
                                             0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};

    if (memcmp(b, zero, 15) == 0)
        return b[15] == 0 ? AUTO_ADDR_UNSPECIFIED
               : b[15] == 1 ? AUTO_ADDR_LOOPBACK : AUTO_ADDR_RESERVED;
    /* Forms that carry an IPv4 address: judge that address. */
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 ||
        memcmp(b, nat64, 12) == 0)
        return classify_v4(v4_at(b + 12));
    if (b[0] == 0x20 && b[1] == 0x02)        /* 6to4 */
        return classify_v4(v4_at(b + 2));
    if (b[0] == 0xff)
        return AUTO_ADDR_MULTICAST;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return AUTO_ADDR_LINK_LOCAL;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)   /* old site-local */
        return AUTO_ADDR_PRIVATE;
    if ((b[0] & 0xfe) == 0xfc)
        return AUTO_ADDR_UNIQUE_LOCAL;
    /* Only 2000::/3 is global unicast; inside it, Teredo (2001::/32)
     * hides an IPv4 address and 2001:db8::/32 is documentation. */
    if ((b[0] & 0xe0) != 0x20 ||
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) ||
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8))
        return AUTO_ADDR_RESERVED;
    return AUTO_ADDR_PUBLIC;
}

enum auto_addr_class auto_addr_classify(const struct sockaddr *sa)
{
    if (!sa)
        return AUTO_ADDR_RESERVED;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;

        memcpy(&in, sa, sizeof in);
        return classify_v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;

        memcpy(&in6, sa, sizeof in6);
        return classify_v6(in6.sin6_addr.s6_addr);
    }
    return AUTO_ADDR_RESERVED;
}

void auto_egress_cleanup(void)
{
    for (size_t i = 0; i < allow_n; i++)
        free(allow_hosts[i]);
    free(allow_hosts);
    allow_hosts = NULL;
    allow_n = 0;
    allow_private = 0;
}

/* Copies host without IPv6 brackets into out; 0, or -1 if too long. */
static int bare_host(const char *host, size_t len, char *out, size_t ol)
{
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= ol)
        return -1;
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

int auto_egress_init(const char *hosts, int private_ok)
{
    const char *p = hosts ? hosts : "";

    auto_egress_cleanup();
    allow_private = private_ok != 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *s = p;
        size_t n = len;
        char buf[HOST_MAX];
        char **grown;

        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        p += len + (p[len] == ',');
        if (bare_host(s, n, buf, sizeof buf) != 0)
            continue;
        grown = realloc(allow_hosts, (allow_n + 1) * sizeof *grown);
        if (!grown)
            return -1;
        allow_hosts = grown;
        if (!(allow_hosts[allow_n] = strdup(buf)))
            return -1;
        allow_n++;
    }
    return 0;
}

static int host_allowed(const char *host)
{
    for (size_t i = 0; i < allow_n; i++)
        if (strcasecmp(allow_hosts[i], host) == 0)
            return 1;
    return 0;
}

/* The backstop: curl asks for every socket it connects, so an address
 * that bypassed the pin (a redirect is off, but say a future option) is
 * still refused. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *a)
{
    struct auto_egress *e = arg;
    struct sockaddr_storage ss;
    enum auto_addr_class cls;

    (void)purpose;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, &a->addr,
           a->addrlen < sizeof ss ? a->addrlen : sizeof ss);
    cls = auto_addr_classify((struct sockaddr *)&ss);
    if (!e->allow_any && cls != AUTO_ADDR_PUBLIC) {
        snprintf(e->refused, sizeof e->refused,
                 "refused to connect to a %s address",
                 auto_addr_class_name(cls));
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static int url_host_port(const char *url, char *host, size_t hl,
                         long *port)
{
    CURLU *u = curl_url();
    char *h = NULL, *p = NULL, *end;
    int rc = -1;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) !=
            CURLUE_OK)
        goto cleanup;
    if (bare_host(h, strlen(h), host, hl) != 0)
        goto cleanup;
    *port = strtol(p, &end, 10);
    if (*end || *port < 1 || *port > 65535)
        goto cleanup;
    rc = 0;
cleanup:
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}

static int is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

/* Resolves host and appends "host:port:a1,a2" of its public addresses
 * to e->resolve. 0, or -1 with err set. */
static int pin(struct auto_egress *e, const char *host, long port,
               char *err, size_t el)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL, *ai;
    enum auto_addr_class first_bad = AUTO_ADDR_PUBLIC;
    char line[HOST_MAX + 8 + PIN_MAX * (INET6_ADDRSTRLEN + 3)];
    size_t len;
    int n = 0, gai;
    struct curl_slist *grown;

    gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        snprintf(err, el, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    len = (size_t)snprintf(line, sizeof line, "%s:%ld:", host, port);
    for (ai = res; ai && n < PIN_MAX; ai = ai->ai_next) {
        enum auto_addr_class cls = auto_addr_classify(ai->ai_addr);
        char text[INET6_ADDRSTRLEN];
        const void *src;

        if (cls != AUTO_ADDR_PUBLIC) {
            if (first_bad == AUTO_ADDR_PUBLIC)
                first_bad = cls;
            continue;
        }
        src = ai->ai_family == AF_INET
                  ? (const void *)&((struct sockaddr_in *)ai->ai_addr)
                        ->sin_addr
                  : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)
                        ->sin6_addr;
        if (!inet_ntop(ai->ai_family, src, text, sizeof text))
            continue;
        len += (size_t)snprintf(line + len, sizeof line - len,
                                ai->ai_family == AF_INET6 ? "%s[%s]"
                                                          : "%s%s",
                                n ? "," : "", text);
        n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, el,
                 "%s resolves to a %s address; set HTTP_JOB_ALLOW_HOSTS "
                 "to allow it",
                 host, auto_addr_class_name(first_bad));
        return -1;
    }
    grown = curl_slist_append(e->resolve, line);
    if (!grown) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    e->resolve = grown;
    return 0;
}

int auto_egress_apply(struct auto_egress *e, CURL *c, const char *url,
                      char *err, size_t el)
{
    char host[HOST_MAX];
    long port;

    e->refused[0] = '\0';
    if (url_host_port(url, host, sizeof host, &port) != 0) {
        snprintf(err, el, "cannot parse the URL's host");
        return -1;
    }
    e->allow_any = allow_private || host_allowed(host);
    if (!e->allow_any) {
        if (is_literal(host)) {
            struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
            struct addrinfo *res = NULL;
            enum auto_addr_class cls = AUTO_ADDR_RESERVED;

            if (getaddrinfo(host, NULL, &hints, &res) == 0) {
                cls = auto_addr_classify(res->ai_addr);
                freeaddrinfo(res);
            }
            if (cls != AUTO_ADDR_PUBLIC) {
                snprintf(err, el,
                         "%s is a %s address; set HTTP_JOB_ALLOW_HOSTS "
                         "to allow it",
                         host, auto_addr_class_name(cls));
                return -1;
            }
        } else if (pin(e, host, port, err, el) != 0) {
            return -1;
        }
        curl_easy_setopt(c, CURLOPT_RESOLVE, e->resolve);
    }
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, e);
    return 0;
}

void auto_egress_release(struct auto_egress *e)
{
    curl_slist_free_all(e->resolve);
    e->resolve = NULL;
}
