/*
 * analytics_maint — storage upkeep for analytics: monthly partitions of
 * platform.analytics_events created ahead of time, so inserts never land
 * in the default partition for current data, and the message_id dedupe
 * table pruned to its retention.
 *
 * Thread-safety: uses only the connection it is given (caller's thread).
 */
#ifndef PLAT_ANALYTICS_MAINT_H
#define PLAT_ANALYTICS_MAINT_H

#include <libpq-fe.h>

/*
 * Makes sure partitions exist from the current month (UTC) to
 * `months_ahead` months later (platform.analytics_ensure_partitions).
 * Returns how many were created (>= 0), or -1 on error (logged; the
 * connection may then be broken: check PQstatus).
 */
int plat_an_ensure_partitions(PGconn *c, long months_ahead);

/*
 * Forgets message_ids received more than `days` ago (a retry older than
 * that is stored again). days <= 0 keeps them forever. Returns the
 * number of ids deleted, or -1 on error (logged).
 */
long plat_an_prune_dedupe(PGconn *c, long days);

#endif
