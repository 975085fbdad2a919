/*
 * fault — rehearsal-only 5xx injection; see fault.h.
 */
#include "fault.h"

#include <math.h>

#include "log/log.h"

void plat_fault_load(struct cfg *c, struct plat_fault *f)
{
    f->rate = cfg_double(c, "FAULT_INJECT_5XX_RATE", 0.0, 0.0, 1.0);
    atomic_init(&f->seen, 0);
}

int plat_fault_before(struct httpd_req *r, void *arg)
{
    struct plat_fault *f = arg;
    unsigned long long n;

    if (f == NULL || f->rate <= 0.0)
        return 0;
    n = atomic_fetch_add(&f->seen, 1) + 1;
    if (n == 1) /* logging is set up by now (not yet at load time) */
        log_warn(&r->log, "FAULT_INJECT_5XX_RATE=%g: answering that share "
                 "of requests with 500 (rehearsals only)", f->rate);
    /* Evenly spaced: the n-th request fails when it crosses an integer. */
    if (floor((double)n * f->rate) <= floor((double)(n - 1) * f->rate))
        return 0;
    httpd_error(r, 500, "fault_injected",
                "injected fault (FAULT_INJECT_5XX_RATE, rehearsals only)");
    return 1;
}
