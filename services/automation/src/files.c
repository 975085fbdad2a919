/*
 * files — uploads streamed to storage, file metadata and downloads.
 *
 * An upload goes chunk by chunk (httpd_route_stream) into a storage put
 * (a temporary file, fsync'd and renamed on success) while SHA-256 and
 * the size are computed; only then is the automation.files row inserted.
 * A body past FILES_MAX_BYTES, a client that goes away, or any error
 * aborts the put, so nothing is left behind: no object, no row.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>

#include "files.h"
#include "log/log.h"
#include "pgexec.h"

#define NAME_MAX_LEN 255
#define CTYPE_MAX_LEN 255
#define WBUF_SIZE (256 * 1024)    /* fewer, larger writes */
#define PP_BUF_SIZE (64 * 1024)
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 100

static struct auto_files *g_files;

void auto_files_set(struct auto_files *f)
{
    g_files = f;
}

struct auto_files *auto_files_get(void)
{
    return g_files;
}

enum auto_res auto_files_sql(struct auto_files *f, const char *sql, int n,
                             const char *const *params, PGresult **res)
{
    return auto_pg_exec(f->pg, f->acquire_ms > 0 ? f->acquire_ms : 5000,
                        "files", sql, n, params, res);
}

void auto_files_invalid(struct httpd_req *r, const char *field,
                        const char *why)
{
    char msg[512];

    snprintf(msg, sizeof msg, "%s %s", field, why);
    httpd_reply_json(r, 422,
                     json_pack("{s{ssssssss}}", "error", "code",
                               "validation_failed", "message", msg,
                               "field", field, "request_id", r->request_id));
}

void auto_files_fail(struct httpd_req *r, enum auto_res rc,
                     const char *what)
{
    switch (rc) {
    case AUTO_ENOTFOUND:
        httpd_error(r, 404, "not_found", "no such %s", what);
        break;
    case AUTO_EUNAVAIL:
        httpd_error(r, 503, "unavailable", "the database is unavailable");
        break;
    default:
        httpd_error(r, 500, "internal_error", "%s store error", what);
        break;
    }
}

long long auto_files_path_id(struct httpd_req *r, const char *what)
{
    const char *s = httpd_param(r, "id");
    char *end = NULL;
    long long id;

    errno = 0;
    id = s && isdigit((unsigned char)*s) ? strtoll(s, &end, 10) : 0;
    if (id <= 0 || errno || *end != '\0') {
        httpd_error(r, 404, "not_found", "no such %s", what);
        return 0;
    }
    return id;
}

int auto_files_page(struct httpd_req *r, int *limit, long long *cursor)
{
    const char *s;
    char *end;

    *limit = LIST_LIMIT_DEFAULT;
    *cursor = 0;
    if ((s = httpd_query(r, "limit")) && *s) {
        long l;

        errno = 0;
        l = strtol(s, &end, 10);
        if (errno || *end || l < 1 || l > LIST_LIMIT_MAX) {
            auto_files_invalid(r, "limit", "must be an integer from 1 to 100");
            return -1;
        }
        *limit = (int)l;
    }
    if ((s = httpd_query(r, "cursor")) && *s) {
        errno = 0;
        *cursor = strtoll(s, &end, 10);
        if (errno || *end || *cursor < 1) {
            auto_files_invalid(r, "cursor", "is not a cursor from this API");
            return -1;
        }
    }
    return 0;
}

/* ---- upload ------------------------------------------------------------ */

/* One upload in flight; owned by its connection's thread. */
struct upload {
    struct auto_files *f;
    struct auto_identity who;
    struct auto_storage_put *put;  /* NULL once committed or aborted */
    EVP_MD_CTX *md;
    char key[AUTO_STORAGE_KEY_MAX + 1];
    char name[NAME_MAX_LEN + 1];
    char ctype[CTYPE_MAX_LEN + 1];
    uint64_t size;
    char *wbuf;
    size_t wlen;
    int io_error;
    /* multipart/form-data: the first file part is the upload */
    struct MHD_PostProcessor *pp;
    int part;                      /* 0 none yet, 1 in it, 2 done */
    char part_key[128];
    int bad_multipart;
};

/* A file name: 1..255 bytes of UTF-8 without control characters. */
static int name_ok(const char *s)
{
    json_t *j;

    if (!s || !*s || strlen(s) > NAME_MAX_LEN)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    j = json_string(s);           /* NULL when not UTF-8 */
    json_decref(j);
    return j != NULL;
}

static void upload_free(struct upload *u)
{
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    auto_storage_put_abort(u->put);
    EVP_MD_CTX_free(u->md);
    free(u->wbuf);
    free(u);
}

static int upload_flush(struct upload *u)
{
    if (u->wlen == 0)
        return 0;
    if (auto_storage_put_write(u->put, u->wbuf, u->wlen) != 0) {
        u->io_error = 1;
        return -1;
    }
    u->wlen = 0;
    return 0;
}

/* Adds file bytes: hash, count, buffer, write. */
static int upload_take(struct upload *u, const char *data, size_t len)
{
    if (EVP_DigestUpdate(u->md, data, len) != 1) {
        u->io_error = 1;
        return -1;
    }
    u->size += len;
    if (len >= WBUF_SIZE) {
        if (upload_flush(u) != 0 ||
            auto_storage_put_write(u->put, data, len) != 0) {
            u->io_error = 1;
            return -1;
        }
        return 0;
    }
    if (u->wlen + len > WBUF_SIZE && upload_flush(u) != 0)
        return -1;
    memcpy(u->wbuf + u->wlen, data, len);
    u->wlen += len;
    return 0;
}

/* "C:\\dir\\a.csv" and "dir/a.csv" give "a.csv". */
static const char *base_name(const char *s)
{
    const char *a = strrchr(s, '/'), *b = strrchr(s, '\\');

    if (b > a)
        a = b;
    return a ? a + 1 : s;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *filename,
                               const char *ctype, const char *te,
                               const char *data, uint64_t off, size_t size)
{
    struct upload *u = cls;

    (void)kind, (void)te;
    if (!key)                          /* a part without a usable */
        key = "";                      /* Content-Disposition name */
    if (u->part == 2)
        return MHD_YES;
    if (u->part == 0) {
        if ((!filename && strcmp(key, "file") != 0) || off != 0)
            return MHD_YES;            /* an ordinary form field */
        u->part = 1;
        snprintf(u->part_key, sizeof u->part_key, "%s", key);
        if (!u->name[0] && filename)
            snprintf(u->name, sizeof u->name, "%s", base_name(filename));
        if (ctype && *ctype && strlen(ctype) <= CTYPE_MAX_LEN)
            snprintf(u->ctype, sizeof u->ctype, "%s", ctype);
    } else if (strcmp(key, u->part_key) != 0 || off != u->size) {
        u->part = 2;                   /* a later part: ignored */
        return MHD_YES;
    }
    if (size > 0 && upload_take(u, data, size) != 0)
        return MHD_NO;
    return MHD_YES;
}

static int up_begin(struct httpd_req *r, void *arg, void **ctx)
{
    struct auto_files *f = arg;
    struct upload *u;
    const char *name = httpd_query(r, "name");
    const char *ct = httpd_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    int multipart = ct && strncasecmp(ct, "multipart/form-data", 19) == 0;

    u = calloc(1, sizeof *u);
    if (!u) {
        httpd_error(r, 500, "internal_error", "out of memory");
        return -1;
    }
    u->f = f;
    if (auto_identity_require(f->auth, r, &u->who) != 0)
        goto fail;
    if (name && *name) {
        if (!name_ok(name)) {
            auto_files_invalid(r, "name", "must be 1 to 255 bytes of UTF-8 "
                                          "without control characters");
            goto fail;
        }
        snprintf(u->name, sizeof u->name, "%s", name);
    } else if (!multipart) {
        auto_files_invalid(r, "name", "is required");
        goto fail;
    }
    snprintf(u->ctype, sizeof u->ctype, "%s",
             !multipart && ct && *ct && strlen(ct) <= CTYPE_MAX_LEN
                 ? ct : "application/octet-stream");
    if (multipart) {
        u->pp = MHD_create_post_processor(r->conn, PP_BUF_SIZE, on_part, u);
        if (!u->pp) {
            httpd_error(r, 400, "bad_request",
                        "multipart/form-data without a usable boundary");
            goto fail;
        }
    }
    u->wbuf = malloc(WBUF_SIZE);
    u->md = EVP_MD_CTX_new();
    if (!u->wbuf || !u->md ||
        EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1 ||
        auto_storage_new_key(u->key, sizeof u->key) != 0) {
        httpd_error(r, 500, "internal_error", "cannot start the upload");
        goto fail;
    }
    if (auto_storage_put_begin(f->storage, u->key, &u->put) != 0) {
        httpd_error(r, 500, "storage_error", "cannot store the file");
        goto fail;
    }
    *ctx = u;
    return 0;
fail:
    upload_free(u);
    return -1;
}

static int up_chunk(struct httpd_req *r, void *ctx, const char *data,
                    size_t len)
{
    struct upload *u = ctx;

    (void)r;
    if (u->pp) {
        if (MHD_post_process(u->pp, data, len) != MHD_YES) {
            if (!u->io_error)
                u->bad_multipart = 1;
            return -1;
        }
        return 0;
    }
    return upload_take(u, data, len);
}

/* Commits the object and inserts the row; answers. */
static void up_finish(struct httpd_req *r, struct upload *u)
{
    static const char sql[] =
        "INSERT INTO automation.files (name, size, content_type, sha256,"
        " storage_key, owner_id) VALUES ($1, $2, $3, $4, $5, $6)"
        " RETURNING automation.file_json(files)";
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1], size[32];
    const char *params[6];
    PGresult *res = NULL;
    json_t *file;
    enum auto_res rc;
    struct auto_storage_put *put = u->put;

    if (upload_flush(u) != 0 ||
        EVP_DigestFinal_ex(u->md, dig, &dlen) != 1) {
        httpd_error(r, 500, "storage_error", "cannot store the file");
        return;
    }
    for (unsigned i = 0; i < dlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    snprintf(size, sizeof size, "%llu", (unsigned long long)u->size);
    u->put = NULL;
    if (auto_storage_put_commit(put) != 0) {
        httpd_error(r, 500, "storage_error", "cannot store the file");
        return;
    }
    params[0] = u->name;
    params[1] = size;
    params[2] = u->ctype;
    params[3] = hex;
    params[4] = u->key;
    params[5] = u->who.user_id;
    rc = auto_files_sql(u->f, sql, 6, params, &res);
    if (rc != AUTO_OK) {
        auto_storage_delete(u->f->storage, u->key);
        auto_files_fail(r, rc, "file");
        return;
    }
    file = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!file) {
        httpd_error(r, 500, "internal_error", "file store error");
        return;
    }
    log_kv(LOG_LVL_INFO, &r->log, "file stored", "key", u->key, "size",
           size, "sha256", hex, NULL);
    httpd_reply_json(r, 201, file);
}

static void up_end(struct httpd_req *r, void *ctx, enum httpd_stream_end how)
{
    struct upload *u = ctx;

    if (how == HTTPD_STREAM_DONE && u->pp) {
        enum MHD_Result ok = MHD_destroy_post_processor(u->pp);

        u->pp = NULL;
        if (u->io_error) {
            how = HTTPD_STREAM_REFUSED;
        } else if (ok != MHD_YES || u->part == 0) {
            u->bad_multipart = 1;
            how = HTTPD_STREAM_REFUSED;
        }
    }
    switch (how) {
    case HTTPD_STREAM_DONE:
        if (!name_ok(u->name))
            auto_files_invalid(r, "name",
                               u->name[0] ? "must be 1 to 255 bytes of UTF-8"
                                            " without control characters"
                                          : "is required");
        else
            up_finish(r, u);
        break;
    case HTTPD_STREAM_REFUSED:
        if (u->bad_multipart)
            auto_files_invalid(r, "file",
                               "is missing: send one multipart part with a "
                               "filename (or named \"file\")");
        else
            httpd_error(r, 500, "storage_error", "cannot store the file");
        break;
    case HTTPD_STREAM_TOO_LARGE:
    case HTTPD_STREAM_ABORTED:
        log_kv(LOG_LVL_INFO, &r->log, "upload dropped", "reason",
               how == HTTPD_STREAM_TOO_LARGE ? "too large" : "aborted",
               NULL);
        break;
    }
    upload_free(u);   /* aborts the put unless it was committed */
}

/* ---- reads ------------------------------------------------------------- */

void auto_files_list(struct httpd_req *r, struct auto_files *f,
                     const char *sql, const char *key, const char *what)
{
    struct auto_identity who;
    const char *params[3];
    char cur[32], lim[16];
    int limit;
    long long cursor;
    PGresult *res;
    json_t *list, *next = json_null();
    enum auto_res rc;

    if (auto_identity_require(f->auth, r, &who) != 0 ||
        auto_files_page(r, &limit, &cursor) != 0)
        return;
    snprintf(cur, sizeof cur, "%lld", cursor);
    snprintf(lim, sizeof lim, "%d", limit);
    params[0] = who.admin ? NULL : who.user_id;
    params[1] = cursor ? cur : NULL;
    params[2] = lim;
    rc = auto_files_sql(f, sql, 3, params, &res);
    if (rc != AUTO_OK) {
        auto_files_fail(r, rc, what);
        return;
    }
    list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!list) {
        httpd_error(r, 500, "internal_error", "%s store error", what);
        return;
    }
    if (json_array_size(list) == (size_t)limit) {
        json_t *last = json_array_get(list, json_array_size(list) - 1);

        snprintf(cur, sizeof cur, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(last, "id")));
        next = json_string(cur);
    }
    httpd_reply_json(r, 200, json_pack("{soso}", key, list,
                                       "next_cursor", next));
}

static void h_list(struct httpd_req *r, void *arg)
{
    static const char sql[] =
        "SELECT coalesce(json_agg(automation.file_json(f) ORDER BY f.id DESC),"
        " '[]') FROM (SELECT * FROM automation.files"
        " WHERE ($1::text IS NULL OR owner_id = $1)"
        " AND ($2::bigint IS NULL OR id < $2)"
        " ORDER BY id DESC LIMIT $3) f";

    auto_files_list(r, arg, sql, "files", "file");
}

/* The caller's file row (admins: any); NULL after answering. */
static PGresult *file_row(struct httpd_req *r, struct auto_files *f,
                          const char *sql)
{
    struct auto_identity who;
    const char *params[2];
    char ids[32];
    long long id;
    PGresult *res;
    enum auto_res rc;

    if (auto_identity_require(f->auth, r, &who) != 0 ||
        (id = auto_files_path_id(r, "file")) == 0)
        return NULL;
    snprintf(ids, sizeof ids, "%lld", id);
    params[0] = ids;
    params[1] = who.admin ? NULL : who.user_id;
    rc = auto_files_sql(f, sql, 2, params, &res);
    if (rc == AUTO_OK && PQntuples(res) == 0) {
        PQclear(res);
        rc = AUTO_ENOTFOUND;
    }
    if (rc != AUTO_OK) {
        auto_files_fail(r, rc, "file");
        return NULL;
    }
    return res;
}

static void h_get(struct httpd_req *r, void *arg)
{
    PGresult *res = file_row(r, arg,
                             "SELECT automation.file_json(f) FROM"
                             " automation.files f WHERE id = $1 AND"
                             " ($2::text IS NULL OR owner_id = $2)");
    json_t *file;

    if (!res)
        return;
    file = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!file)
        httpd_error(r, 500, "internal_error", "file store error");
    else
        httpd_reply_json(r, 200, file);
}

/* RFC 5987 filename*: UTF-8, percent-encoded except attr-chars. */
static void disposition(const char *name, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(out, len, "attachment; filename*=UTF-8''");

    for (const unsigned char *p = (const unsigned char *)name;
         *p && n + 4 < len; p++) {
        if (isalnum(*p) || strchr("!#$&+-.^_`|~", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

static void h_content(struct httpd_req *r, void *arg)
{
    struct auto_files *f = arg;
    PGresult *res = file_row(r, f,
                             "SELECT storage_key, content_type, name, sha256"
                             " FROM automation.files WHERE id = $1 AND"
                             " ($2::text IS NULL OR owner_id = $2)");
    char cd[1024];
    uint64_t size = 0;
    int fd = -1, rc;

    if (!res)
        return;
    rc = auto_storage_get(f->storage, PQgetvalue(res, 0, 0), &fd, &size);
    if (rc != 0) {
        log_kv(LOG_LVL_ERROR, &r->log, "file content missing", "key",
               PQgetvalue(res, 0, 0), NULL);
        httpd_error(r, rc == 1 ? 404 : 500,
                    rc == 1 ? "not_found" : "storage_error",
                    "the file's content is not available");
        PQclear(res);
        return;
    }
    disposition(PQgetvalue(res, 0, 2), cd, sizeof cd);
    httpd_add_header(r, "Content-Disposition", cd);
    httpd_add_header(r, "X-Content-Type-Options", "nosniff");
    httpd_add_header(r, "X-Content-SHA256", PQgetvalue(res, 0, 3));
    httpd_reply_fd(r, 200, PQgetvalue(res, 0, 1), fd, size);
    PQclear(res);
}

int auto_files_routes(struct httpd_server *s, struct auto_files *f)
{
    if (httpd_route_stream(s, "POST", "/automation/files", up_begin,
                           up_chunk, up_end, f, (size_t)f->max_bytes) ||
        httpd_route(s, "GET", "/automation/files", h_list, f, 0) ||
        httpd_route(s, "GET", "/automation/files/{id}", h_get, f, 0) ||
        httpd_route(s, "GET", "/automation/files/{id}/content", h_content,
                    f, 0) ||
        auto_datasets_routes(s, f))
        return -1;
    return 0;
}
