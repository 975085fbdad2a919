/*
 * steps — the emit_event job type: posts one analytics event to the
 * platform (PLATFORM_URL/analytics/events) as the job's owner, through the
 * internal-token trust path (X-Internal-Token + X-User-Id), the way the
 * gateway would. message_id "automation-job-<id>" lets the platform drop
 * the duplicate when a retry follows a lost reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "workflows.h"

#define EMIT_TIMEOUT_MS 10000
#define EMIT_NAME_MAX 200

/* Set once at start, before any worker runs; read-only afterwards. */
static char *platform_url;
static char *internal_token;

void auto_steps_init(const char *url, const char *token)
{
    free(platform_url);
    free(internal_token);
    platform_url = url && *url ? strdup(url) : NULL;
    internal_token = token && *token ? strdup(token) : NULL;
}

void auto_steps_cleanup(void)
{
    free(platform_url);
    free(internal_token);
    platform_url = internal_token = NULL;
}

static int bad(char *field, size_t fl, char *why, size_t wl, const char *f,
               const char *w)
{
    snprintf(field, fl, "%s", f);
    snprintf(why, wl, "%s", w);
    return -1;
}

int auto_emit_event_check(const json_t *args, char *field, size_t fl,
                          char *why, size_t wl)
{
    const json_t *ev = json_object_get(args, "event");
    const json_t *props = json_object_get(args, "properties");
    const json_t *did = json_object_get(args, "distinct_id");

    if (!json_is_string(ev) || json_string_length(ev) == 0 ||
        json_string_length(ev) > EMIT_NAME_MAX)
        return bad(field, fl, why, wl, "args.event",
                   "must be a string of 1 to 200 bytes");
    if (props && !json_is_null(props) && !json_is_object(props))
        return bad(field, fl, why, wl, "args.properties",
                   "must be an object");
    if (did && (!json_is_string(did) || json_string_length(did) == 0 ||
                json_string_length(did) > EMIT_NAME_MAX))
        return bad(field, fl, why, wl, "args.distinct_id",
                   "must be a string of 1 to 200 bytes");
    return 0;
}

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    (void)p, (void)arg;
    return sz * n;
}

static int abort_cb(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                    curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return auto_job_should_stop(arg) != 0;
}

enum auto_outcome auto_emit_event_run(struct auto_job_ctx *ctx,
                                      const json_t *args)
{
    enum auto_outcome out = AUTO_JOB_FAIL;
    struct curl_slist *hl = NULL;
    json_t *body = NULL;
    char *text = NULL, url[1024], line[512], mid[64];
    CURL *c = NULL;
    CURLcode cc;
    long status = 0;

    if (!platform_url) {
        auto_job_set_error(ctx, "PLATFORM_URL is not set");
        return AUTO_JOB_FAIL;
    }
    snprintf(mid, sizeof mid, "automation-job-%lld", ctx->job->id);
    body = json_pack("{sOsOss}", "event", json_object_get(args, "event"),
                     "properties",
                     json_object_get(args, "properties")
                         ? json_object_get(args, "properties")
                         : json_null(),
                     "message_id", mid);
    if (body && json_object_get(args, "distinct_id"))
        json_object_set(body, "distinct_id",
                        json_object_get(args, "distinct_id"));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    c = curl_easy_init();
    if (!text || !c) {
        auto_job_set_error(ctx, "out of memory");
        goto cleanup;
    }
    snprintf(url, sizeof url, "%s/analytics/events", platform_url);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    if (internal_token) {
        snprintf(line, sizeof line, "X-Internal-Token: %s", internal_token);
        hl = curl_slist_append(hl, line);
    }
    snprintf(line, sizeof line, "X-User-Id: %s", ctx->job->owner_id);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "X-Request-Id: %s", mid);
    hl = curl_slist_append(hl, line);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)EMIT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
    cc = curl_easy_perform(c);
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        int stop = auto_job_should_stop(ctx);

        out = stop ? (enum auto_outcome)stop : AUTO_JOB_ABORTED;
        goto cleanup;
    }
    if (cc != CURLE_OK) {
        auto_job_set_error(ctx, "analytics request failed: %s",
                           curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        auto_job_set_error(ctx, "analytics answered %ld", status);
        goto cleanup;
    }
    auto_job_set_result(ctx, json_pack("{sIss}", "status", (json_int_t)status,
                                       "message_id", mid));
    out = AUTO_JOB_OK;
cleanup:
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    free(text);
    json_decref(body);
    return out;
}
