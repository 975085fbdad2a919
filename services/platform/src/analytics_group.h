/*
 * analytics_group — the SQL of one analytics group commit (used by
 * analytics_copy.c), the group passed as array parameters, no staging
 * table:
 *   1. plat_an_group_dedupe(): the rows' (owner_key, message_id) go into
 *      analytics_dedupe ON CONFLICT DO NOTHING; rows whose pair was new
 *      get `stored` = 1,
 *   2. plat_an_group_roll(): counts per (owner, event, hour) of the stored
 *      rows, aggregated here, and the presence keys not known yet go into
 *      ONE pending rollup row,
 * both in the caller's open transaction. plat_an_rollup_apply() later
 * adds pending counts to analytics_hourly under the four rollup keys
 * (scope owner and "*", event name and "" = all events), inserts the
 * presence keys into analytics_hourly_ids ON CONFLICT DO NOTHING and
 * raises `uniq` by the rows that insert returns; its upserts are sorted by
 * key so concurrent appliers lock rows in one order.
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
#define PLAT_AN_ROW_DUP 1       /* repeats an earlier row's owner + id */
#define PLAT_AN_ROW_KNOWN 2     /* its named-event presence keys exist */
#define PLAT_AN_ROW_KNOWN_ALL 4 /* same for its all-events ("") keys */

/* Prepares the statements on a new session; 0 or -1. */
int plat_an_group_prepare(PGconn *c);

/* Hours since the epoch, rounded down (date_trunc('hour') in UTC). */
long long plat_an_hour_of(int64_t us);

/*
 * The scope of message_id dedupe for `owner` (migration 0005): the first
 * 8 bytes of SHA-256(owner) as a big-endian two's-complement int64, as
 * platform.analytics_owner_key() computes it in SQL.
 */
int64_t plat_an_owner_key(const char *owner);

/* FNV-1a of (owner_key, message_id): in-memory hash tables only. */
uint64_t plat_an_dedupe_hash(int64_t owner_key, const char *message_id);

/*
 * Step 1 over rows[i] without PLAT_AN_ROW_DUP in flags[i] (owner_key
 * set): sets `stored` to 1 for rows whose (owner_key, message_id) was new
 * (others untouched). Returns how many were new, or -1 (SQL error, out
 * of memory, or a result that matches no row).
 */
long plat_an_group_dedupe(PGconn *c, struct plat_an_event **rows,
                          size_t n, const char *flags);

/*
 * Step 2 over the rows with `stored` set: their counts and new presence
 * keys as one pending rollup row (migration 0004); 0 or -1.
 */
int plat_an_group_roll(PGconn *c, struct plat_an_event **rows, size_t n,
                       const char *flags);

/*
 * Folds every pending rollup row committed so far into the rollup tables
 * (platform.analytics_rollup_apply(), its own transaction: call it
 * outside one). Returns how many pending rows it applied, or -1.
 */
long plat_an_rollup_apply(PGconn *c);

/* The statement plat_an_rollup_apply() runs (one row, one bigint). */
#define PLAT_AN_ROLLUP_APPLY_SQL "SELECT platform.analytics_rollup_apply()"

#endif
