/*
 * egress — where the `http` job type may connect. Any signed-in user can
 * enqueue an http job, so without a policy the service would fetch its
 * own loopback, the private network or the cloud metadata endpoint for
 * them (SSRF). The policy: resolve the URL's host, refuse any address
 * that is not public unicast, pin the checked addresses into the transfer
 * (CURLOPT_RESOLVE) so a second DNS answer cannot swap them (rebinding),
 * and check again in curl's open-socket hook as a backstop. Proxies from
 * the environment are ignored for these transfers: a proxy would resolve
 * the host itself and bypass the check.
 *
 * Settings (read once at start, see auto_egress_init):
 *   HTTP_JOB_ALLOW_HOSTS    comma list of host names or IP literals that
 *                           may resolve anywhere (exact, case-insensitive)
 *   HTTP_JOB_ALLOW_PRIVATE  true: no address checks at all (dev/tests)
 */
#ifndef AUTO_EGRESS_H
#define AUTO_EGRESS_H

#include <stddef.h>
#include <sys/socket.h>

#include <curl/curl.h>

enum auto_addr_class {
    AUTO_ADDR_PUBLIC = 0,
    AUTO_ADDR_LOOPBACK,       /* 127/8, ::1 */
    AUTO_ADDR_PRIVATE,        /* 10/8, 172.16/12, 192.168/16, 100.64/10,
                               * fec0::/10 */
    AUTO_ADDR_LINK_LOCAL,     /* 169.254/16 (cloud metadata), fe80::/10 */
    AUTO_ADDR_UNIQUE_LOCAL,   /* fc00::/7 */
    AUTO_ADDR_UNSPECIFIED,    /* 0/8, :: */
    AUTO_ADDR_MULTICAST,      /* 224/4, ff00::/8 */
    AUTO_ADDR_RESERVED        /* 240/4 incl. broadcast, other families */
};

/* Classifies one socket address (AF_INET or AF_INET6; an IPv4-mapped,
 * IPv4-compatible, NAT64 or 6to4 IPv6 address is judged by the IPv4
 * address inside). Anything else is AUTO_ADDR_RESERVED. Can't fail;
 * thread-safe. */
enum auto_addr_class auto_addr_classify(const struct sockaddr *sa);

/* A short name for the class: "public", "loopback", "private",
 * "link-local", "unique-local", "unspecified", "multicast", "reserved". */
const char *auto_addr_class_name(enum auto_addr_class c);

/* Sets the policy; call once at start, before any worker runs (the
 * policy is read-only afterwards). allow_hosts may be NULL or "".
 * Until called, everything but public addresses is refused. 0, or -1 on
 * out of memory. */
int auto_egress_init(const char *allow_hosts, int allow_private);
void auto_egress_cleanup(void);

/* One transfer's egress state; lives as long as the CURL handle's
 * transfer. Zero-initialise, then auto_egress_apply. */
struct auto_egress {
    struct curl_slist *resolve;    /* pinned host:port:addrs, owned */
    int allow_any;                 /* host allow-listed or private ok */
    char refused[160];             /* set by the socket hook on refusal */
};

/* Checks url's host against the policy and sets up c accordingly
 * (CURLOPT_RESOLVE pin, open-socket hook, no proxy). On refusal or
 * failure returns -1 with a one-line reason in err ("127.0.0.1 is a
 * loopback address; set HTTP_JOB_ALLOW_HOSTS to allow it"); 0 when the
 * transfer may go ahead. Blocks for DNS. Any thread. */
int auto_egress_apply(struct auto_egress *e, CURL *c, const char *url,
                      char *err, size_t errlen);

/* Frees what auto_egress_apply kept; call after the transfer. */
void auto_egress_release(struct auto_egress *e);

#endif
