/*
 * analytics_load — HTTP load generator for POST /analytics/events.
 *
 *   analytics_load URL TOKEN [CLIENTS [BATCH [SECONDS [TAG]]]]
 *
 * Keeps CLIENTS requests in flight (libcurl multi, one connection each,
 * keep-alive), every request a batch of BATCH events with unique
 * message_ids ("TAG-client-seq-i"), for SECONDS. Counts events answered
 * 202 ("stored" summed from the replies) and prints one line:
 *   events_per_s=<n> requests=<n> failed=<n> seconds=<s>
 * Defaults: 16 clients, 100 events, 10 s, tag "bench". Loopback use only.
 *
 * Each client's body is laid out once; a new request only rewrites the
 * fixed-width digits of its sequence number and distinct_ids in place
 * (as the \copy reference reads rows generated beforehand, the client
 * should spend as little of the shared CPU as it can).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CLIENTS 256
#define EVENT_MAX 200

struct client {
    CURL *h;
    char *body;
    size_t cap;
    size_t *seq_at, *did_at;  /* per event: offsets of the digits */
    char reply[512];
    size_t reply_len;
    long seq;
    int id;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_reply(char *p, size_t size, size_t n, void *arg)
{
    struct client *c = arg;
    size_t len = size * n, room = sizeof(c->reply) - 1 - c->reply_len;

    memcpy(c->reply + c->reply_len, p, len < room ? len : room);
    c->reply_len += len < room ? len : room;
    c->reply[c->reply_len] = '\0';
    return len;
}

static long parse_long(const char *s, long def, long min, long max)
{
    char *end;
    long v;

    if (s == NULL)
        return def;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < min || v > max) {
        fprintf(stderr, "analytics_load: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

#define SEQ_DIGITS 10
#define DID_DIGITS 4
#define DIDS 5000

/* Writes v as exactly `n` decimal digits (zero-padded) at p. */
static void put_digits(char *p, long v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Lays out client c's body once, remembering where the digits go. */
static void layout(struct client *c, const char *tag, long batch)
{
    size_t o = 0;

    o += (size_t)snprintf(c->body + o, c->cap - o, "{\"batch\":[");
    for (long i = 0; i < batch; i++) {
        o += (size_t)snprintf(c->body + o, c->cap - o,
                              "%s{\"event\":\"bench_ev_%ld\",\"distinct_id\":"
                              "\"u", i == 0 ? "" : ",", i % 20);
        c->did_at[i] = o;
        o += (size_t)snprintf(c->body + o, c->cap - o,
                              "%0*d\",\"message_id\":\"%s-%d-", DID_DIGITS, 0,
                              tag, c->id);
        c->seq_at[i] = o;
        o += (size_t)snprintf(c->body + o, c->cap - o,
                              "%0*d-%ld\",\"properties\":{\"plan\":\"pro\","
                              "\"n\":%ld}}", SEQ_DIGITS, 0, i, i);
    }
    o += (size_t)snprintf(c->body + o, c->cap - o, "]}");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)o);
}

/* The next batch for client c: new message_ids, distinct_ids spread
 * over DIDS values. */
static void next_batch(struct client *c, long batch)
{
    for (long i = 0; i < batch; i++) {
        put_digits(c->body + c->seq_at[i], c->seq, SEQ_DIGITS);
        put_digits(c->body + c->did_at[i], (c->seq * 31 + i * 7) % DIDS,
                   DID_DIGITS);
    }
    c->seq++;
    c->reply_len = 0;
    c->reply[0] = '\0';
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
}

int main(int argc, char **argv)
{
    const char *url, *token, *tag;
    long clients, batch, seconds, requests = 0, failed = 0;
    long long events = 0;
    struct client cl[MAX_CLIENTS];
    struct curl_slist *hdr = NULL;
    char auth[4096];
    CURLM *m;
    double t0, end;
    int running;

    if (argc < 3) {
        fprintf(stderr, "usage: analytics_load URL TOKEN [CLIENTS [BATCH "
                        "[SECONDS [TAG]]]]\n");
        return 2;
    }
    url = argv[1];
    token = argv[2];
    clients = parse_long(argc > 3 ? argv[3] : NULL, 16, 1, MAX_CLIENTS);
    batch = parse_long(argc > 4 ? argv[4] : NULL, 100, 1, 10000);
    seconds = parse_long(argc > 5 ? argv[5] : NULL, 10, 1, 3600);
    tag = argc > 6 ? argv[6] : "bench";

    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    m = curl_multi_init();
    for (long i = 0; i < clients; i++) {
        struct client *c = &cl[i];

        memset(c, 0, sizeof(*c));
        c->id = (int)i;
        c->cap = (size_t)batch * (EVENT_MAX + 2 * strlen(tag)) + 64;
        c->body = malloc(c->cap);
        c->seq_at = calloc((size_t)batch, sizeof(*c->seq_at));
        c->did_at = calloc((size_t)batch, sizeof(*c->did_at));
        c->h = curl_easy_init();
        if (c->body == NULL || c->h == NULL || c->seq_at == NULL ||
            c->did_at == NULL)
            return 1;
        curl_easy_setopt(c->h, CURLOPT_URL, url);
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_reply);
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 60L);
        layout(c, tag, batch);
        next_batch(c, batch);
        curl_multi_add_handle(m, c->h);
    }
    t0 = now_s();
    end = t0 + (double)seconds;
    do {
        CURLMsg *msg;
        int left;

        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct client *c;
            long status = 0;
            const char *s;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &c);
            curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
            requests++;
            s = strstr(c->reply, "\"stored\":");
            if (msg->data.result == CURLE_OK && status == 202 && s != NULL)
                events += strtol(s + 9, NULL, 10);
            else
                failed++;
            curl_multi_remove_handle(m, c->h);
            if (now_s() < end) {
                next_batch(c, batch);
                curl_multi_add_handle(m, c->h);
            }
        }
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    } while (running > 0 || now_s() < end);
    {
        double took = now_s() - t0;

        printf("events_per_s=%.0f requests=%ld failed=%ld seconds=%.2f\n",
               (double)events / took, requests, failed, took);
    }
    for (long i = 0; i < clients; i++) {
        curl_easy_cleanup(cl[i].h);
        free(cl[i].body);
        free(cl[i].seq_at);
        free(cl[i].did_at);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdr);
    curl_global_cleanup();
    return failed > 0 && events == 0 ? 1 : 0;
}
