/*
 * pgexec — one parameterised statement on a pooled connection, with the
 * failure mapping the automation API modules share (files, datasets,
 * workflows).
 */
#ifndef AUTO_PGEXEC_H
#define AUTO_PGEXEC_H

#include <libpq-fe.h>

#include "auto.h"

/*
 * Runs sql with n text params on a connection from pg (waiting up to
 * wait_ms for one). AUTO_OK sets *res (the caller PQclear's); otherwise
 * *res is NULL and the result is AUTO_EUNAVAIL (no connection, or
 * PostgreSQL went away), AUTO_EINVAL (SQLSTATE class 22, a value
 * PostgreSQL rejected; logged at info) or AUTO_EDB (logged as an error
 * "<what> statement failed"). Any thread.
 */
enum auto_res auto_pg_exec(struct pgpool *pg, int wait_ms, const char *what,
                           const char *sql, int n,
                           const char *const *params, PGresult **res);

#endif
