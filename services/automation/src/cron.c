/*
 * cron — parsing of cron expressions (cron.h). The next-fire-time search
 * is in cron_next.c.
 */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

struct field_spec {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] means value min + i */
};

static const char *const month_names[] = {
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
    "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL,
};
static const char *const dow_names[] = {
    "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL,
};

static const struct field_spec specs[F_COUNT] = {
    {"second", 0, 59, NULL},
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Cursor over one field of the expression being parsed. */
struct parser {
    const char *expr; /* whole expression, for error columns */
    const char *p;    /* next character of the field */
    const char *end;  /* one past the field's last character */
    int field;        /* F_* */
    char *err;
    size_t errlen;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int fail(struct parser *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "<field> field, column <n>: <message>"; returns -1. */
static int fail(struct parser *ps, const char *at, const char *fmt, ...)
{
    char msg[AUTO_CRON_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(ps->err, ps->errlen, "%s field, column %d: %s",
            specs[ps->field].name, (int)(at - ps->expr) + 1, msg);
    return -1;
}

static int at_end(const struct parser *ps)
{
    return ps->p == ps->end || *ps->p == ',';
}

/* Error for the character at the cursor, which ends the item too early. */
static int fail_char(struct parser *ps, const char *what)
{
    unsigned char ch = (unsigned char)*ps->p;

    if (ps->p == ps->end || ch == ',')
        return fail(ps, ps->p, "expected %s", what);
    if (isprint(ch))
        return fail(ps, ps->p, "unexpected '%c', expected %s", ch, what);
    return fail(ps, ps->p, "unexpected byte 0x%02x, expected %s", ch, what);
}

/* Decimal number at the cursor, at most 3 digits (no field needs more). */
static int parse_number(struct parser *ps, int *out)
{
    const char *start = ps->p;
    int v = 0;

    if (ps->p == ps->end || !isdigit((unsigned char)*ps->p))
        return fail_char(ps, "a number");
    while (ps->p < ps->end && isdigit((unsigned char)*ps->p)) {
        if (ps->p - start == 3)
            return fail(ps, start, "number is too long");
        v = v * 10 + (*ps->p - '0');
        ps->p++;
    }
    *out = v;
    return 0;
}

/* A number or (month, day-of-week) a 3-letter name, range-checked. */
static int parse_value(struct parser *ps, int *out)
{
    const struct field_spec *f = &specs[ps->field];
    const char *start = ps->p;
    size_t len = 0;
    int i;

    if (ps->p < ps->end && isalpha((unsigned char)*ps->p) && f->names) {
        while (ps->p + len < ps->end && isalpha((unsigned char)ps->p[len]))
            len++;
        /* "5L"-style suffixes follow numbers only, so "FRIL" is one word */
        for (i = 0; len == 3 && f->names[i]; i++) {
            if (strncasecmp(start, f->names[i], 3) == 0) {
                ps->p += len;
                *out = f->min + i;
                return 0;
            }
        }
        return fail(ps, start, "unknown name '%.*s'", (int)len, start);
    }
    if (parse_number(ps, out) < 0)
        return -1;
    if (*out < f->min || *out > f->max)
        return fail(ps, start, "value %d is out of range %d-%d", *out,
                    f->min, f->max);
    return 0;
}

/* Step after '/', 1 up to the field's span. */
static int parse_step(struct parser *ps, int *out)
{
    const struct field_spec *f = &specs[ps->field];
    int span = (ps->field == F_DOW ? 6 : f->max) - f->min + 1;
    const char *start = ps->p;

    if (parse_number(ps, out) < 0)
        return -1;
    if (*out < 1 || *out > span)
        return fail(ps, start, "step %d is out of range 1-%d", *out, span);
    return 0;
}

/* Day-of-month specials starting with 'L': L, L-n, LW. */
static int parse_dom_last(struct parser *ps, struct auto_cron *c)
{
    const char *start;
    int n;

    ps->p++;
    if (ps->p < ps->end && *ps->p == 'W') {
        ps->p++;
        c->flags |= AUTO_CRON_DOM_LW;
        return 0;
    }
    if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
        start = ps->p;
        if (parse_number(ps, &n) < 0)
            return -1;
        if (n < 1 || n > 30)
            return fail(ps, start, "offset %d in L-n is out of range 1-30",
                        n);
        c->dom_last |= UINT32_C(1) << n;
        return 0;
    }
    c->dom_last |= 1;
    return 0;
}

/* Sets bits lo..hi step `step` of the field's set; dow 7 folds to 0. */
static void set_bits(struct auto_cron *c, int field, int lo, int hi, int step)
{
    int v;

    for (v = lo; v <= hi; v += step) {
        switch (field) {
        case F_SEC: c->sec |= UINT64_C(1) << v; break;
        case F_MIN: c->min |= UINT64_C(1) << v; break;
        case F_HOUR: c->hour |= UINT32_C(1) << v; break;
        case F_DOM: c->dom |= UINT32_C(1) << v; break;
        case F_MON: c->month |= (uint16_t)(1u << v); break;
        default: c->dow |= (uint8_t)(1u << (v % 7)); break;
        }
    }
}

/* One list item; the cursor ends on ',' or the end of the field. */
static int parse_item(struct parser *ps, struct auto_cron *c)
{
    const struct field_spec *f = &specs[ps->field];
    int day_field = ps->field == F_DOM || ps->field == F_DOW;
    int lo, hi, step = 1, ranged = 0;
    const char *start = ps->p;

    if (at_end(ps))
        return fail(ps, ps->p, "empty list item");
    if (*ps->p == '*' || (*ps->p == '?' && day_field)) {
        lo = f->min;
        hi = ps->field == F_DOW ? 6 : f->max;
        if (*ps->p++ == '?')
            goto done;
        if (ps->p < ps->end && *ps->p == '/') {
            ps->p++;
            if (parse_step(ps, &step) < 0)
                return -1;
        }
        goto done;
    }
    if (*ps->p == 'L' && ps->field == F_DOM) {
        if (parse_dom_last(ps, c) < 0)
            return -1;
        goto check_end;
    }
    if (*ps->p == 'L' && ps->field == F_DOW)
        return fail(ps, ps->p, "'L' needs a weekday before it, e.g. 5L");
    if (parse_value(ps, &lo) < 0)
        return -1;
    if (ps->field == F_DOM && ps->p < ps->end && *ps->p == 'W') {
        ps->p++;
        c->dom_near |= UINT32_C(1) << lo;
        goto check_end;
    }
    if (ps->field == F_DOW && ps->p < ps->end && *ps->p == 'L') {
        ps->p++;
        c->dow_last |= (uint8_t)(1u << (lo % 7));
        goto check_end;
    }
    if (ps->field == F_DOW && ps->p < ps->end && *ps->p == '#') {
        const char *kat;
        int k;

        ps->p++;
        kat = ps->p;
        if (parse_number(ps, &k) < 0)
            return -1;
        if (k < 1 || k > 5)
            return fail(ps, kat, "occurrence #%d is out of range 1-5", k);
        c->dow_nth[lo % 7] |= (uint8_t)(1u << k);
        goto check_end;
    }
    hi = lo;
    if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
        if (parse_value(ps, &hi) < 0)
            return -1;
        if (hi < lo)
            return fail(ps, start, "range %d-%d runs backwards", lo, hi);
        ranged = 1;
    }
    if (ps->p < ps->end && *ps->p == '/') {
        /* "a/n" means a-max/n; dow stops at 6 so 7 is not implied */
        if (!ranged)
            hi = ps->field == F_DOW && lo < 7 ? 6 : f->max;
        ps->p++;
        if (parse_step(ps, &step) < 0)
            return -1;
    }
done:
    set_bits(c, ps->field, lo, hi, step);
check_end:
    if (!at_end(ps))
        return fail_char(ps, "',' or the end of the field");
    return 0;
}

static int parse_field(struct parser *ps, struct auto_cron *c)
{
    for (;;) {
        if (parse_item(ps, c) < 0)
            return -1;
        if (ps->p == ps->end)
            return 0;
        ps->p++; /* ',' */
        if (ps->p == ps->end)
            return fail(ps, ps->p - 1, "list ends with ','");
    }
}

/* "@name", alone in the expression (nfields counts the fields). */
static int parse_macro(const char *expr, const char *start, size_t len,
                       int nfields, struct auto_cron *out, char *err,
                       size_t errlen)
{
    size_t i;

    for (i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
        if (strlen(macros[i].name) != len ||
            strncasecmp(start, macros[i].name, len) != 0)
            continue;
        if (nfields == 1)
            return auto_cron_parse(macros[i].expr, out, err, errlen);
        set_err(err, errlen, "column %d: %s takes no fields",
                (int)(start - expr) + 1, macros[i].name);
        return -1;
    }
    set_err(err, errlen, "column %d: unknown or unsupported macro '%.*s'",
            (int)(start - expr) + 1, (int)(len > 20 ? 20 : len), start);
    return -1;
}

int auto_cron_parse(const char *expr, struct auto_cron *out, char *err,
                    size_t errlen)
{
    const char *start[F_COUNT], *end[F_COUNT];
    const char *p;
    struct parser ps;
    int n = 0, i, first;

    if (expr == NULL || out == NULL) {
        set_err(err, errlen, "no expression");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    for (p = expr; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (n < F_COUNT)
            start[n] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (n < F_COUNT)
            end[n] = p;
        n++;
    }
    if (n == 0) {
        set_err(err, errlen, "empty expression");
        return -1;
    }
    if (start[0][0] == '@')
        return parse_macro(expr, start[0], (size_t)(end[0] - start[0]), n,
                           out, err, errlen);
    if (n != 5 && n != 6) {
        set_err(err, errlen, "expected 5 or 6 fields, got %d", n);
        return -1;
    }
    first = n == 5 ? F_MIN : F_SEC;
    if (n == 5)
        out->sec = 1;
    ps.expr = expr;
    ps.err = err;
    ps.errlen = errlen;
    for (i = 0; i < n; i++) {
        ps.field = first + i;
        ps.p = start[i];
        ps.end = end[i];
        if (parse_field(&ps, out) < 0)
            return -1;
        if (start[i][0] != '*' && start[i][0] != '?')
            continue;
        if (ps.field == F_DOM)
            out->flags |= AUTO_CRON_DOM_STAR;
        else if (ps.field == F_DOW)
            out->flags |= AUTO_CRON_DOW_STAR;
        else if (ps.field <= F_HOUR)
            out->flags |= AUTO_CRON_WILD;
    }
    return 0;
}
