/* Upstream pools: routes-file pool syntax, weighted colour selection,
 * stickiness, health/breaker-aware picks, admin updates, reload sync. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/pool.h"

static const struct gw_route_defaults def = {1000, 1024};

static struct gw_routes *parse(const char *ups)
{
    char json[4096], err[256] = "";
    struct gw_routes *rt;

    snprintf(json, sizeof(json),
             "{\"upstreams\":{%s},\"routes\":[{\"name\":\"r\",\"prefix\":"
             "\"/\",\"upstream\":\"p\"}]}",
             ups);
    rt = gw_routes_parse(json, strlen(json), &def, err, sizeof(err));
    ck_assert_msg(rt != NULL, "%s", err);
    return rt;
}

static const char *parse_err(const char *ups)
{
    static char err[256];
    char json[4096];
    struct gw_routes *rt;

    snprintf(json, sizeof(json), "{\"upstreams\":{%s},\"routes\":[]}", ups);
    err[0] = '\0';
    rt = gw_routes_parse(json, strlen(json), &def, err, sizeof(err));
    ck_assert_ptr_null(rt);
    return err;
}

#define BG(wb, wg)                                                           \
    "\"p\":{\"balance\":\"round_robin\",\"blue\":{\"targets\":"              \
    "[\"http://b1:1\",\"http://b2:1\"],\"weight\":" #wb "},\"green\":"       \
    "{\"targets\":[\"http://g1:1\"],\"weight\":" #wg "}}"

START_TEST(test_parse_pool_forms)
{
    struct gw_routes *rt = parse(
        "\"p\":{\"balance\":\"least_requests\",\"sticky\":true,"
        "\"health_check\":{\"path\":\"/readyz\",\"interval_ms\":500},"
        "\"breaker\":{\"failures\":2,\"open_ms\":300},"
        "\"blue\":{\"targets\":[\"http://b:1/\"],\"weight\":70},"
        "\"green\":{\"targets\":[\"http://g:1\"],\"weight\":30}}");
    struct gw_upstream *up = gw_routes_upstream(rt, "p");

    ck_assert_int_eq(up->balance, GW_BALANCE_LEAST_REQUESTS);
    ck_assert_int_eq(up->sticky, 1);
    ck_assert_str_eq(up->hc_path, "/readyz");
    ck_assert_int_eq(up->hc_interval_ms, 500);
    ck_assert_int_eq(up->breaker.failures, 2);
    ck_assert_int_eq(up->breaker.open_ms, 300);
    ck_assert_int_eq(up->weight[GW_BLUE], 70);
    ck_assert_int_eq(up->weight[GW_GREEN], 30);
    ck_assert_str_eq(up->targets[0], "http://b:1");
    ck_assert_str_eq(up->green_targets[0], "http://g:1");
    gw_routes_release(rt);

    rt = parse("\"p\":{\"targets\":[\"http://a:1\"]}");
    up = gw_routes_upstream(rt, "p");
    ck_assert_int_eq(up->weight[GW_BLUE], 100);
    ck_assert_int_eq(up->weight[GW_GREEN], 0);
    gw_routes_release(rt);

    ck_assert_ptr_nonnull(strstr(parse_err(BG(60, 30)), "sum to 100"));
    ck_assert_ptr_nonnull(strstr(
        parse_err("\"p\":{\"blue\":{\"targets\":[\"http://a:1\"],"
                  "\"weight\":50},\"green\":{\"targets\":[],\"weight\":50}}"),
        "without targets"));
    ck_assert_ptr_nonnull(strstr(
        parse_err("\"p\":{\"targets\":[],\"blue\":{\"targets\":[]}}"),
        "same thing"));
    ck_assert_ptr_nonnull(strstr(
        parse_err("\"p\":{\"targets\":[],\"balance\":\"random\"}"),
        "balance"));
    ck_assert_ptr_nonnull(strstr(
        parse_err("\"p\":{\"targets\":[],\"health_check\":{\"path\":\"x\"}}"),
        "health_check.path"));
}
END_TEST

static void split(struct gw_pool *p, int n, const char *sticky_prefix,
                  int *blue, int *green)
{
    int i;

    *blue = *green = 0;
    for (i = 0; i < n; i++) {
        struct gw_target *t;
        char key[32];

        snprintf(key, sizeof(key), "%s%d", sticky_prefix, i);
        ck_assert_int_eq(gw_pool_pick(p, sticky_prefix[0] ? key : NULL,
                                      NULL, 1.0, &t),
                         GW_PICK_OK);
        if (t->color == GW_BLUE)
            (*blue)++;
        else
            (*green)++;
        gw_target_done(t, 1, 1.0);
    }
}

START_TEST(test_weights_within_3_percent)
{
    static const int weights[][2] = {{90, 10}, {50, 50}, {10, 90},
                                     {100, 0}, {0, 100}, {97, 3}};
    struct gw_routes *rt = parse(BG(90, 10));
    struct gw_pools ps;
    struct gw_pool *p;
    size_t i;

    gw_pools_init(&ps);
    gw_pools_sync(&ps, rt);
    p = gw_pools_find(&ps, "p");
    ck_assert_ptr_nonnull(p);
    for (i = 0; i < sizeof(weights) / sizeof(weights[0]); i++) {
        char body[128], err[128];
        json_t *j;
        int blue, green;

        snprintf(body, sizeof(body), "{\"weights\":{\"blue\":%d,\"green\""
                 ":%d}}", weights[i][0], weights[i][1]);
        j = json_loads(body, 0, NULL);
        ck_assert_int_eq(gw_pool_update(p, j, err, sizeof(err)), 0);
        json_decref(j);
        split(p, 10000, "", &blue, &green);
        ck_assert_msg(abs(blue - weights[i][0] * 100) <= 300,
                      "weights %d/%d: blue got %d of 10000", weights[i][0],
                      weights[i][1], blue);
        /* Sticky keys spread by the same weights. */
        p->sticky = 1;
        split(p, 10000, "user-", &blue, &green);
        p->sticky = 0;
        ck_assert_msg(abs(blue - weights[i][0] * 100) <= 300,
                      "sticky %d/%d: blue got %d", weights[i][0],
                      weights[i][1], blue);
    }
    gw_routes_release(rt);
    gw_pools_cleanup(&ps);
}
END_TEST

START_TEST(test_sticky_user_stays)
{
    struct gw_routes *rt = parse(BG(50, 50));
    struct gw_pools ps;
    struct gw_pool *p;
    int i, k;

    gw_pools_init(&ps);
    gw_pools_sync(&ps, rt);
    p = gw_pools_find(&ps, "p");
    p->sticky = 1;
    for (k = 0; k < 50; k++) {
        char key[32];
        struct gw_target *t;
        enum gw_color first;

        snprintf(key, sizeof(key), "u%d", k);
        ck_assert_int_eq(gw_pool_pick(p, key, NULL, 1.0, &t), GW_PICK_OK);
        first = t->color;
        gw_target_done(t, 1, 1.0);
        for (i = 0; i < 20; i++) {
            ck_assert_int_eq(gw_pool_pick(p, key, NULL, 1.0, &t),
                             GW_PICK_OK);
            ck_assert_int_eq(t->color, first);
            gw_target_done(t, 1, 1.0);
        }
    }
    gw_routes_release(rt);
    gw_pools_cleanup(&ps);
}
END_TEST

START_TEST(test_pick_skips_unhealthy_and_open)
{
    struct gw_routes *rt = parse(
        "\"p\":{\"breaker\":{\"failures\":2,\"open_ms\":1000},"
        "\"blue\":{\"targets\":[\"http://a:1\",\"http://b:1\"]}}");
    struct gw_pools ps;
    struct gw_pool *p;
    struct gw_target *t, *a, *b;
    int i;

    gw_pools_init(&ps);
    gw_pools_sync(&ps, rt);
    p = gw_pools_find(&ps, "p");
    a = p->targets[GW_BLUE][0];
    b = p->targets[GW_BLUE][1];
    atomic_store(&a->healthy, 0);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(gw_pool_pick(p, NULL, NULL, 1.0, &t), GW_PICK_OK);
        ck_assert_ptr_eq(t, b);
        gw_target_done(t, 1, 1.0);
    }
    /* b's breaker opens: panic mode falls back to unhealthy a. */
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(gw_pool_pick(p, NULL, NULL, 2.0, &t), GW_PICK_OK);
        ck_assert_ptr_eq(t, b);
        gw_target_done(t, 0, 2.0);
    }
    ck_assert_int_eq(b->br.state, GW_BREAKER_OPEN);
    ck_assert_int_eq(gw_pool_pick(p, NULL, NULL, 2.1, &t), GW_PICK_OK);
    ck_assert_ptr_eq(t, a);
    gw_target_done(t, 0, 2.1);
    gw_target_done((gw_pool_pick(p, NULL, NULL, 2.1, &t), t), 0, 2.1);
    ck_assert_int_eq(a->br.state, GW_BREAKER_OPEN);
    /* Both open: fail fast; after open_ms one half-open probe. */
    ck_assert_int_eq(gw_pool_pick(p, NULL, NULL, 2.2, &t), GW_PICK_OPEN);
    ck_assert_int_eq(gw_pool_pick(p, NULL, NULL, 3.05, &t), GW_PICK_OK);
    ck_assert_ptr_eq(t, b);
    ck_assert_int_eq(b->br.state, GW_BREAKER_HALF_OPEN);
    gw_target_done(t, 1, 3.1);
    ck_assert_int_eq(b->br.state, GW_BREAKER_CLOSED);
    /* Exclusion (retries) skips a target. */
    ck_assert_int_eq(gw_pool_pick(p, NULL, b, 3.2, &t), GW_PICK_OK);
    ck_assert_ptr_eq(t, a);
    gw_target_done(t, -1, 3.2);
    gw_routes_release(rt);
    gw_pools_cleanup(&ps);
}
END_TEST

START_TEST(test_admin_update_and_json)
{
    struct gw_routes *rt = parse(BG(100, 0));
    struct gw_pools ps;
    struct gw_pool *p;
    char err[256];
    json_t *j, *v;

    gw_pools_init(&ps);
    gw_pools_sync(&ps, rt);
    p = gw_pools_find(&ps, "p");
#define UPDATE(text, want)                                                   \
    do {                                                                     \
        j = json_loads(text, 0, NULL);                                       \
        ck_assert_ptr_nonnull(j);                                            \
        ck_assert_int_eq(gw_pool_update(p, j, err, sizeof(err)), want);     \
        json_decref(j);                                                      \
    } while (0)
    UPDATE("{\"weights\":{\"blue\":60,\"green\":30}}", -1);
    UPDATE("{\"weights\":{\"blue\":90}}", -1);
    UPDATE("{\"nope\":1}", -1);
    UPDATE("{\"targets\":{\"green\":[]},\"weights\":{\"blue\":90,"
           "\"green\":10}}", -1);
    ck_assert_int_eq(p->weight[GW_BLUE], 100);
    UPDATE("{\"targets\":{\"green\":[\"http://g2:2\",\"http://g1:1\"]},"
           "\"weights\":{\"blue\":90,\"green\":10}}", 0);
    ck_assert_int_eq(p->weight[GW_GREEN], 10);
    ck_assert_uint_eq(p->ntargets[GW_GREEN], 2);
    v = gw_pool_json(p, 1.0);
    ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "p");
    ck_assert_str_eq(json_string_value(json_object_get(v, "balance")),
                     "round_robin");
    j = json_object_get(json_object_get(v, "colors"), "green");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "weight")), 10);
    j = json_array_get(json_object_get(j, "targets"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "url")),
                     "http://g2:2");
    ck_assert(json_is_true(json_object_get(j, "healthy")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "breaker")),
                     "closed");
    json_decref(v);

    /* A reload that does not change the pool keeps the admin's weights;
     * one that changes it applies the file. */
    gw_pools_sync(&ps, rt);
    ck_assert_int_eq(p->weight[GW_GREEN], 10);
    gw_routes_release(rt);
    rt = parse(BG(80, 20));
    gw_pools_sync(&ps, rt);
    ck_assert_int_eq(p->weight[GW_GREEN], 20);
    ck_assert_uint_eq(p->ntargets[GW_GREEN], 1);
    ck_assert_ptr_eq(gw_routes_upstream(rt, "p")->pool, p);
    gw_routes_release(rt);
    gw_pools_cleanup(&ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_pool");
    TCase *tc = tcase_create("pool");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_parse_pool_forms);
    tcase_add_test(tc, test_weights_within_3_percent);
    tcase_add_test(tc, test_sticky_user_stays);
    tcase_add_test(tc, test_pick_skips_unhealthy_and_open);
    tcase_add_test(tc, test_admin_update_and_json);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
