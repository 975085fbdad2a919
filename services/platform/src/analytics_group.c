#include "analytics_group.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/token.h"

/*
 * $1 owner_key[], $2 message_id[], $3 received_at[] (us since the
 * epoch). Returns the (owner_key, message_id) pairs that were new (the
 * caller maps them back to its rows).
 */
static const char DEDUPE_SQL[] =
    "INSERT INTO platform.analytics_dedupe (owner_key, message_id,"
    " received_at)"
    " SELECT o, m, 'epoch'::timestamptz + r * interval '1 microsecond'"
    " FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS t (o, m, r)"
    " ORDER BY o, m ON CONFLICT DO NOTHING RETURNING owner_key, message_id";

/*
 * $1..$4: owner[], event[], hour[] (hours since the epoch), n[] — the
 * stored rows counted per (owner, event, hour); each counts under its
 * four rollup keys. $5..$8: presence keys scope[], event[], hour[],
 * distinct_id[] not known to be committed. One pending row per group,
 * applied later by platform.analytics_rollup_apply() (migration 0004):
 * uniq grows by the presence rows actually inserted, so known keys may be
 * left out at no cost.
 */
static const char ROLL_SQL[] =
    "INSERT INTO platform.analytics_rollup_pending (c_owner, c_event,"
    " c_hour, c_n, p_scope, p_event, p_hour, p_did)"
    " VALUES ($1::text[], $2::text[], $3::bigint[], $4::bigint[],"
    " $5::text[], $6::text[], $7::bigint[], $8::text[])";

#define ROLL_PARAMS 8

int plat_an_group_prepare(PGconn *c)
{
    PGresult *res = PQprepare(c, "an_dedupe", DEDUPE_SQL, 0, NULL);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    PQclear(res);
    if (!ok)
        return -1;
    res = PQprepare(c, "an_roll", ROLL_SQL, 0, NULL);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? 0 : -1;
}

/* A growing NUL-terminated array literal ("{...}"), one parameter. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static int sb_reserve(struct sbuf *b, size_t more)
{
    size_t cap = b->cap != 0 ? b->cap : 4096;
    char *np;

    if (b->len + more + 1 <= b->cap)
        return 0;
    while (cap < b->len + more + 1)
        cap *= 2;
    np = realloc(b->p, cap);
    if (np == NULL)
        return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}

/* Appends one element: quoted text, or (quote 0) a bare number. */
static int sb_elem(struct sbuf *b, const char *s, int quote)
{
    size_t n = strlen(s);

    if (sb_reserve(b, 2 * n + 4) != 0)
        return -1;
    b->p[b->len] = b->len == 0 ? '{' : ',';
    b->len++;
    if (quote)
        b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (quote && (s[i] == '"' || s[i] == '\\'))
            b->p[b->len++] = '\\';
        b->p[b->len++] = s[i];
    }
    if (quote)
        b->p[b->len++] = '"';
    b->p[b->len] = '\0';
    return 0;
}

static int sb_num(struct sbuf *b, long long v)
{
    char num[24];

    snprintf(num, sizeof(num), "%lld", v);
    return sb_elem(b, num, 0);
}

/* Closes each of `n` literals ("{}" when empty); 0 or -1. */
static int sb_close_all(struct sbuf *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (sb_reserve(&b[i], 2) != 0)
            return -1;
        if (b[i].len == 0)
            b[i].p[b[i].len++] = '{';
        b[i].p[b[i].len++] = '}';
        b[i].p[b[i].len] = '\0';
    }
    return 0;
}

static void sb_free_all(struct sbuf *b, int n)
{
    for (int i = 0; i < n; i++)
        free(b[i].p);
}

long long plat_an_hour_of(int64_t us)
{
    long long h = (long long)(us / (3600 * PLAT_AN_US_PER_S));

    if (us < 0 && us % (3600 * PLAT_AN_US_PER_S) != 0)
        h--;
    return h;
}

int64_t plat_an_owner_key(const char *owner)
{
    unsigned char digest[32];
    uint64_t u = 0;

    tok_sha256(owner, strlen(owner), digest);
    for (int i = 0; i < 8; i++)
        u = u << 8 | digest[i];
    /* two's complement, as PostgreSQL's bit(64)::bigint reads it */
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

/* FNV-1a (64-bit) of `s` onto `h`; start from fnv_seed(). */
static uint64_t fnv_add(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t fnv_seed(uint64_t salt)
{
    return 1469598103934665603ULL ^ salt;
}

uint64_t plat_an_dedupe_hash(int64_t owner_key, const char *message_id)
{
    return fnv_add(fnv_seed((uint64_t)owner_key), message_id);
}

long plat_an_group_dedupe(PGconn *c, struct plat_an_event **rows,
                          size_t n, const char *flags)
{
    struct sbuf a[3];
    const char *vals[3];
    size_t cap = 16, mask, *slots = NULL;
    PGresult *res = NULL;
    long fresh = -1;

    memset(a, 0, sizeof(a));
    while (cap < n * 2)
        cap *= 2;
    mask = cap - 1;
    /* (owner_key, message_id) -> row index (unique without ROW_DUP). */
    slots = malloc(cap * sizeof(*slots));
    if (slots == NULL)
        goto cleanup;
    for (size_t i = 0; i < cap; i++)
        slots[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t s;

        if (flags[i] & PLAT_AN_ROW_DUP)
            continue;
        for (s = (size_t)plat_an_dedupe_hash(rows[i]->owner_key,
                                             rows[i]->message_id) & mask;
             slots[s] != SIZE_MAX; s = (s + 1) & mask)
            ;
        slots[s] = i;
        if (sb_num(&a[0], (long long)rows[i]->owner_key) != 0 ||
            sb_elem(&a[1], rows[i]->message_id, 1) != 0 ||
            sb_num(&a[2], (long long)rows[i]->received_us) != 0)
            goto cleanup;
    }
    if (sb_close_all(a, 3) != 0)
        goto cleanup;
    for (int p = 0; p < 3; p++)
        vals[p] = a[p].p;
    res = PQexecPrepared(c, "an_dedupe", 3, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto cleanup;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t key = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        const char *id = PQgetvalue(res, r, 1);
        size_t s;

        for (s = (size_t)plat_an_dedupe_hash(key, id) & mask;
             slots[s] != SIZE_MAX &&
             (rows[slots[s]]->owner_key != key ||
              strcmp(rows[slots[s]]->message_id, id) != 0);
             s = (s + 1) & mask)
            ;
        if (slots[s] == SIZE_MAX)
            goto cleanup;
        rows[slots[s]]->stored = 1;
    }
    fresh = PQntuples(res);
cleanup:
    PQclear(res);
    sb_free_all(a, 3);
    free(slots);
    return fresh;
}

long plat_an_rollup_apply(PGconn *c)
{
    PGresult *res = PQexec(c, PLAT_AN_ROLLUP_APPLY_SQL);
    long n = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static uint64_t hash_group(const struct plat_an_event *ev, long long hour)
{
    uint64_t h = fnv_add(fnv_seed((uint64_t)hour), ev->owner);

    return fnv_add((h ^ 0x1f) * 1099511628211ULL, ev->event);
}

/*
 * Counts the stored rows per (owner, event, hour) into the first four
 * literals: open addressing over row indices, cnt[] per slot.
 */
static int add_counts(struct plat_an_event **rows, size_t n, struct sbuf *a)
{
    size_t cap = 16, mask;
    size_t *slots;
    long long *cnt;
    int rc = -1;

    while (cap < n * 2)
        cap *= 2;
    mask = cap - 1;
    slots = malloc(cap * sizeof(*slots));
    cnt = calloc(cap, sizeof(*cnt));
    if (slots == NULL || cnt == NULL)
        goto cleanup;
    for (size_t i = 0; i < cap; i++)
        slots[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct plat_an_event *ev = rows[i];
        long long hr = plat_an_hour_of(ev->ts_us);
        size_t s;

        if (!ev->stored)
            continue;
        for (s = (size_t)hash_group(ev, hr) & mask; slots[s] != SIZE_MAX;
             s = (s + 1) & mask) {
            const struct plat_an_event *o = rows[slots[s]];

            if (plat_an_hour_of(o->ts_us) == hr && strcmp(o->owner, ev->owner) == 0 &&
                strcmp(o->event, ev->event) == 0)
                break;
        }
        if (slots[s] == SIZE_MAX)
            slots[s] = i;
        cnt[s]++;
    }
    for (size_t s = 0; s < cap; s++) {
        const struct plat_an_event *ev;

        if (slots[s] == SIZE_MAX)
            continue;
        ev = rows[slots[s]];
        if (sb_elem(&a[0], ev->owner, 1) != 0 ||
            sb_elem(&a[1], ev->event, 1) != 0 ||
            sb_num(&a[2], plat_an_hour_of(ev->ts_us)) != 0 ||
            sb_num(&a[3], cnt[s]) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    free(slots);
    free(cnt);
    return rc;
}

/* Appends presence key (scope, event, hour, distinct_id) to a[4..7]. */
static int add_key(struct sbuf *a, const char *scope, const char *event,
                   long long hour, const char *did)
{
    return sb_elem(&a[4], scope, 1) != 0 || sb_elem(&a[5], event, 1) != 0 ||
                   sb_num(&a[6], hour) != 0 || sb_elem(&a[7], did, 1) != 0
               ? -1
               : 0;
}

int plat_an_group_roll(PGconn *c, struct plat_an_event **rows, size_t n,
                       const char *flags)
{
    struct sbuf a[ROLL_PARAMS];
    const char *vals[ROLL_PARAMS];
    PGresult *res = NULL;
    int rc = -1;

    memset(a, 0, sizeof(a));
    if (add_counts(rows, n, a) != 0)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        const struct plat_an_event *ev = rows[i];
        long long hr = plat_an_hour_of(ev->ts_us);

        if (!ev->stored)
            continue;
        if (!(flags[i] & PLAT_AN_ROW_KNOWN) &&
            (add_key(a, ev->owner, ev->event, hr, ev->distinct_id) != 0 ||
             add_key(a, "*", ev->event, hr, ev->distinct_id) != 0))
            goto cleanup;
        if (!(flags[i] & PLAT_AN_ROW_KNOWN_ALL) &&
            (add_key(a, ev->owner, "", hr, ev->distinct_id) != 0 ||
             add_key(a, "*", "", hr, ev->distinct_id) != 0))
            goto cleanup;
    }
    if (sb_close_all(a, ROLL_PARAMS) != 0)
        goto cleanup;
    for (int p = 0; p < ROLL_PARAMS; p++)
        vals[p] = a[p].p;
    res = PQexecPrepared(c, "an_roll", ROLL_PARAMS, vals, NULL, NULL, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
cleanup:
    PQclear(res);
    sb_free_all(a, ROLL_PARAMS);
    return rc;
}
