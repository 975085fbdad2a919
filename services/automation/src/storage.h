/*
 * storage — where uploaded file contents live: a small object-store
 * interface (put as a stream, get, stat, delete) keyed by opaque keys,
 * so an S3-compatible backend can sit behind the same calls. The
 * directory backend keeps objects under one root, which replicas share
 * as a volume.
 *
 * Keys: 1..128 bytes of [A-Za-z0-9._-], no leading '.'; chosen by the
 * caller (auto_storage_new_key makes random ones).
 *
 * Threads: a struct auto_storage is immutable after creation and may be
 * used from any thread; a struct auto_storage_put belongs to one thread.
 */
#ifndef BASALT_AUTO_STORAGE_H
#define BASALT_AUTO_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#define AUTO_STORAGE_KEY_MAX 128

struct auto_storage;
struct auto_storage_put;

/* A backend: one function per operation (see the wrappers below). */
struct auto_storage_ops {
    int (*put_begin)(struct auto_storage *st, const char *key,
                     struct auto_storage_put **out);
    int (*put_write)(struct auto_storage_put *p, const void *buf,
                     size_t len);
    int (*put_commit)(struct auto_storage_put *p);
    void (*put_abort)(struct auto_storage_put *p);
    int (*get)(struct auto_storage *st, const char *key, int *fd,
               uint64_t *size);
    int (*stat)(struct auto_storage *st, const char *key, uint64_t *size);
    int (*del)(struct auto_storage *st, const char *key);
    void (*free)(struct auto_storage *st);
};

struct auto_storage {
    const struct auto_storage_ops *ops;
};

/*
 * The directory backend rooted at `root` (created if missing, with a
 * "tmp" folder for uploads in flight). An object is written to
 * tmp/<key>.<random>.part, fsync'd, then renamed to objects/<key> and the
 * directory fsync'd, so a reader never sees a partial object and a
 * failed upload leaves nothing behind. NULL on error (logged).
 */
struct auto_storage *auto_storage_dir_new(const char *root);

/* mkdir -p with mode 0750 (an existing directory is fine); 0, or -1
 * with errno set. path shorter than 4096 bytes. */
int auto_storage_mkdir_p(const char *path);

/* Frees the handle (never the stored objects). NULL is fine. */
void auto_storage_free(struct auto_storage *st);

/* A random 32-hex-character key into buf (>= 33 bytes). 0 or -1. */
int auto_storage_new_key(char *buf, size_t len);

/* 1 when key is a valid key. */
int auto_storage_key_valid(const char *key);

/*
 * Starts writing object `key` (replaced at commit if it exists). 0 and
 * *out, or -1. Then put_write any number of times (0 or -1 on an I/O
 * error: the caller aborts), and exactly one of put_commit (durable and
 * visible on 0; on -1 nothing is left) or put_abort (removes what was
 * written; never fails). Both free the handle.
 */
int auto_storage_put_begin(struct auto_storage *st, const char *key,
                           struct auto_storage_put **out);
int auto_storage_put_write(struct auto_storage_put *p, const void *buf,
                           size_t len);
int auto_storage_put_commit(struct auto_storage_put *p);
void auto_storage_put_abort(struct auto_storage_put *p);

/*
 * Opens object `key` for reading: *fd (caller closes) positioned at 0
 * and *size. 0, -1 on error, or 1 when there is no such object.
 */
int auto_storage_get(struct auto_storage *st, const char *key, int *fd,
                     uint64_t *size);

/* *size of object `key`: 0, -1 on error, 1 when missing. */
int auto_storage_stat(struct auto_storage *st, const char *key,
                      uint64_t *size);

/* Removes object `key`: 0 (also when missing) or -1. */
int auto_storage_delete(struct auto_storage *st, const char *key);

#endif
