/*
 * throttle — brute-force defences for sign-in, shared through Redis so
 * every replica counts the same attempts (OWASP Authentication cheat
 * sheet: exponential back-off rather than hard lock-out).
 *
 *  - Per-IP request rate on /auth/login and /auth/register: a fixed
 *    one-minute window counter (basalt:rl:<what>:<ip>:<minute>).
 *  - Failed logins per account (keyed by a SHA-256 of the normalised
 *    email, so no address sits in Redis, and so unknown and existing
 *    accounts behave the same) and per IP: after `free` failures within
 *    15 minutes each further failure blocks the key for
 *    base * 2^(failures - free) seconds, capped at max. A success clears
 *    the account's counter.
 *
 * Redis trouble fails open (the request goes on) and is logged at warn
 * level at most every 10 s: throttling must not take sign-in down.
 *
 * Thread-safety: any request thread.
 */
#ifndef PLAT_THROTTLE_H
#define PLAT_THROTTLE_H

#include "log/log.h"

struct plat_ctx;

/* Seconds a key is blocked after `failures` failures (pure). */
long plat_throttle_backoff_s(long failures, long free_failures, long base_s,
                             long max_s);

/*
 * Counts one request of kind `what` ("login", "register") from `ip`
 * against `limit` per minute (0: off). 1 when over the limit, with the
 * seconds until the window ends in *retry_after; else 0.
 */
int plat_throttle_rate(struct plat_ctx *ctx, const struct log_ctx *lc,
                       const char *what, const char *ip, long limit,
                       long *retry_after);

/*
 * 1 when the account (`account`: the submitted email, normalised when it
 * could be) or `ip` is in back-off, with the seconds left in
 * *retry_after; else 0.
 */
int plat_throttle_login_blocked(struct plat_ctx *ctx,
                                const struct log_ctx *lc,
                                const char *account, const char *ip,
                                long *retry_after);

/* Records a failed login of `account` from `ip`. */
void plat_throttle_login_failed(struct plat_ctx *ctx,
                                const struct log_ctx *lc,
                                const char *account, const char *ip);

/* Clears the account's failures after a successful login. */
void plat_throttle_login_ok(struct plat_ctx *ctx, const struct log_ctx *lc,
                            const char *account);

#endif
