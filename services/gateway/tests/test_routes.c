/* Unit tests for routes.c / route_match.c: parsing, validation, matching,
 * strip_prefix, env overrides, the swappable table. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/route_match.c"
#include "../src/routes.c"

static const struct gw_route_defaults defs = {30000, 1024};

static const char good[] =
    "{\"upstreams\":{"
    "  \"platform\":{\"targets\":[\"http://127.0.0.1:8081/\"]},"
    "  \"llm-orchestrator\":{\"targets\":[\"http://a:1\",\"https://b:2\"]},"
    "  \"empty\":{\"targets\":[]}},"
    " \"routes\":["
    "  {\"name\":\"reg\",\"path\":\"/auth/register\",\"methods\":[\"POST\"],"
    "   \"upstream\":\"platform\",\"auth\":\"none\"},"
    "  {\"name\":\"auth\",\"prefix\":\"/auth\",\"upstream\":\"platform\"},"
    "  {\"name\":\"users-get\",\"prefix\":\"/users\",\"methods\":[\"GET\","
    "   \"HEAD\"],\"upstream\":\"platform\",\"auth\":\"none\"},"
    "  {\"name\":\"users-write\",\"prefix\":\"/users\",\"methods\":[\"POST\","
    "   \"DELETE\"],\"upstream\":\"platform\",\"roles\":[\"admin\"]},"
    "  {\"name\":\"llm\",\"prefix\":\"/llm\",\"strip_prefix\":true,"
    "   \"upstream\":\"llm-orchestrator\",\"timeout_ms\":200,"
    "   \"max_body\":99999},"
    "  {\"name\":\"llm-deep\",\"prefix\":\"/llm/v1/deep\","
    "   \"upstream\":\"llm-orchestrator\"},"
    "  {\"name\":\"root\",\"path\":\"/\",\"upstream\":\"empty\"}"
    "]}";

static struct gw_routes *parse(const char *json, char *err, size_t errlen)
{
    return gw_routes_parse(json, strlen(json), &defs, err, errlen);
}

START_TEST(test_parse_valid)
{
    char err[256] = "";
    struct gw_routes *rt = parse(good, err, sizeof(err));
    const struct gw_route *r;

    ck_assert_msg(rt != NULL, "%s", err);
    ck_assert_uint_eq(rt->nupstreams, 3);
    ck_assert_uint_eq(rt->nroutes, 7);
    ck_assert_str_eq(rt->upstreams[0].targets[0], "http://127.0.0.1:8081");
    ck_assert_uint_eq(gw_routes_upstream(rt, "llm-orchestrator")->ntargets,
                      2);
    ck_assert_uint_eq(gw_routes_upstream(rt, "empty")->ntargets, 0);
    r = &rt->routes[0];
    ck_assert_str_eq(r->name, "reg");
    ck_assert_int_eq(r->is_prefix, 0);
    ck_assert_uint_eq(r->methods, GW_M_POST);
    ck_assert_int_eq(r->auth, GW_AUTH_NONE);
    ck_assert_int_eq(r->timeout_ms, 30000);
    ck_assert_uint_eq(r->max_body, 1024);
    r = &rt->routes[1];
    ck_assert_int_eq(r->auth, GW_AUTH_TOKEN); /* the safe default */
    ck_assert_uint_eq(r->methods, GW_M_ANY);
    r = &rt->routes[3];
    ck_assert_uint_eq(r->nroles, 1);
    ck_assert_str_eq(r->roles[0], "admin");
    r = &rt->routes[4];
    ck_assert_int_eq(r->strip_prefix, 1);
    ck_assert_int_eq(r->timeout_ms, 200);
    ck_assert_uint_eq(r->max_body, 99999);
    ck_assert_uint_eq(gw_routes_max_body(rt), 99999);
    gw_routes_release(rt);
}
END_TEST

/* The shipped routes file must always parse. */
START_TEST(test_parse_shipped_file)
{
    char err[256] = "", path[1024];
    const char *slash = strrchr(__FILE__, '/');
    struct gw_routes *rt;
    const struct gw_route *r;
    unsigned allowed;

    snprintf(path, sizeof(path), "%.*s/../routes.json",
             (int)(slash - __FILE__), __FILE__);
    rt = gw_routes_load(path, &defs, err, sizeof(err));
    ck_assert_msg(rt != NULL, "%s", err);
    ck_assert_int_eq(gw_routes_match(rt, "POST", "/auth/login", &r,
                                     &allowed),
                     GW_MATCH_OK);
    ck_assert_int_eq(r->auth, GW_AUTH_NONE);
    ck_assert_int_eq(gw_routes_match(rt, "POST", "/auth/logout", &r,
                                     &allowed),
                     GW_MATCH_OK);
    ck_assert_int_eq(r->auth, GW_AUTH_TOKEN);
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/.well-known/jwks.json",
                                     &r, &allowed),
                     GW_MATCH_OK);
    ck_assert_str_eq(r->upstream->name, "platform");
    ck_assert_int_eq(gw_routes_match(rt, "POST", "/llm/v1/chat/completions",
                                     &r, &allowed),
                     GW_MATCH_OK);
    ck_assert_int_eq(r->strip_prefix, 1);
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/admin", &r, &allowed),
                     GW_MATCH_NOT_FOUND);
    gw_routes_release(rt);
}
END_TEST

struct bad_case {
    const char *json;
    const char *want; /* substring of the error */
};

#define UP "\"upstreams\":{\"p\":{\"targets\":[\"http://h:1\"]}}"
#define R(body) "{" UP ",\"routes\":[{\"name\":\"a\",\"upstream\":\"p\"," body \
                "}]}"

static const struct bad_case bad_cases[] = {
    {"{", "invalid JSON"},
    {"[]", "top level must be an object"},
    {"{" UP ",\"routes\":[],\"extra\":1}", "unknown top-level key \"extra\""},
    {"{\"routes\":[]}", "upstreams: must be an object"},
    {"{" UP "}", "routes: must be an array"},
    {"{\"upstreams\":{\"p q\":{\"targets\":[]}},\"routes\":[]}",
     "upstreams: name"},
    {"{\"upstreams\":{\"p\":{\"targets\":[],\"x\":1}},\"routes\":[]}",
     "upstreams.p: unknown key \"x\""},
    {"{\"upstreams\":{\"p\":{}},\"routes\":[]}", "upstreams.p.targets"},
    {"{\"upstreams\":{\"p\":{\"targets\":[\"ftp://h\"]}},\"routes\":[]}",
     "upstreams.p.targets[0]: must start with http"},
    {"{\"upstreams\":{\"p\":{\"targets\":[\"http://h/?x\"]}},\"routes\":[]}",
     "upstreams.p.targets[0]"},
    {"{" UP ",\"routes\":[7]}", "routes[0]: must be an object"},
    {R("\"prefix\":\"/a\",\"bogus\":true"), "routes[0]: unknown key \"bogus\""},
    {"{" UP ",\"routes\":[{\"prefix\":\"/a\",\"upstream\":\"p\"}]}",
     "routes[0].name"},
    {R("\"prefix\":\"/a\",\"path\":\"/b\""), "exactly one of"},
    {R("\"auth\":\"none\""), "exactly one of"},
    {R("\"prefix\":\"a\""), "routes[0].prefix: must start with '/'"},
    {R("\"prefix\":\"/a/\""), "routes[0].prefix: must not end with '/'"},
    {R("\"path\":\"/a/../b\""), "routes[0].path: has an empty or dot"},
    {R("\"path\":\"/a//b\""), "routes[0].path: has an empty or dot"},
    {R("\"path\":\"/a?b\""), "routes[0].path: has a space"},
    {R("\"prefix\":\"/a\",\"methods\":[\"GET\",\"FETCH\"]"),
     "routes[0].methods[1]"},
    {R("\"prefix\":\"/a\",\"methods\":[\"get\"]"), "routes[0].methods[0]"},
    {R("\"prefix\":\"/a\",\"methods\":[]"), "routes[0].methods"},
    {"{" UP ",\"routes\":[{\"name\":\"a\",\"prefix\":\"/a\","
     "\"upstream\":\"nope\"}]}",
     "routes[0].upstream: unknown upstream"},
    {R("\"prefix\":\"/a\",\"strip_prefix\":1"), "routes[0].strip_prefix"},
    {R("\"path\":\"/a\",\"strip_prefix\":true"), "only for \"prefix\""},
    {R("\"prefix\":\"/a\",\"auth\":\"basic\""), "routes[0].auth"},
    {R("\"prefix\":\"/a\",\"auth\":\"none\",\"roles\":[\"x\"]"),
     "routes[0].roles: needs"},
    {R("\"prefix\":\"/a\",\"roles\":[\"\"]"), "routes[0].roles[0]"},
    {R("\"prefix\":\"/a\",\"timeout_ms\":0"), "routes[0].timeout_ms"},
    {R("\"prefix\":\"/a\",\"timeout_ms\":\"5\""), "routes[0].timeout_ms"},
    {R("\"prefix\":\"/a\",\"max_body\":-1"), "routes[0].max_body"},
    {"{" UP ",\"routes\":[{\"name\":\"a\",\"prefix\":\"/a\",\"upstream\":"
     "\"p\"},{\"name\":\"a\",\"prefix\":\"/b\",\"upstream\":\"p\"}]}",
     "routes[1].name: \"a\" already used by routes[0]"},
    {"{" UP ",\"routes\":[{\"name\":\"a\",\"prefix\":\"/a\",\"upstream\":"
     "\"p\"},{\"name\":\"b\",\"prefix\":\"/a\",\"methods\":[\"GET\"],"
     "\"upstream\":\"p\"}]}",
     "routes[1]: same prefix and methods as routes[0]"},
    {"{\"upstreams\":{},\"upstreams\":{},\"routes\":[]}", "invalid JSON"},
};

START_TEST(test_parse_errors)
{
    const struct bad_case *c = &bad_cases[_i];
    char err[256] = "";
    struct gw_routes *rt = parse(c->json, err, sizeof(err));

    ck_assert_msg(rt == NULL, "case %d parsed: %s", _i, c->json);
    ck_assert_msg(strstr(err, c->want) != NULL, "case %d: got \"%s\", want "
                  "\"%s\"", _i, err, c->want);
}
END_TEST

START_TEST(test_match)
{
    char err[256] = "", allow[64];
    struct gw_routes *rt = parse(good, err, sizeof(err));
    const struct gw_route *r;
    unsigned allowed;

    ck_assert_ptr_nonnull(rt);
    /* Exact path beats the prefix covering it. */
    ck_assert_int_eq(gw_routes_match(rt, "POST", "/auth/register", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_str_eq(r->name, "reg");
    /* ... and decides the method: 405 rather than falling to /auth. */
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/auth/register", &r,
                                     &allowed), GW_MATCH_METHOD);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(allowed, GW_M_POST);
    /* Prefix on a segment boundary. */
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/auth", &r, &allowed),
                     GW_MATCH_OK);
    ck_assert_str_eq(r->name, "auth");
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/auth/register/x", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_str_eq(r->name, "auth");
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/authx", &r, &allowed),
                     GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/nothing", &r, &allowed),
                     GW_MATCH_NOT_FOUND);
    /* Longest prefix wins. */
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/llm/v1/deep/x", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_str_eq(r->name, "llm-deep");
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/llm/v1/deeper", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_str_eq(r->name, "llm");
    /* Same prefix split by method. */
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/users/7", &r, &allowed),
                     GW_MATCH_OK);
    ck_assert_str_eq(r->name, "users-get");
    ck_assert_int_eq(gw_routes_match(rt, "DELETE", "/users/7", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_str_eq(r->name, "users-write");
    ck_assert_int_eq(gw_routes_match(rt, "PATCH", "/users/7", &r, &allowed),
                     GW_MATCH_METHOD);
    gw_methods_str(allowed, allow, sizeof(allow));
    ck_assert_str_eq(allow, "GET, HEAD, POST, DELETE");
    /* A method we never route is a 405 too. */
    ck_assert_int_eq(gw_routes_match(rt, "TRACE", "/auth", &r, &allowed),
                     GW_MATCH_METHOD);
    /* Exact "/" only matches "/". */
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/", &r, &allowed),
                     GW_MATCH_OK);
    ck_assert_str_eq(r->name, "root");
    gw_routes_release(rt);
}
END_TEST

START_TEST(test_root_prefix)
{
    char err[256] = "";
    struct gw_routes *rt = parse(
        "{" UP ",\"routes\":[{\"name\":\"all\",\"prefix\":\"/\","
        "\"upstream\":\"p\",\"strip_prefix\":true}]}",
        err, sizeof(err));
    const struct gw_route *r;
    unsigned allowed;
    char buf[64];

    ck_assert_msg(rt != NULL, "%s", err);
    ck_assert_int_eq(gw_routes_match(rt, "GET", "/anything/at/all", &r,
                                     &allowed), GW_MATCH_OK);
    ck_assert_int_eq(gw_route_upstream_path(r, "/x/y", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "/x/y");
    gw_routes_release(rt);
}
END_TEST

START_TEST(test_strip_prefix)
{
    char err[256] = "", buf[64];
    struct gw_routes *rt = parse(good, err, sizeof(err));
    const struct gw_route *llm = &rt->routes[4], *auth = &rt->routes[1];

    ck_assert_int_eq(gw_route_upstream_path(llm, "/llm/v1/chat/completions",
                                            buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "/v1/chat/completions");
    ck_assert_int_eq(gw_route_upstream_path(llm, "/llm", buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "/");
    ck_assert_int_eq(gw_route_upstream_path(auth, "/auth/me", buf,
                                            sizeof(buf)), 0);
    ck_assert_str_eq(buf, "/auth/me");
    ck_assert_int_eq(gw_route_upstream_path(auth, "/auth/me", buf, 4), -1);
    gw_routes_release(rt);
}
END_TEST

START_TEST(test_env_override)
{
    char err[256] = "";
    struct gw_routes *rt = parse(good, err, sizeof(err));
    struct gw_upstream *llm = gw_routes_upstream(rt, "llm-orchestrator");
    struct gw_upstream *plat = gw_routes_upstream(rt, "platform");

    setenv("UPSTREAM_LLM_ORCHESTRATOR_URL",
           " http://127.0.0.1:5001/ ,http://127.0.0.1:5002", 1);
    ck_assert_int_eq(gw_routes_apply_env(rt, err, sizeof(err)), 0);
    ck_assert_uint_eq(llm->ntargets, 2);
    ck_assert_str_eq(llm->targets[0], "http://127.0.0.1:5001");
    ck_assert_str_eq(llm->targets[1], "http://127.0.0.1:5002");
    ck_assert_str_eq(plat->targets[0], "http://127.0.0.1:8081");

    /* A bad value changes nothing, even for upstreams checked earlier. */
    setenv("UPSTREAM_LLM_ORCHESTRATOR_URL", "http://127.0.0.1:6001", 1);
    setenv("UPSTREAM_PLATFORM_URL", "localhost:80", 1);
    ck_assert_int_eq(gw_routes_apply_env(rt, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "UPSTREAM_PLATFORM_URL") != NULL, "%s", err);
    ck_assert_str_eq(llm->targets[0], "http://127.0.0.1:5001");
    setenv("UPSTREAM_PLATFORM_URL", ",,", 1);
    ck_assert_int_eq(gw_routes_apply_env(rt, err, sizeof(err)), -1);
    unsetenv("UPSTREAM_PLATFORM_URL");
    unsetenv("UPSTREAM_LLM_ORCHESTRATOR_URL");

    /* An empty variable is "unset". */
    setenv("UPSTREAM_EMPTY_URL", "", 1);
    ck_assert_int_eq(gw_routes_apply_env(rt, err, sizeof(err)), 0);
    ck_assert_uint_eq(gw_routes_upstream(rt, "empty")->ntargets, 0);
    unsetenv("UPSTREAM_EMPTY_URL");
    gw_routes_release(rt);
}
END_TEST

START_TEST(test_load_file)
{
    char err[256] = "", path[] = "/tmp/gw_routes_XXXXXX";
    int fd = mkstemp(path);
    struct gw_routes *rt;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    close(fd);
    setenv("UPSTREAM_PLATFORM_URL", "http://127.0.0.1:9", 1);
    rt = gw_routes_load(path, &defs, err, sizeof(err));
    ck_assert_msg(rt != NULL, "%s", err);
    ck_assert_str_eq(gw_routes_upstream(rt, "platform")->targets[0],
                     "http://127.0.0.1:9");
    gw_routes_release(rt);
    setenv("UPSTREAM_PLATFORM_URL", "nope", 1);
    ck_assert_ptr_null(gw_routes_load(path, &defs, err, sizeof(err)));
    unsetenv("UPSTREAM_PLATFORM_URL");
    unlink(path);
    ck_assert_ptr_null(gw_routes_load(path, &defs, err, sizeof(err)));
    ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
}
END_TEST

START_TEST(test_table_swap)
{
    char err[256] = "";
    struct gw_route_table t;
    struct gw_routes *a = parse(good, err, sizeof(err));
    struct gw_routes *b = parse(good, err, sizeof(err));
    struct gw_routes *held, *now;

    gw_route_table_init(&t, a);
    held = gw_route_table_get(&t);
    ck_assert_ptr_eq(held, a);
    ck_assert_int_eq(atomic_load(&a->refs), 2);
    gw_route_table_swap(&t, b);
    /* The request's reference keeps the old table alive (ASan checks). */
    ck_assert_int_eq(atomic_load(&a->refs), 1);
    ck_assert_str_eq(held->routes[0].name, "reg");
    gw_routes_release(held);
    now = gw_route_table_get(&t);
    ck_assert_ptr_eq(now, b);
    gw_routes_release(now);
    gw_route_table_cleanup(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_routes");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_parse_shipped_file);
    tcase_add_loop_test(tc, test_parse_errors, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_match);
    tcase_add_test(tc, test_root_prefix);
    tcase_add_test(tc, test_strip_prefix);
    tcase_add_test(tc, test_env_override);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_table_swap);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
