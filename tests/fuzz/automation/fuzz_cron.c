/*
 * Fuzzes the cron parser and next-slot search (automation cron.c,
 * cron_next.c). Input: the expression up to the first newline; after it
 * one byte picks a zone from a fixed list (DST, half-hour and 45-minute
 * offsets, a skipped day) and eight bytes the start time (folded into
 * 0..AUTO_CRON_MAX_MS). The first line is also checked as a zone id.
 * Invariants: parse errors are one NUL-terminated line; next slots are
 * strictly increasing, after the start, within the horizon, whole
 * seconds.
 */
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/automation/src/cron.h"

static const char *const zones[] = {
    "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
    "Asia/Kathmandu", "Pacific/Chatham", "America/Santiago", "Pacific/Apia",
    "Africa/Casablanca", "Asia/Tehran", "America/St_Johns", "Etc/GMT+12",
};
#define NZONES (sizeof zones / sizeof *zones)
#define YEAR_MS (INT64_C(366) * 86400 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rest;
    size_t restlen;
    char *expr = fuzz_split(data, size, '\n', &rest, &restlen);
    char err[AUTO_CRON_ERR_MAX];
    struct auto_cron c;
    const char *tz = zones[0];
    uint64_t raw = 0;
    int64_t after, next;

    if (strlen(expr) < 256)
        (void)auto_cron_tz_check(expr, err, sizeof err);
    if (auto_cron_parse(expr, &c, err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || strchr(err, '\n'))
            abort();
        goto done;
    }
    if (restlen > 0)
        tz = zones[rest[0] % NZONES];
    for (size_t i = 1; i < restlen && i <= 8; i++)
        raw = raw << 8 | rest[i];
    after = (int64_t)(raw % (uint64_t)(AUTO_CRON_MAX_MS + 1));
    for (int i = 0; i < 3; i++) {
        int rc = auto_cron_next(&c, tz, after, &next, err, sizeof err);

        if (rc != AUTO_CRON_OK) {
            if (rc != AUTO_CRON_ENONE && rc != AUTO_CRON_EINVAL)
                abort();
            break;
        }
        if (next <= after || next % 1000 != 0 ||
            next - after > (AUTO_CRON_HORIZON_YEARS + 1) * YEAR_MS)
            abort();
        if (next > AUTO_CRON_MAX_MS)
            break;
        after = next;
    }
done:
    free(expr);
    return 0;
}
