#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "analytics_writer.h"
#include "config/config.h"
#include "httpd/httpd.h"
#include "jsonarena/jsonarena.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "plat.h"

void plat_an_settings_load(struct cfg *c, struct plat_an_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->max_batch = cfg_int(c, "ANALYTICS_MAX_BATCH", 1000, 1, 100000);
    s->max_body = (size_t)cfg_int(c, "ANALYTICS_MAX_BODY", 1048576, 1024,
                                  64L * 1024 * 1024);
    s->max_properties = (size_t)cfg_int(c, "ANALYTICS_MAX_PROPERTIES_BYTES",
                                        32768, 2, 1048576);
    s->queue_max = cfg_int(c, "ANALYTICS_QUEUE_MAX", 100000, 1, 10000000);
    s->commit_max =
        cfg_int(c, "ANALYTICS_COMMIT_MAX_EVENTS", 20000, 1, 1000000);
    s->writers = cfg_int(c, "ANALYTICS_WRITERS", 2, 1, 16);
    s->commit_timeout_ms =
        cfg_int(c, "ANALYTICS_COMMIT_TIMEOUT_MS", 30000, 100, 600000);
    s->partitions_ahead = cfg_int(c, "ANALYTICS_PARTITIONS_AHEAD", 3, 1, 24);
    s->maintenance_interval_s =
        cfg_int(c, "ANALYTICS_MAINTENANCE_INTERVAL_S", 3600, 1, 86400);
    s->dedupe_retention_days =
        cfg_int(c, "ANALYTICS_DEDUPE_RETENTION_DAYS", 30, 0, 36500);
    s->rollup_interval_ms =
        cfg_int(c, "ANALYTICS_ROLLUP_INTERVAL_MS", 100, 1, 60000);
    if (s->queue_max < s->max_batch)
        cfg_fail(c, "ANALYTICS_QUEUE_MAX",
                 "must be at least ANALYTICS_MAX_BATCH");
}

/* Handler argument: both live as long as the server. */
struct ingest {
    struct plat_ctx *ctx;
    const struct plat_an_settings *set;
};

static struct ingest ingest_arg;
static struct metrics_family *m_invalid;

static void unauthorized(struct httpd_req *r, int invalid)
{
    httpd_add_header(r, "WWW-Authenticate",
                     invalid ? "Bearer realm=\"basalt\", "
                               "error=\"invalid_token\""
                             : "Bearer realm=\"basalt\"");
    httpd_error(r, 401, "unauthorized",
                invalid ? "invalid or expired credentials"
                        : "authentication required");
}

/* Answers an error with the shared shape plus "errors" (per index). */
static void reply_invalid(struct httpd_req *r, json_t *errors)
{
    json_t *first = json_array_get(errors, 0);
    const char *why = json_string_value(json_object_get(first, "message"));
    char msg[200];
    json_t *body;

    snprintf(msg, sizeof(msg), "no valid event (first: %s)",
             why != NULL ? why : "invalid");
    body = json_pack("{s:{s:s, s:s, s:s}, s:o}", "error", "code",
                     "validation_failed", "message", msg, "request_id",
                     r->request_id, "errors", errors);
    if (body == NULL) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return;
    }
    httpd_reply_json(r, 422, body);
}

static void reply_write_error(struct httpd_req *r, enum plat_an_result rc)
{
    switch (rc) {
    case PLAT_AN_UNAVAILABLE:
        httpd_error(r, 503, "db_unavailable",
                    "database unavailable; nothing was stored");
        break;
    case PLAT_AN_OVERLOADED:
        httpd_add_header(r, "Retry-After", "1");
        httpd_error(r, 503, "overloaded", "ingest queue full; retry");
        break;
    case PLAT_AN_TIMEOUT:
        httpd_error(r, 503, "commit_timeout",
                    "no commit in time; retry with the same message_ids");
        break;
    case PLAT_AN_STOPPED:
        httpd_error(r, 503, "shutting_down", "service is stopping");
        break;
    default:
        httpd_error(r, 500, "internal_error",
                    "events could not be stored");
        break;
    }
}

/*
 * POST /analytics/events: {"event": ...} or {"batch": [...]}. Valid
 * events are committed (group commit) before the 202; invalid ones are
 * reported by index. Over-limit batches get 413 and nothing is stored.
 */
static void events_in(struct httpd_req *r, struct ingest *in,
                      struct jarena *arena)
{
    struct ident id;
    enum ident_result ir;
    json_t *body = NULL, *errors = NULL;
    struct plat_an_event *evs = NULL;
    size_t n, nvalid = 0, stored = 0, dups = 0;
    int64_t now = plat_an_now_us();
    enum plat_an_result rc;

    ir = ident_from_req(&in->ctx->identity, r, &id);
    if (ir != IDENT_OK) {
        unauthorized(r, ir == IDENT_INVALID);
        return;
    }
    if (httpd_json_body_in(r, &body, arena) != 0)
        return;
    switch (plat_an_batch_parse(body, id.user_id, id.user_id, now,
                                in->set->max_batch, in->set->max_properties,
                                &evs, &nvalid, &n, &errors)) {
    case PLAT_AN_BATCH_OK:
        break;
    case PLAT_AN_BATCH_SHAPE:
        httpd_error(r, 422, "validation_failed",
                    "batch must be a non-empty array of events");
        goto cleanup;
    case PLAT_AN_BATCH_TOO_LARGE:
        httpd_error(r, 413, "batch_too_large",
                    "batch of %zu events; at most %ld per request", n,
                    in->set->max_batch);
        goto cleanup;
    default:
        httpd_error(r, 500, "internal_error", "out of memory");
        goto cleanup;
    }
    if (m_invalid != NULL && n > nvalid) {
        const char *lv[1] = {"invalid"};
        metrics_inc_labels(m_invalid, lv, (double)(n - nvalid));
    }
    if (nvalid == 0) {
        if (json_object_get(body, "batch") == NULL) {
            httpd_error(r, 422, "validation_failed", "%s",
                        json_string_value(json_object_get(
                            json_array_get(errors, 0), "message")));
        } else {
            reply_invalid(r, errors);
            errors = NULL;
        }
        goto cleanup;
    }
    if (in->ctx->analytics == NULL) {
        reply_write_error(r, PLAT_AN_STOPPED);
        goto cleanup;
    }
    rc = plat_an_writer_submit_take(in->ctx->analytics, evs, nvalid,
                                    &stored, &dups);
    evs = NULL;
    nvalid = 0;
    if (rc != PLAT_AN_OK) {
        if (rc != PLAT_AN_OVERLOADED)
            log_kv(LOG_LVL_WARN, &r->log, "analytics events not stored",
                   "result", rc == PLAT_AN_UNAVAILABLE ? "unavailable"
                             : rc == PLAT_AN_TIMEOUT   ? "timeout"
                                                       : "error",
                   NULL);
        reply_write_error(r, rc);
        goto cleanup;
    }
    httpd_reply_json(r, 202,
                     json_pack("{s:I, s:I, s:I, s:O}", "stored",
                               (json_int_t)stored, "duplicates",
                               (json_int_t)dups, "rejected",
                               (json_int_t)json_array_size(errors),
                               "errors", errors));
cleanup:
    for (size_t i = 0; i < nvalid; i++)
        plat_an_event_cleanup(&evs[i]);
    free(evs);
    json_decref(errors);
    json_decref(body);
}

/*
 * The batch's parse tree lives in a per-request arena (jsonarena.h: a
 * 100-event batch is ~2,500 allocations; nothing of the tree outlives
 * events_in(), which copies what it keeps into the events).
 */
static void h_events(struct httpd_req *r, void *arg)
{
    struct jarena arena;

    jarena_init(&arena);
    events_in(r, arg, &arena);
    jarena_end(&arena);
}

int plat_an_ingest_routes(struct httpd_server *s, struct plat_ctx *ctx,
                          const struct plat_an_settings *set)
{
    static const char *const result[1] = {"result"};

    ingest_arg.ctx = ctx;
    ingest_arg.set = set;
    m_invalid = metrics_family(metrics_default(), METRICS_COUNTER,
                               "analytics_events_total",
                               "Events written by result (stored, "
                               "duplicate, failed).",
                               1, result, NULL, 0);
    return httpd_route(s, "POST", "/analytics/events", h_events,
                       &ingest_arg, set->max_body);
}
