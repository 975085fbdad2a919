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
};

/*
 * Inserts a refresh token; writes the new row's id and family id (37
 * bytes each, may be NULL) on PLAT_DB_OK.
 */
enum plat_db plat_refresh_insert(PGconn *c, const struct log_ctx *lc,
                                 const struct plat_refresh_new *in,
                                 char *id_out, char *family_out);

#endif
