/*
 * events.c against a real Redis (BASALT_TEST_REDIS_URL): events emitted
 * on one hub reach SSE streams through Redis pub/sub, filtered by owner
 * (admins see all); an unreachable Redis never blocks producers.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "auto_test.h"
#include "../src/workflows.h"

#define TOKEN "internal-token-for-tests"

static struct pgpool *pg;
static struct auto_events *ev;
static struct httpd_server *srv;
static struct auto_auth auth;

static const char *redis_url(void)
{
    const char *u = getenv("BASALT_TEST_REDIS_URL");

    ck_assert_msg(u && *u, "BASALT_TEST_REDIS_URL is not set");
    return u;
}

static void setup(void)
{
    struct httpd_opts o;

    pg = auto_test_pg(4);
    ev = auto_events_new(redis_url(), pg, 1);
    ck_assert_ptr_nonnull(ev);
    auth.keys = NULL;
    auth.internal_token = TOKEN;
    httpd_opts_init(&o, "events-test");
    o.port = 0;
    o.drain_s = 2;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(auto_events_routes(srv, ev, &auth), 0);
    ck_assert_int_eq(httpd_start(srv), 0);
    ck_assert_int_eq(auto_events_start(ev), 0);
}

static void teardown(void)
{
    auto_events_shutdown(ev);   /* ends open streams */
    httpd_free(srv);
    auto_events_free(ev);
    pgpool_free(pg);
}

struct client {
    const char *user;
    const char *roles;
    char buf[1 << 15];
    size_t len;
    int want_a, want_b;      /* stop once both seen (admin) or a/b */
    int want_workflow;       /* ...and a workflow event */
    int status;
    pthread_t th;
};

static int seen(const struct client *c, const char *owner)
{
    char pat[64];

    snprintf(pat, sizeof pat, "\"owner_id\":\"%s\"", owner);
    return strstr(c->buf, pat) != NULL;
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct client *c = arg;
    size_t len = sz * n;

    if (len > sizeof c->buf - 1 - c->len)
        len = sizeof c->buf - 1 - c->len;
    memcpy(c->buf + c->len, p, len);
    c->len += len;
    c->buf[c->len] = '\0';
    if ((!c->want_a || seen(c, "a")) && (!c->want_b || seen(c, "b")) &&
        (!c->want_workflow || strstr(c->buf, "event: workflow\n")) &&
        strstr(c->buf, "\"last\":true"))
        return 0;   /* enough: hang up */
    return sz * n;
}

static void *run_client(void *arg)
{
    struct client *c = arg;
    struct curl_slist *h = NULL;
    char url[128], line[128];
    CURL *cu = curl_easy_init();
    long status = 0;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/automation/events",
             httpd_port(srv));
    h = curl_slist_append(h, "X-Internal-Token: " TOKEN);
    snprintf(line, sizeof line, "X-User-Id: %s", c->user);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-User-Roles: %s", c->roles);
    h = curl_slist_append(h, line);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
    curl_easy_perform(cu);
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    c->status = (int)status;
    curl_slist_free_all(h);
    curl_easy_cleanup(cu);
    return NULL;
}

static json_t *event(const char *owner, int n, int last)
{
    return json_pack("{sssisssssssb}", "kind", "job", "id", n, "state",
                     "succeeded", "owner_id", owner, "job_type", "noop",
                     "last", last);
}

START_TEST(test_stream_filtered_by_owner)
{
    /* a's stream may connect after a round's workflow event: it stays
     * until it has seen one too. */
    static struct client a = {.user = "a", .roles = "", .want_a = 1,
                              .want_workflow = 1};
    static struct client b = {.user = "b", .roles = "", .want_b = 1};
    static struct client adm = {.user = "z", .roles = "admin", .want_a = 1,
                                .want_b = 1};
    struct client *all[3] = {&a, &b, &adm};

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&all[i]->th, NULL, run_client,
                                        all[i]), 0);
    /* Streams and the subscriber connect asynchronously: keep emitting
     * until every client has what it waits for (bounded). */
    for (int i = 0; i < 200; i++) {
        auto_events_emit(ev, json_pack("{sssiss}", "kind", "workflow", "id",
                                       i, "owner_id", "a"));
        auto_events_emit(ev, event("a", i, 0));
        auto_events_emit(ev, event("b", i, 0));
        auto_events_emit(ev, event("a", i, 1));
        auto_events_emit(ev, event("b", i, 1));
        auto_test_sleep_ms(100);
        /* a's stream may connect between this round's workflow event
         * and its job events: wait for both kinds. */
        if (strstr(a.buf, "\"last\":true") && strstr(b.buf, "\"last\":true")
            && strstr(a.buf, "event: workflow\n") &&
            seen(&adm, "a") && seen(&adm, "b") &&
            strstr(adm.buf, "\"last\":true"))
            break;
    }
    auto_events_shutdown(ev);
    for (int i = 0; i < 3; i++)
        pthread_join(all[i]->th, NULL);
    ck_assert_int_eq(a.status, 200);
    ck_assert(seen(&a, "a") && !seen(&a, "b"));
    ck_assert(seen(&b, "b") && !seen(&b, "a"));
    ck_assert(seen(&adm, "a") && seen(&adm, "b"));
    ck_assert_ptr_nonnull(strstr(a.buf, "event: job\n"));
    ck_assert_ptr_nonnull(strstr(a.buf, "event: workflow\n"));
    ck_assert_ptr_nonnull(strstr(a.buf, ": connected"));
}
END_TEST

START_TEST(test_unauthenticated)
{
    static struct client anon = {.user = "", .roles = ""};

    run_client(&anon);
    ck_assert_int_eq(anon.status, 401);
}
END_TEST

START_TEST(test_redis_down_never_blocks)
{
    /* nothing listens on port 1 */
    struct auto_events *e = auto_events_new("redis://127.0.0.1:1/0", NULL, 1);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(auto_events_start(e), 0);
    for (int i = 0; i < 10000; i++)
        auto_events_emit(e, event("a", i, 0));
    auto_events_emit(NULL, event("a", 0, 0));   /* no hub: dropped */
    auto_events_free(e);
    ck_assert_ptr_null(auto_events_new("http://x", NULL, 1));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    SRunner *sr;
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_stream_filtered_by_owner);
    tcase_add_test(tc, test_unauthenticated);
    tcase_add_test(tc, test_redis_down_never_blocks);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
