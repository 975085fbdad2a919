/* queue.c against a real PostgreSQL (BASALT_TEST_DATABASE_URL). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auto_test.h"

static struct pgpool *pg;
static struct auto_queue q;

static void setup(void)
{
    pg = auto_test_pg(16);
    auto_queue_init(&q, pg, 30, 10, 1000);
}

static void teardown(void)
{
    pgpool_free(pg);
}

/* Enqueues a job for owner "u1"; returns its id. */
static long long enqueue(const char *type, int priority, const char *run_at,
                         int max_attempts)
{
    json_t *args = json_object(), *job = NULL;
    struct auto_enqueue in = {.type = type, .args = args,
                              .priority = priority, .run_at = run_at,
                              .max_attempts = max_attempts,
                              .owner_id = "u1"};
    int created = 0;
    long long id;

    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    ck_assert_int_eq(created, 1);
    id = json_integer_value(json_object_get(job, "id"));
    ck_assert_int_gt(id, 0);
    json_decref(job);
    json_decref(args);
    return id;
}

static char *job_state(long long id, char *buf, size_t len)
{
    json_t *job = NULL;

    ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
    snprintf(buf, len, "%s",
             json_string_value(json_object_get(job, "state")));
    json_decref(job);
    return buf;
}

/* Claims one job, retrying for up to 3 s (for back-off / leases). */
static int claim_one(const char *worker, struct auto_job *j)
{
    size_t n = 0;
    double until = auto_test_now() + 3;

    do {
        ck_assert_int_eq(auto_queue_claim(&q, worker, 1, j, &n), AUTO_OK);
        if (n)
            return 1;
        auto_test_sleep_ms(20);
    } while (auto_test_now() < until);
    return 0;
}

START_TEST(test_enqueue_claim_complete)
{
    struct auto_job j[2];
    size_t n = 9;
    json_t *job = NULL, *res = json_pack("{si}", "x", 1);
    char st[16];
    long long id = enqueue("noop", 2, NULL, 5);

    ck_assert_str_eq(job_state(id, st, sizeof st), "available");
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 2, j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(j[0].id, id);
    ck_assert_str_eq(j[0].type, "noop");
    ck_assert_str_eq(j[0].state, "running");
    ck_assert_int_eq(j[0].attempts, 1);
    ck_assert(json_is_object(j[0].args));
    ck_assert_str_eq(job_state(id, st, sizeof st), "running");
    ck_assert_int_eq(auto_queue_claim(&q, "r/1", 1, &j[1], &n), AUTO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(auto_queue_complete(&q, &j[0], "r/0", res), AUTO_OK);
    /* a second completion is refused */
    ck_assert_int_eq(auto_queue_complete(&q, &j[0], "r/0", res), AUTO_ELOST);
    ck_assert_int_eq(auto_queue_get(&q, id, "u1", &job), AUTO_OK);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "succeeded");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(job, "result"), "x")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "progress")),
                     100);
    ck_assert(json_is_string(json_object_get(job, "finished_at")));
    json_decref(job);
    ck_assert_int_eq(auto_queue_get(&q, id, "u2", &job), AUTO_ENOTFOUND);
    auto_job_cleanup(&j[0]);
    json_decref(res);
}
END_TEST

#define NJOBS 300
#define NCLAIMERS 6

static int seen[NJOBS + 1];
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static int lost_completions;

static void *claimer(void *arg)
{
    char worker[32];
    struct auto_job j[5];
    size_t n;

    snprintf(worker, sizeof worker, "r/%ld", (long)(intptr_t)arg);
    for (;;) {
        if (auto_queue_claim(&q, worker, 5, j, &n) != AUTO_OK || n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&seen_mu);
            if (j[i].id >= 1 && j[i].id <= NJOBS)
                seen[j[i].id]++;
            pthread_mutex_unlock(&seen_mu);
            if (auto_queue_complete(&q, &j[i], worker, NULL) != AUTO_OK)
                __atomic_add_fetch(&lost_completions, 1, __ATOMIC_SEQ_CST);
            auto_job_cleanup(&j[i]);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_claims_exactly_once)
{
    pthread_t th[NCLAIMERS];

    PQclear(auto_test_sql(pg,
        "INSERT INTO automation.jobs (type, owner_id)"
        " SELECT 'noop', 'u1' FROM generate_series(1, 300)"));
    for (long i = 0; i < NCLAIMERS; i++)
        pthread_create(&th[i], NULL, claimer, (void *)(intptr_t)i);
    for (int i = 0; i < NCLAIMERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 1; i <= NJOBS; i++)
        ck_assert_msg(seen[i] == 1, "job %d claimed %d times", i, seen[i]);
    ck_assert_int_eq(lost_completions, 0);
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT count(*) FROM automation.jobs WHERE state = 'succeeded'"
        " AND attempts = 1"), NJOBS);
}
END_TEST

START_TEST(test_expired_lease_reclaimed_stale_refused)
{
    struct auto_job a, b;
    size_t n;
    json_t *job = NULL;
    long long id;

    q.lease_s = 1;
    id = enqueue("noop", 2, NULL, 5);
    ck_assert_int_eq(auto_queue_claim(&q, "dead-replica/0", 1, &a, &n),
                     AUTO_OK);
    ck_assert_uint_eq(n, 1);
    /* not expired yet */
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &b, &n), AUTO_OK);
    ck_assert_uint_eq(n, 0);
    auto_test_sleep_ms(1200);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &b, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(b.id, id);
    ck_assert_int_eq(b.attempts, 2);
    /* the stale worker can neither finish nor fail nor release it */
    ck_assert_int_eq(auto_queue_complete(&q, &a, "dead-replica/0", NULL),
                     AUTO_ELOST);
    ck_assert_int_eq(auto_queue_fail(&q, &a, "dead-replica/0", "x", NULL),
                     AUTO_ELOST);
    ck_assert_int_eq(auto_queue_release(&q, &a, "dead-replica/0"),
                     AUTO_ELOST);
    /* even under the same worker id, the old attempt is refused */
    ck_assert_int_eq(auto_queue_complete(&q, &a, "r/0", NULL), AUTO_ELOST);
    ck_assert_int_eq(auto_queue_complete(&q, &b, "r/0", NULL), AUTO_OK);
    ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "succeeded");
    ck_assert_str_eq(json_string_value(json_object_get(job, "last_error")),
                     "lease expired");
    ck_assert_uint_eq(json_array_size(json_object_get(job, "errors")), 1);
    json_decref(job);
    auto_job_cleanup(&a);
    auto_job_cleanup(&b);
}
END_TEST

START_TEST(test_heartbeat_keeps_lease)
{
    struct auto_job a, b;
    size_t n;
    long long ids[1];
    int att[1];

    q.lease_s = 1;
    enqueue("noop", 2, NULL, 5);
    ck_assert_int_eq(auto_queue_claim(&q, "rep/0", 1, &a, &n), AUTO_OK);
    ids[0] = a.id;
    att[0] = a.attempts;
    for (int i = 0; i < 4; i++) {
        auto_test_sleep_ms(400);
        ck_assert_int_eq(auto_queue_heartbeat(&q, "rep/", ids, att, 1, NULL,
                                              NULL), AUTO_OK);
    }
    ck_assert_int_eq(auto_queue_claim(&q, "other/0", 1, &b, &n), AUTO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(auto_queue_complete(&q, &a, "rep/0", NULL), AUTO_OK);
    auto_job_cleanup(&a);
}
END_TEST

START_TEST(test_expired_without_attempts_goes_dead)
{
    struct auto_job a, b;
    size_t n;
    char st[16];
    long long id;

    q.lease_s = 1;
    id = enqueue("noop", 2, NULL, 1);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &a, &n), AUTO_OK);
    auto_test_sleep_ms(1200);
    ck_assert_int_eq(auto_queue_claim(&q, "r/1", 1, &b, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(b.state, "dead");
    ck_assert_str_eq(job_state(id, st, sizeof st), "dead");
    auto_job_cleanup(&a);
    auto_job_cleanup(&b);
}
END_TEST

START_TEST(test_retries_then_dead_then_retry)
{
    struct auto_job j;
    json_t *job = NULL;
    long long id = enqueue("fail", 2, NULL, 3);
    char st[16];
    int dead = -1;

    for (int attempt = 1; attempt <= 3; attempt++) {
        ck_assert_msg(claim_one("r/0", &j), "attempt %d not claimed",
                      attempt);
        ck_assert_int_eq(j.attempts, attempt);
        ck_assert_int_eq(auto_queue_fail(&q, &j, "r/0", "boom", &dead),
                         AUTO_OK);
        ck_assert_int_eq(dead, attempt == 3);
        if (attempt < 3)
            ck_assert_str_eq(job_state(id, st, sizeof st), "retryable");
        auto_job_cleanup(&j);
    }
    ck_assert_str_eq(job_state(id, st, sizeof st), "dead");
    ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
    ck_assert_uint_eq(json_array_size(json_object_get(job, "errors")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(job, "last_error")),
                     "boom");
    json_decref(job);
    ck_assert_int_eq(claim_one("r/0", &j), 0);
    /* the dead letter is re-runnable */
    ck_assert_int_eq(auto_queue_retry(&q, id, "u1", &job), AUTO_OK);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "available");
    ck_assert_int_eq(json_integer_value(json_object_get(job, "attempts")), 0);
    json_decref(job);
    ck_assert(claim_one("r/0", &j));
    ck_assert_int_eq(j.attempts, 1);
    ck_assert_int_eq(auto_queue_retry(&q, id, "u1", &job), AUTO_ECONFLICT);
    json_decref(job);
    auto_job_cleanup(&j);
}
END_TEST

START_TEST(test_backoff)
{
    struct auto_queue b;

    auto_queue_init(&b, NULL, 30, 1000, 10000);
    for (int i = 0; i < 50; i++) {
        long d1 = auto_backoff_ms(&b, 1), d3 = auto_backoff_ms(&b, 3);
        long d9 = auto_backoff_ms(&b, 9);

        ck_assert(d1 >= 800 && d1 <= 1200);
        ck_assert(d3 >= 3200 && d3 <= 4800);
        ck_assert(d9 >= 8000 && d9 <= 12000);
    }
}
END_TEST

#define NENQ 8
static long long enq_ids[NENQ];
static int enq_created[NENQ];

static void *enqueuer(void *arg)
{
    long i = (long)(intptr_t)arg;
    json_t *args = json_object(), *job = NULL;
    struct auto_enqueue in = {.type = "noop", .args = args, .priority = 2,
                              .max_attempts = 5, .owner_id = "u1",
                              .idempotency_key = "same-key"};

    if (auto_queue_enqueue(&q, &in, &job, &enq_created[i]) == AUTO_OK)
        enq_ids[i] = json_integer_value(json_object_get(job, "id"));
    json_decref(job);
    json_decref(args);
    return NULL;
}

START_TEST(test_idempotency_concurrent)
{
    pthread_t th[NENQ];
    int created = 0;
    json_t *args = json_object(), *job = NULL;
    struct auto_enqueue in = {.type = "noop", .args = args, .priority = 2,
                              .max_attempts = 5, .owner_id = "u2",
                              .idempotency_key = "same-key"};

    for (long i = 0; i < NENQ; i++)
        pthread_create(&th[i], NULL, enqueuer, (void *)(intptr_t)i);
    for (int i = 0; i < NENQ; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NENQ; i++) {
        created += enq_created[i];
        ck_assert_int_gt(enq_ids[i], 0);
        ck_assert_int_eq(enq_ids[i], enq_ids[0]);
    }
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT count(*) FROM automation.jobs"), 1);
    /* keys are per owner */
    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    ck_assert_int_eq(created, 1);
    json_decref(job);
    json_decref(args);
}
END_TEST

START_TEST(test_priority_and_run_at_order)
{
    struct auto_job j[10];
    size_t n;
    long long low = enqueue("noop", 4, NULL, 5);
    long long mid_now = enqueue("noop", 2, NULL, 5);
    long long mid_old = enqueue("noop", 2, "2000-01-01T00:00:00Z", 5);
    long long high = enqueue("noop", 1, NULL, 5);
    long long future = enqueue("noop", 1, "2999-01-01T00:00:00+02:00", 5);
    char st[16];

    ck_assert_str_eq(job_state(future, st, sizeof st), "scheduled");
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 10, j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(j[0].id, high);
    ck_assert_int_eq(j[1].id, mid_old);
    ck_assert_int_eq(j[2].id, mid_now);
    ck_assert_int_eq(j[3].id, low);
    for (size_t i = 0; i < n; i++)
        auto_job_cleanup(&j[i]);
    /* a scheduled job runs once due */
    PQclear(auto_test_sql(pg, "UPDATE automation.jobs SET run_at = now()"
                              " WHERE state = 'scheduled'"));
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 10, j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(j[0].id, future);
    auto_job_cleanup(&j[0]);
}
END_TEST

START_TEST(test_bad_run_at_is_einval)
{
    json_t *args = json_object(), *job = NULL;
    struct auto_enqueue in = {.type = "noop", .args = args, .priority = 2,
                              .max_attempts = 5, .owner_id = "u1",
                              .run_at = "2025-02-30T00:00:00Z"};
    int created;

    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created),
                     AUTO_EINVAL);
    json_decref(args);
}
END_TEST

static long long cancelled_id;

static void on_cancel(void *arg, long long id)
{
    (void)arg;
    cancelled_id = id;
}

START_TEST(test_cancel)
{
    long long waiting = enqueue("noop", 2, NULL, 5);
    json_t *job = NULL;
    struct auto_job j;
    size_t n;
    int running = -1;
    long long ids[1];
    int att[1];

    ck_assert_int_eq(auto_queue_cancel(&q, waiting, "u2", &job, &running),
                     AUTO_ENOTFOUND);
    ck_assert_int_eq(auto_queue_cancel(&q, waiting, "u1", &job, &running),
                     AUTO_OK);
    ck_assert_int_eq(running, 0);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "cancelled");
    json_decref(job);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(auto_queue_cancel(&q, waiting, "u1", &job, &running),
                     AUTO_ECONFLICT);
    json_decref(job);

    long long run = enqueue("noop", 2, NULL, 5);
    ck_assert_int_eq(auto_queue_claim(&q, "r/0", 1, &j, &n), AUTO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(auto_queue_cancel(&q, run, NULL, &job, &running),
                     AUTO_OK);
    ck_assert_int_eq(running, 1);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "running");
    ck_assert(json_is_true(json_object_get(job, "cancel_requested")));
    json_decref(job);
    ids[0] = j.id;
    att[0] = j.attempts;
    ck_assert_int_eq(auto_queue_heartbeat(&q, "r/", ids, att, 1, on_cancel,
                                          NULL), AUTO_OK);
    ck_assert_int_eq(cancelled_id, run);
    ck_assert_int_eq(auto_queue_cancelled(&q, &j, "r/0"), AUTO_OK);
    ck_assert_int_eq(auto_queue_get(&q, run, NULL, &job), AUTO_OK);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "cancelled");
    json_decref(job);
    auto_job_cleanup(&j);
}
END_TEST

START_TEST(test_release)
{
    struct auto_job j[3];
    size_t n;
    long released = 0;

    enqueue("noop", 2, NULL, 5);
    enqueue("noop", 2, NULL, 5);
    enqueue("noop", 2, NULL, 5);
    ck_assert_int_eq(auto_queue_claim(&q, "rep/0", 1, &j[0], &n), AUTO_OK);
    ck_assert_int_eq(auto_queue_claim(&q, "rep/1", 2, &j[1], &n), AUTO_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(auto_queue_release(&q, &j[0], "rep/0"), AUTO_OK);
    ck_assert_int_eq(auto_queue_release_all(&q, "rep/", &released), AUTO_OK);
    ck_assert_int_eq(released, 2);
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT count(*) FROM automation.jobs WHERE state = 'available'"
        " AND attempts = 0 AND locked_by IS NULL"
        " AND lease_expires_at IS NULL"), 3);
    for (int i = 0; i < 3; i++)
        auto_job_cleanup(&j[i]);
}
END_TEST

START_TEST(test_list_filters_and_cursor)
{
    struct auto_list_filter f = {.owner_id = "u1", .limit = 2};
    json_t *page = NULL;

    for (int i = 0; i < 5; i++)
        enqueue(i % 2 ? "fail" : "noop", 2, NULL, 5);
    ck_assert_int_eq(auto_queue_list(&q, &f, &page), AUTO_OK);
    ck_assert_uint_eq(json_array_size(page), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(page, 0), "id")), 5);
    json_decref(page);
    f.before_id = 4;
    ck_assert_int_eq(auto_queue_list(&q, &f, &page), AUTO_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(page, 0), "id")), 3);
    json_decref(page);
    f.before_id = 0;
    f.limit = 100;
    f.type = "fail";
    ck_assert_int_eq(auto_queue_list(&q, &f, &page), AUTO_OK);
    ck_assert_uint_eq(json_array_size(page), 2);
    json_decref(page);
    f.type = NULL;
    f.owner_id = "nobody";
    ck_assert_int_eq(auto_queue_list(&q, &f, &page), AUTO_OK);
    ck_assert_uint_eq(json_array_size(page), 0);
    json_decref(page);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("automation_queue");
    TCase *tc = tcase_create("queue");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_enqueue_claim_complete);
    tcase_add_test(tc, test_concurrent_claims_exactly_once);
    tcase_add_test(tc, test_expired_lease_reclaimed_stale_refused);
    tcase_add_test(tc, test_heartbeat_keeps_lease);
    tcase_add_test(tc, test_expired_without_attempts_goes_dead);
    tcase_add_test(tc, test_retries_then_dead_then_retry);
    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_idempotency_concurrent);
    tcase_add_test(tc, test_priority_and_run_at_order);
    tcase_add_test(tc, test_bad_run_at_is_einval);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_release);
    tcase_add_test(tc, test_list_filters_and_cursor);
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
    return failed ? 1 : 0;
}
