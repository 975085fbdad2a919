/*
 * config — typed settings from the environment (12-factor).
 *
 * Every getter reads NAME from the environment; string getters also accept
 * NAME_FILE, a path whose contents (trailing newline stripped) are the value,
 * for secrets mounted as files. Setting both NAME and NAME_FILE is an error.
 *
 * Errors accumulate instead of aborting: a getter that meets a bad or
 * missing value records one line naming the setting in the struct cfg and
 * returns its default, so a service reads all its settings and then calls
 * cfg_check() once. Only the first error is kept.
 *
 * Thread-safety: a struct cfg is used by one thread (start-up); strings it
 * returns stay valid until cfg_cleanup() and may then be read by any thread.
 */
#ifndef BASALT_CONFIG_H
#define BASALT_CONFIG_H

#include <stddef.h>

struct cfg_owned;

struct cfg {
    char service[32];        /* prefix of the error line */
    int nerr;                /* errors seen so far */
    char err[256];           /* the first error, one line, no newline */
    struct cfg_owned *owned; /* strings read from *_FILE, freed by cleanup */
};

/* Prepares c; `service` names the process in error lines. Can't fail. */
void cfg_init(struct cfg *c, const char *service);

/* Frees every string the getters returned. */
void cfg_cleanup(struct cfg *c);

/*
 * String setting. `def` NULL makes it required: a missing or empty value
 * is an error and NULL is returned. Returned memory belongs to c (or to the
 * environment) and lives until cfg_cleanup().
 */
const char *cfg_str(struct cfg *c, const char *name, const char *def);

/*
 * Integer setting in [min, max] (decimal, strtol with full checks).
 * Out of range or not a number: error, returns def.
 */
long cfg_int(struct cfg *c, const char *name, long def, long min, long max);

/* Floating-point setting in [min, max]; as cfg_int. */
double cfg_double(struct cfg *c, const char *name, double def, double min,
                  double max);

/* Boolean: 1/0, true/false, yes/no, on/off (case-insensitive). */
int cfg_bool(struct cfg *c, const char *name, int def);

/*
 * One of `choices` (NULL-terminated array); returns its index, or the index
 * of `def` when unset. Anything else is an error naming the choices.
 */
int cfg_enum(struct cfg *c, const char *name, const char *def,
             const char *const *choices);

/*
 * Reads a whole small file (a PEM key, a secret, a routes document) into
 * a malloc'd NUL-terminated buffer (caller frees) and sets *len. NULL when
 * the file cannot be opened or read, is larger than `max` bytes or holds a
 * NUL byte; `why` then says which, naming the path (one line). An empty
 * file is returned as "" (callers that need content check *len).
 */
char *cfg_read_file(const char *path, size_t max, size_t *len, char *why,
                    size_t whylen);

/* Records a custom error (first one wins) — for cross-setting checks. */
void cfg_fail(struct cfg *c, const char *name, const char *why);

/*
 * 0 when no error was recorded. Otherwise writes the first error as one line
 * to stderr ("<service>: config: <NAME>: <why>") and returns -1.
 */
int cfg_check(struct cfg *c);

#endif
