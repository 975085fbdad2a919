/* The per-target circuit breaker state machine. */
#include "breaker.h"

#include <string.h>

void gw_breaker_init(struct gw_breaker *b)
{
    memset(b, 0, sizeof(*b));
}

static int window_size(const struct gw_breaker_opts *o)
{
    if (o->window < 2)
        return 2;
    return o->window > 64 ? 64 : o->window;
}

static int popcount64(uint64_t v)
{
    int n = 0;

    for (; v != 0; v &= v - 1)
        n++;
    return n;
}

static void trip(struct gw_breaker *b, double now)
{
    b->state = GW_BREAKER_OPEN;
    b->opened_at = now;
    b->probe_out = 0;
}

int gw_breaker_would_allow(const struct gw_breaker *b,
                           const struct gw_breaker_opts *o, double now)
{
    switch (b->state) {
    case GW_BREAKER_CLOSED:
        return 1;
    case GW_BREAKER_OPEN:
        return now - b->opened_at >= (double)o->open_ms / 1000.0;
    case GW_BREAKER_HALF_OPEN:
        return !b->probe_out;
    }
    return 0;
}

int gw_breaker_allow(struct gw_breaker *b, const struct gw_breaker_opts *o,
                     double now)
{
    if (!gw_breaker_would_allow(b, o, now))
        return 0;
    if (b->state == GW_BREAKER_OPEN)
        b->state = GW_BREAKER_HALF_OPEN;
    if (b->state == GW_BREAKER_HALF_OPEN)
        b->probe_out = 1;
    return 1;
}

void gw_breaker_record(struct gw_breaker *b, const struct gw_breaker_opts *o,
                       int ok, double now)
{
    int size = window_size(o);
    uint64_t mask = size == 64 ? ~(uint64_t)0 : (((uint64_t)1 << size) - 1);

    if (ok < 0) {
        if (b->state == GW_BREAKER_HALF_OPEN)
            b->probe_out = 0;
        return;
    }
    if (b->state == GW_BREAKER_HALF_OPEN) {
        if (ok) {
            gw_breaker_init(b);
        } else {
            trip(b, now);
        }
        return;
    }
    if (b->state == GW_BREAKER_OPEN)
        return; /* a straggler from before it opened */
    b->window = ((b->window << 1) | (ok ? 0u : 1u)) & mask;
    if (b->window_n < size)
        b->window_n++;
    b->consecutive = ok ? 0 : b->consecutive + 1;
    if (b->consecutive >= o->failures ||
        (b->window_n == size &&
         popcount64(b->window) >= o->error_rate * size)) {
        trip(b, now);
        b->window = 0;
        b->window_n = 0;
        b->consecutive = 0;
    }
}

const char *gw_breaker_state_name(enum gw_breaker_state s)
{
    switch (s) {
    case GW_BREAKER_CLOSED:
        return "closed";
    case GW_BREAKER_OPEN:
        return "open";
    case GW_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "closed";
}
