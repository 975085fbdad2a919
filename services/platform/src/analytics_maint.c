#include "analytics_maint.h"

#include <stdio.h>
#include <stdlib.h>

#include "log/log.h"

int plat_an_ensure_partitions(PGconn *c, long months_ahead)
{
    char arg[24];
    const char *params[1] = {arg};
    PGresult *res;
    int made = -1;
    char *end;
    long v;

    snprintf(arg, sizeof(arg), "%ld", months_ahead);
    res = PQexecParams(c,
                       "SELECT platform.analytics_ensure_partitions($1::int)",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_kv(LOG_LVL_WARN, NULL, "analytics partition maintenance failed",
               "error", PQerrorMessage(c), NULL);
        goto cleanup;
    }
    v = strtol(PQgetvalue(res, 0, 0), &end, 10);
    if (*end != '\0' || v < 0)
        goto cleanup;
    made = (int)v;
    if (made > 0)
        log_kv(LOG_LVL_INFO, NULL, "analytics partitions created", "count",
               PQgetvalue(res, 0, 0), NULL);
cleanup:
    PQclear(res);
    return made;
}

long plat_an_prune_dedupe(PGconn *c, long days)
{
    char arg[24];
    const char *params[1] = {arg};
    PGresult *res;
    long n = -1;
    char *end;

    if (days <= 0)
        return 0;
    snprintf(arg, sizeof(arg), "%ld", days);
    res = PQexecParams(c,
                       "DELETE FROM platform.analytics_dedupe WHERE "
                       "received_at < now() - $1::int * interval '1 day'",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_kv(LOG_LVL_WARN, NULL, "analytics dedupe pruning failed",
               "error", PQerrorMessage(c), NULL);
        goto cleanup;
    }
    n = strtol(PQcmdTuples(res), &end, 10);
    if (*end != '\0')
        n = 0;
    if (n > 0)
        log_kv(LOG_LVL_INFO, NULL, "analytics dedupe ids pruned", "count",
               PQcmdTuples(res), NULL);
cleanup:
    PQclear(res);
    return n;
}
