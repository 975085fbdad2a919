/*
 * analytics_known: the set of presence keys a writer connection has seen
 * committed (SipHash-128 values).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/analytics_known.h"

static int has_n(struct plat_an_known *k, const char *s, size_t len)
{
    uint64_t h[2];

    ck_assert_int_eq(plat_an_known_hash(k, s, len, h), 0);
    ck_assert(h[1] != 0);
    return plat_an_known_has_hash(k, h);
}

static int has(struct plat_an_known *k, const char *s)
{
    return has_n(k, s, strlen(s));
}

static void add(struct plat_an_known *k, const char *s)
{
    uint64_t h[2];

    ck_assert_int_eq(plat_an_known_hash(k, s, strlen(s), h), 0);
    plat_an_known_add_hash(k, h);
}

START_TEST(test_add_has_clear)
{
    struct plat_an_known k;

    memset(&k, 0, sizeof(k));
    ck_assert(!has(&k, "o\x1f" "view\x1f" "1\x1f" "d1"));
    add(&k, "o\x1f" "view\x1f" "1\x1f" "d1");
    add(&k, "o\x1f" "view\x1f" "1\x1f" "d1"); /* twice: counted once */
    ck_assert_uint_eq(k.n, 1);
    ck_assert(has(&k, "o\x1f" "view\x1f" "1\x1f" "d1"));
    /* Neighbours differ in one field or one byte. */
    ck_assert(!has(&k, "o\x1f" "view\x1f" "2\x1f" "d1"));
    ck_assert(!has(&k, "o\x1f" "view\x1f" "1\x1f" "d2"));
    ck_assert(!has(&k, "o\x1f" "view\x1f" "1\x1f" "d1 "));
    ck_assert(!has(&k, ""));
    /* Only `len` bytes count. */
    ck_assert(has_n(&k, "o\x1f" "view\x1f" "1\x1f" "d1XYZ",
                    strlen("o\x1f" "view\x1f" "1\x1f" "d1")));
    plat_an_known_clear(&k);
    ck_assert_uint_eq(k.n, 0);
    ck_assert(!has(&k, "o\x1f" "view\x1f" "1\x1f" "d1"));
    add(&k, "again");
    ck_assert(has(&k, "again"));
    plat_an_known_cleanup(&k);
    ck_assert_ptr_null(k.slots);
    ck_assert(!has(&k, "again"));
    /* {0, 0} (what a failed hash gives) is never known nor added. */
    {
        const uint64_t none[2] = {0, 0};

        plat_an_known_add_hash(&k, none);
        ck_assert_uint_eq(k.n, 0);
        ck_assert(!plat_an_known_has_hash(&k, none));
    }
    plat_an_known_cleanup(&k); /* has() above made a new MAC */
}
END_TEST

/* Full: the set starts over rather than growing. */
START_TEST(test_starts_over_when_full)
{
    struct plat_an_known k;
    char key[32];

    memset(&k, 0, sizeof(k));
    for (unsigned i = 0; i < PLAT_AN_KNOWN_MAX; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        add(&k, key);
    }
    ck_assert_uint_eq(k.n, PLAT_AN_KNOWN_MAX);
    for (unsigned i = 0; i < PLAT_AN_KNOWN_MAX; i += 997) {
        snprintf(key, sizeof(key), "k%u", i);
        ck_assert_msg(has(&k, key), "lost %s", key);
    }
    ck_assert(!has(&k, "k-not-added"));
    add(&k, "one more");
    ck_assert_uint_eq(k.n, 1);
    ck_assert(has(&k, "one more"));
    ck_assert(!has(&k, "k0"));
    plat_an_known_cleanup(&k);
}
END_TEST

/* The one remembered value of a set holding one key. */
static void only_value(const struct plat_an_known *k, uint64_t out[2])
{
    int found = 0;

    for (size_t i = 0; i < k->cap; i++) {
        if (k->slots[i][1] != 0) {
            out[0] = k->slots[i][0];
            out[1] = k->slots[i][1];
            found++;
        }
    }
    ck_assert_int_eq(found, 1);
}

/* Each set draws its own random SipHash key: the same presence key is
 * remembered as different values (so no value can be precomputed). */
START_TEST(test_sets_are_keyed_independently)
{
    struct plat_an_known a, b;
    uint64_t va[2], vb[2];

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    add(&a, "x");
    add(&b, "x");
    ck_assert(has(&a, "x") && has(&b, "x"));
    only_value(&a, va);
    only_value(&b, vb);
    ck_assert(va[0] != vb[0] || va[1] != vb[1]);
    plat_an_known_cleanup(&a);
    plat_an_known_cleanup(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("analytics_known");
    TCase *tc = tcase_create("set");

    tcase_add_test(tc, test_add_has_clear);
    tcase_add_test(tc, test_starts_over_when_full);
    tcase_add_test(tc, test_sets_are_keyed_independently);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
