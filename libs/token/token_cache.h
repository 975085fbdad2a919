/*
 * token_cache — verified access tokens, so the hot path skips the RSA
 * verify for a token seen moments ago. Shared by the gateway (authn.c)
 * and every service that verifies bearers itself (libs/identity).
 *
 * Keyed by the SHA-256 of the whole token (header, payload and
 * signature), so a hit is the very token that verified, never a token
 * that merely shares a signature. An entry lives until min(exp, put time
 * + ttl_s): expiry is honoured as tok_verify would (minus the leeway,
 * which only makes the cache stricter). Revocation is not the cache's job:
 * the caller checks it on every hit and miss (gateway: gw_revocation;
 * services: libs/identity/revocation.h), both local lookups refreshed
 * from Redis. A key removed from the keyset stops verifying cached
 * tokens only when their entries lapse (ttl_s at most): callers that
 * swap keysets clear the cache.
 *
 * Bounded: `capacity` entries in 4-way sets; a full set replaces its
 * entry that expires first.
 *
 * Thread-safety: any thread; sets are guarded by striped mutexes.
 */
#ifndef BASALT_TOKEN_CACHE_H
#define BASALT_TOKEN_CACHE_H

#include <stddef.h>
#include <time.h>

#include "token/token.h"

struct tok_cache;

/* capacity >= 4 (rounded up to 4 x a power of two); ttl_s >= 1. NULL on
 * OOM or bad arguments. */
struct tok_cache *tok_cache_new(size_t capacity, int ttl_s);
void tok_cache_free(struct tok_cache *tc);

/* 1 and *out filled when `tok` (len bytes) is cached and alive at now. */
int tok_cache_get(struct tok_cache *tc, const char *tok,
                       size_t len, time_t now, struct tok_claims *out);

/* Remembers a token that just verified with claims *c. Can't fail. */
void tok_cache_put(struct tok_cache *tc, const char *tok,
                        size_t len, const struct tok_claims *c, time_t now);

/*
 * tok_verify() (token.h) through the cache: a hit returns TOK_OK with the
 * claims it verified with; a miss verifies and remembers a success. The
 * token is hashed once either way. `tc` may be NULL (no cache).
 */
enum tok_err tok_cache_verify(struct tok_cache *tc,
                              const struct tok_keyset *ks,
                              const struct tok_policy *pol, const char *tok,
                              size_t len, time_t now,
                              struct tok_claims *out);

/* Drops every entry. */
void tok_cache_clear(struct tok_cache *tc);

#endif
