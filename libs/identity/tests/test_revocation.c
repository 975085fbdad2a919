/*
 * Revocation cache semantics (local state), then the same against a real
 * Redis (BASALT_TEST_REDIS_URL; fails, not skips, without it).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity/identity.h"
#include "identity/revocation.h"

#define NOW 1700000000LL
#define SUB "123e4567-e89b-12d3-a456-426614174000"

static int note(struct ident_rev *rv, const char *msg)
{
    return ident_rev_note(rv, msg, strlen(msg), (time_t)NOW);
}

START_TEST(marker_rule)
{
    ck_assert(!ident_rev_marker_revokes(0, NOW));
    ck_assert(ident_rev_marker_revokes(NOW, NOW - 1));
    ck_assert(!ident_rev_marker_revokes(NOW, NOW));
    ck_assert(!ident_rev_marker_revokes(NOW, NOW + 5));
}
END_TEST

START_TEST(local_jti_denylist)
{
    struct ident_rev *rv = ident_rev_new(NULL, 30);

    ck_assert_ptr_nonnull(rv);
    /* unknown token: fine, and the answer is cached */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "j1", NOW - 10, NOW + 900,
                                     (time_t)NOW),
                     IDENT_REV_OK);
    /* a logout message wins over the cached OK at once */
    ck_assert_int_eq(note(rv, "jti j1 1700000900"), 0);
    ck_assert_int_eq(ident_rev_check(rv, SUB, "j1", NOW - 10, NOW + 900,
                                     (time_t)NOW),
                     IDENT_REV_REVOKED);
    /* other tokens of the user are untouched */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "j2", NOW - 10, NOW + 900,
                                     (time_t)NOW),
                     IDENT_REV_OK);
    /* the entry ends with the token's exp */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "j1", NOW - 10, NOW + 900,
                                     (time_t)(NOW + 901)),
                     IDENT_REV_OK);
    ident_rev_free(rv);
}
END_TEST

START_TEST(local_user_marker)
{
    struct ident_rev *rv = ident_rev_new(NULL, 30);

    ck_assert_int_eq(ident_rev_check(rv, SUB, "a", NOW - 100, NOW + 800,
                                     (time_t)NOW),
                     IDENT_REV_OK);
    ck_assert_int_eq(note(rv, "user " SUB " 1700000000 1700000960"), 0);
    /* issued before the marker: refused, even though "a" was cached */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "a", NOW - 100, NOW + 800,
                                     (time_t)NOW),
                     IDENT_REV_REVOKED);
    /* issued at or after it (re-enabled user, new roles): fine */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "b", NOW, NOW + 900,
                                     (time_t)NOW),
                     IDENT_REV_OK);
    /* an older marker does not replace a newer one */
    ck_assert_int_eq(note(rv, "user " SUB " 1600000000 1700000960"), 0);
    ck_assert_int_eq(ident_rev_check(rv, SUB, "c", NOW - 1, NOW + 800,
                                     (time_t)NOW),
                     IDENT_REV_REVOKED);
    /* after expire_at the local marker is gone */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "d", NOW - 100, NOW + 2000,
                                     (time_t)(NOW + 1000)),
                     IDENT_REV_OK);
    ident_rev_free(rv);
}
END_TEST

START_TEST(malformed_messages)
{
    struct ident_rev *rv = ident_rev_new(NULL, 30);

    ck_assert_int_eq(note(rv, ""), -1);
    ck_assert_int_eq(note(rv, "jti"), -1);
    ck_assert_int_eq(note(rv, "jti x"), -1);
    ck_assert_int_eq(note(rv, "jti x -5"), -1);
    ck_assert_int_eq(note(rv, "jti x 12abc"), -1);
    ck_assert_int_eq(note(rv, "user x 1"), -1);
    ck_assert_int_eq(note(rv, "nuke everything 1"), -1);
    ck_assert_int_eq(
        note(rv, "jti "
                 "0123456789012345678901234567890123456789012345678901234567"
                 "890123 5"),
        -1);
    /* odd ids can never be ours: refused without a lookup */
    ck_assert_int_eq(ident_rev_check(rv, SUB, "", 0, NOW + 1, (time_t)NOW),
                     IDENT_REV_REVOKED);
    ck_assert_int_eq(ident_rev_check(rv, "a b", "j", 0, NOW + 1,
                                     (time_t)NOW),
                     IDENT_REV_REVOKED);
    ident_rev_free(rv);
}
END_TEST

START_TEST(forget_ok_keeps_revocations)
{
    struct ident_rev *rv = ident_rev_new(NULL, 30);

    ident_rev_check(rv, SUB, "k1", NOW, NOW + 900, (time_t)NOW);
    note(rv, "jti k2 1700000900");
    ident_rev_forget_ok(rv);
    ck_assert_int_eq(ident_rev_check(rv, SUB, "k2", NOW, NOW + 900,
                                     (time_t)NOW),
                     IDENT_REV_REVOKED);
    ident_rev_free(rv);
}
END_TEST

static const char *redis_url(void)
{
    const char *u = getenv("BASALT_TEST_REDIS_URL");

    if (u == NULL || u[0] == '\0') {
        fprintf(stderr, "BASALT_TEST_REDIS_URL is not set; run through "
                        "make unit (scripts/run-unit-tests)\n");
        exit(EXIT_FAILURE);
    }
    return u;
}

START_TEST(redis_round_trip)
{
    struct redispool *pool = redispool_new(redis_url(), 2, 1000);
    struct ident_rev *writer_view, *rv;
    redisContext *c;
    time_t now = time(NULL);
    char sub[64], jti[64];

    snprintf(sub, sizeof(sub), "u-%ld-%d", (long)now, (int)getpid());
    snprintf(jti, sizeof(jti), "j-%ld-%d", (long)now, (int)getpid());
    ck_assert_ptr_nonnull(pool);
    rv = ident_rev_new(pool, 1);
    writer_view = ident_rev_new(pool, 30);
    /* nothing revoked yet */
    ck_assert_int_eq(ident_rev_check(rv, sub, jti, now - 5, now + 900, now),
                     IDENT_REV_OK);
    c = redispool_acquire(pool, 1000);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(ident_rev_publish_jti(c, jti, now + 900), 0);
    redispool_release(pool, c, 0);
    /* a fresh verifier learns it from Redis */
    ck_assert_int_eq(ident_rev_check(writer_view, sub, jti, now - 5,
                                     now + 900, now),
                     IDENT_REV_REVOKED);
    /* the first one still trusts its cached OK until its ttl (1 s) */
    ck_assert_int_eq(ident_rev_check(rv, sub, jti, now - 5, now + 900, now),
                     IDENT_REV_OK);
    ck_assert_int_eq(ident_rev_check(rv, sub, jti, now - 5, now + 900,
                                     now + 2),
                     IDENT_REV_REVOKED);
    /* a user marker through Redis */
    c = redispool_acquire(pool, 1000);
    ck_assert_int_eq(ident_rev_publish_user(c, sub, now, now + 960), 0);
    redispool_release(pool, c, 0);
    ck_assert_int_eq(ident_rev_check(rv, sub, "other", now - 1, now + 900,
                                     now),
                     IDENT_REV_REVOKED);
    ck_assert_int_eq(ident_rev_check(rv, sub, "newer", now, now + 900, now),
                     IDENT_REV_OK);
    ident_rev_free(rv);
    ident_rev_free(writer_view);
    redispool_free(pool);
}
END_TEST

START_TEST(redis_down_is_unavailable)
{
    struct redispool *pool = redispool_new("redis://127.0.0.1:1/0", 1, 200);
    struct ident_rev *rv = ident_rev_new(pool, 30);
    time_t now = time(NULL);

    ck_assert_int_eq(ident_rev_check(rv, SUB, "z1", now, now + 900, now),
                     IDENT_REV_UNAVAILABLE);
    /* no OK was cached; known revocations still apply */
    note(rv, "jti z2 1900000000");
    ck_assert_int_eq(ident_rev_check(rv, SUB, "z2", now, now + 900, now),
                     IDENT_REV_REVOKED);
    ident_rev_free(rv);
    redispool_free(pool);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("identity_revocation");
    TCase *local = tcase_create("local");
    TCase *redis = tcase_create("redis");
    SRunner *sr;
    int failed;

    tcase_add_test(local, marker_rule);
    tcase_add_test(local, local_jti_denylist);
    tcase_add_test(local, local_user_marker);
    tcase_add_test(local, malformed_messages);
    tcase_add_test(local, forget_ok_keeps_revocations);
    tcase_add_test(redis, redis_round_trip);
    tcase_add_test(redis, redis_down_is_unavailable);
    suite_add_tcase(s, local);
    suite_add_tcase(s, redis);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
