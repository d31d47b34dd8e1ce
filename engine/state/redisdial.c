/* redisdial.c - a connection to Redis made and set up: at once (a command, the first
** open), or on a thread of its own (an engine on its loop, after the connection was lost:
** a server that does not answer must not hold the loop for store.timeout_ms each time
** the backoff tries again). */
#include "redispriv.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one setup command; 0, or -1 with err */
static int setup(redisContext *c, int argc, const char **argv, redisReply **out, char *err, size_t n)
{
    redisReply *x = redisCommandArgv(c, argc, argv, NULL);
    if (!x || x->type == REDIS_REPLY_ERROR) {
        snprintf(err, n, "%s: %s", argv[0], x ? x->str : c->errstr[0] ? c->errstr : "no answer");
        freeReplyObject(x);
        return -1;
    }
    if (out)
        *out = x;
    else
        freeReplyObject(x);
    return 0;
}

redisContext *wd_rd_dial(const wd_rd_target *t, int64_t *clock_off, char *err, size_t n)
{
    struct timeval tv = {t->timeout_ms / 1000, (t->timeout_ms % 1000) * 1000};
    redisContext *c =
        t->sock[0] ? redisConnectUnixWithTimeout(t->sock, tv) : redisConnectWithTimeout(t->host, t->port, tv);
    redisReply *time = NULL;
    if (!c || c->err) {
        snprintf(err, n, "%s", c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    if (t->password_env[0]) {
        const char *pw = getenv(t->password_env);
        if (!pw) {
            snprintf(err, n, "the environment has no %s (store.password_env)", t->password_env);
            goto fail;
        }
        if (setup(c, 2, (const char *[]){"AUTH", pw}, NULL, err, n) < 0)
            goto fail;
    }
    char db[16];
    snprintf(db, sizeof db, "%d", t->db);
    if ((t->db && setup(c, 2, (const char *[]){"SELECT", db}, NULL, err, n) < 0) ||
        setup(c, 1, (const char *[]){"TIME"}, &time, err, n) < 0)
        goto fail;
    if (time->type == REDIS_REPLY_ARRAY && time->elements == 2)
        *clock_off = atoll(time->element[0]->str) * 1000 + atoll(time->element[1]->str) / 1000 - wd_boot_ms();
    freeReplyObject(time);
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- off the loop ---- */

struct wd_rd_dialer {
    pthread_mutex_t mu;
    int done, orphan; /* orphan: the handle went, the thread frees everything */
    wd_rd_target t;
    redisContext *c;
    int64_t clock_off;
    char err[300];
};

static void dialer_free(wd_rd_dialer *d)
{
    if (d->c)
        redisFree(d->c);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static void *dial_thread(void *arg)
{
    wd_rd_dialer *d = arg;
    char err[300] = "";
    int64_t off = 0;
    redisContext *c = wd_rd_dial(&d->t, &off, err, sizeof err);
    pthread_mutex_lock(&d->mu);
    d->c = c;
    d->clock_off = off;
    wd_strlcpy(d->err, err, sizeof d->err);
    d->done = 1;
    int orphan = d->orphan;
    pthread_mutex_unlock(&d->mu);
    if (orphan)
        dialer_free(d);
    return NULL;
}

wd_rd_dialer *wd_rd_dial_start(const wd_rd_target *t)
{
    wd_rd_dialer *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = *t;
    pthread_mutex_init(&d->mu, NULL);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, dial_thread, d);
    pthread_attr_destroy(&at);
    if (rc) {
        dialer_free(d);
        return NULL;
    }
    return d;
}

int wd_rd_dial_take(wd_rd_dialer *d, redisContext **c, int64_t *clock_off, char *err, size_t n)
{
    pthread_mutex_lock(&d->mu);
    int done = d->done;
    pthread_mutex_unlock(&d->mu);
    if (!done)
        return 0;
    *c = d->c;
    d->c = NULL;
    if (*c)
        *clock_off = d->clock_off;
    wd_strlcpy(err, d->err, n);
    dialer_free(d);
    return 1;
}

void wd_rd_dial_abandon(wd_rd_dialer *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    int done = d->done;
    d->orphan = 1;
    pthread_mutex_unlock(&d->mu);
    if (done)
        dialer_free(d);
}
