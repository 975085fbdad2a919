/* jobs_api.c and identity.c over HTTP (httpd on a free port, libcurl). */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "auto_test.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

static struct pgpool *pg, *pg_down;
static struct auto_queue q, q_down;
static struct tok_keyset *keys;
static struct auto_auth auth;
static struct auto_api api;
static struct httpd_server *srv;
static int port;

static void setup(void)
{
    struct httpd_opts o;

    pg = auto_test_pg(8);
    auto_queue_init(&q, pg, 30, 10, 1000);
    pg_down = pgpool_new("postgresql://nobody@127.0.0.1:1/none", 1, 1);
    auto_queue_init(&q_down, pg_down, 30, 10, 1000);
    q_down.acquire_ms = 500;
    keys = tok_keyset_new();
    ck_assert_int_eq(tok_keyset_add_hmac(keys, SECRET, strlen(SECRET), NULL),
                     0);
    auth.keys = keys;
    auth.policy.issuer = "basalt";
    auth.policy.audience = "basalt";
    auth.policy.leeway_s = 60;
    auth.internal_token = "itok";
    api.queue = &q;
    api.auth = &auth;
    api.default_max_attempts = 5;
    httpd_opts_init(&o, "automation-test");
    o.host = "127.0.0.1";
    o.port = 0;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(auto_api_routes(srv, &api), 0);
    ck_assert_int_eq(httpd_start(srv), 0);
    port = httpd_port(srv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
    httpd_free(srv);
    pgpool_free(pg);
    pgpool_free(pg_down);
    tok_keyset_free(keys);
    curl_global_cleanup();
}

/* Sends a request as `user` ("" none, "admin" with role admin, a user
 * id via the gateway headers, or "bearer:<token>"). Returns the JSON
 * body (caller decrefs) and the status in *status. */
static json_t *req(const char *method, const char *path, const char *user,
                   const char *body, long *status)
{
    static struct auto_test_buf b;
    char url[256], h[512];
    struct curl_slist *hl = NULL;
    CURL *c = curl_easy_init();
    json_t *out;

    b.len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    if (strncmp(user, "bearer:", 7) == 0) {
        snprintf(h, sizeof h, "Authorization: Bearer %s", user + 7);
        hl = curl_slist_append(hl, h);
    } else if (*user) {
        hl = curl_slist_append(hl, "X-Internal-Token: itok");
        snprintf(h, sizeof h, "X-User-Id: %s", user);
        hl = curl_slist_append(hl, h);
        if (strcmp(user, "admin") == 0)
            hl = curl_slist_append(hl, "X-User-Roles: user,admin");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, auto_test_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    b.data[b.len] = '\0';
    out = json_loads(b.data, 0, NULL);
    ck_assert_msg(out != NULL, "not JSON: %s", b.data);
    return out;
}

static const char *err_field(json_t *j, const char *f)
{
    return json_string_value(json_object_get(json_object_get(j, "error"),
                                             f));
}

static long long job_id(json_t *j)
{
    return json_integer_value(json_object_get(json_object_get(j, "job"),
                                              "id"));
}

static const char *job_str(json_t *j, const char *f)
{
    return json_string_value(json_object_get(json_object_get(j, "job"), f));
}

START_TEST(test_rfc3339)
{
    ck_assert(auto_rfc3339_valid("2025-01-02T03:04:05Z"));
    ck_assert(auto_rfc3339_valid("2025-01-02t03:04:05.123456z"));
    ck_assert(auto_rfc3339_valid("2025-12-31T23:59:59+05:30"));
    ck_assert(auto_rfc3339_valid("2025-12-31T23:59:59-00:00"));
    ck_assert(!auto_rfc3339_valid("2025-12-31 23:59:59Z"));
    ck_assert(!auto_rfc3339_valid("2025-13-01T00:00:00Z"));
    ck_assert(!auto_rfc3339_valid("2025-02-30T00:00:00"));
    ck_assert(!auto_rfc3339_valid("2025-01-01T24:00:00Z"));
    ck_assert(!auto_rfc3339_valid("2025-01-01T00:00:00.Z"));
    ck_assert(!auto_rfc3339_valid("2025-01-01T00:00:00+0100"));
    ck_assert(!auto_rfc3339_valid("tomorrow"));
    ck_assert(!auto_rfc3339_valid(NULL));
}
END_TEST

START_TEST(test_roles)
{
    ck_assert(auto_roles_contain("user,admin", "admin"));
    ck_assert(auto_roles_contain("admin", "admin"));
    ck_assert(auto_roles_contain("user, admin ", "admin"));
    ck_assert(!auto_roles_contain("administrator,user", "admin"));
    ck_assert(!auto_roles_contain("", "admin"));
    ck_assert(!auto_roles_contain(NULL, "admin"));
}
END_TEST

START_TEST(test_auth_required)
{
    long st;
    json_t *j = req("GET", "/automation/jobs", "", NULL, &st);

    ck_assert_int_eq(st, 401);
    ck_assert_str_eq(err_field(j, "code"), "unauthorized");
    json_decref(j);
    j = req("GET", "/automation/jobs", "bearer:not.a.token", NULL, &st);
    ck_assert_int_eq(st, 401);
    json_decref(j);
}
END_TEST

START_TEST(test_bearer_token)
{
    struct tok_signer *s = tok_signer_new_hmac(SECRET, strlen(SECRET), NULL);
    const char *roles[] = {"user"};
    struct tok_issue in = {.issuer = "basalt", .audience = "basalt",
                           .sub = "u-bearer", .email = "b@example.com",
                           .roles = roles, .nroles = 1, .ttl_s = 60,
                           .now = time(NULL)};
    char *tok = tok_sign(s, &in, NULL);
    char user[4096];
    long st;
    json_t *j;

    ck_assert_ptr_nonnull(tok);
    snprintf(user, sizeof user, "bearer:%s", tok);
    j = req("POST", "/automation/jobs", user, "{\"type\":\"noop\"}", &st);
    ck_assert_int_eq(st, 202);
    ck_assert_str_eq(job_str(j, "owner_id"), "u-bearer");
    json_decref(j);
    free(tok);
    tok_signer_free(s);
}
END_TEST

START_TEST(test_enqueue_validation)
{
    static const struct { const char *body, *field; } bad[] = {
        {"{}", "type"},
        {"{\"type\":\"nope\"}", "type"},
        {"{\"type\":\"noop\",\"args\":[1]}", "args"},
        {"{\"type\":\"sleep\",\"args\":{}}", "args.ms"},
        {"{\"type\":\"http\",\"args\":{\"url\":\"file:///etc/passwd\"}}",
         "args.url"},
        {"{\"type\":\"noop\",\"priority\":9}", "priority"},
        {"{\"type\":\"noop\",\"max_attempts\":0}", "max_attempts"},
        {"{\"type\":\"noop\",\"run_at\":\"soon\"}", "run_at"},
        {"{\"type\":\"noop\",\"idempotency_key\":\"\"}", "idempotency_key"},
        {"{\"type\":\"noop\",\"idempotency_key\":5}", "idempotency_key"},
    };
    long st;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = req("POST", "/automation/jobs", "u1", bad[i].body, &st);

        ck_assert_msg(st == 422, "%s: %ld", bad[i].body, st);
        ck_assert_str_eq(err_field(j, "code"), "validation_failed");
        ck_assert_str_eq(err_field(j, "field"), bad[i].field);
        json_decref(j);
    }
}
END_TEST

START_TEST(test_enqueue_idempotent_and_owner_scoped)
{
    const char *body = "{\"type\":\"sleep\",\"args\":{\"ms\":5},"
                       "\"priority\":1,\"idempotency_key\":\"k1\","
                       "\"run_at\":\"2999-01-01T00:00:00Z\"}";
    char path[64];
    long st;
    json_t *a = req("POST", "/automation/jobs", "u1", body, &st);
    json_t *b, *c;

    ck_assert_int_eq(st, 202);
    ck_assert_str_eq(job_str(a, "state"), "scheduled");
    b = req("POST", "/automation/jobs", "u1", body, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(job_id(a), job_id(b));
    snprintf(path, sizeof path, "/automation/jobs/%lld", job_id(a));
    c = req("GET", path, "u2", NULL, &st);
    ck_assert_int_eq(st, 404);
    json_decref(c);
    c = req("GET", path, "admin", NULL, &st);
    ck_assert_int_eq(st, 200);
    json_decref(c);
    c = req("GET", path, "u1", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(c, "job"), "priority")), 1);
    json_decref(c);
    c = req("GET", "/automation/jobs/abc", "u1", NULL, &st);
    ck_assert_int_eq(st, 404);
    json_decref(c);
    json_decref(a);
    json_decref(b);
}
END_TEST

START_TEST(test_list_cursor)
{
    long st;
    json_t *j;
    const char *next;
    char path[128];

    for (int i = 0; i < 3; i++)
        json_decref(req("POST", "/automation/jobs", "u1",
                        "{\"type\":\"noop\"}", &st));
    json_decref(req("POST", "/automation/jobs", "u2", "{\"type\":\"noop\"}",
                    &st));
    j = req("GET", "/automation/jobs?limit=2", "u1", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "jobs")), 2);
    next = json_string_value(json_object_get(j, "next_cursor"));
    ck_assert_ptr_nonnull(next);
    snprintf(path, sizeof path, "/automation/jobs?limit=2&cursor=%s", next);
    json_decref(j);
    j = req("GET", path, "u1", NULL, &st);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "jobs")), 1);
    ck_assert(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    j = req("GET", "/automation/jobs?state=available&type=noop", "admin",
            NULL, &st);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "jobs")), 4);
    json_decref(j);
    j = req("GET", "/automation/jobs?state=bogus", "u1", NULL, &st);
    ck_assert_int_eq(st, 422);
    ck_assert_str_eq(err_field(j, "field"), "state");
    json_decref(j);
    j = req("GET", "/automation/jobs?cursor=x", "u1", NULL, &st);
    ck_assert_int_eq(st, 422);
    json_decref(j);
}
END_TEST

START_TEST(test_cancel_and_retry)
{
    long st;
    char path[64];
    json_t *j = req("POST", "/automation/jobs", "u1", "{\"type\":\"noop\"}",
                    &st);
    long long id = job_id(j);

    json_decref(j);
    snprintf(path, sizeof path, "/automation/jobs/%lld/cancel", id);
    j = req("POST", path, "u2", NULL, &st);
    ck_assert_int_eq(st, 404);
    json_decref(j);
    j = req("POST", path, "u1", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(job_str(j, "state"), "cancelled");
    json_decref(j);
    j = req("POST", path, "u1", NULL, &st);
    ck_assert_int_eq(st, 409);
    ck_assert_str_eq(err_field(j, "code"), "conflict");
    json_decref(j);
    snprintf(path, sizeof path, "/automation/jobs/%lld/retry", id);
    j = req("POST", path, "u1", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(job_str(j, "state"), "available");
    json_decref(j);
    j = req("POST", path, "u1", NULL, &st);
    ck_assert_int_eq(st, 409);
    json_decref(j);
}
END_TEST

START_TEST(test_db_down_is_503)
{
    long st;
    json_t *j;

    /* point the API at the pool that cannot connect */
    api.queue = &q_down;
    j = req("POST", "/automation/jobs", "u1", "{\"type\":\"noop\"}", &st);
    ck_assert_int_eq(st, 503);
    ck_assert_str_eq(err_field(j, "code"), "unavailable");
    json_decref(j);
    j = req("GET", "/automation/jobs/1", "u1", NULL, &st);
    ck_assert_int_eq(st, 503);
    json_decref(j);
    api.queue = &q;
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("automation_jobs_api");
    TCase *tc = tcase_create("api");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_rfc3339);
    tcase_add_test(tc, test_roles);
    tcase_add_test(tc, test_auth_required);
    tcase_add_test(tc, test_bearer_token);
    tcase_add_test(tc, test_enqueue_validation);
    tcase_add_test(tc, test_enqueue_idempotent_and_owner_scoped);
    tcase_add_test(tc, test_list_cursor);
    tcase_add_test(tc, test_cancel_and_retry);
    tcase_add_test(tc, test_db_down_is_503);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return auto_test_run(suite());
}
