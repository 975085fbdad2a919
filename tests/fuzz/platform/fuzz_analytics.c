/*
 * Fuzzes analytics input (platform, analytics_event.c): the input is a
 * POST /analytics/events body ({"batch": [...]} or one event), split into
 * validated events by plat_an_batch_parse at a fixed "now". The raw bytes
 * are also read as the query parameters the GET /analytics endpoints
 * take: an RFC 3339 time (from/to) and a keyset cursor.
 * Invariants: accepted events have non-empty NUL-terminated text fields
 * that pass plat_an_text_ok, compact JSON object properties within the
 * limit, times in range; valid + errors = events sent; a parsed time
 * formats and parses back to itself; a decoded cursor re-encodes.
 */
#include <jansson.h>
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/platform/src/analytics.h"

#define NOW_US (INT64_C(1767225600) * PLAT_AN_US_PER_S)
#define MAX_PROPS 1024

static void check_event(const struct plat_an_event *ev)
{
    json_t *p;

    if (!ev->event[0] || !ev->distinct_id[0] || !ev->message_id[0] ||
        !plat_an_text_ok(ev->event, strlen(ev->event)) ||
        !plat_an_text_ok(ev->distinct_id, strlen(ev->distinct_id)) ||
        !ev->properties || strlen(ev->properties) > MAX_PROPS ||
        ev->ts_us < 0 || ev->ts_us > NOW_US + PLAT_AN_FUTURE_MAX_US ||
        strcmp(ev->owner, "owner-1") != 0)
        abort();
    p = json_loads(ev->properties, 0, NULL);
    if (!json_is_object(p))
        abort();
    json_decref(p);
}

static void check_time_cursor(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size), buf[PLAT_AN_TIME_LEN + 8];
    char cur[PLAT_AN_CURSOR_MAX];
    int64_t us, back, ts, id, ts2, id2;

    if (plat_an_time_parse(s, &us) == 0) {
        plat_an_time_format(us, buf, sizeof buf);
        if (plat_an_time_parse(buf, &back) != 0 || back != us)
            abort();
    }
    if (plat_an_cursor_decode(s, &ts, &id) == 0) {
        plat_an_cursor_encode(ts, id, cur, sizeof cur);
        if (plat_an_cursor_decode(cur, &ts2, &id2) != 0 || ts2 != ts ||
            id2 != id)
            abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    json_t *errors = NULL;
    struct plat_an_event *evs = NULL;
    size_t nvalid = 0, n = 0;

    check_time_cursor(data, size);
    if (!body)
        return 0;
    if (plat_an_batch_parse(body, "user-1", "owner-1", NOW_US, 50, MAX_PROPS,
                            &evs, &nvalid, &n, &errors) ==
        PLAT_AN_BATCH_OK) {
        if (!json_is_array(errors) || nvalid + json_array_size(errors) != n)
            abort();
        for (size_t i = 0; i < nvalid; i++) {
            check_event(&evs[i]);
            plat_an_event_cleanup(&evs[i]);
        }
        free(evs);
        json_decref(errors);
    }
    json_decref(body);
    return 0;
}
