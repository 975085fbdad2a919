/*
 * listener — wake-ups for idle workers: the waker (a condition variable
 * with a generation count, so no kick is lost) and the LISTEN thread that
 * turns NOTIFY automation_jobs into kicks. One dedicated PGconn stays in
 * LISTEN; it is not pooled because a pooled connection is shared.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auto.h"
#include "log/log.h"

/* ---- waker -------------------------------------------------------------- */

void auto_waker_init(struct auto_waker *w)
{
    pthread_condattr_t a;

    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    w->gen = 0;
    w->kicks = 0;
}

void auto_waker_cleanup(struct auto_waker *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

unsigned long auto_waker_gen(struct auto_waker *w)
{
    unsigned long g;

    pthread_mutex_lock(&w->mu);
    g = w->gen;
    pthread_mutex_unlock(&w->mu);
    return g;
}

void auto_waker_kick(struct auto_waker *w, int all)
{
    pthread_mutex_lock(&w->mu);
    w->gen++;
    w->kicks++;
    if (all)
        pthread_cond_broadcast(&w->cv);
    else
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int auto_waker_wait(struct auto_waker *w, unsigned long seen, int timeout_ms)
{
    struct timespec ts;
    int kicked;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (w->gen == seen)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    kicked = w->gen != seen;
    pthread_mutex_unlock(&w->mu);
    return kicked;
}

/* ---- listener ----------------------------------------------------------- */

struct auto_listener {
    pthread_t th;
    char *conninfo;
    int pipefd[2];             /* write end closed by stop: wakes poll */
    void (*on_notify)(void *, const char *);
    void *arg;
};

static PGconn *listen_connect(struct auto_listener *l)
{
    /* Keepalives notice a vanished server on an idle LISTEN socket. */
    const char *keys[] = {"dbname", "connect_timeout", "keepalives_idle",
                          "keepalives_interval", "keepalives_count",
                          "application_name", NULL};
    const char *vals[] = {l->conninfo, "5", "10", "5", "3",
                          "automation-listener", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    PGresult *r;

    if (PQstatus(c) != CONNECTION_OK) {
        log_kv(LOG_LVL_WARN, NULL, "listener cannot connect", "error",
               PQerrorMessage(c), NULL);
        PQfinish(c);
        return NULL;
    }
    r = PQexec(c, "LISTEN " AUTO_NOTIFY_CHANNEL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        log_kv(LOG_LVL_WARN, NULL, "LISTEN failed", "error",
               PQresultErrorMessage(r), NULL);
        PQclear(r);
        PQfinish(c);
        return NULL;
    }
    PQclear(r);
    return c;
}

static void *listener_main(void *arg)
{
    struct auto_listener *l = arg;
    PGconn *c = NULL;

    for (;;) {
        struct pollfd fds[2] = {{.fd = l->pipefd[0], .events = POLLIN},
                                {.fd = -1, .events = POLLIN}};
        PGnotify *n;

        if (!c && (c = listen_connect(l)) != NULL)
            l->on_notify(l->arg, NULL);
        if (c)
            fds[1].fd = PQsocket(c);
        if (poll(fds, 2, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (!c || !fds[1].revents)
            continue;
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
            log_kv(LOG_LVL_WARN, NULL, "listener connection lost", "error",
                   PQerrorMessage(c), NULL);
            PQfinish(c);
            c = NULL;
            continue;
        }
        while ((n = PQnotifies(c)) != NULL) {
            l->on_notify(l->arg, n->extra);
            PQfreemem(n);
        }
    }
    PQfinish(c);
    return NULL;
}

struct auto_listener *auto_listener_start(const char *conninfo,
                                          void (*on_notify)(void *,
                                                            const char *),
                                          void *arg)
{
    struct auto_listener *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->on_notify = on_notify;
    l->arg = arg;
    l->conninfo = strdup(conninfo);
    if (!l->conninfo || pipe(l->pipefd) != 0) {
        free(l->conninfo);
        free(l);
        return NULL;
    }
    if (pthread_create(&l->th, NULL, listener_main, l) != 0) {
        close(l->pipefd[0]);
        close(l->pipefd[1]);
        free(l->conninfo);
        free(l);
        return NULL;
    }
    return l;
}

void auto_listener_stop(struct auto_listener *l)
{
    if (!l)
        return;
    close(l->pipefd[1]);
    pthread_join(l->th, NULL);
    close(l->pipefd[0]);
    free(l->conninfo);
    free(l);
}
