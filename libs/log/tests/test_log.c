#include "log/log.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Captures fd 1 into a pipe. A reader thread drains the pipe while the
 * code under test writes, so output bigger than the pipe buffer can't
 * block the writers.
 */
struct capture {
    int saved;
    int rfd;
    pthread_t reader;
    char *buf;
    size_t len;
    size_t cap;
};

static void *capture_reader(void *arg)
{
    struct capture *c = arg;
    ssize_t r;

    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap != 0 ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL)
                abort();
        }
        r = read(c->rfd, c->buf + c->len, c->cap - c->len - 1);
        if (r <= 0)
            break;
        c->len += (size_t)r;
    }
    c->buf[c->len] = '\0';
    return NULL;
}

static void capture_start(struct capture *c)
{
    int p[2];

    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(pipe(p), 0);
    fflush(stdout);
    c->saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);
    close(p[1]);
    c->rfd = p[0];
    ck_assert_int_eq(pthread_create(&c->reader, NULL, capture_reader, c), 0);
}

/* Restores stdout (closing the pipe's last writer) and returns the text. */
static char *capture_stop(struct capture *c)
{
    dup2(c->saved, STDOUT_FILENO);
    close(c->saved);
    pthread_join(c->reader, NULL);
    close(c->rfd);
    return c->buf;
}

/* Splits out into lines; each must be a JSON object. Returns the count. */
static size_t parse_lines(char *out, json_t **lines, size_t max)
{
    size_t n = 0;
    char *p = out, *nl;
    json_error_t jerr;

    while (*p != '\0') {
        nl = strchr(p, '\n');
        ck_assert_msg(nl != NULL, "unterminated line: %s", p);
        *nl = '\0';
        ck_assert_uint_lt(n, max);
        lines[n] = json_loads(p, JSON_REJECT_DUPLICATES, &jerr);
        ck_assert_msg(lines[n] != NULL, "bad JSON (%s): %s", jerr.text, p);
        ck_assert(json_is_object(lines[n]));
        n++;
        p = nl + 1;
    }
    return n;
}

static void free_lines(json_t **lines, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        json_decref(lines[i]);
}

static const char *str_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    ck_assert_msg(json_is_string(v), "key %s missing or not a string", key);
    return json_string_value(v);
}

static void assert_ts(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    size_t i;

    ck_assert_uint_eq(strlen(ts), strlen(shape));
    for (i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd')
            ck_assert_msg(ts[i] >= '0' && ts[i] <= '9', "ts %s", ts);
        else
            ck_assert_msg(ts[i] == shape[i], "ts %s", ts);
    }
}

START_TEST(test_keys_and_order)
{
    static const char *const want[] = {
        "ts", "level", "service", "msg", "request_id", "trace_id",
        "port", "none",
    };
    struct log_ctx ctx = {"req-1", "0af7651916cd43dd8448eb211c80319c"};
    struct capture cap;
    json_t *lines[4];
    void *it;
    size_t n, i;
    char *out;

    ck_assert_int_eq(log_init("platform", "info"), 0);
    capture_start(&cap);
    log_kv(LOG_LVL_INFO, &ctx, "listening", "port", "8081", "none", NULL,
           NULL);
    log_info(NULL, "plain %d", 42);
    out = capture_stop(&cap);
    n = parse_lines(out, lines, 4);
    ck_assert_uint_eq(n, 2);

    it = json_object_iter(lines[0]);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_ptr_nonnull(it);
        ck_assert_str_eq(json_object_iter_key(it), want[i]);
        it = json_object_iter_next(lines[0], it);
    }
    ck_assert_ptr_null(it);
    assert_ts(str_at(lines[0], "ts"));
    ck_assert_str_eq(str_at(lines[0], "level"), "info");
    ck_assert_str_eq(str_at(lines[0], "service"), "platform");
    ck_assert_str_eq(str_at(lines[0], "msg"), "listening");
    ck_assert_str_eq(str_at(lines[0], "request_id"), "req-1");
    ck_assert_str_eq(str_at(lines[0], "trace_id"),
                     "0af7651916cd43dd8448eb211c80319c");
    ck_assert_str_eq(str_at(lines[0], "port"), "8081");
    ck_assert(json_is_null(json_object_get(lines[0], "none")));

    /* No context: no request_id/trace_id keys at all. */
    ck_assert_str_eq(str_at(lines[1], "msg"), "plain 42");
    ck_assert_uint_eq(json_object_size(lines[1]), 4);
    free_lines(lines, n);
    free(out);
}
END_TEST

START_TEST(test_level_filter)
{
    struct capture cap;
    json_t *lines[8];
    size_t n;
    char *out;

    ck_assert_int_eq(log_init("svc", "WARNING"), 0);
    ck_assert(!log_enabled(LOG_LVL_INFO));
    ck_assert(log_enabled(LOG_LVL_WARN));
    capture_start(&cap);
    log_debug(NULL, "d");
    log_info(NULL, "i");
    log_warn(NULL, "w");
    log_error(NULL, "e");
    log_kv(LOG_LVL_INFO, NULL, "kv-dropped", "k", "v", NULL);
    log_json(LOG_LVL_DEBUG, NULL, "json-dropped", json_pack("{si}", "a", 1));
    out = capture_stop(&cap);
    n = parse_lines(out, lines, 8);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(str_at(lines[0], "level"), "warn");
    ck_assert_str_eq(str_at(lines[0], "msg"), "w");
    ck_assert_str_eq(str_at(lines[1], "level"), "error");
    ck_assert_str_eq(str_at(lines[1], "msg"), "e");
    free_lines(lines, n);
    free(out);

    ck_assert_int_eq(log_init("svc", "debug"), 0);
    ck_assert(log_enabled(LOG_LVL_DEBUG));
    /* Unknown level: -1, and the level falls back to info. */
    ck_assert_int_eq(log_init("svc", "loud"), -1);
    ck_assert(!log_enabled(LOG_LVL_DEBUG));
    ck_assert(log_enabled(LOG_LVL_INFO));
    ck_assert_int_eq(log_init("svc", NULL), 0);
    ck_assert_int_eq(log_level_parse("error"), LOG_LVL_ERROR);
    ck_assert_int_eq(log_level_parse("warn"), LOG_LVL_WARN);
    ck_assert_int_eq(log_level_parse(""), -1);
    ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

START_TEST(test_escaping_and_odd_input)
{
    static const char tricky[] = "say \"hi\"\nnext\\line\ttab";
    struct log_ctx empty = {"", NULL};
    struct capture cap;
    json_t *lines[8];
    char big[5000];
    size_t n;
    char *out;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_init("svc", "debug");
    capture_start(&cap);
    log_kv(LOG_LVL_INFO, NULL, tricky, "q", tricky, NULL);
    log_kv(LOG_LVL_INFO, &empty, NULL, NULL);
    log_kv(LOG_LVL_INFO, NULL, "bad utf8 \xff\xc3(", NULL);
    log_fmt(LOG_LVL_DEBUG, NULL, "%s", big);
    log_json(LOG_LVL_ERROR, NULL, "typed",
             json_pack("{sisbss}", "n", 7, "ok", 1, "level", "spoofed"));
    log_json(LOG_LVL_INFO, NULL, "no fields", NULL);
    out = capture_stop(&cap);
    n = parse_lines(out, lines, 8);
    ck_assert_uint_eq(n, 6);

    ck_assert_str_eq(str_at(lines[0], "msg"), tricky);
    ck_assert_str_eq(str_at(lines[0], "q"), tricky);
    ck_assert_str_eq(str_at(lines[1], "msg"), "");
    ck_assert_ptr_null(json_object_get(lines[1], "request_id"));
    ck_assert_str_eq(str_at(lines[2], "msg"),
                     "bad utf8 \xef\xbf\xbd\xef\xbf\xbd(");
    ck_assert_str_eq(str_at(lines[3], "msg"), big);
    ck_assert_str_eq(str_at(lines[3], "level"), "debug");
    ck_assert_int_eq(json_integer_value(json_object_get(lines[4], "n")), 7);
    ck_assert(json_is_true(json_object_get(lines[4], "ok")));
    /* A field can't replace a fixed key. */
    ck_assert_str_eq(str_at(lines[4], "level"), "error");
    ck_assert_uint_eq(json_object_size(lines[5]), 4);
    free_lines(lines, n);
    free(out);
}
END_TEST

#define NTHREADS 8
#define NLINES 500

static void *log_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char idx[16];
    int i;

    for (i = 0; i < NLINES; i++) {
        snprintf(idx, sizeof(idx), "%d", i);
        /* Long enough that several lines overflow the pipe buffer. */
        log_kv(LOG_LVL_INFO, NULL,
               "a reasonably long message so that lines from eight threads "
               "would visibly tear if writes were not serialised",
               "thread", NULL, "i", idx, NULL);
        log_fmt(LOG_LVL_DEBUG, NULL, "dropped %d", i);
    }
    return (void *)(intptr_t)id;
}

static void *log_worker_id(void *arg)
{
    int id = (int)(intptr_t)arg;
    int i;

    for (i = 0; i < NLINES; i++)
        log_info(NULL, "t%d-%d", id, i);
    return NULL;
}

START_TEST(test_threads_no_interleave)
{
    static json_t *lines[NTHREADS * NLINES * 2 + 1];
    static unsigned char seen[NTHREADS][NLINES];
    pthread_t th[NTHREADS];
    struct capture cap;
    size_t n, i, kv = 0;
    const char *msg;
    int t, k;
    char *out;

    memset(seen, 0, sizeof(seen));
    log_init("svc", "info");
    capture_start(&cap);
    for (t = 0; t < NTHREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL,
                                        t % 2 ? log_worker : log_worker_id,
                                        (void *)(intptr_t)t),
                         0);
    for (t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    out = capture_stop(&cap);
    n = parse_lines(out, lines, sizeof(lines) / sizeof(lines[0]));
    ck_assert_uint_eq(n, NTHREADS * NLINES);
    for (i = 0; i < n; i++) {
        msg = str_at(lines[i], "msg");
        if (msg[0] == 't') {
            char *end;
            long tid = strtol(msg + 1, &end, 10);
            long li = strtol(end + 1, NULL, 10);

            ck_assert(*end == '-' && tid >= 0 && tid < NTHREADS && li >= 0 &&
                      li < NLINES);
            ck_assert(!seen[tid][li]);
            seen[tid][li] = 1;
        } else {
            kv++;
            ck_assert_ptr_nonnull(json_object_get(lines[i], "i"));
        }
    }
    ck_assert_uint_eq(kv, NTHREADS / 2 * NLINES);
    for (t = 0; t < NTHREADS; t += 2)
        for (k = 0; k < NLINES; k++)
            ck_assert(seen[t][k]);
    free_lines(lines, n);
    free(out);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_keys_and_order);
    tcase_add_test(tc, test_level_filter);
    tcase_add_test(tc, test_escaping_and_odd_input);
    tcase_add_test(tc, test_threads_no_interleave);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
