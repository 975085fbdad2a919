/*
 * workflows — cron workflows on top of the job queue (auto.h).
 *
 * Modules (prefix auto_):
 *   workflows_check.c  validation of a workflow body (pure; unit-tested)
 *   workflows.c        /automation/workflows HTTP API (CRUD, run, runs)
 *   scheduler.c        the per-replica scheduler thread and its slot plan
 *   steps.c            the emit_event job type (steps that are not jobs
 *                      of an existing type)
 *   events.c           job/run events: Redis publish, SSE at
 *                      /automation/events
 *
 * Storage (migrations/0002_workflows.sql): automation.workflows, .runs
 * (unique (workflow_id, scheduled_at): one run per cron slot whichever
 * replica fires it), .run_steps (step -> job). automation.fire_slot()
 * creates a run and enqueues its first step job in one transaction; the
 * trigger jobs_step_done enqueues the next step (or finishes/fails the
 * run) in the transaction that stores a step job's outcome.
 *
 * A step is {"type": <job type>, "args": {...}, "name"?, "max_attempts"?}.
 * A run is running -> succeeded | failed (a step job went dead) |
 * cancelled (a step was cancelled, or overlap "replace") | skipped
 * (overlap "forbid" while another run was active).
 */
#ifndef BASALT_AUTO_WORKFLOWS_H
#define BASALT_AUTO_WORKFLOWS_H

#include <stdint.h>

#include "auto.h"
#include "cron.h"
#include "redispool/redispool.h"

#define AUTO_WF_NAME_MAX 200
#define AUTO_WF_STEPS_MAX 50
#define AUTO_WF_TZ_MAX 64
#define AUTO_WF_SCHEDULE_MAX 256

/* ---- workflows_check.c ------------------------------------------------ */

/*
 * Checks (and normalises) a workflow body for POST (`partial` 0: name and
 * steps required) or PATCH (`partial` 1: only given fields checked).
 * Fields: name, schedule (cron text or null), timezone, enabled, steps,
 * missed_run, overlap. An impossible schedule ("0 0 30 2 *") is refused by
 * asking auto_cron_next for a slot. Steps get "args" {} and
 * "max_attempts" (default_max_attempts) filled in, in place.
 * Returns 0, or -1 with the offending field ("steps[1].args.url") and a
 * reason in field/why.
 */
int auto_wf_check(json_t *body, int partial, int default_max_attempts,
                  char *field, size_t fieldlen, char *why, size_t whylen);

/* ---- events.c ------------------------------------------------------- */

/*
 * Events are best effort: they go through a bounded in-memory queue to a
 * publisher thread (PUBLISH on AUTO_EVENTS_CHANNEL), and a subscriber
 * thread fans the channel out to this replica's SSE clients. When Redis is
 * away events are dropped; state always lives in PostgreSQL.
 *
 * Event JSON: {"kind":"job","id","job_type","state","owner_id","attempts",
 * "at"} or {"kind":"run","id","workflow_id","state","owner_id","trigger",
 * "scheduled_at","error","at"}.
 */
#define AUTO_EVENTS_CHANNEL "automation:events"

struct auto_events;

/* New hub; NULL on OOM or a malformed URL. pg (borrowed) looks up the run
 * of a finished step job. Threads start with auto_events_start. */
struct auto_events *auto_events_new(const char *redis_url,
                                    struct pgpool *pg, int keepalive_s);
int auto_events_start(struct auto_events *e);
/* Stops threads, ends SSE streams, frees. NULL is fine. */
void auto_events_free(struct auto_events *e);
/* Asks SSE streams to end (drain) without freeing. */
void auto_events_shutdown(struct auto_events *e);

/* Queues an event (takes ownership of ev; must carry "owner_id").
 * Never blocks; drops when the queue is full. Any thread; e may be NULL. */
void auto_events_emit(struct auto_events *e, json_t *ev);

/* The job hook for struct auto_pool_opts.on_job (arg = the hub). */
void auto_events_on_job(void *arg, const struct auto_job *j,
                        const char *state);

/* Emits a run event from a run JSON (automation.run_json shape). */
void auto_events_emit_run(struct auto_events *e, const json_t *run);

/* Registers GET /automation/events (SSE). */
int auto_events_routes(struct httpd_server *s, struct auto_events *e,
                       const struct auto_auth *auth);

/* ---- scheduler.c ------------------------------------------------------ */

#define AUTO_SCHED_FIRE_MAX 64

/*
 * What one scheduler pass does for one workflow (pure). Slots are walked
 * from cursor_ms (exclusive) to now_ms (inclusive). A slot older than
 * grace_ms is missed: `skip` drops it, `run_once` turns all missed slots
 * into one catch-up run keyed by the first missed slot (the same key on
 * every replica, so the unique index dedupes it). Slots within grace_ms
 * are on time and each fires.
 */
struct auto_sched_plan {
    int64_t missed_first;   /* 0: nothing missed */
    int64_t missed_cursor;  /* cursor after handling the missed slots */
    int catch_up;           /* 1: fire missed_first as a catch-up run */
    int64_t fire[AUTO_SCHED_FIRE_MAX];
    int nfire;
    int64_t next_ms;        /* first slot after now_ms; 0 if none */
};

/* 0, or a negative enum auto_cron_status (impossible schedule, bad tz). */
int auto_sched_plan(const struct auto_cron *c, const char *tz,
                    int64_t cursor_ms, int64_t now_ms, int64_t grace_ms,
                    int run_once, struct auto_sched_plan *out);

struct auto_sched_opts {
    struct pgpool *pg;             /* borrowed */
    struct auto_events *events;    /* may be NULL */
    int max_wait_ms;               /* longest sleep between passes */
    int grace_ms;                  /* older slots are "missed" */
};

struct auto_sched;
/* Starts the scheduler thread; NULL on failure. */
struct auto_sched *auto_sched_start(const struct auto_sched_opts *o);
/* Stops and joins; NULL is fine. */
void auto_sched_stop(struct auto_sched *s);
/* One pass now (tests): fires what is due. Returns runs created, or -1;
 * *next_ms (may be NULL): ms until the next slot is due, -1 if none. */
int auto_sched_pass(struct pgpool *pg, struct auto_events *ev, int grace_ms,
                    int64_t *next_ms);

/* ---- steps.c ------------------------------------------------------- */

/* emit_event needs the platform: PLATFORM_URL, INTERNAL_TOKEN. Set once at
 * start before workers run (strings copied; NULL/"" = unset). */
void auto_steps_init(const char *platform_url, const char *internal_token);
void auto_steps_cleanup(void);

/* The emit_event job type: {"event", "properties"?, "distinct_id"?}
 * posted to
 * PLATFORM_URL/analytics/events as the job's owner. */
int auto_emit_event_check(const json_t *args, char *field, size_t fl,
                          char *why, size_t wl);
enum auto_outcome auto_emit_event_run(struct auto_job_ctx *ctx,
                                      const json_t *args);

/* ---- workflows.c ------------------------------------------------------ */

struct auto_wf_api {
    struct pgpool *pg;              /* borrowed */
    const struct auto_auth *auth;   /* borrowed */
    struct auto_events *events;     /* may be NULL */
    int default_max_attempts;
};

/* Registers /automation/workflows routes. 0 or -1. */
int auto_wf_routes(struct httpd_server *s, struct auto_wf_api *api);

/* Starts a manual run (kind "manual"); *run_out: run JSON. */
enum auto_res auto_wf_run_now(struct pgpool *pg, long long wid,
                              const char *owner, json_t **run_out);

#endif
