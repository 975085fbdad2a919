/*
 * jsonarena: jansson trees parsed inside an arena come from it and free
 * nothing one by one; values made outside it are still malloc'd and
 * really freed (LeakSanitizer would report them otherwise); an arena
 * pointer freed after allocation stopped is recognised (AddressSanitizer
 * would report a free() of memory malloc never returned).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonarena/jsonarena.h"

/* A batch of n events as the analytics endpoint receives it. */
static char *batch(size_t n, size_t *len)
{
    size_t cap = n * 128 + 32, o = 0;
    char *s = malloc(cap);

    ck_assert_ptr_nonnull(s);
    o += (size_t)snprintf(s + o, cap - o, "{\"batch\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"event\":\"ev_%zu\",\"distinct_id\":"
                              "\"u%zu\",\"properties\":{\"n\":%zu}}",
                              i == 0 ? "" : ",", i % 7, i, i);
    o += (size_t)snprintf(s + o, cap - o, "]}");
    *len = o;
    return s;
}

static json_t *parse(const char *s, size_t len)
{
    json_error_t e;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &e);

    ck_assert_msg(v != NULL, "%s", e.text);
    return v;
}

START_TEST(test_tree_in_arena)
{
    struct jarena a;
    size_t len;
    char *text = batch(100, &len);
    json_t *outside = parse(text, len), *inside, *later;

    jarena_init(&a);
    jarena_alloc_on(&a);
    inside = parse(text, len);
    jarena_alloc_off(&a);
    ck_assert_uint_gt(a.used, 100 * 5 * 16);
    /* the same values as a tree made with malloc */
    ck_assert(json_equal(inside, outside));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(inside, "batch"), 99),
                         "distinct_id")),
                     "u99");
    /* allocation stopped: new values are malloc'd again */
    {
        size_t used = a.used;

        later = json_pack("{s:i}", "k", 1);
        ck_assert_ptr_nonnull(later);
        ck_assert_uint_eq(a.used, used);
    }
    /* frees while the arena is current: arena values cost nothing,
     * malloc'd ones (made before and after) really go */
    json_decref(inside);
    json_decref(outside);
    json_decref(later);
    jarena_end(&a);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_uint_eq(a.nchunks, 0);
    ck_assert_ptr_null(a.chunks);
    free(text);
}
END_TEST

START_TEST(test_grows_past_first_chunks)
{
    struct jarena a;
    size_t len;
    char *text = batch(5000, &len); /* ~0.5 MB of JSON: several chunks */
    json_t *outside = parse(text, len), *inside;

    jarena_init(&a);
    jarena_alloc_on(&a);
    inside = parse(text, len);
    jarena_alloc_off(&a);
    ck_assert_uint_gt(a.nchunks, 2);
    ck_assert(json_equal(inside, outside));
    ck_assert_uint_eq(json_array_size(json_object_get(inside, "batch")),
                      5000);
    json_decref(inside);
    json_decref(outside);
    jarena_end(&a);
    free(text);
}
END_TEST

START_TEST(test_one_big_value)
{
    struct jarena a;
    size_t n = 200 * 1024;
    char *s = malloc(n + 3);
    json_t *v;

    /* a string longer than a chunk gets a chunk of its own */
    s[0] = '"';
    memset(s + 1, 'x', n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    jarena_init(&a);
    jarena_alloc_on(&a);
    v = parse(s, n + 2);
    jarena_alloc_off(&a);
    ck_assert_uint_eq(json_string_length(v), n);
    ck_assert_uint_ge(a.used, n);
    json_decref(v);
    jarena_end(&a);
    free(s);
}
END_TEST

START_TEST(test_failed_parse)
{
    struct jarena a;
    size_t len;
    char *text = batch(100, &len);
    json_error_t e;

    /* jansson frees the half-built tree of a truncated batch itself:
     * those frees land in the arena (a free() of them would be reported
     * by AddressSanitizer) */
    jarena_init(&a);
    jarena_alloc_on(&a);
    ck_assert_ptr_null(json_loadb(text, len / 2, 0, &e));
    jarena_alloc_off(&a);
    ck_assert_uint_gt(a.used, 0);
    jarena_end(&a);
    free(text);
}
END_TEST

START_TEST(test_end_without_use)
{
    struct jarena a;
    json_t *v;

    jarena_init(&a);
    jarena_end(&a);
    /* no arena on this thread any more: plain malloc/free */
    v = json_pack("{s:s}", "a", "b");
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jsonarena");
    TCase *tc = tcase_create("arena");
    SRunner *sr;
    int failed;

    jarena_install();
    tcase_add_test(tc, test_tree_in_arena);
    tcase_add_test(tc, test_grows_past_first_chunks);
    tcase_add_test(tc, test_one_big_value);
    tcase_add_test(tc, test_failed_parse);
    tcase_add_test(tc, test_end_without_use);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
