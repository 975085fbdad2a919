/*
 * Analytics writer groups against a real PostgreSQL: a failed group
 * retried one request at a time, a commit past its timeout, rollups left
 * pending until applied (migration 0004). Fixture:
 * analytics_writer_fixture.h.
 */
#include "analytics_writer_fixture.h"

/* Submits a batch of n events over `users` distinct ids; must be OK. */
static void submit_ok(struct plat_an_writer *w, const char *tag, size_t n,
                      size_t users)
{
    size_t stored = 0, dups = 0;

    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch(tag, n, users,
                                                              "o"),
                                                n, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, n);
}

/* A submit from its own thread (the group-forming tests). */
struct submitter {
    struct plat_an_writer *w;
    struct plat_an_event *evs;
    size_t n, stored;
    enum plat_an_result rc;
};

static void *submit_main(void *arg)
{
    struct submitter *s = arg;
    size_t dups = 0;

    s->rc = plat_an_writer_submit_take(s->w, s->evs, s->n, &s->stored,
                                       &dups);
    return NULL;
}

/* Holds analytics_dedupe locked in an open transaction on its own
 * connection: the writer's next group waits at its first COPY. */
static PGconn *lock_dedupe(void)
{
    PGconn *c = PQconnectdb(db_url);

    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    t_exec(c, "BEGIN");
    t_exec(c, "LOCK TABLE platform.analytics_dedupe IN ACCESS EXCLUSIVE "
              "MODE");
    return c;
}

/* Events queued and not yet taken into a group by a writer. */
static long queued_events(struct plat_an_writer *w)
{
    long n;

    pthread_mutex_lock(&w->mu);
    n = w->queued;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Waits (up to 10 s) until exactly `n` events are queued. */
static void wait_queued(struct plat_an_writer *w, long n)
{
    for (int i = 0; i < 1000 && queued_events(w) != n; i++)
        usleep(10 * 1000);
    ck_assert_int_eq(queued_events(w), n);
}

/* Waits (up to 10 s) until some backend waits for a lock. */
static void wait_lock_waiter(void)
{
    for (int i = 0; i < 1000; i++) {
        if (scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                   "datname = current_database() AND "
                   "wait_event_type = 'Lock'") > 0)
            return;
        usleep(10 * 1000);
    }
    ck_abort_msg("the writer never waited for the lock");
}

/*
 * A group that fails for a reason other than the connection is written
 * again one request at a time: the request that cannot be stored fails
 * alone and its neighbours in the group are stored. (A row trigger
 * stands in for any per-request failure.)
 */
START_TEST(test_failed_group_retried_per_request)
{
    struct submitter a, b, c;
    pthread_t ta, tb, tc;
    PGconn *lk;
    struct plat_an_writer *w;
    struct plat_an_event *poison;

    t_exec(conn, "CREATE OR REPLACE FUNCTION platform.t_poison() RETURNS "
                 "trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event = "
                 "'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                 "RETURN NEW; END $$");
    t_exec(conn, "CREATE TRIGGER t_poison BEFORE INSERT ON "
                 "platform.analytics_events FOR EACH ROW EXECUTE FUNCTION "
                 "platform.t_poison()");
    set.writers = 1;
    w = started(db_url);
    /* the writer is connected and past its start-up maintenance (which
     * also touches analytics_dedupe) once a first batch is stored */
    submit_ok(w, "rw", 1, 1);
    lk = lock_dedupe();
    /* a: alone in a group, which waits for the lock */
    a = (struct submitter){w, make_batch("ra", 3, 3, "o"), 3, 0, -1};
    ck_assert_int_eq(pthread_create(&ta, NULL, submit_main, &a), 0);
    wait_queued(w, 0);
    wait_lock_waiter();
    /* b and c queue meanwhile: the next group is both of them */
    poison = make_batch("rb", 2, 2, "o");
    snprintf(poison[1].event, sizeof(poison[1].event), "poison");
    b = (struct submitter){w, poison, 2, 0, -1};
    c = (struct submitter){w, make_batch("rc", 4, 4, "o"), 4, 0, -1};
    ck_assert_int_eq(pthread_create(&tb, NULL, submit_main, &b), 0);
    ck_assert_int_eq(pthread_create(&tc, NULL, submit_main, &c), 0);
    wait_queued(w, 6);
    t_exec(lk, "COMMIT");
    PQfinish(lk);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    plat_an_writer_free(w);
    t_exec(conn, "DROP TRIGGER t_poison ON platform.analytics_events");
    ck_assert_int_eq(a.rc, PLAT_AN_OK);
    ck_assert_uint_eq(a.stored, 3);
    ck_assert_int_eq(b.rc, PLAT_AN_ERROR);
    ck_assert_int_eq(c.rc, PLAT_AN_OK);
    ck_assert_uint_eq(c.stored, 4);
    /* nothing of b, not even its first (valid) event or its ids */
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     1 + 3 + 4);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe"),
                     1 + 3 + 4);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_dedupe "
                            "WHERE (owner_key, message_id) NOT IN (SELECT "
                            "platform.analytics_owner_key(owner), message_id "
                            "FROM platform.analytics_events)"), 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 1 + 3 + 4);
}
END_TEST

/*
 * No commit within commit_timeout_ms: the request gets PLAT_AN_TIMEOUT
 * (outcome unknown, the client retries with the same message_ids); the
 * writer still owns the batch, finishes it once it can and frees it.
 */
START_TEST(test_commit_timeout)
{
    struct plat_an_writer *w;
    PGconn *lk;
    size_t stored = 0, dups = 0;
    long long n = 0;

    set.writers = 1;
    set.commit_timeout_ms = 200;
    w = started(db_url);
    lk = lock_dedupe();
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("to", 5, 5,
                                                              "o"),
                                                5, &stored, &dups),
                     PLAT_AN_TIMEOUT);
    t_exec(lk, "COMMIT");
    PQfinish(lk);
    for (int i = 0; i < 1000 && n < 5; i++) {
        n = scalar("SELECT count(*) FROM platform.analytics_events");
        if (n < 5)
            usleep(10 * 1000);
    }
    ck_assert_int_eq(n, 5);
    /* the retry the client makes stores nothing twice */
    set.commit_timeout_ms = 20000;
    ck_assert_int_eq(plat_an_writer_submit_take(w, make_batch("to", 5, 5,
                                                              "o"),
                                                5, &stored, &dups),
                     PLAT_AN_OK);
    ck_assert_uint_eq(stored, 0);
    ck_assert_uint_eq(dups, 5);
    plat_an_writer_free(w);
    ck_assert_int_eq(scalar("SELECT count(*) FROM platform.analytics_events"),
                     5);
}
END_TEST

/*
 * Rollups are folded in from pending rows (migration 0004): a group's
 * counts wait in analytics_rollup_pending until writer 0's interval
 * passes or a reader applies them, and are then exact; writer 0 applies
 * them by itself when idle too.
 */
START_TEST(test_rollups_pending_until_applied)
{
    struct plat_an_writer *w;
    long long pending = 1;

    set.writers = 1;
    set.rollup_interval_ms = 60000;
    w = started(db_url);
    /* the first group is applied at once (nothing applied yet) */
    submit_ok(w, "p1", 10, 4);
    submit_ok(w, "p2", 6, 6);
    ck_assert_int_eq(scalar("SELECT count(*) FROM "
                            "platform.analytics_rollup_pending"), 1);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 10);
    /* a reader applies what is pending, exactly once */
    ck_assert_int_eq(plat_an_rollup_apply(conn), 1);
    ck_assert_int_eq(plat_an_rollup_apply(conn), 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 16);
    ck_assert_int_eq(
        scalar("SELECT count(*) FROM platform.analytics_hourly h WHERE "
               "uniq <> (SELECT count(DISTINCT distinct_id) FROM "
               "platform.analytics_events e WHERE (h.scope = '*' OR "
               "e.owner = h.scope) AND (h.event = '' OR e.event = h.event) "
               "AND date_trunc('hour', e.ts) = h.hour)"),
        0);
    plat_an_writer_free(w);

    /* with a short interval writer 0 applies on its own while idle */
    set.rollup_interval_ms = 50;
    w = started(db_url);
    submit_ok(w, "p3", 3, 3);
    submit_ok(w, "p4", 3, 3);
    for (int i = 0; i < 500 && pending > 0; i++) {
        pending = scalar("SELECT count(*) FROM "
                         "platform.analytics_rollup_pending");
        if (pending > 0)
            usleep(10 * 1000);
    }
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 22);
    plat_an_writer_free(w);
}
END_TEST

/* The apply itself failing (here: a read-only session) reports -1 and
 * leaves the pending rows for the next try: nothing is lost. */
START_TEST(test_rollup_apply_failure_keeps_pending)
{
    struct plat_an_writer *w;

    set.writers = 1;
    set.rollup_interval_ms = 60000;
    w = started(db_url);
    submit_ok(w, "f1", 2, 2);   /* applied at once: first apply */
    submit_ok(w, "f2", 5, 5);   /* pending: interval not yet over */
    t_exec(conn, "SET default_transaction_read_only = on");
    ck_assert_int_eq(plat_an_rollup_apply(conn), -1);
    t_exec(conn, "SET default_transaction_read_only = off");
    ck_assert_int_eq(scalar("SELECT count(*) FROM "
                            "platform.analytics_rollup_pending"), 1);
    ck_assert_int_eq(plat_an_rollup_apply(conn), 1);
    ck_assert_int_eq(scalar("SELECT sum(n) FROM platform.analytics_hourly "
                            "WHERE scope = '*' AND event = ''"), 7);
    plat_an_writer_free(w);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("analytics_writer_groups");
    TCase *tc = tcase_create("db");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_failed_group_retried_per_request);
    tcase_add_test(tc, test_commit_timeout);
    tcase_add_test(tc, test_rollups_pending_until_applied);
    tcase_add_test(tc, test_rollup_apply_failure_keeps_pending);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_writer_suite(suite());
}
