/*
 * analytics_group — the SQL of one analytics group commit (used by
 * analytics_copy.c), the group passed as array parameters, no staging
 * table:
 *   1. plat_an_group_dedupe(): the rows' message_ids go into
 *      analytics_dedupe ON CONFLICT DO NOTHING; rows whose id was new
 *      get `stored` = 1,
 *   2. plat_an_group_roll(): counts per (owner, event, hour) of the stored
 *      rows, aggregated here, are added to analytics_hourly under the four
 *      rollup keys (scope owner and "*", event name and "" = all events);
 *      presence keys not known yet go into analytics_hourly_ids ON
 *      CONFLICT DO NOTHING and the rows that insert returns raise `uniq`,
 * both in the caller's open transaction. Upserts are sorted by key so
 * concurrent writers (replicas) lock rows in one order.
 *
 * Thread-safety: per connection, like the PGconn.
 */
#ifndef PLAT_ANALYTICS_GROUP_H
#define PLAT_ANALYTICS_GROUP_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stddef.h>

#include "analytics.h"

/* Per-row flags while a group is written. */
#define PLAT_AN_ROW_DUP 1       /* repeats an earlier row's message_id */
#define PLAT_AN_ROW_KNOWN 2     /* its named-event presence keys exist */
#define PLAT_AN_ROW_KNOWN_ALL 4 /* same for its all-events ("") keys */

/* Prepares the statements on a new session; 0 or -1. */
int plat_an_group_prepare(PGconn *c);

/* Hours since the epoch, rounded down (date_trunc('hour') in UTC). */
long long plat_an_hour_of(int64_t us);

/* FNV-1a of a NUL-terminated string: in-memory hash tables only. */
uint64_t plat_an_hash_text(const char *s);

/*
 * Step 1 over rows[i] without PLAT_AN_ROW_DUP in flags[i]: sets `stored`
 * to 1 for rows whose message_id was new (others untouched). Returns how
 * many were new, or -1 (SQL error or out of memory).
 */
long plat_an_group_dedupe(PGconn *c, struct plat_an_event **rows,
                          size_t n, const char *flags);

/* Step 2 over the rows with `stored` set; 0 or -1. */
int plat_an_group_roll(PGconn *c, struct plat_an_event **rows, size_t n,
                       const char *flags);

#endif
