/*
 * storage — the storage interface's wrappers and its directory backend
 * (see storage.h for the contract).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "storage.h"

#define PATH_MAX_LEN 4096

struct dir_storage {
    struct auto_storage base;     /* first: the handle points here */
    char root[PATH_MAX_LEN];
    char objects[PATH_MAX_LEN];
    char tmp[PATH_MAX_LEN];
};

struct auto_storage_put {
    struct dir_storage *st;
    int fd;
    char tmp_path[PATH_MAX_LEN];
    char final_path[PATH_MAX_LEN];
};

int auto_storage_key_valid(const char *key)
{
    size_t n;

    if (!key || !*key || *key == '.')
        return 0;
    n = strlen(key);
    return n <= AUTO_STORAGE_KEY_MAX &&
           strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789._-") == n;
}

int auto_storage_new_key(char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];

    if (len < 33 || getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (size_t i = 0; i < sizeof r; i++) {
        buf[2 * i] = hex[r[i] >> 4];
        buf[2 * i + 1] = hex[r[i] & 15];
    }
    buf[32] = '\0';
    return 0;
}

int auto_storage_mkdir_p(const char *path)
{
    char buf[PATH_MAX_LEN];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        buf[i] = i < n ? '/' : '\0';
    }
    return 0;
}

/* fsync of a directory makes a rename or unlink in it durable. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int obj_path(struct dir_storage *d, const char *key, char *buf,
                    size_t len)
{
    if (!auto_storage_key_valid(key))
        return -1;
    return snprintf(buf, len, "%s/%s", d->objects, key) < (int)len ? 0 : -1;
}

static int dir_put_begin(struct auto_storage *st, const char *key,
                         struct auto_storage_put **out)
{
    struct dir_storage *d = (struct dir_storage *)st;
    struct auto_storage_put *p = calloc(1, sizeof *p);
    char rnd[33];

    if (!p || obj_path(d, key, p->final_path, sizeof p->final_path) != 0 ||
        auto_storage_new_key(rnd, sizeof rnd) != 0 ||
        snprintf(p->tmp_path, sizeof p->tmp_path, "%s/%s.%.8s.part", d->tmp,
                 key, rnd) >= (int)sizeof p->tmp_path) {
        free(p);
        return -1;
    }
    p->st = d;
    p->fd = open(p->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 0640);
    if (p->fd < 0) {
        log_kv(LOG_LVL_ERROR, NULL, "storage: cannot create", "path",
               p->tmp_path, "error", strerror(errno), NULL);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int dir_put_write(struct auto_storage_put *p, const void *buf,
                         size_t len)
{
    const char *b = buf;

    while (len > 0) {
        ssize_t n = write(p->fd, b, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_kv(LOG_LVL_ERROR, NULL, "storage: write failed", "path",
                   p->tmp_path, "error", strerror(errno), NULL);
            return -1;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static void dir_put_abort(struct auto_storage_put *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    unlink(p->tmp_path);
    free(p);
}

static int dir_put_commit(struct auto_storage_put *p)
{
    int rc = -1;

    if (fsync(p->fd) != 0 || close(p->fd) != 0) {
        p->fd = -1;
        log_kv(LOG_LVL_ERROR, NULL, "storage: fsync failed", "path",
               p->tmp_path, "error", strerror(errno), NULL);
        goto cleanup;
    }
    p->fd = -1;
    if (rename(p->tmp_path, p->final_path) != 0) {
        log_kv(LOG_LVL_ERROR, NULL, "storage: rename failed", "path",
               p->final_path, "error", strerror(errno), NULL);
        goto cleanup;
    }
    sync_dir(p->st->objects);
    rc = 0;
cleanup:
    if (rc != 0)
        unlink(p->tmp_path);
    free(p);
    return rc;
}

static int dir_get(struct auto_storage *st, const char *key, int *fd,
                   uint64_t *size)
{
    struct dir_storage *d = (struct dir_storage *)st;
    char path[PATH_MAX_LEN];
    struct stat sb;

    if (obj_path(d, key, path, sizeof path) != 0)
        return -1;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return errno == ENOENT ? 1 : -1;
    if (fstat(*fd, &sb) != 0) {
        close(*fd);
        *fd = -1;
        return -1;
    }
    *size = (uint64_t)sb.st_size;
    return 0;
}

static int dir_stat(struct auto_storage *st, const char *key,
                    uint64_t *size)
{
    struct dir_storage *d = (struct dir_storage *)st;
    char path[PATH_MAX_LEN];
    struct stat sb;

    if (obj_path(d, key, path, sizeof path) != 0)
        return -1;
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? 1 : -1;
    *size = (uint64_t)sb.st_size;
    return 0;
}

static int dir_del(struct auto_storage *st, const char *key)
{
    struct dir_storage *d = (struct dir_storage *)st;
    char path[PATH_MAX_LEN];

    if (obj_path(d, key, path, sizeof path) != 0)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    sync_dir(d->objects);
    return 0;
}

static void dir_free(struct auto_storage *st)
{
    free(st);
}

static const struct auto_storage_ops dir_ops = {
    dir_put_begin, dir_put_write, dir_put_commit, dir_put_abort,
    dir_get,       dir_stat,      dir_del,        dir_free,
};

struct auto_storage *auto_storage_dir_new(const char *root)
{
    struct dir_storage *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->base.ops = &dir_ops;
    if (snprintf(d->root, sizeof d->root, "%s", root) >= (int)sizeof d->root ||
        snprintf(d->objects, sizeof d->objects, "%s/objects", root) >=
            (int)sizeof d->objects ||
        snprintf(d->tmp, sizeof d->tmp, "%s/tmp", root) >=
            (int)sizeof d->tmp ||
        auto_storage_mkdir_p(d->objects) != 0 ||
        auto_storage_mkdir_p(d->tmp) != 0) {
        log_kv(LOG_LVL_ERROR, NULL, "storage: cannot create directories",
               "root", root, NULL);
        free(d);
        return NULL;
    }
    return &d->base;
}

void auto_storage_free(struct auto_storage *st)
{
    if (st)
        st->ops->free(st);
}

int auto_storage_put_begin(struct auto_storage *st, const char *key,
                           struct auto_storage_put **out)
{
    return st->ops->put_begin(st, key, out);
}

/* The directory backend is the only one so far; a second backend gives
 * its put handle a pointer to its ops the same way. */
int auto_storage_put_write(struct auto_storage_put *p, const void *buf,
                           size_t len)
{
    return p->st->base.ops->put_write(p, buf, len);
}

int auto_storage_put_commit(struct auto_storage_put *p)
{
    return p->st->base.ops->put_commit(p);
}

void auto_storage_put_abort(struct auto_storage_put *p)
{
    if (p)
        p->st->base.ops->put_abort(p);
}

int auto_storage_get(struct auto_storage *st, const char *key, int *fd,
                     uint64_t *size)
{
    return st->ops->get(st, key, fd, size);
}

int auto_storage_stat(struct auto_storage *st, const char *key,
                      uint64_t *size)
{
    return st->ops->stat(st, key, size);
}

int auto_storage_delete(struct auto_storage *st, const char *key)
{
    return st->ops->del(st, key);
}
