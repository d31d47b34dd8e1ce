/* ledger.c - an engine's leases on the store's spend ledger (see ledger.h) */
#include "ledger.h"
#include "util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEASE_BUCKETS 256
#define LEASE_CALLS   256 /* a grown lease covers up to this many more such calls */
#define GROW_KEYS     8   /* keys one call reserves on, at most */

/* the steps of growing leases: with slack, else exactly this call, else (when a sweep
** gave back a dead host's leases) exactly this call once more */
enum { G_SLACK, G_EXACT, G_SWEEP, G_AFTER_SWEEP };

typedef struct grow {
    wd_lease_change c[GROW_KEYS];
    wd_lease *ls[GROW_KEYS];
    int nc, step, which, at[GROW_KEYS]; /* at: the caller's index of each change's key */
    int64_t amount;
    wd_ledger_row row; /* the refusal */
    wd_ledger_wait *w; /* who asked; NULL when it left */
    wd_store_op op;
} grow;

typedef struct flushing {
    wd_lease_change *c;
    int n, keep, nretired; /* nretired: of the ledger's retired ids, sent with it */
    wd_store_op op;
} flushing;

struct wd_ledger {
    wd_store *store;
    wd_ledger_warn_fn warn;
    void *warn_ud;
    wd_lease *buckets[LEASE_BUCKETS];
    int dirty;  /* a flush has something to do */
    int busy;   /* a question is out: a grow or a flush */
    int asking; /* inside wd_store_ask: an answer now is read by the asker, nobody is woken */
    int flush_rc;
    grow g;
    flushing f;
    wd_ledger_wait *head, *tail; /* runs waiting for the question out to be answered */
    int64_t next_id;
    int64_t *retired; /* ids of leases forgotten, whose totals the store may drop */
    int nretired, capretired;
};

static unsigned key_hash(const wd_ledger_key *k)
{
    unsigned h = 2166136261u;
    for (const char *p = k->scope; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = k->period; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % LEASE_BUCKETS;
}

wd_lease *wd_ledger_find(wd_ledger *l, const wd_ledger_key *k)
{
    for (wd_lease *e = l->buckets[key_hash(k)]; e; e = e->next)
        if (!strcmp(e->key.scope, k->scope) && !strcmp(e->key.period, k->period))
            return e;
    return NULL;
}

/* the key's limit and warning line follow the caller's */
wd_lease *wd_ledger_lease(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = wd_ledger_find(l, k);
    if (e) {
        e->key.limit = k->limit;
        e->key.warn_at = k->warn_at;
        return e;
    }
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    unsigned h = key_hash(k);
    e->key = *k;
    e->id = ++l->next_id;
    e->next = l->buckets[h];
    l->buckets[h] = e;
    return e;
}

void wd_ledger_touch(wd_ledger *l) { l->dirty = 1; }

wd_ledger *wd_ledger_new(wd_store *s, wd_ledger_warn_fn warn, void *ud)
{
    wd_ledger *l = calloc(1, sizeof *l);
    if (l) {
        l->store = s;
        l->warn = warn;
        l->warn_ud = ud;
    }
    return l;
}

int64_t wd_ledger_unflushed(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = wd_ledger_find(l, k);
    return e ? wd_add_sat(e->pending, e->inflight) : 0;
}

/* ---- the runs waiting ---------------------------------------------------------------- */

static void enqueue(wd_ledger *l, wd_ledger_wait *w)
{
    if (w->queued)
        return;
    w->queued = 1;
    w->next = NULL;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

void wd_ledger_unwait(wd_ledger *l, wd_ledger_wait *w)
{
    if (!l || !w)
        return;
    if (l->g.w == w)
        l->g.w = NULL;
    w->answered = 0;
    if (!w->queued)
        return;
    for (wd_ledger_wait **pp = &l->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            if (l->tail == w)
                l->tail = prev;
            break;
        }
    w->queued = 0;
    w->next = NULL;
}

/* ** The question out was answered: who asked hears first, then the queue, one at a time
** while no new question is out (a run woken may ask one; the rest then wait for its
** answer). A run's again may end runs: each is taken off the queue before it is told. */
static void wake(wd_ledger *l, wd_ledger_wait *first)
{
    if (first)
        first->again(first->r);
    while (!l->busy && l->head) {
        wd_ledger_wait *w = l->head;
        l->head = w->next;
        if (!l->head)
            l->tail = NULL;
        w->queued = 0;
        w->next = NULL;
        w->again(w->r);
    }
}

/* ---- growing leases for a call ----------------------------------------------------- */

static void grow_answer(void *ud, int rc);

static void grow_ask(wd_ledger *l)
{
    grow *g = &l->g;
    if (g->step == G_SWEEP) {
        g->op = (wd_store_op){.kind = WD_SOP_SWEEP};
    } else {
        for (int j = 0; g->step != G_SLACK && j < g->nc; j++)
            g->c[j].new_amount = wd_add_sat(wd_add_sat(g->ls[j]->used, g->ls[j]->pending), g->amount);
        g->op = (wd_store_op){
            .kind = WD_SOP_LEASE_APPLY, .c = g->c, .n = g->nc, .check = 1, .now_ms = wd_wall_ms(), .which = -1};
    }
    wd_store_ask(l->store, &g->op, grow_answer, l);
}

/* the refused key's row as the run sees it: what this engine's calls hold counts as
** theirs, what it has spent as spent */
static void grow_refused(grow *g)
{
    int w = g->op.which;
    g->which = g->at[w];
    g->row = g->c[w].state;
    g->row.reserved -= g->c[w].old;
    g->row.reserved += g->ls[w]->used;
    g->row.spent += g->ls[w]->pending;
}

static void grow_answer(void *ud, int rc)
{
    wd_ledger *l = ud;
    grow *g = &l->g;
    int step = g->step;
    if (rc == 0 && step == G_SLACK) { /* the slack did not fit: exactly this call, then */
        g->step = G_EXACT;
        grow_ask(l);
        return;
    }
    if (rc == 0 && (step == G_EXACT || step == G_AFTER_SWEEP))
        grow_refused(g);
    if (rc == 0 && step == G_EXACT) { /* a dead host's leases may be in the way */
        g->step = G_SWEEP;
        grow_ask(l);
        return;
    }
    if (step == G_SWEEP) {
        if (rc > 0) {
            g->step = G_AFTER_SWEEP;
            grow_ask(l);
            return;
        }
        rc = 0; /* nothing given back: refused as before */
    }
    if (rc == 1) {
        for (int j = 0; j < g->nc; j++)
            g->ls[j]->granted = g->c[j].new_amount;
        l->dirty = 1;
    }
    l->busy = 0;
    wd_ledger_wait *w = g->w;
    g->w = NULL;
    if (w) {
        w->answered = 1;
        w->got = rc;
        w->which = g->which;
        w->row = g->row;
    }
    if (!l->asking)
        wake(l, w);
}

/* the keys whose lease lacks amount: their leases into g, how many; -1 out of memory */
static int shortfall(wd_ledger *l, const wd_ledger_key *keys, int n, int64_t amount, wd_lease **leases)
{
    grow *g = &l->g;
    int nc = 0;
    for (int i = 0; i < n; i++) {
        wd_lease *e = leases[i] = wd_ledger_lease(l, &keys[i]);
        if (!e)
            return -1;
        /* an unlimited key only counts; a limited one must fit what the lease has left */
        if (e->key.limit <= 0 || e->granted - wd_add_sat(e->used, e->pending) >= amount)
            continue;
        int64_t cap = e->key.limit / 100, extra = amount < cap / LEASE_CALLS ? amount * LEASE_CALLS : cap;
        wd_lease_change *c = &g->c[nc];
        memset(c, 0, sizeof *c);
        c->key = &e->key;
        c->row = &e->row;
        c->old = e->granted;
        c->lease_id = e->id;
        c->total = e->flushed; /* no spend: what the store has already */
        /* the spend waiting in the lease stays in it, for the flush to write after the
        ** records that show it: a call never waits for the audit log's disk */
        c->new_amount = wd_add_sat(wd_add_sat(wd_add_sat(e->used, e->pending), amount), extra);
        g->ls[nc] = e;
        g->at[nc++] = i;
    }
    return nc;
}

int wd_ledger_room(wd_ledger *l, const wd_ledger_key *keys, int n, int64_t amount, wd_lease **leases, wd_ledger_wait *w,
                   int *which, wd_ledger_row *row)
{
    if (n > GROW_KEYS)
        return -1;
    for (;;) {
        if (w->answered) {
            w->answered = 0;
            if (w->got != 1) {
                *which = w->which;
                *row = w->row;
                return w->got < 0 ? -1 : 0;
            }
        }
        int short_any = 0;
        for (int i = 0; i < n; i++) {
            wd_lease *e = wd_ledger_find(l, &keys[i]);
            short_any |= keys[i].limit > 0 && (!e || e->granted - wd_add_sat(e->used, e->pending) < amount);
        }
        if (short_any && l->busy) { /* one question at a time: wait for the one out */
            enqueue(l, w);
            return 2;
        }
        int nc = shortfall(l, keys, n, amount, leases);
        if (nc <= 0)
            return nc < 0 ? -1 : 1;
        grow *g = &l->g;
        g->nc = nc;
        g->amount = amount;
        g->step = G_SLACK;
        g->which = g->at[0];
        g->w = w;
        l->busy = 1;
        w->answered = 0;
        l->asking++;
        grow_ask(l);
        l->asking--;
        if (!w->answered)
            return 2;
    }
}

/* ---- flushing ---------------------------------------------------------------------- */

/* a lease forgotten: its total is kept in the store until a flush says it may go (a
** full list keeps it there: the process's own sweep drops it) */
static void retire(wd_ledger *l, const wd_lease *e)
{
    if (!e->flushed)
        return;
    if (l->nretired == l->capretired) {
        int cap = l->capretired ? 2 * l->capretired : 64;
        int64_t *m = cap <= 4096 ? realloc(l->retired, (size_t)cap * sizeof *m) : NULL;
        if (!m)
            return;
        l->retired = m;
        l->capretired = cap;
    }
    l->retired[l->nretired++] = e->id;
}

/* the leases nobody holds are forgotten: a new period's keys replace the old ones */
static void forget_idle(wd_ledger *l)
{
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease **pp = &l->buckets[b]; *pp;) {
            wd_lease *e = *pp;
            if (!e->used && !e->granted && !e->pending && !e->inflight && !e->row) {
                *pp = e->next;
                retire(l, e);
                free(e);
            } else {
                pp = &e->next;
            }
        }
}

#define LEASE_OF(k) ((wd_lease *)((char *)(k)-offsetof(wd_lease, key)))

static void flush_answer(void *ud, int rc)
{
    wd_ledger *l = ud;
    flushing *f = &l->f;
    for (int i = 0; i < f->n; i++) {
        wd_lease *e = LEASE_OF(f->c[i].key);
        if (rc >= 0) {
            e->granted = f->c[i].new_amount;
            e->flushed = wd_add_sat(e->flushed, e->inflight);
        } else { /* not written: the spend waits for the next flush, the lease as it was */
            e->granted = e->sent_old;
            e->pending = wd_add_sat(e->pending, e->inflight);
        }
        e->inflight = 0;
    }
    if (rc >= 0) {
        for (int i = 0; i < f->n; i++)
            if (f->c[i].crossed && l->warn)
                l->warn(l->warn_ud, f->c[i].key, f->c[i].spent);
        if (f->nretired) { /* the store dropped their totals */
            l->nretired -= f->nretired;
            memmove(l->retired, l->retired + f->nretired, (size_t)l->nretired * sizeof *l->retired);
        }
        forget_idle(l);
        l->dirty |= f->keep; /* the next flush returns a lease kept now, if it is left idle */
    } else {
        l->dirty = 1;
    }
    free(f->c);
    f->c = NULL;
    f->n = 0;
    l->flush_rc = rc < 0 ? -1 : 0;
    l->busy = 0;
    if (!l->asking)
        wake(l, NULL);
}

/* one change per lease with something to write: into l->f; -1 out of memory */
static int flush_changes(wd_ledger *l, int idle)
{
    flushing *f = &l->f;
    int cap = 0;
    f->n = f->keep = 0;
    /* a lease in use keeps its room, less what was spent; one not reserved on since the
    ** last flush goes back to the store but for what calls hold */
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b]; e; e = e->next) {
            int active = e->active && !idle;
            e->active = 0;
            f->keep |= active && e->key.limit > 0 && e->granted - e->pending > e->used;
            if (!e->pending && (e->key.limit <= 0 || e->granted == e->used || active))
                continue;
            if (f->n == cap) {
                wd_lease_change *m = realloc(f->c, (size_t)(cap = cap ? 2 * cap : 32) * sizeof *m);
                if (!m)
                    return -1;
                f->c = m;
            }
            wd_lease_change *x = &f->c[f->n++];
            memset(x, 0, sizeof *x);
            x->key = &e->key;
            x->row = &e->row;
            x->old = e->granted;
            x->lease_id = e->id;
            x->total = wd_add_sat(e->flushed, e->pending);
            if (e->key.limit <= 0)
                x->new_amount = e->granted; /* unlimited: counted, never leased */
            else
                x->new_amount = active && e->granted - e->pending > e->used ? e->granted - e->pending : e->used;
            x->pending = e->pending;
        }
    return 0;
}

int wd_ledger_flush(wd_ledger *l, int idle)
{
    if (!l)
        return 0;
    if (!l->busy)
        wake(l, NULL); /* runs a question answered at once left waiting */
    if (!l->dirty || l->busy)
        return 0;
    flushing *f = &l->f;
    if (flush_changes(l, idle) < 0) {
        free(f->c);
        f->c = NULL;
        f->n = 0;
        return -1;
    }
    l->dirty = 0; /* what accrues while the flush is out makes it dirty again */
    if (!f->n) {
        forget_idle(l);
        l->dirty = f->keep;
        free(f->c);
        f->c = NULL;
        return 0;
    }
    /* what is written is kept apart; a lease shrinking counts at its new size at once */
    for (int i = 0; i < f->n; i++) {
        wd_lease *e = LEASE_OF(f->c[i].key);
        e->inflight = e->pending;
        e->pending = 0;
        e->sent_old = e->granted;
        if (f->c[i].new_amount < e->granted)
            e->granted = f->c[i].new_amount;
    }
    f->nretired = l->nretired < 256 ? l->nretired : 256;
    f->op = (wd_store_op){.kind = WD_SOP_LEASE_APPLY,
                          .c = f->c,
                          .n = f->n,
                          .now_ms = wd_wall_ms(),
                          .which = -1,
                          .retire = l->retired,
                          .nretire = f->nretired};
    l->busy = 1;
    l->flush_rc = 0;
    l->asking++;
    wd_store_ask(l->store, &f->op, flush_answer, l);
    l->asking--;
    return l->busy ? 0 : l->flush_rc;
}

/* some lease holds spend the store has not counted */
static int unwritten(const wd_ledger *l)
{
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (const wd_lease *e = l->buckets[b]; e; e = e->next)
            if (e->pending || e->inflight)
                return 1;
    return 0;
}

void wd_ledger_free(wd_ledger *l)
{
    if (!l)
        return;
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b]; e; e = e->next)
            e->used = 0; /* every run has ended: nothing is held */
    l->head = l->tail = NULL;
    l->g.w = NULL;
    l->dirty = 1;
    /* spend not yet written would be lost with the process: a store that does not answer
    ** now (Redis in a hang, restarting) is asked again for up to 2 s. Leases alone can
    ** wait for the sweep that gives a silent host's back. */
    for (int tries = 0; wd_ledger_flush(l, 1) < 0 && unwritten(l) && tries < 20; tries++) {
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        l->dirty = 1;
    }
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(l->f.c);
    free(l->retired);
    free(l);
}
