/* import.c and datasets.c against PostgreSQL: import_file jobs run by a
 * real worker pool produce typed tables, stats and errors; the datasets
 * API pages and filters rows. Needs BASALT_TEST_DATABASE_URL. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auto_test.h"
#include "../src/files.h"

static struct pgpool *pg;
static struct auto_queue q;
static struct auto_pool *pool;
static struct auto_storage *st;
static struct auto_auth auth;
static struct auto_files files;
static struct httpd_server *srv;
static char root[64];

static void setup(void)
{
    struct httpd_opts o;
    struct auto_pool_opts po = {.queue = &q, .workers = 2, .heartbeat_s = 1,
                                .poll_ms = 100, .drain_s = 2,
                                .replica_id = "import"};

    pg = auto_test_pg(8);
    PQclear(auto_test_sql(pg, "TRUNCATE automation.files,"
                              " automation.datasets RESTART IDENTITY"));
    /* ids restart: drop the tables earlier tests imported */
    PQclear(auto_test_sql(pg, "DO $$ DECLARE t text; BEGIN FOR t IN SELECT"
                              " tablename FROM pg_tables WHERE schemaname ="
                              " 'automation' AND tablename LIKE 'ds\\_%'"
                              " LOOP EXECUTE 'DROP TABLE automation.' ||"
                              " quote_ident(t); END LOOP; END $$"));
    auto_queue_init(&q, pg, 30, 10, 100);
    snprintf(root, sizeof root, "/tmp/test_import_db_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    st = auto_storage_dir_new(root);
    ck_assert_ptr_nonnull(st);
    auth.internal_token = "itok";
    files.pg = pg;
    files.storage = st;
    files.auth = &auth;
    files.max_bytes = 1 << 20;
    files.max_error_rate = 0.01;
    auto_files_set(&files);
    httpd_opts_init(&o, "import-test");
    o.port = 0;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(auto_files_routes(srv, &files), 0);
    ck_assert_int_eq(httpd_start(srv), 0);
    po.conninfo = auto_test_db_url();
    pool = auto_pool_new(&po);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(auto_pool_start(pool), 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
    char cmd[128];

    auto_pool_free(pool);
    httpd_free(srv);
    auto_files_set(NULL);
    auto_storage_free(st);
    pgpool_free(pg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
    curl_global_cleanup();
}

struct buf {
    char data[1 << 18];
    size_t len;
};

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = sz * n;

    if (b->len + len < sizeof b->data) {
        memcpy(b->data + b->len, p, len);
        b->len += len;
    }
    return len;
}

/* GET or POST (body non-NULL) as user u1; JSON answer, status. */
static json_t *req(const char *path, const char *body, size_t len,
                   long *status)
{
    static struct buf b;
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[1024];

    b.len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port(srv), path);
    hl = curl_slist_append(hl, "X-Internal-Token: itok");
    hl = curl_slist_append(hl, "X-User-Id: u1");
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    b.data[b.len] = '\0';
    return json_loads(b.data, 0, NULL);
}

static long long upload(const char *name, const char *text)
{
    char path[256];
    long status;
    json_t *j;
    long long id;

    snprintf(path, sizeof path, "/automation/files?name=%s", name);
    j = req(path, text, strlen(text), &status);
    ck_assert_int_eq(status, 201);
    id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

/* Runs import_file (one attempt) as u1; returns the finished job. */
static json_t *import(long long file_id, json_t *extra)
{
    json_t *args = json_pack("{sI}", "file_id", (json_int_t)file_id);
    struct auto_enqueue in = {.type = "import_file", .args = args,
                              .priority = 2, .max_attempts = 1,
                              .owner_id = "u1"};
    json_t *job = NULL;
    int created;
    long long id;
    double until = auto_test_now() + 20;
    char f[64], why[128];

    json_object_update(args, extra);
    json_decref(extra);
    ck_assert_int_eq(auto_import_check(args, f, sizeof f, why, sizeof why),
                     0);
    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    id = json_integer_value(json_object_get(job, "id"));
    json_decref(args);
    for (;;) {
        const char *s;

        json_decref(job);
        ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
        s = json_string_value(json_object_get(job, "state"));
        if (!strcmp(s, "succeeded") || !strcmp(s, "dead"))
            return job;
        ck_assert_msg(auto_test_now() < until, "import stuck in %s", s);
        auto_test_sleep_ms(20);
    }
}

static json_t *col(json_t *ds, const char *name)
{
    size_t i;
    json_t *c;

    json_array_foreach(json_object_get(ds, "columns"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "name")), name))
            return c;
    ck_abort_msg("no column %s", name);
    return NULL;
}

static json_t *stat_of(json_t *ds, const char *name, const char *k)
{
    return json_object_get(json_object_get(col(ds, name), "stats"), k);
}

START_TEST(test_import_csv_and_rows)
{
    const char *csv = "id,City Name,temp,when,ok\n"
                      "1,Berlin,3.5,2024-01-01T10:00:00Z,true\n"
                      "2,\"Paris, FR\",,2024-01-02 11:00:00+01:00,false\n"
                      "3,Oslo,-2,2024-01-03T00:00:00Z,true\n"
                      "4,Zürich,7.25,2024-01-04T00:00:00Z,\n";
    json_t *job = import(upload("cities.csv", csv), json_object());
    json_t *res = json_object_get(job, "result"), *ds, *rows;
    long long ds_id;
    char path[512];
    long status;

    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "succeeded");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "rows")), 4);
    ds_id = json_integer_value(json_object_get(res, "dataset_id"));
    json_decref(job);
    snprintf(path, sizeof path, "/automation/datasets/%lld", ds_id);
    ds = req(path, NULL, 0, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(ds, "state")),
                     "ready");
    ck_assert_str_eq(json_string_value(json_object_get(col(ds, "city_name"),
                                                       "source_name")),
                     "City Name");
    ck_assert_str_eq(json_string_value(json_object_get(col(ds, "temp"),
                                                       "type")), "float");
    ck_assert_str_eq(json_string_value(json_object_get(col(ds, "when"),
                                                       "type")),
                     "timestamp");
    ck_assert_str_eq(json_string_value(json_object_get(col(ds, "ok"),
                                                       "type")), "boolean");
    ck_assert_int_eq(json_integer_value(stat_of(ds, "temp", "nulls")), 1);
    ck_assert_double_eq(json_real_value(stat_of(ds, "temp", "min")), -2);
    ck_assert_double_eq(json_real_value(stat_of(ds, "temp", "max")), 7.25);
    ck_assert_str_eq(json_string_value(stat_of(ds, "when", "min")),
                     "2024-01-01 10:00:00.000000+00");
    ck_assert_str_eq(json_string_value(stat_of(ds, "city_name", "max")),
                     "Zürich");
    ck_assert_int_eq(json_integer_value(stat_of(ds, "id", "distinct")), 4);
    json_decref(ds);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.ds_1 WHERE \"when\" ="
                                        " '2024-01-02 10:00:00Z'"), 1);

    snprintf(path, sizeof path, "/automation/datasets/%lld/rows?limit=2",
             ds_id);
    rows = req(path, NULL, 0, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(rows, "rows")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(rows, "next_cursor")),
                     "2");
    json_decref(rows);
    snprintf(path, sizeof path, "/automation/datasets/%lld/rows?cursor=2",
             ds_id);
    rows = req(path, NULL, 0, &status);
    ck_assert_uint_eq(json_array_size(json_object_get(rows, "rows")), 2);
    ck_assert(json_is_null(json_object_get(rows, "next_cursor")));
    json_decref(rows);
    snprintf(path, sizeof path, "/automation/datasets/%lld/rows?filter="
             "temp:gt:0&filter=city_name:contains:r", ds_id);
    rows = req(path, NULL, 0, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(rows, "rows")), 2);
    json_decref(rows);
    snprintf(path, sizeof path, "/automation/datasets/%lld/rows?filter="
             "ok:is_null", ds_id);
    rows = req(path, NULL, 0, &status);
    ck_assert_uint_eq(json_array_size(json_object_get(rows, "rows")), 1);
    json_decref(rows);
    snprintf(path, sizeof path, "/automation/datasets/%lld/rows?filter="
             "temp:gt:warm", ds_id);
    rows = req(path, NULL, 0, &status);
    ck_assert_int_eq(status, 422);
    json_decref(rows);
    rows = req("/automation/datasets", NULL, 0, &status);
    ck_assert_uint_eq(json_array_size(json_object_get(rows, "datasets")), 1);
    json_decref(rows);
}
END_TEST

START_TEST(test_import_errors)
{
    json_t *job = import(upload("bad.csv", "a,b\n1,2\n3,4,5\n6,7\n"),
                         json_object());
    const char *err = json_string_value(json_object_get(job, "last_error"));
    char path[64];
    long status;
    json_t *ds;

    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "dead");
    ck_assert_ptr_nonnull(strstr(err, "line 3: expected 2 fields, got 3"));
    json_decref(job);
    ds = req("/automation/datasets/1", NULL, 0, &status);
    ck_assert_str_eq(json_string_value(json_object_get(ds, "state")),
                     "failed");
    json_decref(ds);
    ds = req("/automation/datasets/1/rows", NULL, 0, &status);
    ck_assert_int_eq(status, 409);
    json_decref(ds);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " pg_tables WHERE tablename ="
                                        " 'ds_1'"), 0);

    job = import(upload("bad2.csv", "a,b\n1,2\n3,4,5\n6,7\n"),
                 json_pack("{sf}", "max_error_rate", 0.5));
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "succeeded");
    snprintf(path, sizeof path, "/automation/datasets/%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(
                 json_object_get(job, "result"), "dataset_id")));
    json_decref(job);
    ds = req(path, NULL, 0, &status);
    ck_assert_int_eq(json_integer_value(json_object_get(ds, "bad_rows")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(json_object_get(ds, "errors"), 0),
                         "line")), 3);
    json_decref(ds);

    job = import(999, json_object());
    ck_assert_str_eq(json_string_value(json_object_get(job, "last_error")),
                     "no such file 999");
    json_decref(job);
}
END_TEST

/* Malformed data fails for good: dead after one attempt of five. */
START_TEST(test_import_malformed_not_retried)
{
    json_t *args = json_pack("{sI}", "file_id", (json_int_t)upload(
                                 "q.csv", "a,b\n1,\"unterminated\n2,3\n"));
    struct auto_enqueue in = {.type = "import_file", .args = args,
                              .priority = 2, .max_attempts = 5,
                              .owner_id = "u1"};
    json_t *job = NULL;
    int created;
    long long id;
    double until = auto_test_now() + 20;

    ck_assert_int_eq(auto_queue_enqueue(&q, &in, &job, &created), AUTO_OK);
    id = json_integer_value(json_object_get(job, "id"));
    json_decref(args);
    for (;;) {
        const char *state;

        json_decref(job);
        ck_assert_int_eq(auto_queue_get(&q, id, NULL, &job), AUTO_OK);
        state = json_string_value(json_object_get(job, "state"));
        if (strcmp(state, "dead") == 0)
            break;
        ck_assert_msg(strcmp(state, "retryable") != 0, "malformed was retried");
        ck_assert_msg(auto_test_now() < until, "import stuck in %s", state);
        auto_test_sleep_ms(20);
    }
    ck_assert_int_eq(json_integer_value(json_object_get(job, "attempts")), 1);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
                              job, "last_error")), "not terminated"));
    json_decref(job);
}
END_TEST

START_TEST(test_import_ndjson)
{
    json_t *job = import(upload("e.ndjson",
                                "{\"k\":\"x\",\"n\":1,\"o\":{\"a\":[1]}}\n"
                                "{\"n\":2.5,\"d\":\"2024-02-29\"}\n"),
                         json_object());

    ck_assert_str_eq(json_string_value(json_object_get(job, "state")),
                     "succeeded");
    json_decref(job);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.ds_1 WHERE d ="
                                        " '2024-02-29'::date AND n = 2.5"),
                     1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.ds_1 WHERE o ="
                                        " '{\"a\":[1]}'"), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("automation_import_db");
    TCase *tc = tcase_create("import_db");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_import_csv_and_rows);
    tcase_add_test(tc, test_import_errors);
    tcase_add_test(tc, test_import_malformed_not_retried);
    tcase_add_test(tc, test_import_ndjson);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
