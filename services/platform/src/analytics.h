/*
 * analytics — product events (PostHog / Segment style) stored in
 * PostgreSQL: POST /analytics/events, GET /analytics/summary, /top and
 * /events. Module map (prefix plat_an_):
 *
 *   analytics_event.c   validation of one event, RFC 3339 times, keyset
 *                       cursors, UUIDs — pure functions
 *   analytics_writer.c  group-commit writer thread (COPY, dedupe, rollups)
 *   analytics_ingest.c  POST /analytics/events handler + settings
 *   analytics_query.c   GET /analytics/{summary,top,events} handlers
 *   analytics_maint.c   monthly partitions created ahead
 *   track.c             plat_track(): the service's own events
 *
 * Times are microseconds since the Unix epoch (UTC) as int64_t.
 */
#ifndef PLAT_ANALYTICS_H
#define PLAT_ANALYTICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct httpd_server;
struct plat_ctx;

/* Bytes, not counting the NUL: event name, distinct_id, message_id. */
#define PLAT_AN_TEXT_MAX 200
/* Owner: the caller's user id (a UUID from the token's sub), or "". */
#define PLAT_AN_OWNER_MAX 63
/* Timestamps later than receipt + this are rejected. */
#define PLAT_AN_FUTURE_MAX_US (7LL * 86400 * 1000000)
/* "2025-01-02T03:04:05.678901Z" plus NUL. */
#define PLAT_AN_TIME_LEN 28
/* Keyset cursor text (base64url), NUL included. */
#define PLAT_AN_CURSOR_MAX 64

#define PLAT_AN_US_PER_S 1000000LL

/*
 * Settings (environment, read by plat_an_settings_load):
 *   ANALYTICS_MAX_BATCH              events per request (1000)
 *   ANALYTICS_MAX_BODY               request body bytes (1 MiB)
 *   ANALYTICS_MAX_PROPERTIES_BYTES   one event's properties as compact
 *                                    JSON (32 KiB)
 *   ANALYTICS_QUEUE_MAX              events waiting for the writer; more
 *                                    gets 503 overloaded (100000)
 *   ANALYTICS_COMMIT_MAX_EVENTS      events per group commit (20000)
 *   ANALYTICS_WRITERS                writer threads, each with its own
 *                                    connection and group commits (2)
 *   ANALYTICS_COMMIT_TIMEOUT_MS      how long a request waits for its
 *                                    commit before 503 (30000)
 *   ANALYTICS_PARTITIONS_AHEAD       months of partitions kept ready (3)
 *   ANALYTICS_MAINTENANCE_INTERVAL_S partition check period (3600)
 *   ANALYTICS_DEDUPE_RETENTION_DAYS  message_ids remembered (30; 0 =
 *                                    forever); a message_id is unique
 *                                    per owner, not across owners
 */
struct plat_an_settings {
    long max_batch;
    size_t max_body;
    size_t max_properties;
    long queue_max;
    long commit_max;
    long writers;
    long commit_timeout_ms;
    long partitions_ahead;
    long maintenance_interval_s;
    long dedupe_retention_days;
    long rollup_interval_ms;   /* writer 0 applies pending rollups */
};

/* Reads the settings above through `c` (errors accumulate in c). */
void plat_an_settings_load(struct cfg *c, struct plat_an_settings *s);

/*
 * One validated event, ready for COPY. Text fields hold no control
 * characters (checked), are valid UTF-8 and at most PLAT_AN_TEXT_MAX
 * bytes. `properties` is compact JSON text of an object (malloc'd, owned;
 * never NULL after a successful parse). `stored` is the writer's output.
 */
struct plat_an_event {
    char message_id[PLAT_AN_TEXT_MAX + 1];
    char event[PLAT_AN_TEXT_MAX + 1];
    char distinct_id[PLAT_AN_TEXT_MAX + 1];
    char owner[PLAT_AN_OWNER_MAX + 1];
    int64_t ts_us;
    int64_t received_us;
    char *properties;
    int stored;       /* set by the writer: 1 new row, 0 duplicate */
    /* set by the writer: plat_an_owner_key(owner), the scope of
     * message_id dedupe (migration 0005) */
    int64_t owner_key;
};

/* Frees what an event owns (its properties). Safe on a zeroed event. */
void plat_an_event_cleanup(struct plat_an_event *ev);

/*
 * Builds `out` from one JSON event `in` as sent by a client:
 *   event        required string, 1..200 bytes, no control characters
 *   distinct_id  optional string (same rules); default `caller_id`
 *   timestamp    optional RFC 3339 string; default `now_us`; at most
 *                PLAT_AN_FUTURE_MAX_US after now_us, not before 1970
 *   properties   optional object (null = {}); compact JSON at most
 *                `max_properties` bytes
 *   message_id   optional string (1..200 bytes, printable); default a
 *                fresh UUID v4
 * Unknown members are ignored. `owner` is copied into out->owner.
 * Returns 0, or -1 with a client-safe reason naming the field in `why`
 * (out is then cleaned up).
 */
int plat_an_event_parse(const json_t *in, const char *caller_id,
                        const char *owner, int64_t now_us,
                        size_t max_properties, struct plat_an_event *out,
                        char *why, size_t whylen);

enum plat_an_batch {
    PLAT_AN_BATCH_OK = 0,
    PLAT_AN_BATCH_SHAPE,      /* "batch" not a non-empty array */
    PLAT_AN_BATCH_TOO_LARGE,  /* more than max_batch events */
    PLAT_AN_BATCH_NOMEM,
};

/*
 * Splits a request body into events: {"batch": [ev, ...]} or a single
 * event object. Valid events go into *evs (malloc'd array of *nvalid,
 * caller cleans up each and frees; may be NULL when none), invalid ones
 * become {"index": i, "code": "validation_failed", "message": ...} in
 * *errors (new array, caller decrefs). *n gets the number of events sent.
 * On anything but PLAT_AN_BATCH_OK nothing is allocated.
 */
enum plat_an_batch plat_an_batch_parse(const json_t *body,
                                       const char *caller_id,
                                       const char *owner, int64_t now_us,
                                       long max_batch, size_t max_properties,
                                       struct plat_an_event **evs,
                                       size_t *nvalid, size_t *n,
                                       json_t **errors);

/* 1 when `s` (NUL-terminated) is an acceptable event name / id. */
int plat_an_text_ok(const char *s, size_t len);

/*
 * Parses an RFC 3339 date-time ("2025-01-02T03:04:05Z",
 * "2025-01-02t03:04:05.123456789+02:00"; 'T', 't' or ' ' between date and
 * time; fraction truncated to microseconds; leap second 60 rejected).
 * Years 1970..9999. Returns 0 with *us set, or -1.
 */
int plat_an_time_parse(const char *s, int64_t *us);

/* Formats `us` as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (len >= PLAT_AN_TIME_LEN). */
void plat_an_time_format(int64_t us, char *buf, size_t len);

/* Wall clock now, microseconds since the epoch. */
int64_t plat_an_now_us(void);

/*
 * Keyset cursor for GET /analytics/events: the (ts, id) of the last row
 * returned, as opaque base64url text. Encode can't fail with len >=
 * PLAT_AN_CURSOR_MAX. Decode returns 0, or -1 for anything it did not
 * produce.
 */
void plat_an_cursor_encode(int64_t ts_us, int64_t id, char *buf, size_t len);
int plat_an_cursor_decode(const char *s, int64_t *ts_us, int64_t *id);

/* A random UUID v4 in canonical text (out >= 37 bytes). 0 or -1. */
int plat_an_uuid4(char *out, size_t len);

/* Registers POST /analytics/events (analytics_ingest.c). 0 or -1. */
int plat_an_ingest_routes(struct httpd_server *s, struct plat_ctx *ctx,
                          const struct plat_an_settings *set);

/* Registers the GET query routes (analytics_query.c). 0 or -1. */
int plat_an_query_routes(struct httpd_server *s, struct plat_ctx *ctx);

#endif
