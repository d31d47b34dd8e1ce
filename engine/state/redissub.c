/* redissub.c - notices from other hosts (wd_store_watch): a subscription to the channel
** P events on the engine's own loop, through hiredis's asynchronous API and its libevent
** adapter. The scripts that change a kill, an approval's decision or a breaker's state
** publish "kill AGENT", "approval ID", "breaker NAME" there; the engine reads the change
** at once instead of at its next poll. Polling stays: a notice lost while the connection
** was down is covered by a "resync" notice when it comes back, and by the polls anyway. */
#include "redispriv.h"
#include "util.h"

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BACKOFF_MIN_MS 50
#define SUB_BACKOFF_MAX_MS 2000

struct wd_rd_sub {
    wd_redis *r;
    struct event_base *base;
    redisAsyncContext *ac;
    struct event *retry;
    int backoff_ms, closing, lost; /* lost: notices may have been missed since the last connection */
    wd_store_notice fn;
    void *ud;
    char channel[96];
};

static void dial(wd_rd_sub *s);

static void schedule(wd_rd_sub *s)
{
    if (s->closing)
        return;
    s->lost = 1;
    struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
    evtimer_add(s->retry, &tv);
    s->backoff_ms = s->backoff_ms * 2 > SUB_BACKOFF_MAX_MS ? SUB_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dial(arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    wd_rd_sub *s = ac->data;
    if (!s)
        return;
    s->ac = NULL; /* hiredis frees it after this returns */
    schedule(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    wd_rd_sub *s = ac->data;
    if (status != REDIS_OK && s) { /* hiredis frees a context that failed to connect */
        s->ac = NULL;
        schedule(s);
    }
}

/* ["subscribe", channel, n] once, then ["message", channel, "KIND NAME"] */
static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    wd_rd_sub *s = priv;
    redisReply *x = reply;
    if (!x || x->type != REDIS_REPLY_ARRAY || x->elements != 3 || x->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(x->element[0]->str, "subscribe")) {
        s->backoff_ms = SUB_BACKOFF_MIN_MS;
        if (s->lost) { /* anything may have changed meanwhile */
            s->lost = 0;
            s->fn(s->ud, "resync", "");
        }
        return;
    }
    const redisReply *m = x->element[2];
    if (strcmp(x->element[0]->str, "message") || m->type != REDIS_REPLY_STRING)
        return;
    char kind[16], *sp = memchr(m->str, ' ', m->len);
    size_t k = sp ? (size_t)(sp - m->str) : 0;
    if (!sp || k >= sizeof kind)
        return;
    memcpy(kind, m->str, k);
    kind[k] = '\0';
    char *name = wd_strndup(sp + 1, m->len - k - 1);
    if (name)
        s->fn(s->ud, kind, name);
    free(name);
}

static void dial(wd_rd_sub *s)
{
    wd_redis *r = s->r;
    s->ac = r->t.sock[0] ? redisAsyncConnectUnix(r->t.sock) : redisAsyncConnect(r->t.host, r->t.port);
    if (!s->ac || s->ac->err) {
        if (s->ac)
            redisAsyncFree(s->ac);
        s->ac = NULL;
        schedule(s);
        return;
    }
    s->ac->data = s;
    if (redisLibeventAttach(s->ac, s->base) != REDIS_OK) {
        redisAsyncFree(s->ac);
        s->ac = NULL;
        schedule(s);
        return;
    }
    redisAsyncSetConnectCallback(s->ac, on_connect);
    redisAsyncSetDisconnectCallback(s->ac, on_disconnect);
    const char *pw = r->t.password_env[0] ? getenv(r->t.password_env) : NULL;
    if (pw)
        redisAsyncCommandArgv(s->ac, NULL, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
    /* channels are the server's, not a database's: the prefix names ours */
    redisAsyncCommandArgv(s->ac, on_message, s, 2, (const char *[]){"SUBSCRIBE", s->channel}, NULL);
}

static void unwatch(wd_redis *r)
{
    wd_rd_cmdq_stop(r);
    wd_rd_sub *s = r->sub;
    if (!s)
        return;
    s->closing = 1;
    if (s->ac) {
        s->ac->data = NULL; /* its callbacks, called as it is freed, see nothing to do */
        redisAsyncFree(s->ac);
    }
    if (s->retry)
        event_free(s->retry);
    free(s);
    r->sub = NULL;
}

int wd_rd_watch(wd_store *st, struct event_base *base, wd_store_notice fn, void *ud)
{
    wd_redis *r = RD(st);
    unwatch(r);
    if (!base)
        return 0;
    wd_rd_sub *s = calloc(1, sizeof *s);
    if (!s || !(s->retry = evtimer_new(base, on_retry, s))) {
        free(s);
        return -1;
    }
    s->r = r;
    s->base = base;
    s->fn = fn;
    s->ud = ud;
    s->backoff_ms = SUB_BACKOFF_MIN_MS;
    snprintf(s->channel, sizeof s->channel, "%sevents", r->prefix);
    r->sub = s;
    dial(s);
    return wd_rd_cmdq_start(r, base); /* and the commands answered on this loop */
}

void wd_rd_unwatch(wd_store *st) { unwatch(RD(st)); }
