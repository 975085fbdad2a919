/*
 * workflows_check — validation of workflow bodies (workflows.h). Pure apart
 * from ICU (time zones, next slot): unit-tested as a table.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "workflows.h"

static int bad(char *field, size_t fl, char *why, size_t wl, const char *f,
               const char *w)
{
    snprintf(field, fl, "%s", f);
    snprintf(why, wl, "%s", w);
    return -1;
}

static int one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

/* An enum field: absent -> def (unless partial), else one of set. */
static int check_enum(json_t *body, const char *key, const char *def,
                      const char *const *set, int partial, char *field,
                      size_t fl, char *why, size_t wl, const char *msg)
{
    json_t *v = json_object_get(body, key);

    if (!v) {
        if (!partial)
            json_object_set_new(body, key, json_string(def));
        return 0;
    }
    if (!json_is_string(v) || !one_of(json_string_value(v), set))
        return bad(field, fl, why, wl, key, msg);
    return 0;
}

static int check_step(json_t *step, size_t i, int default_max_attempts,
                      char *field, size_t fl, char *why, size_t wl)
{
    static const char *const keys[] = {"type", "args", "name",
                                       "max_attempts", NULL};
    const struct auto_job_type *t;
    json_t *type, *args, *name, *ma, *v;
    const char *k;
    char sub[96], pre[32];

    snprintf(pre, sizeof pre, "steps[%zu]", i);
    if (!json_is_object(step))
        return bad(field, fl, why, wl, pre, "must be an object");
    json_object_foreach(step, k, v) {
        if (!one_of(k, keys)) {
            snprintf(field, fl, "%s.%s", pre, k);
            snprintf(why, wl, "is not a known step field");
            return -1;
        }
    }
    type = json_object_get(step, "type");
    snprintf(sub, sizeof sub, "%s.type", pre);
    if (!json_is_string(type))
        return bad(field, fl, why, wl, sub, "must be a job type name");
    t = auto_job_type_find(json_string_value(type));
    if (!t)
        return bad(field, fl, why, wl, sub, "is not a known job type");
    args = json_object_get(step, "args");
    if (!args) {
        args = json_object();
        json_object_set_new(step, "args", args);
    }
    snprintf(sub, sizeof sub, "%s.args", pre);
    if (!json_is_object(args))
        return bad(field, fl, why, wl, sub, "must be an object");
    if (t->check) {
        char f2[64] = "", w2[160] = "";

        if (t->check(args, f2, sizeof f2, w2, sizeof w2) != 0) {
            snprintf(field, fl, "%s.%s", pre, f2);
            snprintf(why, wl, "%s", w2);
            return -1;
        }
    }
    name = json_object_get(step, "name");
    snprintf(sub, sizeof sub, "%s.name", pre);
    if (name && !json_is_null(name) &&
        (!json_is_string(name) || json_string_length(name) == 0 ||
         json_string_length(name) > AUTO_WF_NAME_MAX))
        return bad(field, fl, why, wl, sub,
                   "must be a string of 1 to 200 bytes");
    ma = json_object_get(step, "max_attempts");
    snprintf(sub, sizeof sub, "%s.max_attempts", pre);
    if (!ma)
        json_object_set_new(step, "max_attempts",
                            json_integer(default_max_attempts));
    else if (!json_is_integer(ma) || json_integer_value(ma) < 1 ||
             json_integer_value(ma) > 100)
        return bad(field, fl, why, wl, sub, "must be an integer from 1 to 100");
    return 0;
}

/* The schedule must parse and fire at least once in the horizon. */
static int check_schedule(const char *expr, const char *tz, char *field,
                          size_t fl, char *why, size_t wl)
{
    struct auto_cron c;
    char err[AUTO_CRON_ERR_MAX];
    int64_t next;

    if (strlen(expr) > AUTO_WF_SCHEDULE_MAX)
        return bad(field, fl, why, wl, "schedule", "is too long");
    if (auto_cron_parse(expr, &c, err, sizeof err) != 0)
        return bad(field, fl, why, wl, "schedule", err);
    if (auto_cron_next(&c, tz, (int64_t)time(NULL) * 1000, &next, err,
                       sizeof err) != AUTO_CRON_OK)
        return bad(field, fl, why, wl, "schedule", err);
    return 0;
}

int auto_wf_check(json_t *body, int partial, int default_max_attempts,
                  char *field, size_t fl, char *why, size_t wl)
{
    static const char *const keys[] = {"name", "schedule", "timezone",
                                       "enabled", "steps", "missed_run",
                                       "overlap", NULL};
    static const char *const ro[] = {"id", "owner_id", "created_at",
                                     "updated_at", NULL};
    static const char *const missed[] = {"skip", "run_once", NULL};
    static const char *const overlap[] = {"allow", "forbid", "replace",
                                          NULL};
    json_t *v, *steps, *sched, *tzv;
    const char *k, *tz = "UTC";
    void *tmp;
    char err[AUTO_CRON_ERR_MAX];
    size_t i;

    if (!json_is_object(body))
        return bad(field, fl, why, wl, "body", "must be an object");
    json_object_foreach_safe(body, tmp, k, v) {
        if (one_of(k, ro)) {
            json_object_del(body, k);   /* read-only: a GET round trip */
        } else if (!one_of(k, keys)) {
            snprintf(field, fl, "%s", k);
            snprintf(why, wl, "is not a known field");
            return -1;
        }
    }
    v = json_object_get(body, "name");
    if (v ? !json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > AUTO_WF_NAME_MAX
          : !partial)
        return bad(field, fl, why, wl, "name",
                   "must be a string of 1 to 200 bytes");
    tzv = json_object_get(body, "timezone");
    if (tzv) {
        if (!json_is_string(tzv) ||
            json_string_length(tzv) > AUTO_WF_TZ_MAX ||
            auto_cron_tz_check(json_string_value(tzv), err, sizeof err) !=
                AUTO_CRON_OK)
            return bad(field, fl, why, wl, "timezone",
                       "must be an IANA time zone such as Europe/Berlin");
        tz = json_string_value(tzv);
    } else if (!partial) {
        json_object_set_new(body, "timezone", json_string("UTC"));
    }
    sched = json_object_get(body, "schedule");
    if (sched && !json_is_null(sched)) {
        if (!json_is_string(sched))
            return bad(field, fl, why, wl, "schedule",
                       "must be a cron expression or null");
        if (check_schedule(json_string_value(sched), tz, field, fl, why,
                           wl) != 0)
            return -1;
    } else if (!sched && !partial) {
        json_object_set_new(body, "schedule", json_null());
    }
    v = json_object_get(body, "enabled");
    if (v && !json_is_boolean(v))
        return bad(field, fl, why, wl, "enabled", "must be true or false");
    if (!v && !partial)
        json_object_set_new(body, "enabled", json_true());
    if (check_enum(body, "missed_run", "skip", missed, partial, field, fl,
                   why, wl, "must be \"skip\" or \"run_once\"") != 0 ||
        check_enum(body, "overlap", "allow", overlap, partial, field, fl, why,
                   wl, "must be \"allow\", \"forbid\" or \"replace\"") != 0)
        return -1;
    steps = json_object_get(body, "steps");
    if (!steps && partial)
        return 0;
    if (!json_is_array(steps) || json_array_size(steps) == 0 ||
        json_array_size(steps) > AUTO_WF_STEPS_MAX)
        return bad(field, fl, why, wl, "steps",
                   "must be an array of 1 to 50 steps");
    json_array_foreach(steps, i, v) {
        if (check_step(v, i, default_max_attempts, field, fl, why, wl) != 0)
            return -1;
    }
    return 0;
}
