/*
 * analytics_writer — group commit for analytics events.
 *
 * ANALYTICS_WRITERS writer threads, each owning one PostgreSQL connection
 * (not from the pool, so ingestion never starves auth of connections),
 * share one queue. Request threads queue their batches and wait; a free
 * writer takes everything queued (up to commit_max events) and writes it
 * in ONE transaction (analytics_copy.h: dedupe on message_id, COPY of the
 * new events, one pending rollup row, COMMIT), then wakes every waiting
 * request with its own stored/duplicate counts. With two writers one
 * group's COPY and inserts overlap the other's commit (fsync).
 * A request is answered only after COMMIT succeeded, so nothing
 * acknowledged is lost; when PostgreSQL is unreachable every request of
 * the group gets PLAT_AN_UNAVAILABLE and the writer reconnects for the
 * next group. A group that fails for another reason (e.g. a deadlock
 * between writers) is retried one request at a time, so one bad request
 * cannot fail its neighbours.
 *
 * Writer 0 also creates monthly partitions ahead (analytics_maint.c) at
 * start and every maintenance_interval_s, and folds pending rollup rows
 * into the rollups (plat_an_rollup_apply()) every rollup_interval_ms
 * while groups commit, and once more at stop; it vacuums the pending
 * table every few seconds after that.
 *
 * Thread-safety: submit/enqueue from any thread; new/start/stop/free from
 * the main thread.
 */
#ifndef PLAT_ANALYTICS_WRITER_H
#define PLAT_ANALYTICS_WRITER_H

#include <stddef.h>

#include "analytics.h"

struct plat_an_writer;

enum plat_an_result {
    PLAT_AN_OK = 0,
    PLAT_AN_UNAVAILABLE,  /* PostgreSQL unreachable: nothing committed */
    PLAT_AN_OVERLOADED,   /* queue full: nothing queued */
    PLAT_AN_TIMEOUT,      /* no answer in time: outcome unknown */
    PLAT_AN_ERROR,        /* SQL error: nothing committed */
    PLAT_AN_STOPPED,      /* writer not running */
};

/*
 * New writer for `conninfo` (copied) with the limits in `set` (must
 * outlive the writer). Connects lazily. NULL on OOM.
 */
struct plat_an_writer *plat_an_writer_new(const char *conninfo,
                                          const struct plat_an_settings *set);

/* Starts the thread. 0, or -1 (logged). */
int plat_an_writer_start(struct plat_an_writer *w);

/*
 * Stops taking new work, writes what is queued, joins the thread.
 * Idempotent. Waiting requests all get an answer.
 */
void plat_an_writer_stop(struct plat_an_writer *w);

/* Stops (if needed) and frees. NULL is fine. */
void plat_an_writer_free(struct plat_an_writer *w);

/*
 * Writes `n` events (a malloc'd array; ownership moves here in every
 * case: the writer frees it, events cleaned up) and blocks until their
 * transaction committed or failed, at most set->commit_timeout_ms.
 * On PLAT_AN_OK, *stored and *duplicates get the counts (their sum is n).
 */
enum plat_an_result plat_an_writer_submit_take(struct plat_an_writer *w,
                                               struct plat_an_event *evs,
                                               size_t n, size_t *stored,
                                               size_t *duplicates);

/*
 * Queues one event without waiting (best effort: self-tracking). Takes
 * `ev` (malloc'd) in every case. PLAT_AN_OK when queued, else the event
 * was dropped (PLAT_AN_OVERLOADED / PLAT_AN_STOPPED).
 */
enum plat_an_result plat_an_writer_enqueue_take(struct plat_an_writer *w,
                                                struct plat_an_event *ev);

#endif
