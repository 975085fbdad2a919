/*
 * Fuzzes multipart/form-data uploads (POST /automation/files): libmicro-
 * httpd's post processor driven with files.c's own callback (on_part) and
 * upload state, as up_begin / up_chunk / up_end drive them. files.c is
 * #included to reach its statics (the archive's copy is then not linked).
 *
 * MHD_create_post_processor reads the Content-Type (and its boundary) from
 * a live connection, so the harness runs an MHD daemon without a listening
 * socket and hands it one end of a socketpair per input, carrying only the
 * request head; the body is fed to the post processor directly, in chunks.
 *
 * Input: the Content-Type value up to the first newline (CR and NUL become
 * spaces), one byte choosing the chunk size (1..255; 0 = all at once),
 * then the body. Invariants: the bytes counted and hashed are exactly the
 * first file part's; a file name taken from the part has no '/' or '\\'.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../fuzz.h"
#include "../../../services/automation/src/files.c"

static struct MHD_Daemon *g_d;

struct fuzz_req {
    const char *ctype;
    const uint8_t *body;
    size_t len;
    size_t chunk;
    int handled;
};
static struct fuzz_req g_req;

/* Bytes of the first file part, counted independently of files.c. */
static uint64_t g_expect;
static int g_seen;
static char g_key[128];

static enum MHD_Result count_part(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *filename,
                                  const char *ctype, const char *te,
                                  const char *data, uint64_t off,
                                  size_t size)
{
    (void)cls, (void)kind, (void)ctype, (void)te, (void)data;
    if (!key)
        key = "";
    if (g_seen == 2)
        return MHD_YES;
    if (g_seen == 0) {
        if ((!filename && strcmp(key, "file") != 0) || off != 0)
            return MHD_YES;
        g_seen = 1;
        snprintf(g_key, sizeof g_key, "%s", key);
    } else if (strcmp(key, g_key) != 0 || off != g_expect) {
        g_seen = 2;
        return MHD_YES;
    }
    g_expect += size;
    return MHD_YES;
}

static void feed(struct MHD_PostProcessor *pp, const struct fuzz_req *q)
{
    size_t off = 0, n;

    while (off < q->len) {
        n = q->chunk && q->len - off > q->chunk ? q->chunk : q->len - off;
        if (MHD_post_process(pp, (const char *)q->body + off, n) != MHD_YES)
            return;
        off += n;
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct upload *u;
    struct MHD_PostProcessor *check;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    (void)con_cls;
    *upload_size = 0;
    if (g_req.handled)
        return MHD_NO;
    g_req.handled = 1;
    u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->pp = MHD_create_post_processor(conn, PP_BUF_SIZE, on_part, u);
    if (!u->pp) {                  /* up_begin answers 400 here */
        free(u);
        return MHD_NO;
    }
    u->wbuf = malloc(WBUF_SIZE);
    u->md = EVP_MD_CTX_new();
    if (!u->wbuf || !u->md ||
        EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1)
        abort();
    feed(u->pp, &g_req);
    (void)MHD_destroy_post_processor(u->pp);
    u->pp = NULL;
    if (u->name[0]) {
        if (strchr(u->name, '/') || strchr(u->name, '\\'))
            abort();
        (void)name_ok(u->name);
    }

    g_expect = 0, g_seen = 0;
    check = MHD_create_post_processor(conn, PP_BUF_SIZE, count_part, NULL);
    if (!check)
        abort();
    feed(check, &g_req);
    (void)MHD_destroy_post_processor(check);
    if (u->size != g_expect || u->wlen != u->size || u->io_error)
        abort();
    upload_free(u);
    return MHD_NO;                 /* closes the connection */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    g_d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL,
                           on_access, NULL, MHD_OPTION_END);
    if (!g_d)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rest;
    size_t restlen;
    char *ct = fuzz_split(data, size, '\n', &rest, &restlen);
    char head[1024];
    struct sockaddr_in sa;
    int sv[2], n;

    for (char *p = ct; *p; p++)
        if (*p == '\r')
            *p = ' ';
    memset(&g_req, 0, sizeof g_req);
    g_req.ctype = ct;
    if (restlen > 0) {
        g_req.chunk = rest[0];
        g_req.body = rest + 1;
        g_req.len = restlen - 1;
    }
    n = snprintf(head, sizeof head,
                 "POST /automation/files HTTP/1.1\r\nHost: fuzz\r\n"
                 "Content-Type: %.900s\r\nContent-Length: 0\r\n"
                 "Connection: close\r\n\r\n", ct);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    if (write(sv[0], head, (size_t)n) != n)
        abort();
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(g_d, sv[1], (struct sockaddr *)&sa,
                           sizeof sa) != MHD_YES)
        abort();
    for (int i = 0; i < 200; i++) {
        const union MHD_DaemonInfo *info;

        MHD_run(g_d);
        info = MHD_get_daemon_info(g_d,
                                   MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (g_req.handled && info && info->num_connections == 0)
            break;
    }
    close(sv[0]);
    for (int i = 0; i < 5; i++)
        MHD_run(g_d);
    free(ct);
    return 0;
}
