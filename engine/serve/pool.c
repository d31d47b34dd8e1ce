/* pool.c - worker threads, each driving its own engine and loop.
**
** A submission is copied into a node on the pool's queue. Workers take nodes from it a
** few at a time, only while their engine has few runs not yet started, so a worker
** that gets less of the CPU (it shares its core with another process) starts fewer
** runs instead of holding a backlog the others could have started. A worker is woken
** through an eventfd watched by its loop and submits what it takes to its engine from
** its own thread, so an engine is only ever touched by the thread that made it.
** Completion comes back through the node: the user's callback, then the counters that
** wd_pool_wait sleeps on. */
#include "audit.h"
#include "host.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_WORKERS 64
/* a worker takes new runs while fewer than this many wait in its engine to start:
** enough for a turn of its ready queue */
#define TAKE_BELOW 32

typedef struct node {
    struct node *next;
    struct worker *w;
    char *agent, *query, *user_id, *session_id, *llm;
    wd_run_done_fn done;
    void *ud;
    int called;
} node;

typedef struct worker {
    wd_pool *pool;
    pthread_t thread;
    int started;
    int efd;
    wd_engine *e;
    struct event *wake;
    struct event *again; /* takes more after the loop's next poll */
    int stop;            /* under pool->qmu */
    int taking;          /* woken or coming back for more; under pool->qmu */
    _Atomic int inflight;
    char err[512];
    int ready;                      /* under pool->mu */
    struct post *mail, **mail_tail; /* wd_pool_post's calls for this thread; under pool->qmu */
} worker;

typedef struct post {
    struct post *next;
    void (*fn)(void *arg, int index, wd_engine *e);
    void *arg;
} post;

struct wd_pool {
    wd_engine_opts opts;
    char *policy_path, *llm, *audit_path, *store_path;
    int n;
    worker *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long pending;        /* submitted, not yet ended; under mu */
    pthread_mutex_t qmu; /* guards the queue and every worker's stop, taking and mail */
    node *head, *tail;
    wd_pool_hooks hooks;
};

/* NULL-safe */
static void node_free(node *x)
{
    if (!x)
        return;
    free(x->agent);
    free(x->query);
    free(x->user_id);
    free(x->session_id);
    free(x->llm);
    free(x);
}

static void finished(wd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* on the worker's thread, from wd_run_end: the user's callback, then the bookkeeping */
static void on_done(const json_t *res, void *ud)
{
    node *x = ud;
    worker *w = x->w;
    x->called = 1;
    if (x->done)
        x->done(res, x->ud);
    atomic_fetch_sub(&w->inflight, 1);
    if (wd_engine_active(w->e) <= 1) { /* the last run in flight: its records and spend go out before wait returns */
        wd_engine_flush(w->e, 1);
        wd_audit_flush(wd_engine_audit(w->e)); /* the warnings the ledger found */
    }
    finished(w->pool);
    node_free(x);
}

/* every run ends with a result object, even one that could not be queued */
static void fail_now(wd_run_done_fn done, void *ud, const char *why)
{
    json_t *res = json_pack("{s:b,s:s,s:[s]}", "success", 0, "status", "failed", "errors", why);
    if (done)
        done(res, ud);
    json_decref(res);
}

/* on the worker's thread: takes new runs from the pool's queue while its engine has
** room, and comes back after the loop's next poll while the queue still holds some */
static void take(worker *w)
{
    wd_pool *p = w->pool;
    node *list = NULL, **tail = &list;
    pthread_mutex_lock(&p->qmu);
    /* alone, a worker takes everything: there is no other worker to leave runs to, and
    ** runs queued in its engine start ahead of the answers that come back meanwhile */
    for (int room = p->n == 1 ? INT_MAX : TAKE_BELOW - wd_engine_unstarted(w->e); room > 0 && p->head; room--) {
        node *x = p->head;
        p->head = x->next;
        x->next = NULL;
        *tail = x;
        tail = &x->next;
    }
    if (!p->head)
        p->tail = NULL;
    int more = p->head != NULL, stop = w->stop;
    w->taking = more;
    pthread_mutex_unlock(&p->qmu);
    if (more) {
        struct timeval zero = {0, 0};
        event_add(w->again, &zero);
    }
    while (list) {
        node *x = list;
        list = x->next;
        x->w = w;
        atomic_fetch_add(&w->inflight, 1);
        wd_run_opts o = {x->agent, x->query, x->user_id, x->session_id, x->llm, NULL, NULL,
                         0,        NULL,     NULL,       NULL,          NULL,   NULL};
        if (wd_engine_submit(w->e, &o, on_done, x) < 0 && !x->called) {
            fail_now(x->done, x->ud, "out of memory");
            atomic_fetch_sub(&w->inflight, 1);
            finished(p);
            node_free(x);
        }
    }
    if (stop && wd_engine_active(w->e) == 0)
        event_base_loopbreak(wd_engine_base(w->e));
}

/* on the worker's thread: the calls posted to it, in the order they came */
static void deliver(worker *w)
{
    pthread_mutex_lock(&w->pool->qmu);
    post *list = w->mail;
    w->mail = NULL;
    w->mail_tail = &w->mail;
    pthread_mutex_unlock(&w->pool->qmu);
    while (list) {
        post *x = list;
        list = x->next;
        x->fn(x->arg, (int)(w - w->pool->w), w->e);
        free(x);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    deliver(arg);
    take(arg);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    take(arg);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    wd_pool *p = w->pool;
    w->e = wd_engine_new(&p->opts, w->err, sizeof w->err);
    if (w->e) {
        w->wake = event_new(wd_engine_base(w->e), w->efd, EV_READ | EV_PERSIST, on_wake, w);
        w->again = evtimer_new(wd_engine_base(w->e), on_again, w);
        if (!w->wake || !w->again || event_add(w->wake, NULL) < 0) {
            wd_errf(w->err, sizeof w->err, "cannot watch the worker's wake-up descriptor");
            if (w->wake)
                event_free(w->wake);
            if (w->again)
                event_free(w->again);
            wd_engine_free(w->e);
            w->e = NULL;
        }
    }
    if (!w->e)
        wd_watchdog_detach();
    int index = (int)(w - p->w);
    if (w->e && p->hooks.start) /* before the pool's maker goes on: its worker is whole */
        p->hooks.start(p->hooks.ud, index, w->e);
    pthread_mutex_lock(&p->mu);
    w->ready = w->e ? 1 : -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!w->e)
        return NULL;
    event_base_loop(wd_engine_base(w->e), 0); /* the wake event keeps it alive until stopped */
    deliver(w);                               /* calls posted as it stopped still run, on this thread */
    if (p->hooks.stop)
        p->hooks.stop(p->hooks.ud, index, w->e);
    event_free(w->wake);
    event_free(w->again);
    wd_engine_free(w->e);
    w->e = NULL;
    wd_watchdog_detach(); /* the slot goes back for the next thread */
    return NULL;
}

static void wake(worker *w)
{
    uint64_t one = 1;
    while (write(w->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static char *dup_or_null(const char *s) { return s ? wd_strdup(s) : NULL; }

wd_pool *wd_pool_new(const wd_engine_opts *o, int workers, char *err, size_t errlen)
{
    return wd_pool_new_hooked(o, workers, NULL, err, errlen);
}

wd_pool *wd_pool_new_hooked(const wd_engine_opts *o, int workers, const wd_pool_hooks *h, char *err, size_t errlen)
{
    if (workers < 1 || workers > MAX_WORKERS) {
        wd_errf(err, errlen, "workers must be between 1 and %d, not %d", MAX_WORKERS, workers);
        return NULL;
    }
    wd_pool *p = calloc(1, sizeof *p);
    if (!p)
        goto oom;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->qmu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->opts.policy_path = p->policy_path = dup_or_null(o->policy_path);
    p->opts.llm = p->llm = dup_or_null(o->llm);
    p->opts.audit_path = p->audit_path = dup_or_null(o->audit_path);
    p->opts.store_path = p->store_path = dup_or_null(o->store_path);
    if (h)
        p->hooks = *h;
    if (!(p->w = calloc((size_t)workers, sizeof *p->w)))
        goto oom;
    p->n = workers;
    wd_engine_prepare_fds();          /* while this is the only thread: no grace period to wait out */
    for (int i = 0; i < workers; i++) /* every slot freeable before any starts */
        p->w[i].efd = -1;
    for (int i = 0; i < workers; i++) {
        worker *w = &p->w[i];
        w->pool = p;
        w->mail_tail = &w->mail;
        w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->efd < 0) {
            wd_errf(err, errlen, "eventfd: %s", strerror(errno));
            goto fail;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            wd_errf(err, errlen, "cannot start worker %d", i + 1);
            goto fail;
        }
        w->started = 1;
    }
    pthread_mutex_lock(&p->mu);
    int bad = -1;
    for (int i = 0; i < workers; i++) {
        while (!p->w[i].ready)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->w[i].ready < 0 && bad < 0)
            bad = i;
    }
    pthread_mutex_unlock(&p->mu);
    if (bad >= 0) {
        wd_errf(err, errlen, "%s", p->w[bad].err);
        goto fail;
    }
    return p;
oom:
    wd_errf(err, errlen, "out of memory");
fail:
    wd_pool_free(p);
    return NULL;
}

int wd_pool_workers(const wd_pool *p) { return p->n; }

int wd_pool_post(wd_pool *p, int index, void (*fn)(void *arg, int index, wd_engine *e), void *arg)
{
    if (!p || index < 0 || index >= p->n)
        return -1;
    post *x = malloc(sizeof *x);
    if (!x)
        return -1;
    *x = (post){NULL, fn, arg};
    worker *w = &p->w[index];
    pthread_mutex_lock(&p->qmu);
    *w->mail_tail = x;
    w->mail_tail = &x->next;
    pthread_mutex_unlock(&p->qmu);
    wake(w);
    return 0;
}

int wd_pool_submit(wd_pool *p, const wd_run_opts *o, wd_run_done_fn done, void *ud)
{
    node *x = calloc(1, sizeof *x);
    if (x) {
        x->done = done;
        x->ud = ud;
        x->agent = dup_or_null(o->agent);
        x->query = dup_or_null(o->query);
        x->user_id = dup_or_null(o->user_id);
        x->session_id = dup_or_null(o->session_id);
        x->llm = dup_or_null(o->llm);
    }
    if (!x || (o->agent && !x->agent) || (o->query && !x->query) || (o->user_id && !x->user_id) ||
        (o->session_id && !x->session_id) || (o->llm && !x->llm)) {
        node_free(x);
        fail_now(done, ud, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->pending++;
    pthread_mutex_unlock(&p->mu);
    /* queued, and the least busy worker not already on its way is woken: in a burst
    ** every worker is soon taking, and the rest of the burst wakes nobody */
    worker *w = NULL;
    pthread_mutex_lock(&p->qmu);
    if (p->tail)
        p->tail->next = x;
    else
        p->head = x;
    p->tail = x;
    for (int i = 0; i < p->n; i++)
        if (!p->w[i].taking && (!w || atomic_load(&p->w[i].inflight) < atomic_load(&w->inflight)))
            w = &p->w[i];
    if (w)
        w->taking = 1;
    pthread_mutex_unlock(&p->qmu);
    if (w)
        wake(w);
    return 0;
}

void wd_pool_wait(wd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void wd_pool_free(wd_pool *p)
{
    if (!p)
        return;
    if (p->w) {
        wd_pool_wait(p);
        for (int i = 0; i < p->n; i++) {
            worker *w = &p->w[i];
            if (!w->started)
                continue;
            pthread_mutex_lock(&p->qmu);
            w->stop = 1;
            pthread_mutex_unlock(&p->qmu);
            wake(w);
            pthread_join(w->thread, NULL);
        }
        for (int i = 0; i < p->n; i++) {
            if (p->w[i].efd >= 0)
                close(p->w[i].efd);
            while (p->w[i].mail) { /* a worker that never started */
                post *x = p->w[i].mail;
                p->w[i].mail = x->next;
                free(x);
            }
        }
        free(p->w);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->qmu);
    pthread_cond_destroy(&p->cv);
    free(p->policy_path);
    free(p->llm);
    free(p->audit_path);
    free(p->store_path);
    free(p);
}
