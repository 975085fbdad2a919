/* queue_batch.c (worker hot path) against a real PostgreSQL, and the
 * import's malformed-data classification (permanent failures). */
#include <stdio.h>
#include <string.h>

#include "auto_test.h"
#include "../src/import.h"

static struct pgpool *pg;
static struct auto_queue q;

static void setup(void)
{
    pg = auto_test_pg(8);
    auto_queue_init(&q, pg, 30, 10, 1000);
}

static void teardown(void)
{
    pgpool_free(pg);
}

static long long enqueue(int max_attempts)
{
    json_t *args = json_object(), *job = NULL;
    struct auto_enqueue in = {.type = "noop", .args = args, .priority = 2,
                              .max_attempts = max_attempts,
                              .owner_id = "u1"};
    int created = 0;
    long long id;

    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    id = json_integer_value(json_object_get(job, "id"));
    json_decref(job);
    json_decref(args);
    return id;
}

static long count_where(long long id, const char *cond)
{
    char sql[256];

    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM automation.jobs WHERE id = %lld AND %s",
             id, cond);
    return auto_test_long(pg, sql);
}

START_TEST(test_complete_many)
{
    long long ids[3];
    struct auto_job j[3];
    const struct auto_job *jp[3];
    const char *w[3] = {"r/0", "r/0", "r/9"};
    json_t *res = json_pack("{si}", "n", 1);
    const json_t *rs[3];
    int ok[3] = {9, 9, 9};
    size_t n = 0;

    rs[0] = res;
    rs[1] = NULL;
    rs[2] = res;
    for (int i = 0; i < 3; i++)
        ids[i] = enqueue(5);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 3, j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        jp[i] = &j[i];
        ck_assert_int_eq(j[i].id, ids[i]);
    }
    /* the third names a worker that does not hold the lease */
    ck_assert_int_eq(auto_queue_complete_many(&q, jp, w, rs, 3, ok),
                     AUTO_OK);
    ck_assert_int_eq(ok[0], 1);
    ck_assert_int_eq(ok[1], 1);
    ck_assert_int_eq(ok[2], 0);
    ck_assert_int_eq(count_where(ids[0], "state = 'succeeded'"
                                 " AND result = '{\"n\":1}' AND progress = 100"
                                 " AND locked_by IS NULL AND finished_at"
                                 " IS NOT NULL"), 1);
    ck_assert_int_eq(count_where(ids[1], "state = 'succeeded'"
                                 " AND result = 'null'::jsonb"), 1);
    ck_assert_int_eq(count_where(ids[2], "state = 'running'"), 1);
    /* stored once: a repeat finds no running job */
    ck_assert_int_eq(auto_queue_complete_many(&q, jp, w, rs, 2, ok),
                     AUTO_OK);
    ck_assert_int_eq(ok[0] + ok[1], 0);
    for (int i = 0; i < 3; i++)
        auto_job_cleanup(&j[i]);
    json_decref(res);
}
END_TEST

START_TEST(test_fail_permanent)
{
    long long id = enqueue(5);
    struct auto_job j;
    size_t n = 0;

    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(auto_queue_fail_permanent(&q, &j, "r/1", "x"),
                     AUTO_ELOST);
    ck_assert_int_eq(auto_queue_fail_permanent(&q, &j, "r/0",
                                               "line 2: bad"), AUTO_OK);
    /* dead at once although 4 attempts remain */
    ck_assert_int_eq(count_where(id, "state = 'dead' AND attempts = 1"
                                 " AND max_attempts = 5"
                                 " AND last_error = 'line 2: bad'"
                                 " AND jsonb_array_length(errors) = 1"
                                 " AND finished_at IS NOT NULL"
                                 " AND locked_by IS NULL"), 1);
    ck_assert_int_eq(auto_queue_fail_permanent(&q, &j, "r/0", "again"),
                     AUTO_ELOST);
    auto_job_cleanup(&j);
}
END_TEST

START_TEST(test_bulk_insert_claims_in_order)
{
    struct auto_job j[4];
    size_t n = 0;
    long long first;

    /* one statement, many rows (the statement-level NOTIFY trigger) */
    first = auto_test_long(pg, "WITH x AS (INSERT INTO"
                               " automation.jobs (type, owner_id)"
                               " SELECT 'noop', 'u1' FROM"
                               " generate_series(1, 10) RETURNING id)"
                               " SELECT min(id) FROM x");
    ck_assert_int_gt(first, 0);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 4, j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(j[i].id, first + (long long)i);
        ck_assert_str_eq(j[i].state, "running");
        auto_job_cleanup(&j[i]);
    }
}
END_TEST

START_TEST(test_import_malformed_is_permanent)
{
    ck_assert_int_eq(imp_malformed("line 3: quoted field not terminated"),
                     1);
    ck_assert_int_eq(imp_malformed("line 1: the JSON array is not closed"),
                     1);
    ck_assert_int_eq(imp_malformed("line 9: out of memory"), 0);
    ck_assert_int_eq(imp_malformed("read failed: Input/output error"), 0);
    ck_assert_int_eq(imp_malformed("out of memory"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("automation_queue_batch");
    TCase *tc = tcase_create("queue_batch");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_complete_many);
    tcase_add_test(tc, test_fail_permanent);
    tcase_add_test(tc, test_bulk_insert_claims_in_order);
    tcase_add_test(tc, test_import_malformed_is_permanent);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
