/*
 * track — the platform's self-tracking (user_registered, user_login,
 * login_failed, token_refreshed, ...) as analytics events.
 *
 * Best effort by design: plat_track() never blocks on PostgreSQL. It
 * builds the event and hands it to the analytics group-commit writer's
 * queue, then returns at once. When the queue is full, the writer is not
 * running, or memory is short, the event is dropped, counted in
 * analytics_track_dropped_total{event} and logged at warn level. Events
 * ingested by clients through POST /analytics/events are never dropped
 * like this: those requests wait for their commit.
 *
 * Thread-safety: any request thread may call it at any time, including
 * before the writer starts and after it stopped (the event is dropped).
 */
#ifndef PLAT_TRACK_H
#define PLAT_TRACK_H

#include <jansson.h>

struct plat_ctx;

/*
 * Records `event` (a valid event name, e.g. "user_login") for
 * `distinct_id` (the user id, or another stable id such as the email's
 * hash for failed logins; NULL or "" records "anonymous"). The event's
 * owner is distinct_id, its time the call time, its message_id a fresh
 * UUID. `properties` must be a JSON object or NULL; the reference is
 * stolen (decref'd here in every case). Never fails visibly.
 */
void plat_track(struct plat_ctx *ctx, const char *event,
                const char *distinct_id, json_t *properties);

#endif
