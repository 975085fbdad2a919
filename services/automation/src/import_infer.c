/*
 * import_infer — what the import knows about values: null tokens, the
 * type of a column (inferred from every value: integer, float, boolean,
 * date, timestamp, else string), value checks and safe column names.
 * Statistics and COPY encoding are in import_stats.c.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "import.h"

static const char *const type_names[] = {"integer", "float", "boolean",
                                         "date", "timestamp", "string"};
static const char *const type_sql[] = {"bigint", "double precision",
                                       "boolean", "date", "timestamptz",
                                       "text"};

const char *imp_type_name(enum imp_type t)
{
    return type_names[t];
}

const char *imp_type_sql(enum imp_type t)
{
    return type_sql[t];
}

int imp_type_parse(const char *name)
{
    for (int i = 0; i <= IMP_STRING; i++)
        if (strcmp(type_names[i], name) == 0)
            return i;
    return -1;
}

void imp_trim(const char **p, size_t *len)
{
    while (*len && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t' ||
                    (*p)[*len - 1] == '\r'))
        (*len)--;
}

int imp_is_null(const struct imp_field *f)
{
    const char *p = f->p;
    size_t n = f->len;

    if (!p)
        return 1;
    if (f->kind != IMP_K_TEXT)
        return 0;
    imp_trim(&p, &n);
    return n == 0 || (n == 4 && (memcmp(p, "NULL", 4) == 0 ||
                                 memcmp(p, "null", 4) == 0)) ||
           (n == 3 && memcmp(p, "N/A", 3) == 0);
}

int imp_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p;
        size_t k;
        unsigned cp;

        if (c < 0x80) {
            if (c == 0)
                return 0;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= k)
            return 0;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        p += k + 1;
    }
    return 1;
}

/* Digits with an optional sign; a leading zero (as in ZIP codes "02134")
 * makes the value text, not a number. */
static size_t number_prefix(const char *p, size_t n, size_t *digits)
{
    size_t i = 0, d;

    if (i < n && (p[i] == '+' || p[i] == '-'))
        i++;
    d = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    *digits = i - d;
    if (*digits > 1 && p[d] == '0')
        *digits = 0;
    return i;
}

int imp_parse_int(const char *p, size_t len, long long *v)
{
    char buf[32];
    size_t digits, i;
    char *end;

    imp_trim(&p, &len);
    i = number_prefix(p, len, &digits);
    if (digits == 0 || i != len || len >= sizeof buf)
        return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    errno = 0;
    *v = strtoll(buf, &end, 10);
    return errno == 0 && *end == '\0';
}

int imp_parse_float(const char *p, size_t len, double *v)
{
    char buf[64];
    size_t digits, i, frac = 0;
    char *end;

    imp_trim(&p, &len);
    if (len == 0 || len >= sizeof buf)
        return 0;
    i = number_prefix(p, len, &digits);
    if (i < len && p[i] == '.') {
        size_t s = ++i;

        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
        frac = i - s;
    }
    if (digits == 0 && frac == 0)
        return 0;
    if (digits == 0 && (p[0] == '0' || ((p[0] == '-' || p[0] == '+') &&
                                        len > 1 && p[1] == '0')) &&
        frac == 0)
        return 0;
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        size_t s;

        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        s = i;
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == s)
            return 0;
    }
    if (i != len)
        return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    errno = 0;
    *v = strtod(buf, &end);
    return *end == '\0' && isfinite(*v);
}

int imp_parse_bool(const char *p, size_t len, int *v)
{
    imp_trim(&p, &len);
    if ((len == 4 && strncasecmp(p, "true", 4) == 0) ||
        (len == 3 && strncasecmp(p, "yes", 3) == 0)) {
        *v = 1;
        return 1;
    }
    if ((len == 5 && strncasecmp(p, "false", 5) == 0) ||
        (len == 2 && strncasecmp(p, "no", 2) == 0)) {
        *v = 0;
        return 1;
    }
    return 0;
}

static int dig(const char *p, size_t n, int *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        *v = *v * 10 + (p[i] - '0');
    }
    return 1;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY-MM-DD at p (10 bytes); fills y/m/d. */
static int ymd(const char *p, int *y, int *m, int *d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                31};

    if (!dig(p, 4, y) || p[4] != '-' || !dig(p + 5, 2, m) || p[7] != '-' ||
        !dig(p + 8, 2, d) || *y < 1 || *m < 1 || *m > 12 || *d < 1)
        return 0;
    return *d <= mdays[*m - 1] + (*m == 2 && leap(*y));
}

int imp_parse_date(const char *p, size_t len)
{
    int y, m, d;

    imp_trim(&p, &len);
    return len == 10 && ymd(p, &y, &m, &d);
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
static long long days_from_civil(int y, int m, int d)
{
    long long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, int *y, int *m, int *d)
{
    long long era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int imp_parse_ts(const char *p, size_t len, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, s = 0, oh = 0, om = 0, sign = 1;
    long frac = 0, scale = 1000000;
    size_t i = 10;

    imp_trim(&p, &len);
    if (len < 10 || !ymd(p, &y, &mo, &d))
        return 0;
    if (len > 10) {
        if ((p[10] != 'T' && p[10] != 't' && p[10] != ' ') || len < 16 ||
            !dig(p + 11, 2, &h) || p[13] != ':' || !dig(p + 14, 2, &mi) ||
            h > 23 || mi > 59)
            return 0;
        i = 16;
        if (i < len && p[i] == ':') {
            if (len < 19 || !dig(p + 17, 2, &s) || s > 60)
                return 0;
            i = 19;
            if (i < len && (p[i] == '.' || p[i] == ',')) {
                size_t st = ++i;

                while (i < len && p[i] >= '0' && p[i] <= '9') {
                    if (i - st < 6) {
                        frac = frac * 10 + (p[i] - '0');
                        scale /= 10;
                    }
                    i++;
                }
                if (i == st || i - st > 9)
                    return 0;
                frac *= scale;
            }
        }
        if (i < len && (p[i] == 'Z' || p[i] == 'z')) {
            i++;
        } else if (i < len && (p[i] == '+' || p[i] == '-')) {
            sign = p[i] == '-' ? -1 : 1;
            if (len - i == 3 && dig(p + i + 1, 2, &oh)) {
                i += 3;
            } else if (len - i == 6 && dig(p + i + 1, 2, &oh) &&
                       p[i + 3] == ':' && dig(p + i + 4, 2, &om)) {
                i += 6;
            } else if (len - i == 5 && dig(p + i + 1, 2, &oh) &&
                       dig(p + i + 3, 2, &om)) {
                i += 5;
            } else {
                return 0;
            }
            if (oh > 23 || om > 59)
                return 0;
        }
    }
    if (i != len)
        return 0;
    *us = ((((int64_t)days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 +
           s - sign * (oh * 3600 + om * 60)) * 1000000 + frac;
    return 1;
}

/* "YYYY-MM-DD HH:MM:SS.ffffff+00"; out holds >= 40 bytes. */
int imp_format_ts(int64_t us, char *out, size_t len)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    long frac = (long)(us - secs * 1000000);
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long sod = (long)(secs - days * 86400);
    int y, m, d;

    civil_from_days(days, &y, &m, &d);
    return snprintf(out, len, "%04d-%02d-%02d %02ld:%02ld:%02ld.%06ld+00", y,
                    m, d, sod / 3600, sod / 60 % 60, sod % 60, frac);
}

/* ---- inference ---------------------------------------------------------- */

#define BIT(t) (1u << (t))

void imp_infer_init(struct imp_infer *in)
{
    in->could = BIT(IMP_INTEGER) | BIT(IMP_FLOAT) | BIT(IMP_BOOLEAN) |
                BIT(IMP_DATE) | BIT(IMP_TIMESTAMP) | BIT(IMP_STRING);
    in->values = 0;
}

void imp_infer_add(struct imp_infer *in, const struct imp_field *f)
{
    unsigned fit = BIT(IMP_STRING), c = in->could;
    long long iv;
    double dv;
    int bv;
    int64_t ts;

    if (imp_is_null(f))
        return;
    in->values++;
    if (c == BIT(IMP_STRING))
        return;
    switch (f->kind) {
    case IMP_K_NUMBER:
        fit |= BIT(IMP_FLOAT);
        if (imp_parse_int(f->p, f->len, &iv))
            fit |= BIT(IMP_INTEGER);
        break;
    case IMP_K_BOOL:
        fit |= BIT(IMP_BOOLEAN);
        break;
    case IMP_K_JSON:
        break;
    case IMP_K_TEXT:
        if ((c & BIT(IMP_INTEGER)) && imp_parse_int(f->p, f->len, &iv))
            fit |= BIT(IMP_INTEGER) | BIT(IMP_FLOAT);
        else if ((c & BIT(IMP_FLOAT)) && imp_parse_float(f->p, f->len, &dv))
            fit |= BIT(IMP_FLOAT);
        if ((c & BIT(IMP_BOOLEAN)) && imp_parse_bool(f->p, f->len, &bv))
            fit |= BIT(IMP_BOOLEAN);
        if ((c & BIT(IMP_DATE)) && imp_parse_date(f->p, f->len))
            fit |= BIT(IMP_DATE) | BIT(IMP_TIMESTAMP);
        else if ((c & BIT(IMP_TIMESTAMP)) && imp_parse_ts(f->p, f->len, &ts))
            fit |= BIT(IMP_TIMESTAMP);
        break;
    }
    in->could &= fit;
}

enum imp_type imp_infer_type(const struct imp_infer *in)
{
    if (in->values == 0)
        return IMP_STRING;
    for (int t = IMP_INTEGER; t < IMP_STRING; t++)
        if (in->could & BIT(t))
            return (enum imp_type)t;
    return IMP_STRING;
}

/* ---- names -------------------------------------------------------------- */

void imp_column_name(const char *src, size_t len, size_t i,
                     char (*names)[IMP_NAME_MAX + 1], size_t n, char *out)
{
    char base[IMP_NAME_MAX + 1];
    size_t o = 0;
    int under = 0;

    for (size_t k = 0; k < len && o < IMP_NAME_MAX; k++) {
        unsigned char c = (unsigned char)src[k];

        if (isalnum(c) && c < 0x80) {
            if (under && o > 0)
                base[o++] = '_';
            under = 0;
            if (o < IMP_NAME_MAX)
                base[o++] = (char)tolower(c);
        } else {
            under = 1;
        }
    }
    base[o] = '\0';
    if (o == 0)
        snprintf(base, sizeof base, "col_%zu", i + 1);
    else if (isdigit((unsigned char)base[0])) {
        size_t keep = o + 2 > IMP_NAME_MAX ? IMP_NAME_MAX - 2 : o;

        memmove(base + 2, base, keep);
        base[0] = 'c';
        base[1] = '_';
        base[keep + 2] = '\0';
    }
    snprintf(out, IMP_NAME_MAX + 1, "%s", base);
    for (int suffix = 2;; suffix++) {
        size_t k = 0;

        while (k < n && strcmp(names[k], out) != 0)
            k++;
        if (k == n)
            return;
        char sfx[16];
        int sl = snprintf(sfx, sizeof sfx, "_%d", suffix);
        size_t bl = strlen(base);

        if (bl + (size_t)sl > IMP_NAME_MAX)
            bl = IMP_NAME_MAX - (size_t)sl;
        snprintf(out, IMP_NAME_MAX + 1, "%.*s%s", (int)bl, base, sfx);
    }
}
