/*
 * scheduler.c: the slot plan (missed-run policies, caps), and against a
 * real PostgreSQL: three scheduler instances racing over a seconds-level
 * schedule fire each slot exactly once; missed runs on start; overlap
 * policies.
 */
#include <stdio.h>
#include <string.h>

#include "auto_test.h"
#include "../src/workflows.h"

/* 2030-01-01T00:00:00Z */
#define T0 INT64_C(1893456000000)
#define S(n) ((int64_t)(n) * 1000)

static struct auto_cron cron(const char *expr)
{
    struct auto_cron c;
    char err[AUTO_CRON_ERR_MAX];

    ck_assert_msg(auto_cron_parse(expr, &c, err, sizeof err) == 0, "%s",
                  err);
    return c;
}

START_TEST(test_plan_on_time)
{
    struct auto_cron c = cron("* * * * * *");
    struct auto_sched_plan p;

    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + 5500, S(10), 0, &p),
                     0);
    ck_assert_int_eq(p.nfire, 5);
    for (int i = 0; i < 5; i++)
        ck_assert(p.fire[i] == T0 + S(i + 1));
    ck_assert(p.missed_first == 0 && !p.catch_up);
    ck_assert(p.next_ms == T0 + S(6));
    /* nothing due yet */
    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + 999, S(10), 0, &p),
                     0);
    ck_assert_int_eq(p.nfire, 0);
    ck_assert(p.next_ms == T0 + S(1));
}
END_TEST

START_TEST(test_plan_missed_run_once)
{
    struct auto_cron c = cron("* * * * * *");
    struct auto_sched_plan p;

    /* an hour of downtime: one catch-up keyed by the first missed slot,
     * then the slots inside the grace window fire on time */
    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + S(3600), S(10), 1,
                                     &p), 0);
    ck_assert(p.missed_first == T0 + S(1));
    ck_assert(p.catch_up == 1);
    ck_assert(p.missed_cursor == T0 + S(3590) - 1);
    ck_assert_int_eq(p.nfire, 11);
    ck_assert(p.fire[0] == T0 + S(3590));
    ck_assert(p.fire[10] == T0 + S(3600));
    ck_assert(p.next_ms == T0 + S(3601));
}
END_TEST

START_TEST(test_plan_missed_skip)
{
    struct auto_cron c = cron("0 0 * * * *");   /* hourly */
    struct auto_sched_plan p;

    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + S(3 * 3600 + 5),
                                     S(10), 0, &p), 0);
    ck_assert(p.missed_first == T0 + S(3600));
    ck_assert(p.catch_up == 0);
    ck_assert_int_eq(p.nfire, 1);                 /* 03:00 is on time */
    ck_assert(p.fire[0] == T0 + S(3 * 3600));
    /* the same with run_once: one catch-up for 01:00 and 02:00 */
    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + S(3 * 3600 + 5),
                                     S(10), 1, &p), 0);
    ck_assert(p.catch_up == 1 && p.missed_first == T0 + S(3600));
}
END_TEST

START_TEST(test_plan_cap_and_never)
{
    struct auto_cron c = cron("* * * * * *");
    struct auto_cron never = cron("0 0 30 2 *");
    struct auto_sched_plan p;

    ck_assert_int_eq(auto_sched_plan(&c, "UTC", T0, T0 + S(100), S(200), 0,
                                     &p), 0);
    ck_assert_int_eq(p.nfire, AUTO_SCHED_FIRE_MAX);
    ck_assert(p.next_ms == T0 + S(AUTO_SCHED_FIRE_MAX + 1));
    ck_assert_int_eq(auto_sched_plan(&never, "UTC", T0, T0 + S(100), S(10),
                                     0, &p), 0);
    ck_assert_int_eq(p.nfire, 0);
    ck_assert(p.next_ms == 0);
    ck_assert_int_eq(auto_sched_plan(&c, "Nowhere/X", T0, T0 + S(1), S(10),
                                     0, &p), AUTO_CRON_ETZ);
}
END_TEST

START_TEST(test_plan_dst)
{
    /* Berlin 2030-03-31: 02:30 does not exist; Vixie fires it at 03:00
     * CEST (01:00Z), once */
    struct auto_cron c = cron("0 30 2 * * *");
    struct auto_sched_plan p;
    int64_t from = INT64_C(1901088000000);   /* 2030-03-30T08:00:00Z */

    ck_assert_int_eq(auto_sched_plan(&c, "Europe/Berlin", from,
                                     from + S(24 * 3600), S(48 * 3600), 0,
                                     &p), 0);
    ck_assert_int_eq(p.nfire, 1);
    ck_assert(p.fire[0] == INT64_C(1901149200000));   /* 01:00Z */
}
END_TEST

/* ---- database ---------------------------------------------------------- */

static struct pgpool *pg;

static void db_setup(void)
{
    pg = auto_test_pg(8);
    PQclear(auto_test_sql(pg, "TRUNCATE automation.workflows,"
                              " automation.runs, automation.run_steps"
                              " RESTART IDENTITY CASCADE"));
}

static void db_teardown(void)
{
    pgpool_free(pg);
}

struct racer {
    struct pgpool *pg;
    double until;
    int created;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    while (auto_test_now() < r->until) {
        int n = auto_sched_pass(r->pg, NULL, 10000, NULL);

        ck_assert_int_ge(n, 0);
        r->created += n;
        auto_test_sleep_ms(30);
    }
    return NULL;
}

START_TEST(test_three_schedulers_each_slot_once)
{
    struct racer r[3];
    pthread_t th[3];
    long runs, slots, steps, created = 0, span;

    PQclear(auto_test_sql(pg, "INSERT INTO automation.workflows (owner_id,"
                              " name, schedule, steps) VALUES ('u', 'w',"
                              " '* * * * * *', '[{\"type\":\"noop\"}]')"));
    for (int i = 0; i < 3; i++) {
        r[i].pg = pgpool_new(auto_test_db_url(), 2, 5);
        r[i].until = auto_test_now() + 3.5;
        r[i].created = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        created += r[i].created;
        pgpool_free(r[i].pg);
    }
    runs = auto_test_long(pg, "SELECT count(*) FROM automation.runs");
    slots = auto_test_long(pg, "SELECT count(DISTINCT scheduled_at)"
                               " FROM automation.runs");
    steps = auto_test_long(pg, "SELECT count(*) FROM automation.run_steps");
    span = auto_test_long(pg, "SELECT extract(epoch FROM max(scheduled_at)"
                              " - min(scheduled_at))::int + 1"
                              " FROM automation.runs");
    ck_assert_int_ge(runs, 2);
    ck_assert_int_eq(runs, slots);        /* no slot twice */
    ck_assert_int_eq(runs, span);         /* and none left out */
    ck_assert_int_eq(runs, created);      /* each counted by one winner */
    ck_assert_int_eq(steps, runs);        /* first step enqueued with it */
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.jobs"), runs);
}
END_TEST

START_TEST(test_missed_runs_on_start)
{
    /* cursor an hour back: as if every replica was down for an hour */
    PQclear(auto_test_sql(pg, "INSERT INTO automation.workflows (owner_id,"
                              " name, schedule, steps, missed_run,"
                              " slot_cursor) VALUES"
                              " ('u', 'once', '0 * * * * *',"
                              "  '[{\"type\":\"noop\"}]', 'run_once',"
                              "  now() - interval '1 hour'),"
                              " ('u', 'skip', '0 * * * * *',"
                              "  '[{\"type\":\"noop\"}]', 'skip',"
                              "  now() - interval '1 hour')"));
    /* grace 0: every past slot counts as missed */
    ck_assert_int_eq(auto_sched_pass(pg, NULL, 0, NULL), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE workflow_id = 1 AND trigger"
                                        " = 'catch_up'"), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE workflow_id = 2"), 0);
    /* both cursors moved: a second pass (another replica) adds nothing */
    ck_assert_int_eq(auto_sched_pass(pg, NULL, 0, NULL), 0);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.workflows WHERE"
                                        " slot_cursor > now() - interval"
                                        " '1 minute'"), 2);
}
END_TEST

/* Runs fire_slot for workflow 1 at T0 + n s; returns the run id or 0. */
static long fire_at(int n)
{
    char sql[256];

    snprintf(sql, sizeof sql,
             "SELECT coalesce(automation.fire_slot(1, "
             "'2030-01-01T00:00:00Z'::timestamptz + interval '%d s',"
             " 'schedule', '2030-01-01T00:00:00Z'::timestamptz"
             " + interval '%d s'), 0)", n, n);
    return auto_test_long(pg, sql);
}

static void overlap_wf(const char *policy)
{
    char sql[512];

    /* the sleep step stays queued (no workers): the run stays active */
    snprintf(sql, sizeof sql,
             "INSERT INTO automation.workflows (owner_id, name, schedule,"
             " steps, overlap, slot_cursor) VALUES ('u', 'o', '* * * * * *',"
             " '[{\"type\":\"sleep\",\"args\":{\"ms\":1}}]', '%s',"
             " '2030-01-01T00:00:00Z')", policy);
    PQclear(auto_test_sql(pg, sql));
}

START_TEST(test_overlap_forbid)
{
    long a, b;

    overlap_wf("forbid");
    a = fire_at(1);
    b = fire_at(2);
    ck_assert_int_gt(a, 0);
    ck_assert_int_gt(b, 0);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE state = 'skipped'"), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.jobs"), 1);
    /* the same slot again (another replica): nothing */
    ck_assert_int_eq(fire_at(2), 0);
}
END_TEST

START_TEST(test_overlap_replace)
{
    long a, b;

    overlap_wf("replace");
    a = fire_at(1);
    b = fire_at(2);
    ck_assert_int_gt(b, a);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE state = 'cancelled'"), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE state = 'running'"), 1);
    /* the replaced run's waiting step job was cancelled with it */
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.jobs"
                                        " WHERE state = 'cancelled'"), 1);
}
END_TEST

START_TEST(test_overlap_allow)
{
    overlap_wf("allow");
    ck_assert_int_gt(fire_at(1), 0);
    ck_assert_int_gt(fire_at(2), 0);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE state = 'running'"), 2);
}
END_TEST

START_TEST(test_steps_chain_in_sql)
{
    /* finishing a step job by hand (as a worker would) moves the run on */
    PQclear(auto_test_sql(pg, "INSERT INTO automation.workflows (owner_id,"
                              " name, steps) VALUES ('u', 'c',"
                              " '[{\"type\":\"noop\"},{\"type\":\"noop\"}]')"));
    ck_assert_int_gt(auto_test_long(pg, "SELECT automation.fire_slot(1, NULL,"
                                        " 'manual', NULL)"), 0);
    PQclear(auto_test_sql(pg, "UPDATE automation.jobs SET state ="
                              " 'succeeded' WHERE id = 1"));
    ck_assert_int_eq(auto_test_long(pg, "SELECT current_step FROM"
                                        " automation.runs"), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.jobs"
                                        " WHERE state = 'available'"), 1);
    PQclear(auto_test_sql(pg, "UPDATE automation.jobs SET state = 'dead',"
                              " last_error = 'boom' WHERE id = 2"));
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM automation.runs"
                                        " WHERE state = 'failed' AND error"
                                        " LIKE '%boom%'"), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scheduler");
    TCase *plan = tcase_create("plan");
    TCase *db = tcase_create("db");
    SRunner *sr;
    int failed;

    tcase_add_test(plan, test_plan_on_time);
    tcase_add_test(plan, test_plan_missed_run_once);
    tcase_add_test(plan, test_plan_missed_skip);
    tcase_add_test(plan, test_plan_cap_and_never);
    tcase_add_test(plan, test_plan_dst);
    suite_add_tcase(s, plan);
    tcase_add_checked_fixture(db, db_setup, db_teardown);
    tcase_set_timeout(db, 60);
    tcase_add_test(db, test_three_schedulers_each_slot_once);
    tcase_add_test(db, test_missed_runs_on_start);
    tcase_add_test(db, test_overlap_forbid);
    tcase_add_test(db, test_overlap_replace);
    tcase_add_test(db, test_overlap_allow);
    tcase_add_test(db, test_steps_chain_in_sql);
    suite_add_tcase(s, db);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
