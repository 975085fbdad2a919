#include "log/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/*
 * Process-wide state. service is written once by log_init() before other
 * threads start and only read afterwards; min_level is atomic so a level
 * check never needs the lock; write_mu keeps whole lines from interleaving
 * (a write(2) can be partial, and then the rest must follow at once).
 */
static char log_service[64] = "unknown";
static atomic_int log_min_level = LOG_LVL_INFO;
static pthread_mutex_t log_write_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_level_names[] = {"debug", "info", "warn",
                                              "error"};

int log_level_parse(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcasecmp(name, "debug") == 0)
        return LOG_LVL_DEBUG;
    if (strcasecmp(name, "info") == 0)
        return LOG_LVL_INFO;
    if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0)
        return LOG_LVL_WARN;
    if (strcasecmp(name, "error") == 0)
        return LOG_LVL_ERROR;
    return -1;
}

int log_init(const char *service, const char *level_name)
{
    int lvl = LOG_LVL_INFO;
    int rc = 0;

    snprintf(log_service, sizeof(log_service), "%s",
             service != NULL ? service : "unknown");
    if (level_name != NULL) {
        lvl = log_level_parse(level_name);
        if (lvl < 0) {
            lvl = LOG_LVL_INFO;
            rc = -1;
        }
    }
    atomic_store(&log_min_level, lvl);
    return rc;
}

int log_enabled(enum log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&log_min_level,
                                            memory_order_relaxed);
}

/* "2026-11-21T11:13:41.123Z"; buf must hold 25 bytes. */
static void log_timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
        gmtime_r(&ts.tv_sec, &tm) == NULL) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t log_utf8_seq(const unsigned char *s, size_t avail)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > avail)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Reject overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/*
 * A JSON string for s. jansson refuses invalid UTF-8, but a log line must
 * still carry the text (it may come from a client), so bad bytes become
 * U+FFFD. NULL s gives "". NULL only on out-of-memory.
 */
static json_t *log_jstr(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, i, o, seq;
    char *clean;
    json_t *j;

    if (s == NULL)
        return json_string("");
    j = json_string(s);
    if (j != NULL)
        return j;
    n = strlen(s);
    clean = malloc(n * 3 + 1);
    if (clean == NULL)
        return NULL;
    for (i = 0, o = 0; i < n;) {
        seq = log_utf8_seq(p + i, n - i);
        if (seq == 0) {
            memcpy(clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, p + i, seq);
            o += seq;
            i += seq;
        }
    }
    j = json_stringn(clean, o);
    free(clean);
    return j;
}

/* Writes all of buf to stdout; the caller holds log_write_mu. */
static void log_write_all(const char *buf, size_t len)
{
    ssize_t w;

    while (len > 0) {
        w = write(STDOUT_FILENO, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        buf += w;
        len -= (size_t)w;
    }
}

static void log_emit(const char *line, size_t len)
{
    pthread_mutex_lock(&log_write_mu);
    log_write_all(line, len);
    pthread_mutex_unlock(&log_write_mu);
}

static int log_is_reserved(const char *key)
{
    static const char *const reserved[] = {
        "ts", "level", "service", "msg", "request_id", "trace_id",
    };
    size_t i;

    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(key, reserved[i]) == 0)
            return 1;
    return 0;
}

/* Adds a string member unless v is NULL or "". -1 on out-of-memory. */
static int log_set_opt(json_t *obj, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return 0;
    return json_object_set_new(obj, key, log_jstr(v));
}

/*
 * Builds the line: the fixed keys first, in contract order, then the
 * caller's fields (a field may not replace a fixed key). Consumes fields.
 */
static void log_write_line(enum log_level lvl, const struct log_ctx *ctx,
                           const char *msg, json_t *fields)
{
    static const char oom_line[] =
        "{\"level\":\"error\",\"msg\":\"log: out of memory\"}\n";
    char ts[32];
    char stackbuf[2048];
    char *buf = stackbuf;
    json_t *line;
    const char *key;
    json_t *val;
    size_t need;
    int err = 0;

    if ((int)lvl < LOG_LVL_DEBUG || (int)lvl > LOG_LVL_ERROR)
        lvl = LOG_LVL_ERROR;
    log_timestamp(ts, sizeof(ts));
    line = json_object();
    if (line == NULL) {
        json_decref(fields);
        log_emit(oom_line, sizeof(oom_line) - 1);
        return;
    }
    err |= json_object_set_new(line, "ts", json_string(ts));
    err |= json_object_set_new(line, "level",
                               json_string(log_level_names[lvl]));
    err |= json_object_set_new(line, "service", log_jstr(log_service));
    err |= json_object_set_new(line, "msg", log_jstr(msg));
    if (ctx != NULL) {
        err |= log_set_opt(line, "request_id", ctx->request_id);
        err |= log_set_opt(line, "trace_id", ctx->trace_id);
    }
    if (json_is_object(fields)) {
        json_object_foreach(fields, key, val) {
            if (!log_is_reserved(key))
                err |= json_object_set(line, key, val);
        }
    }
    json_decref(fields);
    if (err != 0)
        goto oom;

    need = json_dumpb(line, buf, sizeof(stackbuf) - 1,
                      JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (need == 0)
        goto oom;
    if (need > sizeof(stackbuf) - 1) {
        buf = malloc(need + 1);
        if (buf == NULL)
            goto oom;
        if (json_dumpb(line, buf, need,
                       JSON_COMPACT | JSON_PRESERVE_ORDER) != need)
            goto oom;
    }
    buf[need] = '\n';
    log_emit(buf, need + 1);
    if (buf != stackbuf)
        free(buf);
    json_decref(line);
    return;

oom:
    if (buf != stackbuf)
        free(buf);
    json_decref(line);
    log_emit(oom_line, sizeof(oom_line) - 1);
}

void log_json(enum log_level lvl, const struct log_ctx *ctx, const char *msg,
              json_t *fields)
{
    if (!log_enabled(lvl)) {
        json_decref(fields);
        return;
    }
    log_write_line(lvl, ctx, msg, fields);
}

void log_kv(enum log_level lvl, const struct log_ctx *ctx, const char *msg,
            ...)
{
    va_list ap;
    const char *key;
    const char *val;
    json_t *fields;

    if (!log_enabled(lvl))
        return;
    /* A field lost to out-of-memory still leaves a line. */
    fields = json_object();
    va_start(ap, msg);
    while ((key = va_arg(ap, const char *)) != NULL) {
        val = va_arg(ap, const char *);
        if (fields == NULL)
            continue;
        json_object_set_new(fields, key,
                            val != NULL ? log_jstr(val) : json_null());
    }
    va_end(ap);
    log_write_line(lvl, ctx, msg, fields);
}

void log_fmt(enum log_level lvl, const struct log_ctx *ctx, const char *fmt,
             ...)
{
    char stackbuf[1024];
    char *msg = stackbuf;
    va_list ap;
    int n;

    if (!log_enabled(lvl))
        return;
    if (fmt == NULL) {
        log_write_line(lvl, ctx, "", NULL);
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        stackbuf[0] = '\0';
    } else if ((size_t)n >= sizeof(stackbuf)) {
        msg = malloc((size_t)n + 1);
        if (msg != NULL) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = stackbuf; /* truncated beats nothing */
        }
    }
    log_write_line(lvl, ctx, msg, NULL);
    if (msg != stackbuf)
        free(msg);
}
