#include "identity/revocation.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

#define JTI_SLOTS 16384
#define USER_SLOTS 4096
/* How long a Redis lookup may wait for a pooled connection. */
#define REDIS_WAIT_MS 200
/* A marker learned from Redis is kept this long locally. */
#define MARKER_LOCAL_S 86400

enum jti_state { JTI_EMPTY = 0, JTI_OK, JTI_REVOKED };

struct jti_slot {
    char jti[IDENT_REV_ID_MAX + 1];
    unsigned char state;
    long long until; /* OK: reuse until; REVOKED: the token's exp */
};

struct user_slot {
    char sub[IDENT_REV_ID_MAX + 1];
    long long marker;    /* 0: empty */
    long long expire_at;
};

struct ident_rev {
    struct redispool *pool; /* borrowed, may be NULL */
    int ttl_s;
    pthread_mutex_t jti_mu;  /* guards jtis */
    pthread_mutex_t user_mu; /* guards users */
    pthread_mutex_t down_mu; /* guards down_until */
    long long down_until;    /* skip Redis before this (epoch s) */
    struct jti_slot *jtis;
    struct user_slot *users;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int id_ok(const char *s)
{
    size_t n;

    if (s == NULL || s[0] == '\0')
        return 0;
    n = strlen(s);
    if (n > IDENT_REV_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

struct ident_rev *ident_rev_new(struct redispool *pool, int ttl_s)
{
    struct ident_rev *rv = calloc(1, sizeof(*rv));

    if (rv == NULL)
        return NULL;
    rv->pool = pool;
    rv->ttl_s = ttl_s < 1 ? 1 : ttl_s > 300 ? 300 : ttl_s;
    rv->jtis = calloc(JTI_SLOTS, sizeof(*rv->jtis));
    rv->users = calloc(USER_SLOTS, sizeof(*rv->users));
    if (rv->jtis == NULL || rv->users == NULL) {
        free(rv->jtis);
        free(rv->users);
        free(rv);
        return NULL;
    }
    pthread_mutex_init(&rv->jti_mu, NULL);
    pthread_mutex_init(&rv->user_mu, NULL);
    pthread_mutex_init(&rv->down_mu, NULL);
    return rv;
}

void ident_rev_free(struct ident_rev *rv)
{
    if (rv == NULL)
        return;
    pthread_mutex_destroy(&rv->jti_mu);
    pthread_mutex_destroy(&rv->user_mu);
    pthread_mutex_destroy(&rv->down_mu);
    free(rv->jtis);
    free(rv->users);
    free(rv);
}

int ident_rev_marker_revokes(long long marker, long long iat)
{
    return marker > 0 && iat < marker;
}

/*
 * Records a jti's state. An OK answer never replaces a revocation of the
 * same jti (a message may land between a Redis read and this store).
 */
static void put_jti(struct ident_rev *rv, const char *jti,
                    enum jti_state st, long long until)
{
    struct jti_slot *s = &rv->jtis[fnv1a(jti) % JTI_SLOTS];

    pthread_mutex_lock(&rv->jti_mu);
    if (!(st == JTI_OK && s->state == JTI_REVOKED &&
          strcmp(s->jti, jti) == 0)) {
        snprintf(s->jti, sizeof(s->jti), "%s", jti);
        s->state = (unsigned char)st;
        s->until = until;
    }
    pthread_mutex_unlock(&rv->jti_mu);
}

static void put_user(struct ident_rev *rv, const char *sub, long long marker,
                     long long expire_at)
{
    struct user_slot *s = &rv->users[fnv1a(sub) % USER_SLOTS];

    pthread_mutex_lock(&rv->user_mu);
    /* A later marker wins; an older one for the same user is stale. */
    if (strcmp(s->sub, sub) != 0 || marker >= s->marker) {
        snprintf(s->sub, sizeof(s->sub), "%s", sub);
        s->marker = marker;
        s->expire_at = expire_at;
    }
    pthread_mutex_unlock(&rv->user_mu);
}

/* Local answer: REVOKED, OK (fresh cached answer) or UNAVAILABLE (ask). */
static enum ident_rev_result local_check(struct ident_rev *rv,
                                         const char *sub, const char *jti,
                                         long long iat, time_t now)
{
    struct jti_slot *js = &rv->jtis[fnv1a(jti) % JTI_SLOTS];
    struct user_slot *us = &rv->users[fnv1a(sub) % USER_SLOTS];
    enum ident_rev_result res = IDENT_REV_UNAVAILABLE;

    pthread_mutex_lock(&rv->jti_mu);
    if (js->state != JTI_EMPTY && js->until > (long long)now &&
        strcmp(js->jti, jti) == 0)
        res = js->state == JTI_REVOKED ? IDENT_REV_REVOKED : IDENT_REV_OK;
    pthread_mutex_unlock(&rv->jti_mu);
    if (res == IDENT_REV_REVOKED)
        return res;
    pthread_mutex_lock(&rv->user_mu);
    if (us->marker > 0 && us->expire_at > (long long)now &&
        strcmp(us->sub, sub) == 0 &&
        ident_rev_marker_revokes(us->marker, iat))
        res = IDENT_REV_REVOKED;
    pthread_mutex_unlock(&rv->user_mu);
    return res;
}

static int parse_ll(const char *s, size_t n, long long *out)
{
    char buf[24];
    char *end;
    long long v;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Asks Redis for both keys in one round trip. */
static enum ident_rev_result ask_redis(struct ident_rev *rv, const char *sub,
                                       const char *jti, long long iat,
                                       long long exp, time_t now)
{
    redisContext *c;
    redisReply *r1 = NULL, *r2 = NULL;
    void *rep;
    enum ident_rev_result res = IDENT_REV_UNAVAILABLE;
    long long marker = 0;
    int broken = 1;

    pthread_mutex_lock(&rv->down_mu);
    if ((long long)now < rv->down_until) {
        pthread_mutex_unlock(&rv->down_mu);
        return IDENT_REV_UNAVAILABLE;
    }
    pthread_mutex_unlock(&rv->down_mu);
    c = redispool_acquire(rv->pool, REDIS_WAIT_MS);
    if (c == NULL)
        goto cleanup;
    if (redisAppendCommand(c, "EXISTS " IDENT_REV_JTI_PREFIX "%s", jti) !=
            REDIS_OK ||
        redisAppendCommand(c, "GET " IDENT_REV_USER_PREFIX "%s", sub) !=
            REDIS_OK)
        goto cleanup;
    if (redisGetReply(c, &rep) != REDIS_OK)
        goto cleanup;
    r1 = rep;
    if (redisGetReply(c, &rep) != REDIS_OK)
        goto cleanup;
    r2 = rep;
    if (r1 == NULL || r1->type != REDIS_REPLY_INTEGER || r2 == NULL ||
        (r2->type != REDIS_REPLY_NIL && r2->type != REDIS_REPLY_STRING))
        goto cleanup;
    broken = 0;
    if (r2->type == REDIS_REPLY_STRING &&
        parse_ll(r2->str, r2->len, &marker) == 0 && marker > 0)
        put_user(rv, sub, marker, (long long)now + MARKER_LOCAL_S);
    if (r1->integer > 0) {
        put_jti(rv, jti, JTI_REVOKED, exp);
        res = IDENT_REV_REVOKED;
    } else if (ident_rev_marker_revokes(marker, iat)) {
        res = IDENT_REV_REVOKED;
    } else {
        long long until = (long long)now + rv->ttl_s;
        put_jti(rv, jti, JTI_OK, until < exp ? until : exp);
        res = IDENT_REV_OK;
    }
cleanup:
    if (r1 != NULL)
        freeReplyObject(r1);
    if (r2 != NULL)
        freeReplyObject(r2);
    if (c != NULL)
        redispool_release(rv->pool, c, broken);
    if (res == IDENT_REV_UNAVAILABLE) {
        pthread_mutex_lock(&rv->down_mu);
        rv->down_until = (long long)now + 1;
        pthread_mutex_unlock(&rv->down_mu);
    }
    return res;
}

enum ident_rev_result ident_rev_check(struct ident_rev *rv, const char *sub,
                                      const char *jti, long long iat,
                                      long long exp, time_t now)
{
    enum ident_rev_result res;

    if (!id_ok(sub) || !id_ok(jti))
        return IDENT_REV_REVOKED; /* cannot be one of ours */
    res = local_check(rv, sub, jti, iat, now);
    if (res != IDENT_REV_UNAVAILABLE)
        return res;
    if (rv->pool == NULL) {
        long long until = (long long)now + rv->ttl_s;
        put_jti(rv, jti, JTI_OK, until < exp ? until : exp);
        return IDENT_REV_OK;
    }
    return ask_redis(rv, sub, jti, iat, exp, now);
}

/* Splits the next space-separated field of [*p, end); -1 when none. */
static int field(const char **p, const char *end, const char **f,
                 size_t *n)
{
    const char *s = *p;

    while (s < end && *s == ' ')
        s++;
    if (s >= end)
        return -1;
    *f = s;
    while (s < end && *s != ' ')
        s++;
    *n = (size_t)(s - *f);
    *p = s;
    return 0;
}

int ident_rev_note(struct ident_rev *rv, const char *msg, size_t len,
                   time_t now)
{
    const char *p = msg, *end = msg + len, *kind, *id, *a, *b;
    size_t kn, idn, an, bn;
    char idbuf[IDENT_REV_ID_MAX + 1];
    long long va, vb = 0;
    int is_user;

    if (field(&p, end, &kind, &kn) || field(&p, end, &id, &idn) ||
        field(&p, end, &a, &an) || parse_ll(a, an, &va) != 0)
        return -1;
    if (kn == 3 && memcmp(kind, "jti", 3) == 0)
        is_user = 0;
    else if (kn == 4 && memcmp(kind, "user", 4) == 0)
        is_user = 1;
    else
        return -1;
    if (is_user &&
        (field(&p, end, &b, &bn) != 0 || parse_ll(b, bn, &vb) != 0))
        return -1;
    if (idn == 0 || idn > IDENT_REV_ID_MAX)
        return -1;
    memcpy(idbuf, id, idn);
    idbuf[idn] = '\0';
    if (!id_ok(idbuf))
        return -1;
    if (is_user)
        put_user(rv, idbuf, va, vb > (long long)now ? vb : (long long)now +
                                                              MARKER_LOCAL_S);
    else
        put_jti(rv, idbuf, JTI_REVOKED, va);
    return 0;
}

void ident_rev_forget_ok(struct ident_rev *rv)
{
    pthread_mutex_lock(&rv->jti_mu);
    for (size_t i = 0; i < JTI_SLOTS; i++)
        if (rv->jtis[i].state == JTI_OK)
            rv->jtis[i].state = JTI_EMPTY;
    pthread_mutex_unlock(&rv->jti_mu);
}

/* Runs one command; 0 when Redis answered without an error. */
static int run(redisContext *c, redisReply *r)
{
    int ok = r != NULL && r->type != REDIS_REPLY_ERROR;

    if (r != NULL)
        freeReplyObject(r);
    (void)c;
    return ok ? 0 : -1;
}

int ident_rev_publish_jti(redisContext *c, const char *jti, long long exp)
{
    char msg[128], exps[24];

    if (!id_ok(jti))
        return -1;
    snprintf(exps, sizeof(exps), "%lld", exp);
    snprintf(msg, sizeof(msg), "jti %s %lld", jti, exp);
    if (run(c, redisCommand(c, "SET " IDENT_REV_JTI_PREFIX "%s 1 EXAT %s",
                            jti, exps)) != 0)
        return -1;
    return run(c, redisCommand(c, "PUBLISH " IDENT_REV_CHANNEL " %s", msg));
}

int ident_rev_publish_user(redisContext *c, const char *sub, long long t,
                           long long expire_at)
{
    char msg[160], ts[24], exps[24];

    if (!id_ok(sub))
        return -1;
    snprintf(ts, sizeof(ts), "%lld", t);
    snprintf(exps, sizeof(exps), "%lld", expire_at);
    snprintf(msg, sizeof(msg), "user %s %lld %lld", sub, t, expire_at);
    if (run(c, redisCommand(c, "SET " IDENT_REV_USER_PREFIX "%s %s EXAT %s",
                            sub, ts, exps)) != 0)
        return -1;
    return run(c, redisCommand(c, "PUBLISH " IDENT_REV_CHANNEL " %s", msg));
}
