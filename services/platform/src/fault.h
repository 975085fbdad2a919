/*
 * fault — rehearsal-only fault injection (FAULT_INJECT_5XX_RATE).
 *
 * A release rehearsal (deploy/cutover, tests/e2e/test_cutover_rehearsal.py)
 * needs a colour that fails a known share of its requests. With a rate r
 * in (0, 1], request n (counted over the process, service routes only:
 * never /healthz, /readyz, /metrics) answers 500 `fault_injected` when
 * floor(n * r) > floor((n - 1) * r): exactly r of the requests, evenly
 * spaced, so a test sees the same failures on every run. The default 0
 * turns it off; never set it in production.
 */
#ifndef PLAT_FAULT_H
#define PLAT_FAULT_H

#include <stdatomic.h>

#include "config/config.h"
#include "httpd/httpd.h"

struct plat_fault {
    double rate;                /* 0 = off */
    atomic_ullong seen;         /* requests counted so far */
};

/* Reads FAULT_INJECT_5XX_RATE (0..1) into f; a bad value fails cfg. */
void plat_fault_load(struct cfg *c, struct plat_fault *f);

/*
 * httpd_opts.before hook; arg is a struct plat_fault *. Returns 1 after
 * answering 500 for an injected fault, else 0. Thread-safe.
 */
int plat_fault_before(struct httpd_req *r, void *arg);

#endif
