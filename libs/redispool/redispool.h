/*
 * redispool — a fixed-size pool of hiredis connections.
 *
 * A redisContext is used by one thread at a time (hiredis requires it);
 * the pool hands each to one caller between acquire and release.
 * Connections open lazily with connect and command timeouts and are
 * re-opened after errors, so a Redis restart heals by itself.
 *
 * URL form: redis://[:password@]host:port[/db]
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef BASALT_REDISPOOL_H
#define BASALT_REDISPOOL_H

#include <hiredis/hiredis.h>

struct redispool;

/*
 * New pool of at most `size` connections to `url` (copied); `timeout_ms`
 * bounds connect and every command. NULL on a malformed URL, size < 1 or
 * OOM.
 */
struct redispool *redispool_new(const char *url, int size, int timeout_ms);

/* Closes every connection and frees. All connections must be released. */
void redispool_free(struct redispool *p);

/*
 * A connected context for exclusive use, waiting at most `wait_ms` for a
 * free one. NULL when none is free in time or Redis can't be reached.
 */
redisContext *redispool_acquire(struct redispool *p, int wait_ms);

/* Gives it back; `broken` != 0 (or ctx->err set) closes it. */
void redispool_release(struct redispool *p, redisContext *c, int broken);

/* PING on a pooled connection: 0 on PONG, else -1. */
int redispool_ping(struct redispool *p);

/*
 * Parses a redis:// URL into host (buf hostlen), port, password (buf
 * passlen, "" when none) and db. 0 on success, -1 when malformed.
 */
int redispool_parse_url(const char *url, char *host, size_t hostlen,
                        int *port, char *pass, size_t passlen, int *db);

#endif
