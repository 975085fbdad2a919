#include "redispool/redispool.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log/log.h"
#include "pool/pool.h"

#define RP_HOST_MAX 256
#define RP_PASS_MAX 512

/* The pool: contexts come and go through slots (pool/pool.h). */
struct redispool {
    char host[RP_HOST_MAX];
    int port;
    char pass[RP_PASS_MAX];
    int db;
    int timeout_ms;
    struct pool_slots slots;
};

static int rp_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (outlen); -1 if bad or too long. */
static int rp_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    if (outlen == 0)
        return -1;
    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = rp_hexval(s[i + 1]);
            lo = rp_hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Decimal digits only, in [min, max]; -1 otherwise. */
static long rp_number(const char *s, size_t n, long min, long max)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

int redispool_parse_url(const char *url, char *host, size_t hostlen,
                        int *port, char *pass, size_t passlen, int *db)
{
    const char *p, *auth_end, *at, *h, *hend, *colon;
    size_t hlen;
    long v;

    if (url == NULL || strncmp(url, "redis://", 8) != 0 || hostlen == 0 ||
        passlen == 0)
        return -1;
    p = url + 8;
    auth_end = p + strcspn(p, "/?#");
    if (*auth_end == '?' || *auth_end == '#')
        return -1;
    *port = 6379;
    *db = 0;
    pass[0] = '\0';

    /* userinfo: ":password" or "default:password" (AUTH <password>). */
    at = NULL;
    for (h = p; h < auth_end; h++)
        if (*h == '@')
            at = h;
    if (at != NULL) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        size_t ulen;

        if (c == NULL)
            return -1;
        ulen = (size_t)(c - p);
        if (ulen != 0 && !(ulen == 7 && strncmp(p, "default", 7) == 0))
            return -1;
        if (rp_decode(c + 1, (size_t)(at - c - 1), pass, passlen) != 0)
            return -1;
        p = at + 1;
    }

    /* host, "[v6]" or name, then optional ":port" */
    if (*p == '[') {
        h = p + 1;
        hend = memchr(h, ']', (size_t)(auth_end - h));
        if (hend == NULL)
            return -1;
        colon = hend + 1 < auth_end ? hend + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return -1;
    } else {
        h = p;
        colon = memchr(p, ':', (size_t)(auth_end - p));
        hend = colon != NULL ? colon : auth_end;
    }
    hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen + 1 > hostlen)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (colon != NULL) {
        v = rp_number(colon + 1, (size_t)(auth_end - colon - 1), 1, 65535);
        if (v < 0)
            return -1;
        *port = (int)v;
    }

    /* "/db" */
    if (*auth_end == '/' && auth_end[1] != '\0') {
        v = rp_number(auth_end + 1, strlen(auth_end + 1), 0, 1000000);
        if (v < 0)
            return -1;
        *db = (int)v;
    }
    return 0;
}

struct redispool *redispool_new(const char *url, int size, int timeout_ms)
{
    struct redispool *p;

    if (size < 1)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (redispool_parse_url(url, p->host, sizeof(p->host), &p->port,
                            p->pass, sizeof(p->pass), &p->db) != 0) {
        free(p);
        return NULL;
    }
    if (pool_slots_init(&p->slots, size) != 0) {
        memset(p->pass, 0, sizeof(p->pass));
        free(p);
        return NULL;
    }
    p->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    /* hiredis writes with write(2): a closed peer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    return p;
}

static void rp_close(void *c)
{
    redisFree(c);
}

void redispool_free(struct redispool *p)
{
    if (p == NULL)
        return;
    pool_slots_cleanup(&p->slots, rp_close);
    /* The password should not linger in freed memory. */
    memset(p->pass, 0, sizeof(p->pass));
    free(p);
}

/* Sends a setup command; 0 on a non-error reply, else err is filled. */
static int rp_setup_cmd(redisContext *c, const char *what, char *err,
                        size_t errlen, redisReply *reply)
{
    int rc = 0;

    if (reply == NULL) {
        snprintf(err, errlen, "%s: %s", what, c->errstr);
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", what,
                 reply->str != NULL ? reply->str : "error");
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

static redisContext *rp_connect(struct redispool *p, char *err,
                                size_t errlen)
{
    struct timeval tv;
    redisContext *c;

    tv.tv_sec = p->timeout_ms / 1000;
    tv.tv_usec = (p->timeout_ms % 1000) * 1000;
    c = redisConnectWithTimeout(p->host, p->port, tv);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set timeout: %s", c->errstr);
        goto fail;
    }
    if (p->pass[0] != '\0' &&
        rp_setup_cmd(c, "AUTH", err, errlen,
                     redisCommand(c, "AUTH %s", p->pass)) != 0)
        goto fail;
    if (p->db != 0 &&
        rp_setup_cmd(c, "SELECT", err, errlen,
                     redisCommand(c, "SELECT %d", p->db)) != 0)
        goto fail;
    return c;
fail:
    redisFree(c);
    return NULL;
}

redisContext *redispool_acquire(struct redispool *p, int wait_ms)
{
    void *idle;
    redisContext *c;
    char err[256];

    if (pool_slots_take(&p->slots, wait_ms, &idle) != 0) {
        log_warn(NULL, "redispool: all %d connections busy for %d ms",
                 p->slots.size, wait_ms);
        return NULL;
    }
    c = idle;
    if (c != NULL && c->err) {
        redisFree(c);
        c = NULL;
    }
    if (c == NULL) {
        c = rp_connect(p, err, sizeof(err));
        if (c == NULL) {
            pool_slots_put(&p->slots, NULL);
            log_kv(LOG_LVL_WARN, NULL, "redispool: cannot connect to redis",
                   "error", err, NULL);
            return NULL;
        }
    }
    return c;
}

void redispool_release(struct redispool *p, redisContext *c, int broken)
{
    if (c == NULL)
        return;
    if (broken || c->err) {
        redisFree(c);
        c = NULL;
    }
    pool_slots_put(&p->slots, c);
}

int redispool_ping(struct redispool *p)
{
    redisContext *c = redispool_acquire(p, 1000);
    redisReply *r;
    int ok;

    if (c == NULL)
        return -1;
    r = redisCommand(c, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS && r->str != NULL &&
         strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        freeReplyObject(r);
    redispool_release(p, c, !ok);
    return ok ? 0 : -1;
}
