/*
 * Fuzzes the gateway admin API's PUT /admin/upstreams/{name} body
 * (gw_pool_update in pool.c: weights and green targets) on a fresh
 * blue-green pool per input, then renders the pool (gw_pool_json) and
 * picks targets from it (with and without a sticky key), as requests do
 * right after an update. The first input byte picks sticky on/off.
 * Invariants: after an accepted update the weights are 0..100 and sum to
 * 100, a colour without targets has weight 0, the admin view is an
 * object; a refused update says why and changes nothing.
 */
#include <jansson.h>
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/gateway/src/pool.h"
#include "../../../services/gateway/src/routes.h"

static const char routes_fmt[] =
    "{\"upstreams\":{\"platform\":{\"sticky\":%s,"
    "\"blue\":{\"targets\":[\"http://127.0.0.1:8081\","
    "\"http://127.0.0.1:8091\"],\"weight\":100},"
    "\"green\":{\"targets\":[],\"weight\":0}}},"
    "\"routes\":[{\"name\":\"p\",\"prefix\":\"/p\","
    "\"upstream\":\"platform\",\"auth\":\"none\"}]}";

static void weights(struct gw_pool *p, int w[GW_NCOLORS],
                    size_t n[GW_NCOLORS])
{
    pthread_mutex_lock(&p->mu);
    for (int c = 0; c < GW_NCOLORS; c++) {
        w[c] = p->weight[c];
        n[c] = p->ntargets[c];
    }
    pthread_mutex_unlock(&p->mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_route_defaults def = {.timeout_ms = 30000, .max_body = 1024};
    char text[1024], err[256];
    struct gw_routes *rt;
    struct gw_pools ps;
    struct gw_pool *p;
    struct gw_target *t;
    json_t *body, *view;
    int w0[GW_NCOLORS], w1[GW_NCOLORS];
    size_t n0[GW_NCOLORS], n1[GW_NCOLORS];

    if (size < 1)
        return 0;
    snprintf(text, sizeof text, routes_fmt, data[0] & 1 ? "true" : "false");
    rt = gw_routes_parse(text, strlen(text), &def, err, sizeof err);
    if (!rt)
        abort();
    gw_pools_init(&ps);
    gw_pools_sync(&ps, rt);
    p = gw_pools_find(&ps, "platform");
    if (!p)
        abort();
    body = json_loadb((const char *)data + 1, size - 1,
                      JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body))
        goto done;
    weights(p, w0, n0);
    err[0] = '\0';
    if (gw_pool_update(p, body, err, sizeof err) == 0) {
        weights(p, w1, n1);
        if (w1[0] < 0 || w1[1] < 0 || w1[0] + w1[1] != 100 ||
            (n1[0] == 0 && w1[0] != 0) || (n1[1] == 0 && w1[1] != 0))
            abort();
    } else {
        weights(p, w1, n1);
        if (!err[0] || memcmp(w0, w1, sizeof w0) != 0 ||
            memcmp(n0, n1, sizeof n0) != 0)
            abort();
    }
    view = gw_pool_json(p, 1.0);
    if (!json_is_object(view))
        abort();
    json_decref(view);
    for (int i = 0; i < 4; i++) {
        if (gw_pool_pick(p, i & 1 ? "user-42" : NULL, NULL, 1.0, &t) ==
            GW_PICK_OK)
            gw_target_done(t, i & 2 ? 1 : 0, 1.0);
    }
done:
    json_decref(body);
    gw_routes_release(rt);
    gw_pools_cleanup(&ps);
    return 0;
}
