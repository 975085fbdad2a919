#include "pgexec.h"

#include <stdio.h>
#include <string.h>

#include "log/log.h"

enum auto_res auto_pg_exec(struct pgpool *pg, int wait_ms, const char *what,
                           const char *sql, int n,
                           const char *const *params, PGresult **res)
{
    PGconn *c = pgpool_acquire(pg, wait_ms);
    PGresult *r;
    ExecStatusType st;
    enum auto_res rc;
    char msg[96];

    *res = NULL;
    if (!c)
        return AUTO_EUNAVAIL;
    r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        pgpool_release(pg, c, 0);
        *res = r;
        return AUTO_OK;
    }
    if (pgpool_is_unavailable(c, r)) {
        rc = AUTO_EUNAVAIL;
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

        rc = state && strncmp(state, "22", 2) == 0 ? AUTO_EINVAL : AUTO_EDB;
    }
    snprintf(msg, sizeof msg, "%s statement failed", what);
    log_kv(rc == AUTO_EINVAL ? LOG_LVL_INFO : LOG_LVL_ERROR, NULL, msg,
           "error", PQresultErrorMessage(r), NULL);
    PQclear(r);
    pgpool_release(pg, c, rc == AUTO_EUNAVAIL);
    return rc;
}
