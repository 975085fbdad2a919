/*
 * validation — input checks shared by the platform handlers.
 *
 * Thread-safety: pure functions, callable from any thread. Can't fail
 * other than by returning the documented error.
 */
#ifndef PLAT_VALIDATION_H
#define PLAT_VALIDATION_H

#include <stddef.h>

/* RFC 5321 §4.5.3.1: a path is at most 256 octets, so a mailbox 254. */
#define PLAT_EMAIL_MAX 254
#define PLAT_EMAIL_LOCAL_MAX 64

/*
 * Normalises and checks an email address: strips leading/trailing ASCII
 * whitespace, lowercases ASCII letters, then requires the basic shape
 * local@domain — ASCII only, no spaces or control characters, one "@",
 * local part 1..64 octets without leading/trailing/double dots, domain of
 * dot-separated labels (letters, digits, "-", not at a label's ends, at
 * most 63 each) with at least one dot, total <= PLAT_EMAIL_MAX.
 * `in` is `len` bytes (may hold a NUL, which is rejected). Writes the
 * normalised address into `out` (`outlen` >= PLAT_EMAIL_MAX + 1) and
 * returns 0; or returns -1 with a client-safe reason in `why`.
 */
int plat_email_normalize(const char *in, size_t len, char *out,
                         size_t outlen, char *why, size_t whylen);

/*
 * Number of Unicode code points in `s` (`len` bytes), or -1 when it is not
 * well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
 * or holds a NUL.
 */
long plat_utf8_len(const char *s, size_t len);

/* 1 when `s` is a canonical textual UUID (8-4-4-4-12 hex), else 0. */
int plat_is_uuid(const char *s);

#endif
