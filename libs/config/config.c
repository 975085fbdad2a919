#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Secrets and small documents only; anything bigger is a wrong path. */
#define CFG_FILE_MAX (64 * 1024)
/* How much of a bad value an error line quotes. */
#define CFG_QUOTE_MAX 48

/* One string read from a NAME_FILE, kept until cfg_cleanup(). */
struct cfg_owned {
    struct cfg_owned *next;
    char s[];
};

enum cfg_raw_rc {
    CFG_UNSET, /* neither NAME nor NAME_FILE gives a non-empty value */
    CFG_SET,   /* *out is the value */
    CFG_BAD,   /* an error was recorded */
};

void cfg_init(struct cfg *c, const char *service)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->service, sizeof(c->service), "%s",
             service != NULL ? service : "basalt");
}

void cfg_cleanup(struct cfg *c)
{
    struct cfg_owned *o, *next;

    for (o = c->owned; o != NULL; o = next) {
        next = o->next;
        free(o);
    }
    c->owned = NULL;
}

static void cfg_errf(struct cfg *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records "NAME: why"-style errors; only the first is kept. */
static void cfg_errf(struct cfg *c, const char *fmt, ...)
{
    va_list ap;

    if (c->nerr++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

void cfg_fail(struct cfg *c, const char *name, const char *why)
{
    cfg_errf(c, "%s: %s", name != NULL ? name : "?",
             why != NULL ? why : "invalid");
}

/*
 * Copies a bad value for an error line: shortened, and with control bytes
 * replaced so the error stays on one line.
 */
static void cfg_quote(char *dst, size_t size, const char *v)
{
    size_t i, o = 0;

    for (i = 0; v[i] != '\0' && o + 4 < size; i++) {
        if (i == CFG_QUOTE_MAX) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
    }
    dst[o] = '\0';
}

char *cfg_read_file(const char *path, size_t max, size_t *len, char *why,
                    size_t whylen)
{
    char *buf = NULL, *nb;
    size_t n = 0, cap = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, whylen, "cannot open \"%s\": %s", path,
                 strerror(errno));
        return NULL;
    }
    /* Read one byte past the cap so an oversized file is detected. */
    for (;;) {
        if (n == cap) {
            if (cap > max)
                break;
            cap = cap == 0 ? 4096 : cap * 2;
            if (cap > max + 1)
                cap = max + 1;
            nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                snprintf(why, whylen, "out of memory");
                goto fail;
            }
            buf = nb;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, whylen, "cannot read \"%s\": %s", path,
                     strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        snprintf(why, whylen, "\"%s\" is larger than %zu bytes", path, max);
        goto fail;
    }
    if (n > 0 && memchr(buf, '\0', n) != NULL) {
        snprintf(why, whylen, "\"%s\" contains a NUL byte", path);
        goto fail;
    }
    if (buf == NULL && (buf = malloc(1)) == NULL) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* Reads a NAME_FILE; CFG_SET with *out owned by c, or CFG_BAD. */
static enum cfg_raw_rc cfg_read_name_file(struct cfg *c, const char *fname,
                                          const char *path, const char **out)
{
    char why[200];
    size_t len = 0;
    char *buf = cfg_read_file(path, CFG_FILE_MAX, &len, why, sizeof(why));
    struct cfg_owned *o;

    if (buf == NULL) {
        cfg_errf(c, "%s: %s", fname, why);
        return CFG_BAD;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    o = malloc(sizeof(*o) + len + 1);
    if (o == NULL) {
        cfg_errf(c, "%s: out of memory", fname);
        free(buf);
        return CFG_BAD;
    }
    memcpy(o->s, buf, len);
    o->s[len] = '\0';
    free(buf);
    o->next = c->owned;
    c->owned = o;
    *out = o->s;
    return CFG_SET;
}

/*
 * The raw value of a setting from NAME or NAME_FILE. An empty value counts
 * as unset, so `NAME=` in an env file falls back to the default.
 */
static enum cfg_raw_rc cfg_raw(struct cfg *c, const char *name,
                               const char **out)
{
    char fname[128];
    const char *v, *path;
    enum cfg_raw_rc rc;
    int n;

    *out = NULL;
    n = snprintf(fname, sizeof(fname), "%s_FILE", name);
    if (n < 0 || (size_t)n >= sizeof(fname)) {
        cfg_errf(c, "%.64s: setting name too long", name);
        return CFG_BAD;
    }
    v = getenv(name);
    path = getenv(fname);
    if (v != NULL && path != NULL) {
        cfg_errf(c, "%s: set only one of %s and %s", name, name, fname);
        return CFG_BAD;
    }
    if (path != NULL) {
        if (path[0] == '\0') {
            cfg_errf(c, "%s: empty path", fname);
            return CFG_BAD;
        }
        rc = cfg_read_name_file(c, fname, path, &v);
        if (rc != CFG_SET)
            return rc;
    }
    if (v == NULL || v[0] == '\0')
        return CFG_UNSET;
    *out = v;
    return CFG_SET;
}

const char *cfg_str(struct cfg *c, const char *name, const char *def)
{
    const char *v;

    switch (cfg_raw(c, name, &v)) {
    case CFG_SET:
        return v;
    case CFG_UNSET:
        if (def == NULL)
            cfg_errf(c, "%s: required but not set", name);
        return def;
    default:
        return def;
    }
}

long cfg_int(struct cfg *c, const char *name, long def, long min, long max)
{
    char q[CFG_QUOTE_MAX + 8];
    const char *v;
    char *end;
    long n;

    if (cfg_raw(c, name, &v) != CFG_SET)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    /* strtol skips leading blanks; a value with blanks is a typo. */
    if (end == v || *end != '\0' || errno == ERANGE || v[0] == ' ' ||
        v[0] == '\t' || n < min || n > max) {
        cfg_quote(q, sizeof(q), v);
        cfg_errf(c, "%s: must be an integer in [%ld, %ld], got \"%s\"", name,
                 min, max, q);
        return def;
    }
    return n;
}

double cfg_double(struct cfg *c, const char *name, double def, double min,
                  double max)
{
    char q[CFG_QUOTE_MAX + 8];
    const char *v;
    char *end;
    double d;

    if (cfg_raw(c, name, &v) != CFG_SET)
        return def;
    errno = 0;
    d = strtod(v, &end);
    if (end == v || *end != '\0' || errno == ERANGE || v[0] == ' ' ||
        v[0] == '\t' || isnan(d) || d < min || d > max) {
        cfg_quote(q, sizeof(q), v);
        cfg_errf(c, "%s: must be a number in [%g, %g], got \"%s\"", name, min,
                 max, q);
        return def;
    }
    return d;
}

int cfg_bool(struct cfg *c, const char *name, int def)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    char q[CFG_QUOTE_MAX + 8];
    const char *v;
    size_t i;

    if (cfg_raw(c, name, &v) != CFG_SET)
        return def;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    cfg_quote(q, sizeof(q), v);
    cfg_errf(c, "%s: must be true/false, 1/0, yes/no or on/off, got \"%s\"",
             name, q);
    return def;
}

static int cfg_choice_index(const char *const *choices, const char *v)
{
    int i;

    for (i = 0; choices[i] != NULL; i++)
        if (strcasecmp(choices[i], v) == 0)
            return i;
    return -1;
}

int cfg_enum(struct cfg *c, const char *name, const char *def,
             const char *const *choices)
{
    char list[160];
    char q[CFG_QUOTE_MAX + 8];
    const char *v;
    size_t off = 0;
    int def_idx = -1, idx, i, n;

    if (def != NULL) {
        def_idx = cfg_choice_index(choices, def);
        if (def_idx < 0) {
            cfg_errf(c, "%s: default \"%s\" is not one of the choices", name,
                     def);
            return -1;
        }
    }
    switch (cfg_raw(c, name, &v)) {
    case CFG_SET:
        break;
    case CFG_UNSET:
        if (def == NULL)
            cfg_errf(c, "%s: required but not set", name);
        return def_idx;
    default:
        return def_idx;
    }
    idx = cfg_choice_index(choices, v);
    if (idx >= 0)
        return idx;
    list[0] = '\0';
    for (i = 0; choices[i] != NULL && off < sizeof(list); i++) {
        n = snprintf(list + off, sizeof(list) - off, "%s%s",
                     i > 0 ? ", " : "", choices[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    cfg_quote(q, sizeof(q), v);
    cfg_errf(c, "%s: must be one of %s; got \"%s\"", name, list, q);
    return def_idx;
}

int cfg_check(struct cfg *c)
{
    if (c->nerr == 0)
        return 0;
    fprintf(stderr, "%s: config: %s\n", c->service, c->err);
    fflush(stderr);
    return -1;
}
