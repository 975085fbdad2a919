/*
 * pgpool — a fixed-size pool of libpq connections.
 *
 * libpq requires a PGconn to be used by one thread at a time; the pool hands
 * each connection to one caller between acquire and release. Connections are
 * opened lazily and re-opened after failures, so a PostgreSQL restart heals
 * by itself: callers see errors (and answer 503) while it is down.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef BASALT_PGPOOL_H
#define BASALT_PGPOOL_H

#include <libpq-fe.h>

struct pgpool;

/*
 * New pool of at most `size` connections to `conninfo` (a libpq URI or
 * key=value string, copied). `connect_timeout_s` bounds each connect.
 * Opens nothing yet. NULL on OOM or size < 1.
 */
struct pgpool *pgpool_new(const char *conninfo, int size,
                          int connect_timeout_s);

/* Closes every connection and frees. All connections must be released. */
void pgpool_free(struct pgpool *p);

/*
 * A connection for the caller's exclusive use, waiting at most `wait_ms`
 * for one to be free. Connects (or reconnects a broken one) as needed.
 * NULL when none is free in time or PostgreSQL can't be reached; the reason
 * goes to the log at warn level.
 */
PGconn *pgpool_acquire(struct pgpool *p, int wait_ms);

/*
 * Gives the connection back. `broken` != 0 (or a connection whose status is
 * not CONNECTION_OK, or which is inside a transaction) closes it, so the
 * next acquire opens a fresh one.
 */
void pgpool_release(struct pgpool *p, PGconn *c, int broken);

/* Runs "SELECT 1" on a pooled connection: 0 when it answers, else -1. */
int pgpool_ping(struct pgpool *p);

/*
 * 1 when a failed result/connection means PostgreSQL is unreachable (the
 * caller should answer 503), 0 for an ordinary SQL error.
 */
int pgpool_is_unavailable(PGconn *c, const PGresult *res);

/*
 * Applies versioned SQL migrations: every file NNNN_name.sql in `dir`, in
 * ascending NNNN order, each in its own transaction, recorded in
 * <schema>.schema_migrations(version, name, applied_at). Creates `schema`
 * if missing. Runs under pg_advisory_lock(hashtext('basalt:' || schema)),
 * so concurrent replicas apply each migration exactly once. A file whose
 * version is already recorded is skipped. Each file runs whole (several
 * statements are fine; no BEGIN/COMMIT of its own) with search_path set to
 * `schema`, public. Returns 0, or -1 (logged, with the failing file)
 * leaving the failed migration rolled back.
 */
int pgpool_migrate(struct pgpool *p, const char *schema, const char *dir);

#endif
