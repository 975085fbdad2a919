#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics.h"
#include "token/token.h"
#include "validation.h"

void plat_an_event_cleanup(struct plat_an_event *ev)
{
    free(ev->properties);
    ev->properties = NULL;
}

int64_t plat_an_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * PLAT_AN_US_PER_S + ts.tv_nsec / 1000;
}

int plat_an_text_ok(const char *s, size_t len)
{
    if (len == 0 || len > PLAT_AN_TEXT_MAX || plat_utf8_len(s, len) < 0)
        return 0;
    /* Control characters would corrupt logs and COPY's text format. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

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

/* Reads exactly `n` digits at s; -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int month_days(int y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30,
                               31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : md[m - 1];
}

int plat_an_time_parse(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec, frac = 0, fdig = 0;
    int64_t off_s = 0, t;
    const char *p;

    if (s == NULL || strlen(s) < 20)
        return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 1970 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':' || mo < 1 || mo > 12 || d < 1 ||
        d > month_days(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 59)
        return -1;
    p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++, fdig++) {
            if (fdig < 6)
                frac = frac * 10 + (*p - '0');
        }
        for (int i = fdig; i < 6; i++)
            frac *= 10;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off_s = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off_s = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    } else {
        return -1;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
        off_s;
    if (t < 0)
        return -1;
    *us = t * PLAT_AN_US_PER_S + frac;
    return 0;
}

/* Writes `v` (>= 0) as exactly `width` decimal digits, zero-padded. */
static void put_digits(char *out, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void plat_an_time_format(int64_t us, char *buf, size_t len)
{
    int64_t secs = us / PLAT_AN_US_PER_S, frac = us % PLAT_AN_US_PER_S;
    int64_t days, rem;
    int y, m, d;

    if (frac < 0) {
        frac += PLAT_AN_US_PER_S;
        secs--;
    }
    days = secs / 86400;
    rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || len < sizeof("YYYY-MM-DDTHH:MM:SS.uuuuuuZ")) {
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
                 (int)frac);
        return;
    }
    /* By hand: the writer formats two or three per event, and snprintf
     * was a tenth of the platform's CPU during ingestion. */
    put_digits(buf, y, 4);
    buf[4] = '-';
    put_digits(buf + 5, m, 2);
    buf[7] = '-';
    put_digits(buf + 8, d, 2);
    buf[10] = 'T';
    put_digits(buf + 11, (int)(rem / 3600), 2);
    buf[13] = ':';
    put_digits(buf + 14, (int)(rem / 60 % 60), 2);
    buf[16] = ':';
    put_digits(buf + 17, (int)(rem % 60), 2);
    buf[19] = '.';
    put_digits(buf + 20, (int)frac, 6);
    buf[26] = 'Z';
    buf[27] = '\0';
}

static int text_field(const json_t *in, const char *name, char *out,
                      size_t outlen, int *present, char *why, size_t whylen)
{
    const json_t *v = json_object_get(in, name);
    size_t n;

    *present = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, whylen, "%s must be a string", name);
        return -1;
    }
    n = json_string_length(v);
    if (!plat_an_text_ok(json_string_value(v), n) || n >= outlen) {
        snprintf(why, whylen, "%s must be 1..%d bytes of printable text",
                 name, PLAT_AN_TEXT_MAX);
        return -1;
    }
    memcpy(out, json_string_value(v), n + 1);
    *present = 1;
    return 0;
}

/*
 * `props` as compact JSON in *out (malloc'd, NUL-terminated): 0; 1 when
 * it is longer than `max` bytes; -1 when it cannot be encoded (*out NULL
 * unless 0). Encoded into a stack buffer first and copied once:
 * json_dumps() grows a buffer from 16 bytes and copies it again, three to
 * four allocations per event.
 */
static int properties_text(const json_t *props, size_t max, char **out)
{
    char buf[1024];
    size_t n = json_dumpb(props, buf, sizeof(buf), JSON_COMPACT);

    *out = NULL;
    if (n == 0)
        return -1;
    if (n > max)
        return 1;
    *out = malloc(n + 1);
    if (*out == NULL)
        return -1;
    if (n <= sizeof(buf))
        memcpy(*out, buf, n);
    else if (json_dumpb(props, *out, n, JSON_COMPACT) != n) {
        free(*out);
        *out = NULL;
        return -1;
    }
    (*out)[n] = '\0';
    return 0;
}

int plat_an_event_parse(const json_t *in, const char *caller_id,
                        const char *owner, int64_t now_us,
                        size_t max_properties, struct plat_an_event *out,
                        char *why, size_t whylen)
{
    const json_t *ts, *props;
    int present;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(in)) {
        snprintf(why, whylen, "an event must be a JSON object");
        return -1;
    }
    if (text_field(in, "event", out->event, sizeof(out->event), &present,
                   why, whylen) != 0)
        goto fail;
    if (!present) {
        snprintf(why, whylen, "event is required");
        goto fail;
    }
    if (text_field(in, "distinct_id", out->distinct_id,
                   sizeof(out->distinct_id), &present, why, whylen) != 0)
        goto fail;
    if (!present) {
        if (caller_id == NULL || caller_id[0] == '\0') {
            snprintf(why, whylen, "distinct_id is required");
            goto fail;
        }
        snprintf(out->distinct_id, sizeof(out->distinct_id), "%s",
                 caller_id);
    }
    if (text_field(in, "message_id", out->message_id,
                   sizeof(out->message_id), &present, why, whylen) != 0)
        goto fail;
    if (!present && plat_an_uuid4(out->message_id,
                                  sizeof(out->message_id)) != 0) {
        snprintf(why, whylen, "cannot generate a message_id");
        goto fail;
    }

    out->received_us = now_us;
    out->ts_us = now_us;
    ts = json_object_get(in, "timestamp");
    if (ts != NULL && !json_is_null(ts)) {
        if (!json_is_string(ts) ||
            plat_an_time_parse(json_string_value(ts), &out->ts_us) != 0) {
            snprintf(why, whylen, "timestamp must be an RFC 3339 date-time "
                                  "(e.g. 2025-01-02T03:04:05Z) after 1970");
            goto fail;
        }
        if (out->ts_us > now_us + PLAT_AN_FUTURE_MAX_US) {
            snprintf(why, whylen, "timestamp is more than 7 days in the "
                                  "future");
            goto fail;
        }
    }

    props = json_object_get(in, "properties");
    if (props != NULL && !json_is_null(props) && !json_is_object(props)) {
        snprintf(why, whylen, "properties must be an object");
        goto fail;
    }
    if (props != NULL && !json_is_null(props)) {
        int rc = properties_text(props, max_properties, &out->properties);

        if (rc != 0) {
            if (rc > 0)
                snprintf(why, whylen, "properties larger than %zu bytes",
                         max_properties);
            else
                snprintf(why, whylen, "properties cannot be encoded");
            goto fail;
        }
    } else if ((out->properties = strdup("{}")) == NULL) {
        snprintf(why, whylen, "properties cannot be encoded");
        goto fail;
    }
    snprintf(out->owner, sizeof(out->owner), "%s",
             owner != NULL ? owner : "");
    return 0;
fail:
    plat_an_event_cleanup(out);
    return -1;
}

enum plat_an_batch plat_an_batch_parse(const json_t *body,
                                       const char *caller_id,
                                       const char *owner, int64_t now_us,
                                       long max_batch, size_t max_properties,
                                       struct plat_an_event **evs,
                                       size_t *nvalid, size_t *n,
                                       json_t **errors)
{
    const json_t *batch = json_object_get(body, "batch");
    struct plat_an_event *out;
    json_t *errs;
    size_t count, ok = 0;
    char why[160];

    *evs = NULL;
    *nvalid = *n = 0;
    *errors = NULL;
    if (batch != NULL &&
        (!json_is_array(batch) || json_array_size(batch) == 0))
        return PLAT_AN_BATCH_SHAPE;
    count = batch != NULL ? json_array_size(batch) : 1;
    *n = count;
    if ((long)count > max_batch)
        return PLAT_AN_BATCH_TOO_LARGE;
    out = calloc(count, sizeof(*out));
    errs = json_array();
    if (out == NULL || errs == NULL) {
        free(out);
        json_decref(errs);
        return PLAT_AN_BATCH_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *in = batch != NULL ? json_array_get(batch, i) : body;

        if (plat_an_event_parse(in, caller_id, owner, now_us,
                                max_properties, &out[ok], why,
                                sizeof(why)) == 0) {
            ok++;
            continue;
        }
        json_array_append_new(errs,
                              json_pack("{s:I, s:s, s:s}", "index",
                                        (json_int_t)i, "code",
                                        "validation_failed", "message",
                                        why));
    }
    if (ok == 0) {
        free(out);
        out = NULL;
    }
    *evs = out;
    *nvalid = ok;
    *errors = errs;
    return PLAT_AN_BATCH_OK;
}

/* "1:<ts_us>:<id>" in base64url (libs/token's codec, RFC 4648 §5). */
void plat_an_cursor_encode(int64_t ts_us, int64_t id, char *buf, size_t len)
{
    char raw[48];
    int n = snprintf(raw, sizeof(raw), "1:%lld:%lld", (long long)ts_us,
                     (long long)id);
    char *enc = tok_b64url_encode((const unsigned char *)raw, (size_t)n);

    snprintf(buf, len, "%s", enc != NULL ? enc : "");
    free(enc);
}

/* Parses a decimal int64 that must end at `end` (strtoll, checked). */
static int parse_ll(const char *s, char end, const char **next,
                    long long *out)
{
    char *e;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoll(s, &e, 10);
    if (errno != 0 || *e != end)
        return -1;
    *next = e;
    return 0;
}

int plat_an_cursor_decode(const char *s, int64_t *ts_us, int64_t *id)
{
    size_t n = s != NULL ? strlen(s) : 0, rawlen = 0;
    unsigned char *raw = NULL;
    char text[48];
    long long a, b;
    const char *p;

    if (n == 0 || n >= PLAT_AN_CURSOR_MAX ||
        tok_b64url_decode(s, n, &raw, &rawlen) != 0)
        return -1;
    /* as text: no NUL inside */
    if (rawlen < sizeof(text) && memchr(raw, '\0', rawlen) == NULL)
        memcpy(text, raw, rawlen);
    else
        rawlen = 0;
    text[rawlen] = '\0';
    free(raw);
    if (strncmp(text, "1:", 2) != 0 || parse_ll(text + 2, ':', &p, &a) != 0 ||
        parse_ll(p + 1, '\0', &p, &b) != 0)
        return -1;
    *ts_us = a;
    *id = b;
    return 0;
}

int plat_an_uuid4(char *out, size_t len)
{
    unsigned char b[16];

    if (len < 37 || RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, len,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}
