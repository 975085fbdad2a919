/*
 * Fuzzes what the gateway does with a client's request line and headers
 * before anything reaches an upstream, against a fixed routes table:
 * route matching and strip-prefix (route_match.c), the admin path check,
 * the Authorization header's bearer syntax (authn.c), the upstream URL
 * (path percent-encoding, query re-encoding) and the upstream header list
 * (hop-by-hop and identity-header filtering) in proxy_headers.c.
 *
 * Input: "METHOD\nPATH\n" then header lines "Name: value\n" up to an empty
 * line, then query arguments "name=value\n" (no '=': no value).
 * Invariants: no produced header line or URL holds CR, LF or NUL; client
 * copies of X-User-*, X-Internal-Token never get through.
 */
#include <stdio.h>
#include <strings.h>

#include "../fuzz.h"
#include "../../../services/gateway/src/admin.h"
#include "../../../services/gateway/src/authn.h"
#include "../../../services/gateway/src/proxy.h"
#include "../../../services/gateway/src/routes.h"

#define MAX_ITEMS 64

static struct gw_routes *g_rt;

static const char routes_json[] =
    "{\"upstreams\":{\"platform\":{\"targets\":[\"http://127.0.0.1:8081\"]},"
    "\"llm\":{\"targets\":[\"http://127.0.0.1:8083\"]}},"
    "\"routes\":["
    "{\"name\":\"login\",\"path\":\"/auth/login\",\"methods\":[\"POST\"],"
    "\"upstream\":\"platform\",\"auth\":\"none\"},"
    "{\"name\":\"jwks\",\"path\":\"/.well-known/jwks.json\","
    "\"methods\":[\"GET\",\"HEAD\"],\"upstream\":\"platform\","
    "\"auth\":\"none\"},"
    "{\"name\":\"auth\",\"prefix\":\"/auth\",\"upstream\":\"platform\","
    "\"auth\":\"token\",\"roles\":[\"admin\",\"user\"]},"
    "{\"name\":\"an\",\"prefix\":\"/analytics\",\"methods\":[\"GET\","
    "\"POST\"],\"upstream\":\"platform\",\"auth\":\"token\"},"
    "{\"name\":\"llm\",\"prefix\":\"/llm\",\"upstream\":\"llm\","
    "\"strip_prefix\":true,\"auth\":\"token\"},"
    "{\"name\":\"root\",\"prefix\":\"/\",\"methods\":[\"GET\"],"
    "\"upstream\":\"platform\",\"auth\":\"none\"}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct gw_route_defaults def = {.timeout_ms = 30000,
                                    .max_body = 1 << 20};
    char err[256];

    (void)argc, (void)argv;
    g_rt = gw_routes_parse(routes_json, sizeof routes_json - 1, &def, err,
                           sizeof err);
    if (!g_rt) {
        fprintf(stderr, "fuzz_gw_request: routes: %s\n", err);
        abort();
    }
    return 0;
}

static int bad_text(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int identity_header(const char *line)
{
    static const char *const banned[] = {"x-user-", "x-internal-token:"};

    for (size_t i = 0; i < sizeof banned / sizeof *banned; i++)
        if (strncasecmp(line, banned[i], strlen(banned[i])) == 0)
            return 1;
    return 0;
}

/* Splits one "\n"-terminated line off *p (in place); NULL at the end. */
static char *next_line(char **p)
{
    char *s = *p, *nl;

    if (!s)
        return NULL;
    nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return s;
}

static void check_headers(const struct gw_header *h, size_t nh,
                          const struct gw_fwd *fwd)
{
    struct curl_slist *out = NULL;

    if (gw_proxy_upstream_headers(h, nh, fwd, &out) != 0)
        return;
    for (struct curl_slist *l = out; l; l = l->next) {
        if (bad_text(l->data))
            abort();
        /* ours come last and carry the fixed values below */
        if (identity_header(l->data) && !strstr(l->data, ": fuzz-"))
            abort();
    }
    curl_slist_free_all(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_strndup(data, size), *p = buf, *line;
    const char *method, *path;
    struct gw_header hdrs[MAX_ITEMS], args[MAX_ITEMS];
    size_t nh = 0, na = 0;
    const struct gw_route *route;
    unsigned allowed;
    char up[1024], tiny[3], *url;
    struct tok_claims claims;
    struct gw_fwd fwd = {.client_ip = "192.0.2.1", .request_id = "fuzz-rid",
                         .traceparent = "fuzz-tp", .proto = "http",
                         .internal_token = "fuzz-internal",
                         .claims = NULL};

    memset(&claims, 0, sizeof claims);
    snprintf(claims.sub, sizeof claims.sub, "fuzz-sub");
    snprintf(claims.email, sizeof claims.email, "fuzz-e@x.io");
    snprintf(claims.roles_csv, sizeof claims.roles_csv, "fuzz-user");
    claims.nroles = 1;
    snprintf(claims.roles[0], sizeof claims.roles[0], "user");
    method = next_line(&p);
    path = next_line(&p);
    if (!method || !path)
        goto done;
    while ((line = next_line(&p)) && *line && nh < MAX_ITEMS) {
        char *colon = strchr(line, ':');

        if (colon) {
            *colon = '\0';
            colon++;
            while (*colon == ' ')
                colon++;
        }
        hdrs[nh].name = line;
        hdrs[nh].value = colon;
        nh++;
    }
    while ((line = next_line(&p)) && na < MAX_ITEMS) {
        char *eq = strchr(line, '=');

        if (eq)
            *eq++ = '\0';
        args[na].name = line;
        args[na].value = eq;
        na++;
    }

    (void)gw_method_bit(method);
    (void)gw_proxy_idempotent(method);
    (void)gw_admin_path(path);
    if (gw_routes_match(g_rt, method, path, &route, &allowed) ==
        GW_MATCH_OK) {
        if (gw_route_upstream_path(route, path, up, sizeof up) == 0 &&
            up[0] != '/')
            abort();
        (void)gw_route_upstream_path(route, path, tiny, sizeof tiny);
        (void)gw_authn_has_role(route, &claims);
    }
    url = gw_proxy_build_url("http://127.0.0.1:8081", path, args, na);
    if (url && (bad_text(url) || strchr(url, ' ')))
        abort();
    free(url);

    for (size_t i = 0; i < nh; i++) {
        (void)gw_proxy_response_header_kept(hdrs[i].name);
        if (hdrs[i].value && strcasecmp(hdrs[i].name, "authorization") == 0) {
            const char *tok;
            size_t len;

            if (gw_authn_bearer(hdrs[i].value, &tok, &len) == GW_BEARER_OK &&
                (len == 0 || tok < hdrs[i].value ||
                 tok + len > hdrs[i].value + strlen(hdrs[i].value)))
                abort();
        }
    }
    check_headers(hdrs, nh, &fwd);
    fwd.claims = &claims;
    check_headers(hdrs, nh, &fwd);
done:
    free(buf);
    return 0;
}
