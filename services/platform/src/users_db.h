/*
 * users_db — the platform schema's SQL: users and refresh tokens.
 *
 * Every statement goes through PQexecParams with parameters (never text
 * pasted into SQL). Functions take a PGconn the caller acquired from the
 * pool, so several calls can share one transaction (refresh rotation),
 * and return an enum plat_db; on PLAT_DB_UNAVAILABLE the caller releases
 * the connection as broken and answers 503. SQL error details go to the
 * log, never to the caller.
 *
 * Thread-safety: one PGconn per thread at a time (libpq's rule); the
 * functions themselves keep no state.
 */
#ifndef PLAT_USERS_DB_H
#define PLAT_USERS_DB_H

#include <libpq-fe.h>
#include <jansson.h>
#include <stddef.h>

#include "log/log.h"
#include "token/token.h"

enum plat_db {
    PLAT_DB_OK = 0,
    PLAT_DB_NOT_FOUND,     /* no such row */
    PLAT_DB_CONFLICT,      /* unique violation (23505) */
    PLAT_DB_UNAVAILABLE,   /* PostgreSQL unreachable: answer 503 */
    PLAT_DB_ERROR,         /* anything else: answer 500 */
};

#define PLAT_USER_ROLES_MAX TOK_MAX_ROLES

struct plat_user {
    char id[37];                         /* canonical UUID text */
    char email[255];                     /* normalised */
    char *password_hash;                 /* malloc'd or NULL; see cleanup */
    char roles[PLAT_USER_ROLES_MAX][32];
    size_t nroles;
    int disabled;                        /* disabled_at is set */
    char created_at[40];                 /* RFC 3339 UTC, milliseconds */
    char updated_at[40];
};

/* Frees the user's password_hash. Safe on a zeroed struct. */
void plat_user_cleanup(struct plat_user *u);

/*
 * Inserts a user with default roles ({user}). `email` must already be
 * normalised. Fills *out (password_hash left NULL). PLAT_DB_CONFLICT when
 * the email is taken — decided by the unique index, so concurrent
 * registrations of one address cannot both succeed.
 */
enum plat_db plat_users_create(PGconn *c, const struct log_ctx *lc,
                               const char *email, const char *password_hash,
                               struct plat_user *out);

/* Looks a user up by normalised email; fills *out including the hash. */
enum plat_db plat_users_by_email(PGconn *c, const struct log_ctx *lc,
                                 const char *email, struct plat_user *out);

/* By id; an id that is not a UUID is PLAT_DB_NOT_FOUND. Hash included. */
enum plat_db plat_users_by_id(PGconn *c, const struct log_ctx *lc,
                              const char *id, struct plat_user *out);

/* A refresh token row to insert (one element of a family). */
struct plat_refresh_new {
    const char *user_id;
    const unsigned char *token_hash;  /* SHA-256 of the opaque token */
    const char *family_id;            /* NULL: start a new family */
    const char *parent_id;            /* NULL for a family's first token */
    long ttl_s;                       /* expires_at = now() + ttl_s */
    const char *user_agent;           /* NULL or "": not recorded */
    const char *ip;                   /* textual inet; NULL/"": unknown */
    const char *access_jti;           /* access token issued with it */
    long long access_exp;             /* its exp (epoch s); 0: none */
};

/*
 * Inserts a refresh token; writes the new row's id and family id (37
 * bytes each, may be NULL) on PLAT_DB_OK.
 */
enum plat_db plat_refresh_insert(PGconn *c, const struct log_ctx *lc,
                                 const struct plat_refresh_new *in,
                                 char *id_out, char *family_out);

/* ---- admin (users_db.c) -------------------------------------------- */

/* Adds role admin to the user with `email` (no-op when absent). */
enum plat_db plat_users_grant_admin(PGconn *c, const struct log_ctx *lc,
                                    const char *email);

/*
 * Admin update: `disabled` 1 disables, 0 enables, -1 keeps; `roles_array`
 * a PostgreSQL text[] literal ("{user,admin}") or NULL to keep. Disabling
 * or a role change sets tokens_valid_after = now(). Fills *out (hash
 * included; clean up). PLAT_DB_NOT_FOUND when no such user.
 */
enum plat_db plat_users_update(PGconn *c, const struct log_ctx *lc,
                               const char *id, int disabled,
                               const char *roles_array,
                               struct plat_user *out);

/*
 * A page of users ordered by (created_at, id) after `cursor` (NULL: from
 * the start; as returned in next_cursor). *out: new JSON array of
 * {id,email,roles,disabled,created_at,updated_at}; next_cursor gets ""
 * on the last page. PLAT_DB_NOT_FOUND for a malformed cursor.
 */
enum plat_db plat_users_list(PGconn *c, const struct log_ctx *lc, int limit,
                             const char *cursor, json_t **out,
                             char *next_cursor, size_t next_len);

/* Parses a users cursor into microseconds and id (37 bytes); 0 or -1. */
int plat_users_cursor_parse(const char *s, long long *us, char *id);

/* Classifies and logs a failed result (for the other *_db.c files). */
enum plat_db plat_db_fail(PGconn *c, const PGresult *res,
                          const struct log_ctx *lc, const char *what);

/* ---- tokens_db.c: rotation, revocation, sessions ----------------- */

/* Transaction control on a caller-held connection. */
enum plat_db plat_db_exec(PGconn *c, const struct log_ctx *lc,
                          const char *sql);

/* The refresh token row found (and locked) by its hash. */
struct plat_refresh_row {
    char id[37];
    char family_id[37];
    char user_id[37];
    int used;           /* rotated already */
    int revoked;        /* its family was revoked */
    int expired;
    double since_used;  /* seconds since used_at (0 when unused) */
};

/*
 * SELECT ... FOR UPDATE of the token with hash `hash` (32 bytes): inside
 * a transaction, a concurrent rotation of the same token waits here, so
 * two cannot both see it unused. PLAT_DB_NOT_FOUND when unknown.
 */
enum plat_db plat_refresh_lock(PGconn *c, const struct log_ctx *lc,
                               const unsigned char *hash,
                               struct plat_refresh_row *out);

/* Marks a token rotated (used_at, last_used_at = now()). */
enum plat_db plat_refresh_mark_used(PGconn *c, const struct log_ctx *lc,
                                    const char *id);

/* An access token to denylist: its jti and exp (epoch seconds). */
struct plat_jti {
    char jti[64];
    long long exp;
};

/* What a revocation ended. Free with plat_jtis_cleanup. */
struct plat_jtis {
    struct plat_jti *v;  /* live access tokens of the revoked rows */
    size_t n;
    size_t nfamilies;    /* sessions ended */
};
void plat_jtis_cleanup(struct plat_jtis *j);

/*
 * Revokes refresh tokens of `user_id`: the family `family_id` only (when
 * not NULL), all but `except_family` (when not NULL), or all. Collects
 * the still-alive access tokens of the revoked rows into *out (caller
 * cleans up). `reason` is stored for audits.
 */
enum plat_db plat_refresh_revoke(PGconn *c, const struct log_ctx *lc,
                                 const char *user_id, const char *family_id,
                                 const char *except_family,
                                 const char *reason, struct plat_jtis *out);

/*
 * The live session (family) whose latest access token has `jti`, into
 * family_out (37 bytes). PLAT_DB_NOT_FOUND when none.
 */
enum plat_db plat_refresh_family_of_jti(PGconn *c, const struct log_ctx *lc,
                                        const char *user_id, const char *jti,
                                        char *family_out);

/*
 * The user's live sessions, newest activity first (at most 100), as a
 * JSON array of {id, created_at, last_used_at, expires_at, user_agent,
 * ip, current} where current marks the family of access token `jti`
 * (may be NULL). *out is a new reference.
 */
enum plat_db plat_sessions_list(PGconn *c, const struct log_ctx *lc,
                                const char *user_id, const char *jti,
                                json_t **out);

/* Replaces a user's password hash. NOT_FOUND when no such user. */
enum plat_db plat_users_set_password(PGconn *c, const struct log_ctx *lc,
                                     const char *id, const char *hash);

/*
 * Start-up: calls fn for every access token that must stay refused
 * (revoked rows whose access_exp is ahead) and for every user marker
 * (tokens_valid_after) younger than `max_age_s`. Returns the first
 * non-OK result.
 */
enum plat_db plat_revocations_each(
    PGconn *c, const struct log_ctx *lc, long max_age_s,
    void (*on_jti)(void *arg, const char *jti, long long exp),
    void (*on_user)(void *arg, const char *id, long long t), void *arg);

#endif
