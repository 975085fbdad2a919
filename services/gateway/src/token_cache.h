/*
 * token_cache — verified access tokens, so the hot path skips the RSA
 * verify for a token seen moments ago.
 *
 * Keyed by the SHA-256 of the whole token (header, payload and
 * signature), so a hit is the very token that verified, never a token
 * that merely shares a signature. An entry lives until min(exp, put time
 * + ttl_s): expiry is honoured as tok_verify would (minus the leeway,
 * which only makes the cache stricter). Revocation is not the cache's job:
 * the caller checks gw_revocation on every hit and miss, and that check
 * is a local lookup refreshed by Redis pub/sub.
 *
 * Bounded: `capacity` entries in 4-way sets; a full set replaces its
 * entry that expires first.
 *
 * Thread-safety: any thread; sets are guarded by striped mutexes.
 */
#ifndef GW_TOKEN_CACHE_H
#define GW_TOKEN_CACHE_H

#include <stddef.h>
#include <time.h>

#include "token/token.h"

struct gw_token_cache;

/* capacity >= 4 (rounded up to 4 x a power of two); ttl_s >= 1. NULL on
 * OOM or bad arguments. */
struct gw_token_cache *gw_token_cache_new(size_t capacity, int ttl_s);
void gw_token_cache_free(struct gw_token_cache *tc);

/* 1 and *out filled when `tok` (len bytes) is cached and alive at now. */
int gw_token_cache_get(struct gw_token_cache *tc, const char *tok,
                       size_t len, time_t now, struct tok_claims *out);

/* Remembers a token that just verified with claims *c. Can't fail. */
void gw_token_cache_put(struct gw_token_cache *tc, const char *tok,
                        size_t len, const struct tok_claims *c, time_t now);

/* Drops every entry. */
void gw_token_cache_clear(struct gw_token_cache *tc);

#endif
