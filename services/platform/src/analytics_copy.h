/*
 * analytics_copy — one analytics writer connection and the transaction
 * it runs per group commit (used by analytics_writer.c).
 *
 * plat_an_conn_write() writes `n` rows in ONE transaction:
 *   1. rows repeating an earlier row's message_id from the same owner are
 *      skipped (in memory),
 *   2. the others' (owner_key, message_id) are COPYed into
 *      analytics_dedupe (ids are unique per owner, migration 0005); when
 *      one is there already (a retry: unique violation) the transaction
 *      starts over with them inserted ON CONFLICT DO NOTHING (one prepared
 *      statement, arrays as parameters) and only the rows whose id was
 *      new go on,
 *   3. they are COPYed (binary format) straight into analytics_events,
 *   4. their counts per (owner, event, hour), aggregated in memory, and
 *      their presence keys not known to be committed go into ONE pending
 *      rollup row (analytics_rollup_pending, migration 0004), which
 *      plat_an_rollup_apply() later folds into analytics_hourly /
 *      analytics_hourly_ids; the group takes no lock on rollup rows,
 *   5. COMMIT.
 * See analytics_group.h. No staging table: each row crosses the wire
 * once as COPY data plus its id, and PostgreSQL writes it once.
 *
 * Thread-safety: a struct plat_an_conn belongs to one thread.
 */
#ifndef PLAT_ANALYTICS_COPY_H
#define PLAT_ANALYTICS_COPY_H

#include <libpq-fe.h>
#include <stddef.h>

#include "analytics.h"
#include "analytics_known.h"
#include "analytics_writer.h"

/* Groups that dedupe with ON CONFLICT after a COPY of ids met an id
 * already stored (step 2). */
#define PLAT_AN_DEDUPE_SLOW_GROUPS 16

struct plat_an_conn {
    const char *conninfo;       /* borrowed libpq URI / key=value */
    PGconn *conn;               /* NULL while disconnected */
    double last_connect_fail;   /* monotonic s; 0 after success */
    char *buf;                  /* COPY data being built */
    size_t len, cap;
    struct plat_an_known known; /* presence keys seen committed */
    int slow_groups;            /* groups left on the ON CONFLICT path */
};

/*
 * Connects when not connected (session TimeZone UTC, prepared
 * statements).
 * After a failure, further attempts within 0.25 s fail at once so a down
 * database fails requests fast. 0, or -1 (logged once per outage).
 */
int plat_an_conn_open(struct plat_an_conn *w);

/*
 * Writes rows[0..n) as above. PLAT_AN_OK: committed, each row's `stored`
 * is 1 when it was new, 0 when a duplicate. PLAT_AN_UNAVAILABLE: the
 * connection failed (closed; nothing acknowledged — the commit may or may
 * not have happened, which message_id dedupe makes safe to retry).
 * PLAT_AN_ERROR: an SQL error, rolled back. `stored` is 0 on failure.
 */
enum plat_an_result plat_an_conn_write(struct plat_an_conn *w,
                                      struct plat_an_event **rows, size_t n);

/* Closes the connection (if any); the struct stays usable. */
void plat_an_conn_close(struct plat_an_conn *w);

/* Closes and frees the buffer. */
void plat_an_conn_cleanup(struct plat_an_conn *w);

#endif
