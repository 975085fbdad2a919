/*
 * The platform schema on a unit-test database (scripts/run-unit-tests
 * makes one database per test binary): where the migrations are, and a
 * reset to an empty schema so the first migrate really applies. Never
 * point BASALT_TEST_DATABASE_URL at a database whose schema matters.
 */
#ifndef PLAT_SCHEMA_FIXTURE_H
#define PLAT_SCHEMA_FIXTURE_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

/* services/platform/migrations, or BASALT_PLATFORM_MIGRATIONS (tests run
 * from the repository root). */
static inline const char *migrations_dir(void)
{
    const char *d = getenv("BASALT_PLATFORM_MIGRATIONS");
    return d != NULL && d[0] != '\0' ? d : "services/platform/migrations";
}

/* Drops schema platform; returns BASALT_TEST_DATABASE_URL. Exits (fails,
 * never skips) when it is unset or the reset fails. */
static inline const char *reset_platform_schema(void)
{
    const char *url = getenv("BASALT_TEST_DATABASE_URL");
    PGconn *c;
    PGresult *res;

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "BASALT_TEST_DATABASE_URL is not set; run through "
                        "make unit (scripts/run-unit-tests)\n");
        exit(EXIT_FAILURE);
    }
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to BASALT_TEST_DATABASE_URL: %s",
                PQerrorMessage(c));
        exit(EXIT_FAILURE);
    }
    res = PQexec(c, "SET client_min_messages = warning; "
                    "DROP SCHEMA IF EXISTS platform CASCADE");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "cannot reset schema platform: %s",
                PQerrorMessage(c));
        exit(EXIT_FAILURE);
    }
    PQclear(res);
    PQfinish(c);
    return url;
}

#endif
