/*
 * cron_next — the next-fire-time search of cron.h: day-by-day walk over
 * local calendar days with ICU time-zone arithmetic, Vixie DST rules.
 * Parsing lives in cron.c.
 */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

static void next_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void next_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Proleptic Gregorian date of day z (days since 1970-01-01), by Howard
 * Hinnant's civil_from_days. */
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

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dim[m - 1];
}

/* 0 = Sunday; day 0 (1970-01-01) was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* Day of the weekday nearest day n ("nW"), or 0 past the month's end. */
static int nearest_weekday(int n, int last, int wd1)
{
    int wd = (wd1 + n - 1) % 7;

    if (n > last)
        return 0;
    if (wd == 6)
        return n == 1 ? 3 : n - 1;
    if (wd == 0)
        return n == last ? n - 2 : n + 1;
    return n;
}

static int dom_match(const struct auto_cron *c, int d, int last, int wd1)
{
    int k, lastwd;

    if (c->dom >> d & 1)
        return 1;
    if (c->dom_last >> (last - d) & 1)
        return 1;
    if (c->flags & AUTO_CRON_DOM_LW) {
        lastwd = (wd1 + last - 1) % 7;
        if (d == last - (lastwd == 6 ? 1 : lastwd == 0 ? 2 : 0))
            return 1;
    }
    for (k = 1; c->dom_near && k <= 31; k++) {
        if ((c->dom_near >> k & 1) && nearest_weekday(k, last, wd1) == d)
            return 1;
    }
    return 0;
}

static int dow_match(const struct auto_cron *c, int d, int last, int wd1)
{
    int wd = (wd1 + d - 1) % 7;

    if (c->dow >> wd & 1)
        return 1;
    if ((c->dow_last >> wd & 1) && d + 7 > last)
        return 1;
    return c->dow_nth[wd] >> ((d - 1) / 7 + 1) & 1;
}

/* Vixie: AND when either day field is unrestricted, else OR. */
static int day_match(const struct auto_cron *c, int d, int last, int wd1)
{
    if (c->flags & (AUTO_CRON_DOM_STAR | AUTO_CRON_DOW_STAR))
        return dom_match(c, d, last, wd1) && dow_match(c, d, last, wd1);
    return dom_match(c, d, last, wd1) || dow_match(c, d, last, wd1);
}

static int lowest_bit(uint64_t set)
{
    return __builtin_ctzll(set);
}

static int highest_bit(uint64_t set)
{
    return 63 - __builtin_clzll(set);
}

/*
 * Search state for one local day. `cal` maps wall times to instants with
 * skipped times moved to the instant after the jump and repeated times
 * taken at their first or last occurrence (UCAL_REPEATED_WALL_TIME). Both
 * maps are monotonic in wall time, which lets whole hours and minutes be
 * pruned by looking at their last slot.
 */
struct day_search {
    const struct auto_cron *c;
    UCalendar *cal;
    int64_t after_ms;
    int skip_gaps; /* wildcard jobs do not fire in skipped wall time */
    int y, m, d;
    int64_t day_ms; /* the wall date's midnight as if it were UTC */
};

/* Instant of wall time h:mi:s; *skipped when that time does not exist. */
static int wall_ms(struct day_search *s, int h, int mi, int sec,
                   int64_t *ms, int *skipped)
{
    UErrorCode st = U_ZERO_ERROR;
    UDate t;
    int32_t off;

    ucal_clear(s->cal);
    ucal_setDateTime(s->cal, s->y, s->m - 1, s->d, h, mi, sec, &st);
    t = ucal_getMillis(s->cal, &st);
    ucal_setMillis(s->cal, t, &st);
    off = ucal_get(s->cal, UCAL_ZONE_OFFSET, &st);
    off += ucal_get(s->cal, UCAL_DST_OFFSET, &st);
    if (U_FAILURE(st))
        return -1;
    *ms = (int64_t)t;
    *skipped = *ms + off !=
               s->day_ms + ((int64_t)h * 3600 + mi * 60 + sec) * 1000;
    return 0;
}

/*
 * 1 when wall times a..b (a <= b, same day) may hold an instant after
 * after_ms, 0 when they surely do not, -1 on ICU failure.
 */
static int range_open(struct day_search *s, int ha, int ma, int sa, int hb,
                      int mb, int sb)
{
    int64_t lo, hi;
    int lo_skip, hi_skip;

    if (wall_ms(s, hb, mb, sb, &hi, &hi_skip) < 0)
        return -1;
    if (hi <= s->after_ms)
        return 0;
    if (!s->skip_gaps || !hi_skip)
        return 1;
    /* both ends inside one gap: everything between is skipped too */
    if (wall_ms(s, ha, ma, sa, &lo, &lo_skip) < 0)
        return -1;
    return !(lo_skip && lo == hi);
}

/* First slot of the day after after_ms: 1 and *out, 0 none, -1 error. */
static int first_in_day(struct day_search *s, int64_t *out)
{
    const struct auto_cron *c = s->c;
    int fm = lowest_bit(c->min), lm = highest_bit(c->min);
    int fs = lowest_bit(c->sec), ls = highest_bit(c->sec);
    int h, mi, sec, r, skipped;
    int64_t t = 0;

    for (h = 0; h < 24; h++) {
        if (!(c->hour >> h & 1))
            continue;
        if ((r = range_open(s, h, fm, fs, h, lm, ls)) <= 0) {
            if (r < 0)
                return -1;
            continue;
        }
        for (mi = fm; mi <= lm; mi++) {
            if (!(c->min >> mi & 1))
                continue;
            if ((r = range_open(s, h, mi, fs, h, mi, ls)) <= 0) {
                if (r < 0)
                    return -1;
                continue;
            }
            for (sec = fs; sec <= ls; sec++) {
                if (!(c->sec >> sec & 1))
                    continue;
                if (wall_ms(s, h, mi, sec, &t, &skipped) < 0)
                    return -1;
                if (t > s->after_ms && !(skipped && s->skip_gaps)) {
                    *out = t;
                    return 1;
                }
            }
        }
    }
    return 0;
}

/*
 * Earliest slot on the wall date: fixed-time jobs use first occurrences
 * only; wildcard jobs also try second occurrences of repeated times.
 */
static int search_day(struct day_search *s, int64_t *out)
{
    int passes = s->skip_gaps ? 2 : 1, i, r, found = 0;
    int64_t t = 0;

    for (i = 0; i < passes; i++) {
        ucal_setAttribute(s->cal, UCAL_REPEATED_WALL_TIME,
                          i == 0 ? UCAL_WALLTIME_FIRST : UCAL_WALLTIME_LAST);
        r = first_in_day(s, &t);
        if (r < 0)
            return -1;
        if (r > 0 && (!found || t < *out)) {
            *out = t;
            found = 1;
        }
    }
    return found;
}

static UCalendar *open_zone(const char *tz, int *status, char *err,
                            size_t errlen)
{
    UChar id[128], canon[128];
    UErrorCode st = U_ZERO_ERROR;
    UBool system_id = 0;
    UCalendar *cal;
    size_t i, len;

    *status = AUTO_CRON_ETZ;
    if (tz == NULL) {
        *status = AUTO_CRON_EINVAL;
        next_err(err, errlen, "no time zone");
        return NULL;
    }
    len = strlen(tz);
    /* zone ids are short ASCII; this also keeps u_charsToUChars defined */
    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char)tz[i]) && !strchr("/_-+", tz[i]))
            break;
    }
    if (len == 0 || len >= sizeof(id) / sizeof(id[0]) || i < len) {
        next_err(err, errlen, "time zone '%.40s' is not an IANA zone id", tz);
        return NULL;
    }
    u_charsToUChars(tz, id, (int32_t)len);
    id[len] = 0;
    /* ucal_open() silently falls back to "Etc/Unknown" (GMT) */
    ucal_getCanonicalTimeZoneID(id, (int32_t)len, canon,
                                sizeof(canon) / sizeof(canon[0]),
                                &system_id, &st);
    if (U_FAILURE(st) || !system_id) {
        next_err(err, errlen, "unknown time zone '%s'", tz);
        return NULL;
    }
    cal = ucal_open(id, (int32_t)len, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) {
        *status = AUTO_CRON_EICU;
        next_err(err, errlen, "ICU: cannot open calendar: %s",
                u_errorName(st));
        if (cal)
            ucal_close(cal);
        return NULL;
    }
    ucal_setAttribute(cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    *status = AUTO_CRON_OK;
    return cal;
}

int auto_cron_tz_check(const char *tz, char *err, size_t errlen)
{
    UCalendar *cal;
    int status;

    cal = open_zone(tz, &status, err, errlen);
    if (cal)
        ucal_close(cal);
    return status;
}

/* Local wall date of instant ms as days since 1970-01-01. */
static int local_day(UCalendar *cal, int64_t ms, int64_t *day)
{
    UErrorCode st = U_ZERO_ERROR;
    int64_t local;

    ucal_setMillis(cal, (UDate)ms, &st);
    local = ms + ucal_get(cal, UCAL_ZONE_OFFSET, &st) +
            ucal_get(cal, UCAL_DST_OFFSET, &st);
    if (U_FAILURE(st))
        return -1;
    *day = (local >= 0 ? local : local - 86399999) / 86400000;
    return 0;
}

int auto_cron_next(const struct auto_cron *c, const char *tz,
                   int64_t after_ms, int64_t *next_ms, char *err,
                   size_t errlen)
{
    struct day_search s;
    int64_t z, end, best = 0, best_day = 0, t = 0;
    int status, found = 0, last, wd1, r;

    if (c == NULL || next_ms == NULL || after_ms < 0 ||
        after_ms > AUTO_CRON_MAX_MS || !c->sec || !c->min || !c->hour) {
        next_err(err, errlen, "invalid argument to auto_cron_next");
        return AUTO_CRON_EINVAL;
    }
    s.cal = open_zone(tz, &status, err, errlen);
    if (s.cal == NULL)
        return status;
    s.c = c;
    s.after_ms = after_ms;
    s.skip_gaps = (c->flags & AUTO_CRON_WILD) != 0;
    status = AUTO_CRON_EICU;
    if (local_day(s.cal, after_ms, &z) < 0)
        goto cleanup;
    /* a repeated hour can carry yesterday's wall times past after_ms */
    z--;
    end = z + (int64_t)AUTO_CRON_HORIZON_YEARS * 366;
    for (; z <= end && !(found && z > best_day + 1); z++) {
        civil_from_days(z, &s.y, &s.m, &s.d);
        last = days_in_month(s.y, s.m);
        if (!(c->month >> s.m & 1)) {
            z += last - s.d; /* on to the 1st of next month */
            continue;
        }
        wd1 = weekday(z - (s.d - 1));
        if (!day_match(c, s.d, last, wd1))
            continue;
        s.day_ms = z * 86400000;
        r = search_day(&s, &t);
        if (r < 0)
            goto cleanup;
        if (r > 0 && (!found || t < best)) {
            best = t;
            best_day = z;
            found = 1;
        }
    }
    if (found) {
        *next_ms = best;
        status = AUTO_CRON_OK;
    } else {
        status = AUTO_CRON_ENONE;
        next_err(err, errlen, "expression never fires within %d years",
                AUTO_CRON_HORIZON_YEARS);
    }
cleanup:
    if (status == AUTO_CRON_EICU)
        next_err(err, errlen, "ICU failed computing local time");
    ucal_close(s.cal);
    return status;
}
