#include "analytics_copy.h"
#include "analytics_group.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd/httpd.h"
#include "log/log.h"

/* After a failed connect, fail groups at once for this long. */
#define RECONNECT_PAUSE_S 0.25
/* COPY data is sent in chunks of about this size. */
#define COPY_CHUNK (256 * 1024)


/* Makes room for `more` bytes in the COPY buffer; 0 or -1. */
static int buf_reserve(struct plat_an_conn *w, size_t more)
{
    size_t cap = w->cap != 0 ? w->cap : COPY_CHUNK * 2;
    char *nb;

    if (w->len + more <= w->cap)
        return 0;
    while (cap < w->len + more)
        cap *= 2;
    nb = realloc(w->buf, cap);
    if (nb == NULL)
        return -1;
    w->buf = nb;
    w->cap = cap;
    return 0;
}

/*
 * COPY binary (PostgreSQL "COPY ... (FORMAT binary)" file format): big-
 * endian integers; each tuple is an int16 field count, then per field an
 * int32 length and the value in the type's send format. Binary spares the
 * server the text parsing (timestamptz_in alone was 8 % of its CPU during
 * ingestion) and the writer the escaping and date formatting.
 */
static void put_be(char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* The file header: signature, flags, header extension length. */
static int bin_header(struct plat_an_conn *w)
{
    if (buf_reserve(w, 19) != 0)
        return -1;
    memcpy(w->buf + w->len, "PGCOPY\n\377\r\n\0", 11);
    put_be(w->buf + w->len + 11, 0, 4);
    put_be(w->buf + w->len + 15, 0, 4);
    w->len += 19;
    return 0;
}

/* A tuple's field count (or -1: the trailer). */
static int bin_tuple(struct plat_an_conn *w, int fields)
{
    if (buf_reserve(w, 2) != 0)
        return -1;
    put_be(w->buf + w->len, (uint64_t)(uint16_t)(int16_t)fields, 2);
    w->len += 2;
    return 0;
}

/* A text value; with `jsonb`, jsonb's send format (version 1 + text). */
static int bin_text(struct plat_an_conn *w, const char *s, int jsonb)
{
    size_t n = strlen(s), total = n + (jsonb ? 1 : 0);

    if (total > INT32_MAX || buf_reserve(w, 4 + total) != 0)
        return -1;
    put_be(w->buf + w->len, (uint64_t)total, 4);
    w->len += 4;
    if (jsonb)
        w->buf[w->len++] = 1;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return 0;
}

/* A bigint. */
static int bin_int8(struct plat_an_conn *w, int64_t v)
{
    if (buf_reserve(w, 12) != 0)
        return -1;
    put_be(w->buf + w->len, 8, 4);
    put_be(w->buf + w->len + 4, (uint64_t)v, 8);
    w->len += 12;
    return 0;
}

/* A timestamptz: microseconds since 2000-01-01 00:00:00 UTC. */
static int bin_time(struct plat_an_conn *w, int64_t unix_us)
{
    const int64_t pg_epoch_us = 946684800LL * PLAT_AN_US_PER_S;

    return bin_int8(w, unix_us - pg_epoch_us);
}

static int copy_flush(struct plat_an_conn *w)
{
    if (w->len > 0 && PQputCopyData(w->conn, w->buf, (int)w->len) != 1)
        return -1;
    w->len = 0;
    return 0;
}

int plat_an_conn_open(struct plat_an_conn *w)
{
    static const char *const keys[] = {"dbname", "connect_timeout",
                                       "application_name", NULL};
    const char *vals[] = {w->conninfo, "5", "basalt-analytics-writer", NULL};
    PGresult *res;

    if (w->conn != NULL && PQstatus(w->conn) == CONNECTION_OK)
        return 0;
    if (w->conn != NULL) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    if (w->last_connect_fail > 0 &&
        httpd_now() - w->last_connect_fail < RECONNECT_PAUSE_S)
        return -1;
    w->conn = PQconnectdbParams(keys, vals, 1);
    if (w->conn == NULL || PQstatus(w->conn) != CONNECTION_OK)
        goto fail;
    res = PQexec(w->conn,
                 "SET TimeZone = 'UTC'; SET statement_timeout = '120s'");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    if (plat_an_group_prepare(w->conn) != 0)
        goto fail;
    w->last_connect_fail = 0;
    /* A new session may follow a restore: trust nothing remembered. */
    plat_an_known_clear(&w->known);
    log_kv(LOG_LVL_INFO, NULL, "analytics writer connected", NULL);
    return 0;
fail:
    if (w->last_connect_fail == 0)
        log_kv(LOG_LVL_WARN, NULL, "analytics writer cannot connect",
               "error", w->conn != NULL ? PQerrorMessage(w->conn) : "oom",
               NULL);
    if (w->conn != NULL)
        PQfinish(w->conn);
    w->conn = NULL;
    w->last_connect_fail = httpd_now();
    return -1;
}

#define ROW_DUP PLAT_AN_ROW_DUP
#define ROW_KNOWN PLAT_AN_ROW_KNOWN
#define ROW_KNOWN_ALL PLAT_AN_ROW_KNOWN_ALL

/*
 * "owner US event US hour US distinct_id": both scopes' presence key for
 * `event` (the row's name, or "" for the all-events rollup).
 */
/* Appends s[0..k) and `sep` (unless NUL) if they fit with a final NUL. */
static size_t key_put(char *buf, size_t n, size_t len, const char *s,
                      size_t k, char sep)
{
    if (n + k + 2 > len)
        return n;
    memcpy(buf + n, s, k);
    n += k;
    if (sep != '\0')
        buf[n++] = sep;
    return n;
}

static size_t key_of(const struct plat_an_event *ev, const char *event,
                     char *buf, size_t len)
{
    long long hour = plat_an_hour_of(ev->ts_us);
    unsigned long long mag;
    char num[24];
    size_t n = 0, i = sizeof(num);

    /* Built by hand: snprintf here was a visible share of the writer's
     * CPU (two to four keys per event). */
    mag = hour < 0 ? 0ULL - (unsigned long long)hour : (unsigned long long)hour;
    do {
        num[--i] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag != 0);
    if (hour < 0)
        num[--i] = '-';
    n = key_put(buf, n, len, ev->owner, strlen(ev->owner), '\x1f');
    n = key_put(buf, n, len, event, strlen(event), '\x1f');
    n = key_put(buf, n, len, num + i, sizeof(num) - i, '\x1f');
    n = key_put(buf, n, len, ev->distinct_id, strlen(ev->distinct_id), '\0');
    buf[n] = '\0';
    return n;
}

/*
 * Marks in-group duplicates (same owner_key and message_id as an earlier
 * row) with ROW_DUP in `skip`. Open addressing over row indices; `rows`
 * has n entries.
 */
static int mark_duplicates(struct plat_an_event **rows, size_t n, char *skip)
{
    size_t cap = 16, mask;
    size_t *slots;

    while (cap < n * 2)
        cap *= 2;
    mask = cap - 1;
    slots = malloc(cap * sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        slots[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t s;

        for (s = (size_t)plat_an_dedupe_hash(rows[i]->owner_key,
                                             rows[i]->message_id) & mask;
             slots[s] != SIZE_MAX; s = (s + 1) & mask) {
            const struct plat_an_event *o = rows[slots[s]];

            if (o->owner_key == rows[i]->owner_key &&
                strcmp(o->message_id, rows[i]->message_id) == 0)
                break;
        }
        if (slots[s] == SIZE_MAX)
            slots[s] = i;
        else
            skip[i] |= ROW_DUP;
    }
    free(slots);
    return 0;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    PQclear(res);
    return ok ? 0 : -1;
}

/* Starts `sql` (a COPY ... FROM STDIN); 0 or -1. */
static int copy_begin(struct plat_an_conn *w, const char *sql)
{
    PGresult *res = PQexec(w->conn, sql);
    int ok = PQresultStatus(res) == PGRES_COPY_IN;

    PQclear(res);
    w->len = 0;
    return ok ? 0 : -1;
}

/*
 * Sends what is buffered and ends the COPY (aborts it when `failed`),
 * then reads its outcome: 0 when it succeeded, else -1 with the error's
 * SQLSTATE in `state` ("" when there is none).
 */
static int copy_end(struct plat_an_conn *w, int failed, char state[6])
{
    PGresult *res;
    int ok = 1;

    state[0] = '\0';
    if (failed)
        PQputCopyEnd(w->conn, "out of memory");
    else if (copy_flush(w) != 0 || PQputCopyEnd(w->conn, NULL) != 1)
        ok = 0;
    while ((res = PQgetResult(w->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            if (st != NULL && state[0] == '\0')
                snprintf(state, 6, "%s", st);
            ok = 0;
        }
        PQclear(res);
    }
    return ok && !failed ? 0 : -1;
}

/* COPYs the rows marked stored into analytics_events; 0 or -1. */
static int copy_rows(struct plat_an_conn *w, struct plat_an_event **rows,
                     size_t n)
{
    char state[6];
    int failed;

    if (copy_begin(w, "COPY platform.analytics_events (ts, event,"
                      " distinct_id, owner, properties, message_id,"
                      " received_at) FROM STDIN (FORMAT binary)") != 0)
        return -1;
    failed = bin_header(w) != 0;
    for (size_t i = 0; i < n && !failed; i++) {
        const struct plat_an_event *ev = rows[i];

        if (!ev->stored)
            continue;
        if (bin_tuple(w, 7) != 0 || bin_time(w, ev->ts_us) != 0 ||
            bin_text(w, ev->event, 0) != 0 ||
            bin_text(w, ev->distinct_id, 0) != 0 ||
            bin_text(w, ev->owner, 0) != 0 ||
            bin_text(w, ev->properties, 1) != 0 ||
            bin_text(w, ev->message_id, 0) != 0 ||
            bin_time(w, ev->received_us) != 0 ||
            (w->len >= COPY_CHUNK && copy_flush(w) != 0))
            failed = 1;
    }
    if (!failed && bin_tuple(w, -1) != 0)
        failed = 1;
    return copy_end(w, failed, state);
}

/*
 * Step 2, optimistic: COPYs (owner_key, message_id) of the rows without
 * ROW_DUP into analytics_dedupe. 0: all were new (each such row's
 * `stored` set); 1: one was already there (unique violation; the
 * transaction is aborted); -1: another failure.
 */
static int copy_dedupe(struct plat_an_conn *w, struct plat_an_event **rows,
                       size_t n, const char *flags)
{
    char state[6];
    int failed;

    if (copy_begin(w, "COPY platform.analytics_dedupe (owner_key,"
                      " message_id, received_at) FROM STDIN (FORMAT binary)")
        != 0)
        return -1;
    failed = bin_header(w) != 0;
    for (size_t i = 0; i < n && !failed; i++) {
        if (flags[i] & ROW_DUP)
            continue;
        if (bin_tuple(w, 3) != 0 || bin_int8(w, rows[i]->owner_key) != 0 ||
            bin_text(w, rows[i]->message_id, 0) != 0 ||
            bin_time(w, rows[i]->received_us) != 0 ||
            (w->len >= COPY_CHUNK && copy_flush(w) != 0))
            failed = 1;
    }
    if (!failed && bin_tuple(w, -1) != 0)
        failed = 1;
    if (copy_end(w, failed, state) != 0)
        return strcmp(state, "23505") == 0 ? 1 : -1;
    for (size_t i = 0; i < n; i++)
        rows[i]->stored = !(flags[i] & ROW_DUP);
    return 0;
}

/*
 * BEGIN + step 2: the number of rows whose id was new (their `stored`
 * set), or -1. Ids are COPYed (no conflict handling, about half the
 * cost of INSERT ... ON CONFLICT); when one turns out to exist already —
 * a client's retry — the transaction is rolled back and the ids go in
 * with ON CONFLICT DO NOTHING instead, for the next PLAT_AN_DEDUPE_SLOW_GROUPS
 * groups too, as retries tend to come in bursts.
 */
static long begin_dedupe(struct plat_an_conn *w, struct plat_an_event **rows,
                         size_t n, const char *flags)
{
    if (w->slow_groups > 0) {
        w->slow_groups--;
    } else {
        int rc;
        long fresh = 0;

        if (exec_ok(w->conn, "BEGIN") != 0)
            return -1;
        rc = copy_dedupe(w, rows, n, flags);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            for (size_t i = 0; i < n; i++)
                fresh += rows[i]->stored;
            return fresh;
        }
        if (exec_ok(w->conn, "ROLLBACK") != 0)
            return -1;
        w->slow_groups = PLAT_AN_DEDUPE_SLOW_GROUPS;
    }
    if (exec_ok(w->conn, "BEGIN") != 0)
        return -1;
    return plat_an_group_dedupe(w->conn, rows, n, flags);
}

/*
 * Each row's two presence keys (its event's, then the all-events one) as
 * known-set values, computed once for the lookups before COMMIT and the
 * adds after it: keys[2i], keys[2i + 1]. NULL when out of memory.
 */
static uint64_t (*known_keys(struct plat_an_conn *w,
                             struct plat_an_event **rows, size_t n))[2]
{
    uint64_t(*keys)[2] = malloc(2 * (n != 0 ? n : 1) * sizeof(*keys));
    char key[4 * PLAT_AN_TEXT_MAX];

    if (keys == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = key_of(rows[i], rows[i]->event, key, sizeof(key));

        plat_an_known_hash(&w->known, key, len, keys[2 * i]);
        len = key_of(rows[i], "", key, sizeof(key));
        plat_an_known_hash(&w->known, key, len, keys[2 * i + 1]);
    }
    return keys;
}

/*
 * Before a group is written: each row's owner_key, its flags (calloc'd
 * into *flags: ROW_DUP, ROW_KNOWN, ROW_KNOWN_ALL) and its presence keys
 * (known_keys(), into *keys). 0, or -1 when out of memory (both freed).
 */
static int group_flags(struct plat_an_conn *w, struct plat_an_event **rows,
                       size_t n, char **flags, uint64_t (**keys)[2])
{
    /* a request's rows share their owner and lie side by side */
    for (size_t i = 0; i < n; i++)
        rows[i]->owner_key =
            i > 0 && strcmp(rows[i]->owner, rows[i - 1]->owner) == 0
                ? rows[i - 1]->owner_key
                : plat_an_owner_key(rows[i]->owner);
    *keys = NULL;
    *flags = calloc(n != 0 ? n : 1, 1);
    if (*flags == NULL || mark_duplicates(rows, n, *flags) != 0 ||
        (*keys = known_keys(w, rows, n)) == NULL) {
        free(*flags);
        *flags = NULL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (plat_an_known_has_hash(&w->known, (*keys)[2 * i]))
            (*flags)[i] |= ROW_KNOWN;
        if (plat_an_known_has_hash(&w->known, (*keys)[2 * i + 1]))
            (*flags)[i] |= ROW_KNOWN_ALL;
    }
    return 0;
}

enum plat_an_result plat_an_conn_write(struct plat_an_conn *w,
                                      struct plat_an_event **rows, size_t n)
{
    char *flags = NULL;
    uint64_t (*keys)[2] = NULL;
    PGresult *res = NULL;
    enum plat_an_result rc = PLAT_AN_ERROR;
    long fresh = 0;

    for (size_t i = 0; i < n; i++)
        rows[i]->stored = 0;
    if (n == 0)
        return PLAT_AN_OK;
    if (plat_an_conn_open(w) != 0)
        return PLAT_AN_UNAVAILABLE;
    if (group_flags(w, rows, n, &flags, &keys) != 0)
        goto cleanup;
    if ((fresh = begin_dedupe(w, rows, n, flags)) < 0 ||
        (fresh > 0 && (copy_rows(w, rows, n) != 0 ||
                       plat_an_group_roll(w->conn, rows, n, flags) != 0)))
        goto fail;
    res = PQexec(w->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    rc = PLAT_AN_OK;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i]->stored)
            continue;
        if (!(flags[i] & ROW_KNOWN))
            plat_an_known_add_hash(&w->known, keys[2 * i]);
        if (!(flags[i] & ROW_KNOWN_ALL))
            plat_an_known_add_hash(&w->known, keys[2 * i + 1]);
    }
    goto cleanup;
fail:
    for (size_t i = 0; i < n; i++)
        rows[i]->stored = 0;
    if (PQstatus(w->conn) != CONNECTION_OK) {
        log_kv(LOG_LVL_WARN, NULL, "analytics writer lost PostgreSQL",
               "error", PQerrorMessage(w->conn), NULL);
        plat_an_conn_close(w);
        rc = PLAT_AN_UNAVAILABLE;
    } else {
        log_kv(LOG_LVL_ERROR, NULL, "analytics group commit failed",
               "error", PQerrorMessage(w->conn), NULL);
        if (exec_ok(w->conn, "ROLLBACK") != 0)
            plat_an_conn_close(w);
        rc = PLAT_AN_ERROR;
    }
cleanup:
    PQclear(res);
    free(flags);
    free(keys);
    return rc;
}

void plat_an_conn_close(struct plat_an_conn *w)
{
    if (w->conn != NULL)
        PQfinish(w->conn);
    w->conn = NULL;
}

void plat_an_conn_cleanup(struct plat_an_conn *w)
{
    plat_an_conn_close(w);
    plat_an_known_cleanup(&w->known);
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}
