#include "track.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "analytics_writer.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "plat.h"
#include "validation.h"

/* Self-tracking properties are small; larger ones are cut to {}. */
#define TRACK_MAX_PROPERTIES 4096

static struct metrics_family *m_dropped;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void metrics_setup(void)
{
    static const char *const lbl[1] = {"event"};

    m_dropped = metrics_family(metrics_default(), METRICS_COUNTER,
                               "analytics_track_dropped_total",
                               "Self-tracking events dropped (best effort).",
                               1, lbl, NULL, 0);
}

static void dropped(const char *event, const char *why)
{
    const char *val[1] = {event != NULL ? event : ""};

    pthread_once(&once, metrics_setup);
    if (m_dropped != NULL)
        metrics_inc_labels(m_dropped, val, 1);
    log_kv(LOG_LVL_WARN, NULL, "analytics: self-tracking event dropped",
           "event", val[0], "reason", why, NULL);
}

void plat_track(struct plat_ctx *ctx, const char *event,
                const char *distinct_id, json_t *properties)
{
    struct plat_an_event *ev = NULL;
    const char *did = distinct_id != NULL && distinct_id[0] != '\0'
                          ? distinct_id
                          : "anonymous";
    size_t elen = event != NULL ? strlen(event) : 0;

    if (ctx == NULL || ctx->analytics == NULL) {
        dropped(event, "writer not running");
        goto cleanup;
    }
    if (!plat_an_text_ok(event, elen) || !plat_an_text_ok(did, strlen(did))) {
        dropped(event, "invalid event name or distinct_id");
        goto cleanup;
    }
    ev = calloc(1, sizeof(*ev));
    if (ev == NULL || plat_an_uuid4(ev->message_id,
                                    sizeof(ev->message_id)) != 0) {
        dropped(event, "out of memory");
        goto cleanup;
    }
    memcpy(ev->event, event, elen + 1);
    memcpy(ev->distinct_id, did, strlen(did) + 1);
    /* Only a user id makes an owner: anything else is admin-only. */
    if (plat_is_uuid(did))
        memcpy(ev->owner, did, strlen(did) + 1);
    ev->ts_us = ev->received_us = plat_an_now_us();
    ev->properties = json_is_object(properties)
                         ? json_dumps(properties, JSON_COMPACT)
                         : NULL;
    if (ev->properties != NULL &&
        strlen(ev->properties) > TRACK_MAX_PROPERTIES) {
        free(ev->properties);
        ev->properties = NULL;
    }
    if (ev->properties == NULL)
        ev->properties = strdup("{}");
    if (ev->properties == NULL) {
        dropped(event, "out of memory");
        goto cleanup;
    }
    if (plat_an_writer_enqueue_take(ctx->analytics, ev) != PLAT_AN_OK)
        dropped(event, "queue full or writer stopping");
    ev = NULL;
cleanup:
    if (ev != NULL) {
        plat_an_event_cleanup(ev);
        free(ev);
    }
    json_decref(properties);
}
