/*
 * cron — cron expressions and their next cron slot in an IANA time zone.
 *
 * Syntax: five fields "minute hour day-of-month month day-of-week", or six
 * with a leading "second" field; fields are separated by spaces or tabs.
 * Five-field expressions fire at second 0.
 *
 *   second 0-59, minute 0-59, hour 0-23, day-of-month 1-31,
 *   month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT (0 and 7 = Sunday);
 *   names are case-insensitive and also allowed as range ends.
 *
 * Each field is a comma list of items:
 *   *  a  a-b  * /n  a-b/n  a/n (= a-max/n)       (no space in "* /n")
 *   ?  = *, only in day-of-month and day-of-week
 *   day-of-month only: L (last day), L-n (n days before the last, n 1-30),
 *     LW (last weekday Mon-Fri), nW (weekday nearest day n, never leaving
 *     the month: 1W on a Saturday is Monday the 3rd, 31W on a Sunday is
 *     Friday the 29th; no match in months shorter than n days)
 *   day-of-week only: dL (last weekday d of the month, e.g. 5L = last
 *     Friday), d#k (k-th weekday d, k 1-5, e.g. 1#2 = second Monday)
 * Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly.
 *
 * Day matching follows Vixie cron: when both day fields are restricted the
 * day matches if EITHER matches; a day field whose text starts with '*' or
 * '?' counts as unrestricted, so "* /2" there ANDs with the other field
 * (exactly as Vixie's DOM_STAR/DOW_STAR).
 *
 * Daylight-saving time follows Vixie cron too. A "fixed-time" job (second,
 * minute and hour fields all not starting with '*') fires once per wall
 * time: a wall time skipped by a spring-forward jump fires at the first
 * instant after the jump (Berlin 02:30 on 2027-03-28 fires at 03:00 CEST),
 * several skipped slots collapse into that one instant, and a wall time
 * repeated by a fall-back fires only at its first occurrence. A "wildcard"
 * job (any of those fields starts with '*', e.g. hourly "0 * * * *") follows
 * real time: it fires at every instant whose local wall time matches, so
 * it fires in both copies of a repeated hour and not at all in a skipped
 * one.
 *
 * Times are milliseconds since the Unix epoch, UTC (int64_t); fire times
 * are whole local seconds.
 *
 * Thread-safety: a parsed struct auto_cron is immutable and may be shared;
 * every function is reentrant (each call opens its own ICU calendar).
 */
#ifndef BASALT_AUTO_CRON_H
#define BASALT_AUTO_CRON_H

#include <stddef.h>
#include <stdint.h>

/* Suggested size of err buffers; longer messages are truncated. */
#define AUTO_CRON_ERR_MAX 160

/*
 * How far auto_cron_next() looks ahead. A leap day combined with a weekday
 * can be 40 years apart (2096 -> 2136, 2100 is no leap year), so 5 years
 * would wrongly reject rare but valid expressions.
 */
#define AUTO_CRON_HORIZON_YEARS 50

/* Latest accepted after_ms: 3000-01-01T00:00:00Z. */
#define AUTO_CRON_MAX_MS INT64_C(32503680000000)

/* struct auto_cron.flags */
#define AUTO_CRON_DOM_STAR 0x1  /* day-of-month field began with * or ? */
#define AUTO_CRON_DOW_STAR 0x2  /* day-of-week field began with * or ? */
#define AUTO_CRON_WILD 0x4      /* second/minute/hour began with *: real time */
#define AUTO_CRON_DOM_LW 0x8    /* day-of-month "LW" */

/* A parsed expression; bit n of a set means value n is selected. */
struct auto_cron {
    uint64_t sec;         /* seconds 0-59 */
    uint64_t min;         /* minutes 0-59 */
    uint32_t hour;        /* hours 0-23 */
    uint32_t dom;         /* days 1-31 */
    uint32_t dom_last;    /* bit n: day (last - n); "L" = bit 0, "L-n" */
    uint32_t dom_near;    /* bit n: weekday nearest day n ("nW") */
    uint16_t month;       /* months 1-12 */
    uint8_t dow;          /* weekdays 0-6, 0 = Sunday */
    uint8_t dow_last;     /* bit d: last weekday d of the month ("dL") */
    uint8_t dow_nth[7];   /* dow_nth[d] bit k: k-th weekday d ("d#k") */
    unsigned flags;       /* AUTO_CRON_* flags above */
};

/* Results of auto_cron_next() / auto_cron_tz_check(); 0 is success. */
enum auto_cron_status {
    AUTO_CRON_OK = 0,
    AUTO_CRON_EINVAL = -1,  /* bad argument (NULL, after_ms out of range) */
    AUTO_CRON_ETZ = -2,     /* unknown or non-IANA time zone id */
    AUTO_CRON_ENONE = -3,   /* no slot within AUTO_CRON_HORIZON_YEARS */
    AUTO_CRON_EICU = -4     /* ICU failed (out of memory, ...) */
};

/*
 * Parses `expr` (NUL-terminated) into *out. Returns 0, or -1 with a one-line
 * message in err (if err is non-NULL and errlen > 0) naming the field, its
 * 1-based column in expr and what is wrong, e.g.
 *   "hour field, column 3: value 24 is out of range 0-23".
 * *out is unspecified after a failure. Does not check that the expression
 * can ever fire ("0 0 30 2 *"); auto_cron_next() reports that as ENONE.
 */
int auto_cron_parse(const char *expr, struct auto_cron *out, char *err,
                    size_t errlen);

/*
 * Checks that `tz` is a canonical or alias IANA zone id known to ICU
 * ("Europe/Berlin", "UTC", "US/Eastern"); rejects ICU's custom ids
 * ("GMT+05:00") and its "Etc/Unknown" fallback. Returns AUTO_CRON_OK,
 * AUTO_CRON_ETZ or AUTO_CRON_EINVAL (tz NULL), with a message in err.
 */
int auto_cron_tz_check(const char *tz, char *err, size_t errlen);

/*
 * Earliest fire time of c in zone `tz` strictly after after_ms
 * (0 <= after_ms <= AUTO_CRON_MAX_MS); stores it in *next_ms and returns
 * AUTO_CRON_OK. On failure returns a negative enum auto_cron_status, leaves
 * *next_ms alone and writes a one-line message to err (if given).
 * Feeding each result back as after_ms yields every cron slot once.
 */
int auto_cron_next(const struct auto_cron *c, const char *tz,
                   int64_t after_ms, int64_t *next_ms, char *err,
                   size_t errlen);

#endif
