/* workers.c (waker, LISTEN thread, pool, drain) against a real PostgreSQL. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auto_test.h"

static struct pgpool *pg;
static struct auto_queue q;

static void setup(void)
{
    pg = auto_test_pg(24);
    auto_queue_init(&q, pg, 30, 10, 1000);
}

static void teardown(void)
{
    pgpool_free(pg);
}

static long long enqueue(const char *type, json_t *args, int max_attempts)
{
    json_t *job = NULL;
    struct auto_enqueue in = {.type = type, .args = args, .priority = 2,
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

/* Waits up to `s` seconds for job `id` to reach `state`. */
static int wait_state(long long id, const char *state, double s)
{
    double until = auto_test_now() + s;
    char sql[160];

    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM automation.jobs WHERE id = %lld"
             " AND state = '%s'", id, state);
    do {
        if (auto_test_long(pg, sql) == 1)
            return 1;
        auto_test_sleep_ms(10);
    } while (auto_test_now() < until);
    return 0;
}

static struct auto_pool *pool_new(int workers, int poll_ms, int drain_s)
{
    struct auto_pool_opts o = {.queue = &q,
                               .conninfo = auto_test_db_url(),
                               .workers = workers, .heartbeat_s = 1,
                               .poll_ms = poll_ms, .drain_s = drain_s,
                               .replica_id = "test-replica",
                               .metrics = NULL};
    struct auto_pool *p = auto_pool_new(&o);

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(auto_pool_start(p), 0);
    return p;
}

START_TEST(test_waker)
{
    struct auto_waker w;
    unsigned long g;
    double t0;

    auto_waker_init(&w);
    g = auto_waker_gen(&w);
    t0 = auto_test_now();
    ck_assert_int_eq(auto_waker_wait(&w, g, 50), 0);
    ck_assert(auto_test_now() - t0 >= 0.045);
    /* a kick before the wait is not lost */
    auto_waker_kick(&w, 0);
    t0 = auto_test_now();
    ck_assert_int_eq(auto_waker_wait(&w, g, 5000), 1);
    ck_assert(auto_test_now() - t0 < 0.1);
    auto_waker_cleanup(&w);
}
END_TEST

/* Listener callback state: counts "job" notifications, connects. */
struct heard {
    struct auto_waker w;
    pthread_mutex_t mu;
    int connects, jobs;
    char last[64];
};

static void on_notify(void *arg, const char *payload)
{
    struct heard *h = arg;

    pthread_mutex_lock(&h->mu);
    if (!payload) {
        h->connects++;
    } else {
        h->jobs += strcmp(payload, "job") == 0;
        snprintf(h->last, sizeof h->last, "%s", payload);
    }
    pthread_mutex_unlock(&h->mu);
    auto_waker_kick(&h->w, 1);
}

START_TEST(test_listen_wakeup)
{
    static struct heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct auto_listener *l;
    unsigned long g;
    double t0, waited;
    int jobs;

    auto_waker_init(&h.w);
    g = auto_waker_gen(&h.w);
    l = auto_listener_start(auto_test_db_url(), on_notify, &h);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(auto_waker_wait(&h.w, g, 10000), 1);
    ck_assert_int_eq(h.connects, 1);

    /* The fallback timer here is 10 s: only NOTIFY can wake us sooner. */
    g = auto_waker_gen(&h.w);
    t0 = auto_test_now();
    enqueue("noop", json_object(), 5);
    ck_assert_int_eq(auto_waker_wait(&h.w, g, 10000), 1);
    waited = auto_test_now() - t0;
    pthread_mutex_lock(&h.mu);
    jobs = h.jobs;
    pthread_mutex_unlock(&h.mu);
    ck_assert_int_eq(jobs, 1);
    ck_assert_msg(waited < 0.5, "woke after %.3f s", waited);

    /* cancel of a running job is announced too */
    PQclear(auto_test_sql(pg, "UPDATE automation.jobs SET state = 'running',"
                              " locked_by = 'x/0', lease_expires_at = now()"
                              " + interval '1 minute'"));
    g = auto_waker_gen(&h.w);
    PQclear(auto_test_sql(pg, "UPDATE automation.jobs"
                              " SET cancel_requested = true"));
    ck_assert_int_eq(auto_waker_wait(&h.w, g, 5000), 1);
    pthread_mutex_lock(&h.mu);
    ck_assert_str_eq(h.last, "cancel:1");
    pthread_mutex_unlock(&h.mu);
    auto_listener_stop(l);
    auto_waker_cleanup(&h.w);
}
END_TEST

START_TEST(test_pool_runs_jobs_once)
{
    /* poll 10 s: every start below is driven by NOTIFY */
    struct auto_pool *p = pool_new(3, 10000, 5);
    long long id;
    double until;

    auto_test_sleep_ms(300);   /* workers idle, listener connected */
    id = enqueue("noop", json_object(), 5);
    ck_assert(wait_state(id, "succeeded", 2));
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT (extract(epoch FROM started_at - created_at) * 1000)::int"
        " FROM automation.jobs WHERE id = 1") < 500, 1);

    PQclear(auto_test_sql(pg,
        "INSERT INTO automation.jobs (type, owner_id)"
        " SELECT 'noop', 'u1' FROM generate_series(1, 200)"));
    until = auto_test_now() + 10;
    while (auto_test_long(pg, "SELECT count(*) FROM automation.jobs"
                              " WHERE state = 'succeeded'") < 201 &&
           auto_test_now() < until)
        auto_test_sleep_ms(20);
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT count(*) FROM automation.jobs WHERE state = 'succeeded'"
        " AND attempts = 1"), 201);
    auto_pool_free(p);
}
END_TEST

START_TEST(test_pool_retries_to_dead)
{
    struct auto_pool *p = pool_new(2, 100, 5);
    long long id = enqueue("fail", json_pack("{ss}", "message", "nope"), 3);
    json_t *job = NULL;

    ck_assert(wait_state(id, "dead", 5));
    ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "attempts")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(job, "last_error")),
                     "nope");
    json_decref(job);
    auto_pool_free(p);
}
END_TEST

START_TEST(test_cancel_running_job)
{
    struct auto_pool *p = pool_new(2, 10000, 5);
    long long id = enqueue("sleep", json_pack("{si}", "ms", 20000), 5);
    json_t *job = NULL;
    int running = 0;
    double t0;

    ck_assert(wait_state(id, "running", 2));
    t0 = auto_test_now();
    ck_assert_int_eq(auto_queue_cancel(&q, id, "u1", &job, &running),
                     AUTO_OK);
    json_decref(job);
    ck_assert_int_eq(running, 1);
    /* the 20 s job is stopped long before it would finish by itself */
    ck_assert(wait_state(id, "cancelled", 5));
    ck_assert(auto_test_now() - t0 < 15);
    auto_pool_free(p);
}
END_TEST

START_TEST(test_drain_releases_unfinished)
{
    /* a 2 s grace: the 300 ms job finishes within it even on a loaded
     * machine (1 s was seen to fall short under make test) */
    struct auto_pool *p = pool_new(2, 10000, 2);
    long long slow = enqueue("sleep", json_pack("{si}", "ms", 30000), 5);
    long long quick = enqueue("sleep", json_pack("{si}", "ms", 300), 5);
    double t0;

    ck_assert(wait_state(slow, "running", 2));
    ck_assert(wait_state(quick, "running", 2));
    t0 = auto_test_now();
    auto_pool_stop_claiming(p);
    /* nothing new starts while draining */
    long long late = enqueue("noop", json_object(), 5);
    auto_pool_drain(p);
    ck_assert(auto_test_now() - t0 < 4);
    ck_assert(wait_state(quick, "succeeded", 0));
    ck_assert(wait_state(late, "available", 0));
    ck_assert_int_eq(auto_test_long(pg,
        "SELECT count(*) FROM automation.jobs WHERE id = 1"
        " AND state = 'available' AND attempts = 0 AND locked_by IS NULL"
        " AND lease_expires_at IS NULL"), 1);
    auto_pool_free(p);
}
END_TEST

START_TEST(test_heartbeat_extends_lease)
{
    struct auto_pool *p;
    long long id;
    struct auto_job other;
    size_t n;

    q.lease_s = 2;
    p = pool_new(1, 10000, 5);
    id = enqueue("sleep", json_pack("{si}", "ms", 3500), 5);
    ck_assert(wait_state(id, "running", 2));
    auto_test_sleep_ms(2600);
    /* past the first lease: only the heartbeat keeps others off it */
    ck_assert_int_eq(auto_queue_claim(&q, "other/0", 1, &other, &n),
                     AUTO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert(wait_state(id, "succeeded", 3));
    ck_assert_int_eq(auto_test_long(pg, "SELECT attempts FROM"
                                        " automation.jobs WHERE id = 1"), 1);
    auto_pool_free(p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("automation_workers");
    TCase *tc = tcase_create("workers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_waker);
    tcase_add_test(tc, test_listen_wakeup);
    tcase_add_test(tc, test_pool_runs_jobs_once);
    tcase_add_test(tc, test_pool_retries_to_dead);
    tcase_add_test(tc, test_cancel_running_job);
    tcase_add_test(tc, test_drain_releases_unfinished);
    tcase_add_test(tc, test_heartbeat_extends_lease);
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
