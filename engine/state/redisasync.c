/* redisasync.c - operations answered on the engine's loop, without waiting: a second
** connection per watching engine, through hiredis's asynchronous API and its libevent
** adapter. A script is sent by SHA when the server knows it (its cache is the
** server's, shared with the connection of redisconn.c) and as itself otherwise, or when
** Redis answers NOSCRIPT. Each request has its own timer (store.timeout_ms): past it the
** connection is taken for dead, every request in flight fails, and it is made again with
** backoff. A request's callback is called exactly once: with the reply, or with NULL. */
#include "redispriv.h"
#include "util.h"

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/sds.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_BACKOFF_MIN_MS 50
#define Q_BACKOFF_MAX_MS 2000

typedef struct request request;

struct wd_rd_cmdq {
    wd_redis *r;
    struct event_base *base;
    redisAsyncContext *ac;
    struct event *retry, *probe;
    int backoff_ms, closing, ready;
    int suspect;       /* the server failed to answer: nothing is sent until a PING is answered */
    request *inflight; /* sent, not yet answered */
};

struct request {
    wd_rd_cmdq *q;
    int slot, as_text; /* as_text: sent as EVAL (the script itself) */
    const char *lua;
    wd_rd_reply_fn fn;
    void *ud;
    struct event *timer;
    int argc;
    char **argv;
    size_t *lens;
    request *next, *prev;
};

static void dial(wd_rd_cmdq *q);

static void unlink_req(request *rq)
{
    wd_rd_cmdq *q = rq->q;
    if (rq->prev)
        rq->prev->next = rq->next;
    else if (q->inflight == rq)
        q->inflight = rq->next;
    if (rq->next)
        rq->next->prev = rq->prev;
    rq->next = rq->prev = NULL;
}

static void free_req(request *rq)
{
    if (rq->timer)
        event_free(rq->timer);
    for (int i = 0; i < rq->argc; i++) {
        if (rq->argv[i]) /* an audit key's text may be among them */
            sodium_memzero(rq->argv[i], rq->lens[i]);
        free(rq->argv[i]);
    }
    free(rq->argv);
    free(rq->lens);
    free(rq);
}

/* the request answered (x) or failed (NULL): told once, then gone */
static void finish(request *rq, redisReply *x)
{
    unlink_req(rq);
    wd_rd_reply_fn fn = rq->fn;
    void *ud = rq->ud;
    rq->fn = NULL;
    free_req(rq);
    if (fn)
        fn(ud, x);
}

/* why the connection is not there, for what fails meanwhile (wd_rd_error) */
static void unreachable(wd_rd_cmdq *q, const char *why)
{
    const wd_rd_target *t = &q->r->t;
    char w[300];
    if (t->sock[0])
        snprintf(w, sizeof w, "redis at %s", t->sock);
    else
        snprintf(w, sizeof w, "redis at %s:%d", t->host, t->port);
    snprintf(q->r->err, sizeof q->r->err, "%s unreachable: %s", w, why && *why ? why : "no answer");
}

static void schedule(wd_rd_cmdq *q)
{
    q->ready = 0;
    q->suspect = 1;
    evtimer_del(q->probe);
    if (q->closing)
        return;
    struct timeval tv = {q->backoff_ms / 1000, (q->backoff_ms % 1000) * 1000};
    evtimer_add(q->retry, &tv);
    q->backoff_ms = q->backoff_ms * 2 > Q_BACKOFF_MAX_MS ? Q_BACKOFF_MAX_MS : q->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dial(arg);
}

/* every request in flight fails: hiredis calls on_reply with NULL for each, as it frees */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    wd_rd_cmdq *q = ac->data;
    if (!q)
        return;
    if (status != REDIS_OK)
        unreachable(q, ac->errstr);
    q->ac = NULL;
    schedule(q);
}

/* the server answers again: requests are sent from now on */
static void on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    wd_rd_cmdq *q = priv;
    if (!reply || q->ac != ac)
        return; /* the connection is being freed */
    evtimer_del(q->probe);
    q->ready = 1;
    q->suspect = 0;
    q->backoff_ms = Q_BACKOFF_MIN_MS;
}

/* the PING went unanswered past store.timeout_ms: the connection is made again later */
static void on_probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_rd_cmdq *q = arg;
    redisAsyncContext *ac = q->ac;
    q->ac = NULL;
    char why[80];
    snprintf(why, sizeof why, "no answer to PING within %d ms (store.timeout_ms)", q->r->t.timeout_ms);
    unreachable(q, why);
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    schedule(q);
}

/* ** Connected. After a failure the server must first answer a PING within
** store.timeout_ms: a server that takes connections but answers nothing (paused, hung)
** then fails each request at once instead of after its timeout. */
static void on_connect(const redisAsyncContext *ac, int status)
{
    wd_rd_cmdq *q = ac->data;
    if (!q)
        return;
    if (status != REDIS_OK) {
        unreachable(q, ac->errstr);
        q->ac = NULL;
        schedule(q);
        return;
    }
    if (!q->suspect) {
        q->ready = 1;
        q->backoff_ms = Q_BACKOFF_MIN_MS;
        return;
    }
    struct timeval tv = {q->r->t.timeout_ms / 1000, (q->r->t.timeout_ms % 1000) * 1000};
    if (redisAsyncCommand(q->ac, on_ping, q, "PING") == REDIS_OK)
        evtimer_add(q->probe, &tv);
}

static int send_req(request *rq);

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    request *rq = priv;
    redisReply *x = reply;
    if (!rq->fn) { /* it timed out and was told so: hiredis gives it back now */
        free_req(rq);
        return;
    }
    if (x && x->type == REDIS_REPLY_ERROR && !strncmp(x->str, "NOSCRIPT", 8) && !rq->as_text) {
        rq->as_text = 1; /* the server forgot it: sent as itself, which loads it again */
        rq->q->r->sha[rq->slot][0] = '\0';
        if (send_req(rq) == 0)
            return;
        x = NULL;
    }
    if (x && x->type == REDIS_REPLY_ERROR)
        snprintf(rq->q->r->err, sizeof rq->q->r->err, "redis: %s", x->str);
    finish(rq, x && x->type != REDIS_REPLY_ERROR ? x : NULL);
}

/* ** Past store.timeout_ms the connection is taken for dead: this request fails now (its
** memory stays hiredis's until it hands it back), and freeing the connection fails every
** other one in flight (on_reply with NULL). A gentle disconnect would wait for answers
** that a hung server never sends. */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    request *rq = arg;
    wd_rd_cmdq *q = rq->q;
    snprintf(q->r->err, sizeof q->r->err, "redis: no answer within %d ms (store.timeout_ms)", q->r->t.timeout_ms);
    unlink_req(rq);
    wd_rd_reply_fn fn = rq->fn;
    rq->fn = NULL;
    fn(rq->ud, NULL);
    redisAsyncContext *ac = q->ac;
    q->ac = NULL;
    if (ac) {
        ac->data = NULL; /* no disconnect callback: the retry is scheduled here */
        redisAsyncFree(ac);
    }
    schedule(q);
}

static int send_req(request *rq)
{
    wd_rd_cmdq *q = rq->q;
    const char *sha = q->r->sha[rq->slot];
    free(rq->argv[0]);
    free(rq->argv[1]);
    rq->argv[0] = wd_strdup(rq->as_text || !sha[0] ? "EVAL" : "EVALSHA");
    rq->argv[1] = wd_strdup(rq->as_text || !sha[0] ? rq->lua : sha);
    if (!rq->argv[0] || !rq->argv[1])
        return -1;
    rq->lens[0] = strlen(rq->argv[0]);
    rq->lens[1] = strlen(rq->argv[1]);
    if (!q->ac || redisAsyncCommandArgv(q->ac, on_reply, rq, rq->argc, (const char **)rq->argv, rq->lens) != REDIS_OK)
        return -1;
    struct timeval tv = {q->r->t.timeout_ms / 1000, (q->r->t.timeout_ms % 1000) * 1000};
    evtimer_add(rq->timer, &tv);
    return 0;
}

int wd_rd_async_run(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_reply_fn fn, void *ud)
{
    wd_rd_cmdq *q = r->cmdq;
    /* sent once connected, unless the server is suspect and not yet answering again */
    request *rq = q && q->ac && (q->ready || !q->suspect) && !a->oom ? calloc(1, sizeof *rq) : NULL;
    int rc = -1;
    if (!rq)
        goto out;
    rq->q = q;
    rq->slot = slot;
    rq->lua = lua;
    rq->fn = fn;
    rq->ud = ud;
    rq->argc = 3 + a->n;
    rq->argv = calloc((size_t)rq->argc, sizeof *rq->argv);
    rq->lens = calloc((size_t)rq->argc, sizeof *rq->lens);
    rq->timer = evtimer_new(q->base, on_timeout, rq);
    if (!rq->argv || !rq->lens || !rq->timer || !(rq->argv[2] = wd_strdup("0")))
        goto fail;
    rq->lens[2] = 1;
    for (int i = 0; i < a->n; i++) {
        if (!(rq->argv[3 + i] = malloc(a->len[i] + 1)))
            goto fail;
        memcpy(rq->argv[3 + i], a->v[i], a->len[i]);
        rq->argv[3 + i][a->len[i]] = '\0';
        rq->lens[3 + i] = a->len[i];
    }
    rq->next = q->inflight;
    if (q->inflight)
        q->inflight->prev = rq;
    q->inflight = rq;
    if (send_req(rq) < 0) {
        unlink_req(rq);
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    rq->fn = NULL;
    free_req(rq);
out:
    wd_rd_done(a);
    return rc;
}

typedef struct asked {
    wd_redis *r;
    wd_rd_read_fn read;
    wd_store_op *op;
    wd_store_done fn;
    void *ud;
} asked;

static void on_asked(void *ud, redisReply *x)
{
    asked k = *(asked *)ud;
    free(ud);
    k.fn(k.ud, x ? k.read(k.r, x, k.op) : -1);
}

int wd_rd_ask_script(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_read_fn read, wd_store_op *op,
                     wd_store_done fn, void *ud)
{
    if (!r->cmdq) {
        wd_rd_done(a);
        return 1;
    }
    asked *k = malloc(sizeof *k);
    if (!k) {
        wd_rd_done(a);
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    *k = (asked){r, read, op, fn, ud};
    if (wd_rd_async_run(r, slot, lua, a, on_asked, k) < 0) {
        free(k);
        if ((!r->cmdq->ac || !r->cmdq->ready) && strncmp(r->err, "redis: not connected", 20)) {
            char why[sizeof r->err];
            wd_strlcpy(why, r->err[0] ? r->err : "connecting again", sizeof why);
            snprintf(r->err, sizeof r->err, "redis: not connected (%.300s)", why);
        }
        return -1;
    }
    return 0;
}

static void dial(wd_rd_cmdq *q)
{
    wd_redis *r = q->r;
    q->ac = r->t.sock[0] ? redisAsyncConnectUnix(r->t.sock) : redisAsyncConnect(r->t.host, r->t.port);
    if (!q->ac || q->ac->err || redisLibeventAttach(q->ac, q->base) != REDIS_OK) {
        unreachable(q, q->ac ? q->ac->errstr : "out of memory");
        if (q->ac)
            redisAsyncFree(q->ac);
        q->ac = NULL;
        schedule(q);
        return;
    }
    q->ac->data = q;
    redisAsyncSetConnectCallback(q->ac, on_connect);
    redisAsyncSetDisconnectCallback(q->ac, on_disconnect);
    const char *pw = r->t.password_env[0] ? getenv(r->t.password_env) : NULL;
    if (pw)
        redisAsyncCommandArgv(q->ac, NULL, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
    char db[16];
    snprintf(db, sizeof db, "%d", r->t.db);
    if (r->t.db)
        redisAsyncCommandArgv(q->ac, NULL, NULL, 2, (const char *[]){"SELECT", db}, NULL);
}

int wd_rd_cmdq_start(wd_redis *r, struct event_base *base)
{
    wd_rd_cmdq *q = calloc(1, sizeof *q);
    if (!q || !(q->retry = evtimer_new(base, on_retry, q)) || !(q->probe = evtimer_new(base, on_probe_timeout, q))) {
        if (q && q->retry)
            event_free(q->retry);
        free(q);
        return -1;
    }
    q->r = r;
    q->base = base;
    q->backoff_ms = Q_BACKOFF_MIN_MS;
    r->cmdq = q;
    dial(q);
    return 0;
}

/* ** The engine stops: what was asked and not yet answered (an answer kept in the cache,
** a flush) is written and its answer read here, on this connection alone, for up to
** store.timeout_ms, as the loop that would have done it is ending. */
static void drain(wd_rd_cmdq *q)
{
    int64_t until = wd_now_ns() + (int64_t)q->r->t.timeout_ms * 1000000;
    while (q->ac && q->inflight) {
        int64_t left = (until - wd_now_ns()) / 1000000;
        if (left <= 0)
            break;
        int out = q->ac->c.obuf && sdslen(q->ac->c.obuf) > 0;
        struct pollfd p = {q->ac->c.fd, (short)(POLLIN | (out ? POLLOUT : 0)), 0};
        if (poll(&p, 1, (int)left) <= 0)
            break;
        if (p.revents & POLLOUT)
            redisAsyncHandleWrite(q->ac);
        if (q->ac && (p.revents & (POLLIN | POLLHUP | POLLERR)))
            redisAsyncHandleRead(q->ac); /* may end the connection: q->ac NULL */
    }
}

void wd_rd_cmdq_stop(wd_redis *r)
{
    wd_rd_cmdq *q = r->cmdq;
    if (!q)
        return;
    q->closing = 1;
    drain(q);
    if (q->ac) {
        q->ac->data = NULL;
        redisAsyncFree(q->ac); /* each request in flight: on_reply with NULL */
    }
    while (q->inflight)
        finish(q->inflight, NULL); /* any hiredis did not hold */
    event_free(q->retry);
    event_free(q->probe);
    free(q);
    r->cmdq = NULL;
}
