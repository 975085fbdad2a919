/*
 * import_stats — per-column statistics (count, nulls, min, max, mean and
 * a HyperLogLog distinct estimate) and the values of pass 2 encoded for
 * COPY, text or binary.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "import.h"

#define HLL_M (1u << IMP_HLL_P)

/* ---- statistics --------------------------------------------------------- */

void imp_stats_init(struct imp_stats *s)
{
    memset(s, 0, sizeof *s);
}

void imp_stats_cleanup(struct imp_stats *s)
{
    free(s->smin);
    free(s->smax);
    s->smin = s->smax = NULL;
}

/* splitmix64's finaliser over FNV-1a: well-mixed bits for HyperLogLog. */
static uint64_t hash(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static void hll_add(struct imp_stats *s, uint64_t h)
{
    uint32_t idx = (uint32_t)(h >> (64 - IMP_HLL_P));
    uint64_t w = h << IMP_HLL_P | (1ULL << (IMP_HLL_P - 1));
    uint8_t rho = (uint8_t)(__builtin_clzll(w) + 1);

    if (rho > s->hll[idx])
        s->hll[idx] = rho;
}

static double hll_estimate(const struct imp_stats *s)
{
    double sum = 0, m = HLL_M, e;
    unsigned zeros = 0;

    for (unsigned i = 0; i < HLL_M; i++) {
        sum += ldexp(1.0, -s->hll[i]);
        zeros += s->hll[i] == 0;
    }
    e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros)
        e = m * log(m / zeros);       /* linear counting: small sets */
    return round(e);
}

/* Keeps a copy of p as *slot when it sorts before (dir -1) / after. */
static void keep_str(char **slot, const char *p, size_t len, int dir)
{
    char *n;

    if (*slot) {
        size_t ol = strlen(*slot);
        int c = memcmp(p, *slot, len < ol ? len : ol);

        if (c == 0)
            c = len < ol ? -1 : len > ol;
        if (c * dir <= 0)
            return;
    }
    n = realloc(*slot, len + 1);
    if (!n)
        return;
    memcpy(n, p, len);
    n[len] = '\0';
    *slot = n;
}

void *imp_stats_json(const struct imp_stats *s, enum imp_type t)
{
    json_t *o = json_pack("{sIsI}", "count", (json_int_t)s->count, "nulls",
                          (json_int_t)s->nulls);
    json_t *mn = json_null(), *mx = json_null(), *mean = NULL;
    char a[48], b[48];

    if (!o)
        return NULL;
    if (s->has) {
        switch (t) {
        case IMP_INTEGER:
            mn = json_integer(s->imin);
            mx = json_integer(s->imax);
            mean = json_real(s->sum / (double)s->count);
            break;
        case IMP_FLOAT:
            mn = json_real(s->dmin);
            mx = json_real(s->dmax);
            mean = json_real(s->sum / (double)s->count);
            break;
        case IMP_BOOLEAN:
            mn = json_boolean(s->dmin > 0);
            mx = json_boolean(s->dmax > 0);
            mean = json_real(s->sum / (double)s->count);
            break;
        case IMP_TIMESTAMP:
            imp_format_ts(s->tmin, a, sizeof a);
            imp_format_ts(s->tmax, b, sizeof b);
            mn = json_string(a);
            mx = json_string(b);
            break;
        default:
            mn = json_string(s->smin ? s->smin : "");
            mx = json_string(s->smax ? s->smax : "");
            break;
        }
    }
    json_object_set_new(o, "min", mn ? mn : json_null());
    json_object_set_new(o, "max", mx ? mx : json_null());
    if (mean)
        json_object_set_new(o, "mean", mean);
    json_object_set_new(o, "distinct",
                        json_integer((json_int_t)(s->count ? hll_estimate(s)
                                                           : 0)));
    return o;
}

/* ---- COPY text and binary ------------------------------------------------ */

/* A value of the column's type (after accounting it in the stats). */
struct typed {
    long long i;
    double d;
    int b;
    int64_t us;
    const char *p;      /* trimmed text (date, string: untrimmed) */
    size_t len;
};

/* Parses f as t into v and adds it to s. 0, or 1 when it is null. */
static int account(const struct imp_field *f, enum imp_type t,
                   struct imp_stats *s, struct typed *v)
{
    if (imp_is_null(f)) {
        s->nulls++;
        return 1;
    }
    s->count++;
    v->p = f->p;
    v->len = f->len;
    if (t != IMP_STRING)
        imp_trim(&v->p, &v->len);
    switch (t) {
    case IMP_INTEGER:
        imp_parse_int(v->p, v->len, &v->i);
        if (!s->has || v->i < s->imin)
            s->imin = v->i;
        if (!s->has || v->i > s->imax)
            s->imax = v->i;
        s->sum += (double)v->i;
        hll_add(s, hash(&v->i, sizeof v->i));
        break;
    case IMP_FLOAT:
        imp_parse_float(v->p, v->len, &v->d);
        if (!s->has || v->d < s->dmin)
            s->dmin = v->d;
        if (!s->has || v->d > s->dmax)
            s->dmax = v->d;
        s->sum += v->d;
        if (v->d == 0)
            v->d = 0;                 /* -0.0 and 0.0 are one value */
        hll_add(s, hash(&v->d, sizeof v->d));
        break;
    case IMP_BOOLEAN:
        imp_parse_bool(v->p, v->len, &v->b);
        if (!s->has || v->b < s->dmin)
            s->dmin = v->b;
        if (!s->has || v->b > s->dmax)
            s->dmax = v->b;
        s->sum += v->b;
        hll_add(s, hash(&v->b, sizeof v->b));
        break;
    case IMP_DATE:
        imp_parse_ts(v->p, v->len, &v->us);
        keep_str(&s->smin, v->p, v->len, -1);
        keep_str(&s->smax, v->p, v->len, 1);
        hll_add(s, hash(v->p, v->len));
        break;
    case IMP_TIMESTAMP:
        imp_parse_ts(v->p, v->len, &v->us);
        if (!s->has || v->us < s->tmin)
            s->tmin = v->us;
        if (!s->has || v->us > s->tmax)
            s->tmax = v->us;
        hll_add(s, hash(&v->us, sizeof v->us));
        break;
    case IMP_STRING:
        keep_str(&s->smin, v->p, v->len, -1);
        keep_str(&s->smax, v->p, v->len, 1);
        hll_add(s, hash(v->p, v->len));
        break;
    }
    s->has = 1;
    return 0;
}

static long put(char *out, size_t cap, const char *p, size_t len)
{
    if (len > cap)
        return -1;
    memcpy(out, p, len);
    return (long)len;
}

long imp_emit(const struct imp_field *f, enum imp_type t,
              struct imp_stats *s, char *out, size_t cap)
{
    struct typed v;
    size_t o = 0;
    char tmp[48];

    if (account(f, t, s, &v))
        return put(out, cap, "\\N", 2);
    switch (t) {
    case IMP_BOOLEAN:
        return put(out, cap, v.b ? "t" : "f", 1);
    case IMP_TIMESTAMP:
        return put(out, cap, tmp, (size_t)imp_format_ts(v.us, tmp, sizeof tmp));
    case IMP_STRING:
        for (size_t i = 0; i < v.len; i++) {
            char c = v.p[i], e = c == '\\' ? '\\' : c == '\n' ? 'n'
                               : c == '\r' ? 'r' : c == '\t' ? 't' : 0;

            if (o + 2 > cap)
                return -1;
            if (e) {
                out[o++] = '\\';
                out[o++] = e;
            } else {
                out[o++] = c;
            }
        }
        return (long)o;
    default:
        return put(out, cap, v.p, v.len);
    }
}

static void be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static void be64(char *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

/* PostgreSQL's epoch for date and timestamptz: 2000-01-01 UTC. */
#define PG_EPOCH_US INT64_C(946684800000000)

long imp_emit_bin(const struct imp_field *f, enum imp_type t,
                  struct imp_stats *s, char *out, size_t cap)
{
    struct typed v;
    uint64_t u;

    if (cap < 12)
        return -1;
    if (account(f, t, s, &v)) {
        be32(out, UINT32_MAX);          /* length -1: null */
        return 4;
    }
    switch (t) {
    case IMP_INTEGER:
        be32(out, 8);
        be64(out + 4, (uint64_t)v.i);
        return 12;
    case IMP_FLOAT:
        memcpy(&u, &v.d, sizeof u);
        be32(out, 8);
        be64(out + 4, u);
        return 12;
    case IMP_BOOLEAN:
        be32(out, 1);
        out[4] = (char)v.b;
        return 5;
    case IMP_DATE:
        be32(out, 4);
        be32(out + 4, (uint32_t)(int32_t)((v.us - PG_EPOCH_US) /
                                          INT64_C(86400000000)));
        return 8;
    case IMP_TIMESTAMP:
        be32(out, 8);
        be64(out + 4, (uint64_t)(v.us - PG_EPOCH_US));
        return 12;
    case IMP_STRING:
        if (v.len + 4 > cap)
            return -1;
        be32(out, (uint32_t)v.len);
        memcpy(out + 4, v.p, v.len);
        return (long)v.len + 4;
    }
    return -1;
}
