/*
 * httpd_listen — what httpd_start() and the gateway's own MHD daemons
 * share to come up the same way: the libmicrohttpd logger and the listen
 * address (httpd.h).
 */
#include "httpd/httpd.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

void httpd_mhd_logger(void *cls, const char *fmt, va_list ap)
{
    const enum log_level *lvl = cls;
    char buf[512];
    size_t n;

    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_kv(lvl != NULL ? *lvl : LOG_LVL_WARN, NULL, "libmicrohttpd",
           "detail", buf, NULL);
}

struct addrinfo *httpd_listen_addr(const char *who, const char *host,
                                   int port)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        log_error(NULL, "%s: cannot resolve HOST %s: %s", who, host,
                  rc != 0 ? gai_strerror(rc) : "no address");
        if (ai != NULL)
            freeaddrinfo(ai);
        return NULL;
    }
    return ai;
}
