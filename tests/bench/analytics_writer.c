/*
 * analytics_writer — the analytics group commit without HTTP, next to a
 * plain COPY of the same rows into the same table, in one run.
 *
 *   analytics_writer CONNINFO [SECONDS [GROUP [OWNER]]]
 *
 * Needs the platform schema (migrations applied). For SECONDS (default
 * 5) it writes groups of GROUP (default 500) events shaped like
 * analytics_load's (20 event names, 5000 distinct_ids, small properties,
 * unique message_ids) through plat_an_conn_write() — dedupe, rollups,
 * presence, events, commit — then COPYs as many rows of the same shape
 * straight into platform.analytics_events in one transaction. Prints:
 *   writer: events_per_s=<n> pg_cpu_us_per_event=<n> ...
 *   copy:   events_per_s=<n> pg_cpu_us_per_event=<n> rows=<n>
 *   ratio writer/copy = <r> (cpu: <r>)
 * (pg_cpu: the PostgreSQL backend's user+system CPU from /proc, so run
 * it on the database host.) With ANALYTICS_BENCH_STEPS set, the group is
 * written step by step and the backend's CPU per event is printed per
 * step (dedupe, roll, copy, commit). The ratio is the database side of
 * the issue-4 ingestion goal: what the HTTP path can reach at most.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The writer connection code itself, as the service builds it. */
#include "../../services/platform/src/analytics_copy.c"
#include "../../services/platform/src/analytics_event.c"
#include "../../services/platform/src/analytics_group.c"
#include "../../services/platform/src/analytics_known.c"
#include "../../services/platform/src/validation.c"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) process `pid` has used; -1 if unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], line[1024];
    FILE *f;
    char *p;
    unsigned long long ut = 0, st = 0;
    int field = 2;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (p == NULL || (p = strrchr(line, ')')) == NULL)
        return -1;
    /* Fields after "(comm)": 3 state ... 14 utime, 15 stime. */
    for (p++; *p != '\0' && field < 15; p++) {
        if (*p != ' ')
            continue;
        field++;
        if (field == 14)
            ut = strtoull(p + 1, NULL, 10);
        else if (field == 15)
            st = strtoull(p + 1, NULL, 10);
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * plat_an_conn_write() step by step, adding the backend's CPU seconds
 * per step to st[]: 0 BEGIN + dedupe, 1 rollups + presence, 2 COPY into
 * analytics_events, 3 COMMIT. Same statements, same known-key cache.
 */
static int write_steps(struct plat_an_conn *w, struct plat_an_event **rows,
                       size_t n, int pid, double *st)
{
    char *flags;
    uint64_t (*keys)[2];
    double c[5];
    int ok;

    if (group_flags(w, rows, n, &flags, &keys) != 0)
        return -1;
    c[0] = proc_cpu_s(pid);
    ok = begin_dedupe(w, rows, n, flags) >= 0;
    c[1] = proc_cpu_s(pid);
    ok = ok && plat_an_group_roll(w->conn, rows, n, flags) == 0;
    c[2] = proc_cpu_s(pid);
    ok = ok && copy_rows(w, rows, n) == 0;
    c[3] = proc_cpu_s(pid);
    ok = ok && exec_ok(w->conn, "COMMIT") == 0;
    c[4] = proc_cpu_s(pid);
    for (int i = 0; i < 4; i++)
        st[i] += c[i + 1] - c[i];
    for (size_t i = 0; ok && i < n; i++) {
        if (!rows[i]->stored)
            continue;
        if (!(flags[i] & ROW_KNOWN))
            plat_an_known_add_hash(&w->known, keys[2 * i]);
        if (!(flags[i] & ROW_KNOWN_ALL))
            plat_an_known_add_hash(&w->known, keys[2 * i + 1]);
    }
    free(keys);
    free(flags);
    return ok ? 0 : -1;
}

static long arg_long(const char *s, long def)
{
    char *end;
    long v;

    if (s == NULL)
        return def;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1) {
        fprintf(stderr, "analytics_writer: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

/* Row i of batch `seq`, as analytics_load builds them. */
static void make_row(struct plat_an_event *ev, const char *owner, long seq,
                     long i, int64_t now)
{
    char props[64];

    memset(ev, 0, sizeof(*ev));
    snprintf(ev->event, sizeof(ev->event), "bench_ev_%ld", i % 20);
    snprintf(ev->distinct_id, sizeof(ev->distinct_id), "u%04ld",
             (seq * 31 + i * 7) % 5000);
    snprintf(ev->message_id, sizeof(ev->message_id), "wb-%lld-%ld-%ld",
             (long long)now, seq, i);
    snprintf(ev->owner, sizeof(ev->owner), "%s", owner);
    snprintf(props, sizeof(props), "{\"plan\":\"pro\",\"n\":%ld}", i % 100);
    ev->properties = strdup(props);
    ev->ts_us = now;
    ev->received_us = now;
}

/* Appends `s` in COPY's text format (escaped) and `sep`: the reference
 * loads text, as psql \copy does. */
static int ref_text(struct plat_an_conn *w, const char *s, char sep)
{
    size_t n = strlen(s);

    if (buf_reserve(w, 2 * n + 1) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        switch (ch) {
        case '\\': w->buf[w->len++] = '\\'; w->buf[w->len++] = '\\'; break;
        case '\t': w->buf[w->len++] = '\\'; w->buf[w->len++] = 't'; break;
        case '\n': w->buf[w->len++] = '\\'; w->buf[w->len++] = 'n'; break;
        case '\r': w->buf[w->len++] = '\\'; w->buf[w->len++] = 'r'; break;
        default: w->buf[w->len++] = ch; break;
        }
    }
    w->buf[w->len++] = sep;
    return 0;
}

/* Bytes of WAL written so far (the server's insert position). */
static double wal_bytes(PGconn *c)
{
    PGresult *res = PQexec(c, "SELECT pg_current_wal_insert_lsn() - '0/0'");
    double v = PQresultStatus(res) == PGRES_TUPLES_OK
                   ? strtod(PQgetvalue(res, 0, 0), NULL)
                   : 0;

    PQclear(res);
    return v;
}

static int copy_reference(const char *conninfo, const char *owner,
                          long rows, double *rate, double *cpu, double *wal)
{
    PGconn *c = PQconnectdb(conninfo);
    struct plat_an_conn w;
    PGresult *res;
    double t0;
    int ok = 0;
    int64_t now = plat_an_now_us();

    memset(&w, 0, sizeof(w));
    if (PQstatus(c) != CONNECTION_OK)
        goto out;
    w.conn = c;
    *wal = wal_bytes(c);
    *cpu = proc_cpu_s(PQbackendPID(c));
    t0 = now_s();
    res = PQexec(c, "BEGIN");
    PQclear(res);
    res = PQexec(c, "COPY platform.analytics_events (ts, event, distinct_id,"
                    " owner, properties, message_id, received_at)"
                    " FROM STDIN");
    ok = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    for (long i = 0; ok && i < rows; i++) {
        struct plat_an_event ev;
        char ts[PLAT_AN_TIME_LEN];

        make_row(&ev, owner, i / 100 + 1000000, i % 100, now);
        snprintf(ev.message_id, sizeof(ev.message_id), "cp-%lld-%ld",
                 (long long)now, i);
        plat_an_time_format(ev.ts_us, ts, sizeof(ts));
        if (ref_text(&w, ts, '\t') != 0 || ref_text(&w, ev.event, '\t') ||
            ref_text(&w, ev.distinct_id, '\t') != 0 ||
            ref_text(&w, ev.owner, '\t') != 0 ||
            ref_text(&w, ev.properties, '\t') != 0 ||
            ref_text(&w, ev.message_id, '\t') != 0 ||
            ref_text(&w, ts, '\n') != 0 ||
            (w.len >= COPY_CHUNK && copy_flush(&w) != 0))
            ok = 0;
        plat_an_event_cleanup(&ev);
    }
    if (ok && (copy_flush(&w) != 0 || PQputCopyEnd(c, NULL) != 1))
        ok = 0;
    while ((res = PQgetResult(c)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            ok = 0;
        PQclear(res);
    }
    res = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
    PQclear(res);
    *rate = (double)rows / (now_s() - t0);
    *cpu = proc_cpu_s(PQbackendPID(c)) - *cpu;
    *wal = wal_bytes(c) - *wal;
out:
    if (!ok)
        fprintf(stderr, "copy failed: %s", PQerrorMessage(c));
    free(w.buf);
    PQfinish(c);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *conninfo, *owner;
    long seconds, group, groups = 0;
    long long events = 0;
    struct plat_an_conn w;
    struct plat_an_event *evs;
    struct plat_an_event **rows;
    double t0, end, took, copy_rate = 0, cpu, copy_cpu = 0, self_cpu;
    double st[4] = {0, 0, 0, 0};
    double wal, copy_wal = 0, next_apply;
    int steps = getenv("ANALYTICS_BENCH_STEPS") != NULL;
    int pid;
    int64_t now = plat_an_now_us();

    if (argc < 2) {
        fprintf(stderr, "usage: analytics_writer CONNINFO [SECONDS [GROUP "
                        "[OWNER]]]\n");
        return 2;
    }
    conninfo = argv[1];
    seconds = arg_long(argc > 2 ? argv[2] : NULL, 5);
    group = arg_long(argc > 3 ? argv[3] : NULL, 500);
    owner = argc > 4 ? argv[4] : "00000000-0000-4000-8000-00000000bench";
    evs = calloc((size_t)group, sizeof(*evs));
    rows = calloc((size_t)group, sizeof(*rows));
    if (evs == NULL || rows == NULL)
        return 1;
    memset(&w, 0, sizeof(w));
    w.conninfo = conninfo;
    if (plat_an_conn_open(&w) != 0)
        return 1;
    pid = PQbackendPID(w.conn);
    wal = wal_bytes(w.conn);
    cpu = proc_cpu_s(pid);
    self_cpu = proc_cpu_s(getpid());
    t0 = now_s();
    end = t0 + (double)seconds;
    next_apply = t0 + 0.1;
    while (now_s() < end) {
        for (long i = 0; i < group; i++) {
            /* Batches of 100 as the HTTP bench sends them: its 16
             * clients send the same sequence of batches. */
            make_row(&evs[i], owner, (groups * group + i) / 1600, i % 100,
                     now);
            snprintf(evs[i].message_id, sizeof(evs[i].message_id),
                     "wb-%lld-%ld-%ld", (long long)now, groups, i);
            rows[i] = &evs[i];
        }
        if (steps ? write_steps(&w, rows, (size_t)group, pid, st) != 0
                  : plat_an_conn_write(&w, rows, (size_t)group) !=
                        PLAT_AN_OK) {
            fprintf(stderr, "analytics_writer: group failed\n");
            return 1;
        }
        for (long i = 0; i < group; i++) {
            events += evs[i].stored;
            plat_an_event_cleanup(&evs[i]);
        }
        groups++;
        /* The service's writer 0 folds pending rollups in every
         * ANALYTICS_ROLLUP_INTERVAL_MS (100): so does this loop, on the
         * same backend, its CPU counted with the rollup step. */
        if (now_s() >= next_apply || now_s() >= end) {
            double a = proc_cpu_s(pid);

            if (plat_an_rollup_apply(w.conn) < 0) {
                fprintf(stderr, "analytics_writer: rollup apply failed: %s",
                        PQerrorMessage(w.conn));
                return 1;
            }
            st[1] += proc_cpu_s(pid) - a;
            next_apply = now_s() + 0.1;
        }
    }
    took = now_s() - t0;
    cpu = proc_cpu_s(pid) - cpu;
    self_cpu = proc_cpu_s(getpid()) - self_cpu;
    wal = wal_bytes(w.conn) - wal;
    plat_an_conn_cleanup(&w);
    if (events == 0)
        return 1;
    printf("writer: events_per_s=%.0f pg_cpu_us_per_event=%.2f "
           "client_cpu_us_per_event=%.2f wal_bytes_per_event=%.0f "
           "groups=%ld group=%ld\n",
           (double)events / took, cpu * 1e6 / (double)events,
           self_cpu * 1e6 / (double)events, wal / (double)events, groups,
           group);
    if (steps)
        printf("writer steps, pg_cpu_us_per_event: dedupe=%.2f roll+apply=%.2f "
               "copy=%.2f commit=%.2f\n", st[0] * 1e6 / (double)events,
               st[1] * 1e6 / (double)events, st[2] * 1e6 / (double)events,
               st[3] * 1e6 / (double)events);
    if (copy_reference(conninfo, owner, (long)events, &copy_rate,
                       &copy_cpu, &copy_wal) != 0)
        return 1;
    printf("copy:   events_per_s=%.0f pg_cpu_us_per_event=%.2f "
           "wal_bytes_per_event=%.0f rows=%lld\n",
           copy_rate, copy_cpu * 1e6 / (double)events,
           copy_wal / (double)events, events);
    /* Wall-clock rates swing with machine load; CPU per event less so. */
    printf("ratio writer/copy = %.2f (cpu: %.2f)\n",
           (double)events / took / copy_rate,
           cpu > 0 ? copy_cpu / cpu : 0.0);
    free(evs);
    free(rows);
    return 0;
}
