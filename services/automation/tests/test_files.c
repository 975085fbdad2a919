/* storage.c (directory backend) and files.c over HTTP: streamed uploads
 * (raw and multipart), SHA-256, the size limit leaving nothing behind,
 * listing, ownership and downloads. Needs BASALT_TEST_DATABASE_URL. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "auto_test.h"
#include "../src/files.h"

#define LIMIT 200000

static struct pgpool *pg;
static struct auto_storage *st;
static struct auto_auth auth;
static struct auto_files files;
static struct httpd_server *srv;
static char root[64];

static void setup(void)
{
    struct httpd_opts o;

    pg = auto_test_pg(4);
    PQclear(auto_test_sql(pg, "TRUNCATE automation.files,"
                              " automation.datasets RESTART IDENTITY"));
    snprintf(root, sizeof root, "/tmp/test_files_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    st = auto_storage_dir_new(root);
    ck_assert_ptr_nonnull(st);
    auth.internal_token = "itok";
    files.pg = pg;
    files.storage = st;
    files.auth = &auth;
    files.max_bytes = LIMIT;
    httpd_opts_init(&o, "files-test");
    o.port = 0;
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(auto_files_routes(srv, &files), 0);
    ck_assert_int_eq(httpd_start(srv), 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int count_dir(const char *sub)
{
    char path[128];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof path, "%s/%s", root, sub);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void rm_dir(const char *sub)
{
    char path[256];
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof path, "%s/%s", root, sub);
    if (!(d = opendir(path)))
        return;
    while ((e = readdir(d))) {
        char f[512];

        if (e->d_name[0] == '.')
            continue;
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        unlink(f);
    }
    closedir(d);
    rmdir(path);
}

static void teardown(void)
{
    httpd_free(srv);
    auto_storage_free(st);
    pgpool_free(pg);
    rm_dir("objects");
    rm_dir("tmp");
    rmdir(root);
    curl_global_cleanup();
}

/* One request as `user`; body (len bytes) posted raw unless mime. */
static long req(const char *method, const char *path, const char *user,
                const char *body, size_t len, curl_mime *(*mime)(CURL *),
                struct auto_test_buf *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    curl_mime *m = NULL;
    char url[512], h[128];
    long status = 0;

    out->len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port(srv), path);
    hl = curl_slist_append(hl, "X-Internal-Token: itok");
    snprintf(h, sizeof h, "X-User-Id: %s", user);
    hl = curl_slist_append(hl, h);
    hl = curl_slist_append(hl, "Expect:");
    if (body) {
        hl = curl_slist_append(hl, "Content-Type: text/csv");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (mime) {
        m = mime(c);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, auto_test_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_mime_free(m);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    out->data[out->len] = '\0';
    return status;
}

static void sha_hex(const char *p, size_t len, char *out)
{
    unsigned char d[32];
    unsigned n = 0;

    EVP_Digest(p, len, d, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

START_TEST(test_storage_dir)
{
    struct auto_storage_put *p;
    char key[33], buf[16];
    uint64_t size = 0;
    int fd;

    ck_assert_int_eq(auto_storage_new_key(key, sizeof key), 0);
    ck_assert(auto_storage_key_valid(key));
    ck_assert(!auto_storage_key_valid("../etc"));
    ck_assert(!auto_storage_key_valid(".hidden"));
    ck_assert(!auto_storage_key_valid(""));
    ck_assert_int_eq(auto_storage_put_begin(st, key, &p), 0);
    ck_assert_int_eq(auto_storage_put_write(p, "hello ", 6), 0);
    ck_assert_int_eq(auto_storage_put_write(p, "world", 5), 0);
    ck_assert_int_eq(auto_storage_stat(st, key, &size), 1);  /* not yet */
    ck_assert_int_eq(count_dir("tmp"), 1);
    ck_assert_int_eq(auto_storage_put_commit(p), 0);
    ck_assert_int_eq(count_dir("tmp"), 0);
    ck_assert_int_eq(auto_storage_stat(st, key, &size), 0);
    ck_assert_uint_eq(size, 11);
    ck_assert_int_eq(auto_storage_get(st, key, &fd, &size), 0);
    ck_assert_int_eq(read(fd, buf, sizeof buf), 11);
    close(fd);
    ck_assert(memcmp(buf, "hello world", 11) == 0);
    ck_assert_int_eq(auto_storage_put_begin(st, "other", &p), 0);
    ck_assert_int_eq(auto_storage_put_write(p, "x", 1), 0);
    auto_storage_put_abort(p);
    ck_assert_int_eq(count_dir("tmp"), 0);
    ck_assert_int_eq(auto_storage_stat(st, "other", &size), 1);
    ck_assert_int_eq(auto_storage_delete(st, key), 0);
    ck_assert_int_eq(auto_storage_delete(st, key), 0);
    ck_assert_int_eq(auto_storage_get(st, key, &fd, &size), 1);
    ck_assert_int_eq(auto_storage_put_begin(st, "../x", &p), -1);
}
END_TEST

START_TEST(test_upload_raw_list_download)
{
    static struct auto_test_buf b;
    static char data[150000];
    char hex[65], path[128];
    json_t *j;
    long long id;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    sha_hex(data, sizeof data, hex);
    ck_assert_int_eq(req("POST", "/automation/files?name=a%20b.csv", "u1",
                         data, sizeof data, NULL, &b), 201);
    j = json_loads(b.data, 0, NULL);
    ck_assert_ptr_nonnull(j);
    id = json_integer_value(json_object_get(j, "id"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
                     "a b.csv");
    ck_assert_str_eq(json_string_value(json_object_get(j, "sha256")), hex);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size")),
                     (json_int_t)sizeof data);
    ck_assert_str_eq(json_string_value(json_object_get(j, "content_type")),
                     "text/csv");
    json_decref(j);
    snprintf(path, sizeof path, "/automation/files/%lld/content", id);
    ck_assert_int_eq(req("GET", path, "u1", NULL, 0, NULL, &b), 200);
    ck_assert_uint_eq(b.len, sizeof data);
    ck_assert(memcmp(b.data, data, sizeof data) == 0);
    ck_assert_int_eq(req("GET", path, "u2", NULL, 0, NULL, &b), 404);
    ck_assert_int_eq(req("GET", "/automation/files", "u1", NULL, 0, NULL,
                         &b), 200);
    j = json_loads(b.data, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "files")), 1);
    json_decref(j);
    ck_assert_int_eq(req("GET", "/automation/files", "u2", NULL, 0, NULL,
                         &b), 200);
    j = json_loads(b.data, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "files")), 0);
    json_decref(j);
    ck_assert_int_eq(req("POST", "/automation/files", "u1", "x", 1, NULL,
                         &b), 422);
    ck_assert_int_eq(req("POST", "/automation/files?name=%01", "u1", "x", 1,
                         NULL, &b), 422);
}
END_TEST

static curl_mime *two_parts(CURL *c)
{
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);

    curl_mime_name(p, "note");
    curl_mime_data(p, "not the file", CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(m);
    curl_mime_name(p, "upload");
    curl_mime_filename(p, "C:\\dir\\data.json");
    curl_mime_type(p, "application/json");
    curl_mime_data(p, "[{\"a\":1}]", CURL_ZERO_TERMINATED);
    return m;
}

static curl_mime *no_file(CURL *c)
{
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);

    curl_mime_name(p, "note");
    curl_mime_data(p, "just a field", CURL_ZERO_TERMINATED);
    return m;
}

START_TEST(test_upload_multipart)
{
    static struct auto_test_buf b;
    char hex[65];
    json_t *j;

    sha_hex("[{\"a\":1}]", 9, hex);
    ck_assert_int_eq(req("POST", "/automation/files", "u1", NULL, 0,
                         two_parts, &b), 201);
    j = json_loads(b.data, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
                     "data.json");
    ck_assert_str_eq(json_string_value(json_object_get(j, "content_type")),
                     "application/json");
    ck_assert_str_eq(json_string_value(json_object_get(j, "sha256")), hex);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size")), 9);
    json_decref(j);
    ck_assert_int_eq(req("POST", "/automation/files", "u1", NULL, 0,
                         no_file, &b), 422);
    ck_assert_int_eq(count_dir("tmp"), 0);
    ck_assert_int_eq(count_dir("objects"), 1);
}
END_TEST

START_TEST(test_too_large_leaves_nothing)
{
    static struct auto_test_buf b;
    static char data[LIMIT + 1];

    memset(data, 'x', sizeof data);
    ck_assert_int_eq(req("POST", "/automation/files?name=big", "u1", data,
                         sizeof data, NULL, &b), 413);
    ck_assert_int_eq(req("POST", "/automation/files?name=fits", "u1", data,
                         LIMIT, NULL, &b), 201);
    ck_assert_int_eq(count_dir("tmp"), 0);
    ck_assert_int_eq(count_dir("objects"), 1);
    ck_assert_int_eq(auto_test_long(pg, "SELECT count(*) FROM"
                                        " automation.files"), 1);
    ck_assert_int_eq(req("POST", "/automation/files?name=x", "", "x", 1,
                         NULL, &b), 401);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("automation_files");
    TCase *tc = tcase_create("files");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_storage_dir);
    tcase_add_test(tc, test_upload_raw_list_download);
    tcase_add_test(tc, test_upload_multipart);
    tcase_add_test(tc, test_too_large_leaves_nothing);
    suite_add_tcase(s, tc);
    return auto_test_run(s);
}
