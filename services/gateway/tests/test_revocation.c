/*
 * revocation (the gateway's checker: local semantics, then pub/sub
 * against a real Redis from BASALT_TEST_REDIS_URL; fails, not skips,
 * without it). The verified-token cache is tested in libs/token.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/revocation.h"
#include "identity/revocation.h"
#include "redispool/redispool.h"

#define NOW 1700000000

static struct tok_claims claims(const char *sub, const char *jti,
                                long long exp)
{
    struct tok_claims c;

    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.jti, sizeof(c.jti), "%s", jti);
    c.exp = exp;
    c.iat = NOW - 10;
    return c;
}

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

START_TEST(pubsub_revokes_at_once)
{
    struct gw_revocation_opts o = {redis_url(), 30, 1};
    struct gw_revocation *rv;
    struct redispool *pool;
    redisContext *c;
    char err[256], sub[64], jti[64];
    time_t now = time(NULL);
    struct tok_claims cl;
    int revoked = 0;

    snprintf(sub, sizeof(sub), "gw-u-%d", (int)getpid());
    snprintf(jti, sizeof(jti), "gw-j-%d", (int)getpid());
    cl = claims(sub, jti, now + 900);
    cl.iat = now - 5;
    rv = gw_revocation_new(&o, err, sizeof(err));
    ck_assert_msg(rv != NULL, "%s", err);
    /* cached as fine (ttl 30 s) */
    ck_assert_int_eq(gw_revocation_check(rv, &cl, now), 0);
    pool = redispool_new(redis_url(), 1, 1000);
    /* the subscriber may still be connecting: publish until it lands */
    for (int i = 0; i < 100 && !revoked; i++) {
        c = redispool_acquire(pool, 1000);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(ident_rev_publish_jti(c, jti, now + 900), 0);
        redispool_release(pool, c, 0);
        usleep(50 * 1000);
        revoked = gw_revocation_check(rv, &cl, now) != 0;
    }
    ck_assert_msg(revoked, "pub/sub message never arrived");
    redispool_free(pool);
    gw_revocation_free(rv);
}
END_TEST

START_TEST(redis_down_policy)
{
    struct gw_revocation_opts open_o = {"redis://127.0.0.1:1/0", 30, 1};
    struct gw_revocation_opts closed_o = {"redis://127.0.0.1:1/0", 30, 0};
    struct gw_revocation *a, *b;
    struct tok_claims cl = claims("u", "j-down", time(NULL) + 900);
    char err[256];

    a = gw_revocation_new(&open_o, err, sizeof(err));
    b = gw_revocation_new(&closed_o, err, sizeof(err));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gw_revocation_check(a, &cl, time(NULL)), 0);
    ck_assert_int_eq(gw_revocation_check(b, &cl, time(NULL)), -1);
    /* revocations already known apply in both modes */
    gw_revocation_note(a, "jti j-down 4000000000");
    ck_assert_int_eq(gw_revocation_check(a, &cl, time(NULL)), -1);
    gw_revocation_free(a);
    gw_revocation_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_revocation");
    TCase *rc = tcase_create("revocation");
    SRunner *sr;
    int failed;

    tcase_add_test(rc, pubsub_revokes_at_once);
    tcase_add_test(rc, redis_down_policy);
    tcase_set_timeout(rc, 30);
    suite_add_tcase(s, rc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
