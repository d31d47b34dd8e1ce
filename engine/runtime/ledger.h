/* ledger.h - an engine's leases on the store's spend ledger (budget.h says what they are
** for). A call's worst case is reserved in memory, against a lease this engine holds in
** the store for each key (counted in the key's `reserved`). Only a call that does not fit
** its leases goes to the store, in one step that grows every short lease at once (by up
** to 256 more such calls, at most 1% of the limit) or refuses. A settled call's real cost
** waits in memory for the next flush (every audit flush, 20 ms, and when the engine
** stops), which writes the spend, returns the room of leases not reserved on since the
** flush before, and reports the budgets whose warning line was crossed.
**
** The store is asked without waiting (wd_store_ask): one question at a time per ledger,
** since each names the lease's amount before and after. A run whose call needs the store
** while a question is out waits in the ledger's queue and is told when it may look
** again. While a flush is out, what it writes is kept apart from what accrues meanwhile,
** and a shrinking lease counts at its new size, so memory never promises more than the
** store holds whether the flush lands or fails. */
#ifndef WD_LEDGER_H
#define WD_LEDGER_H

#include "store.h"

typedef struct wd_run wd_run;
typedef struct wd_ledger wd_ledger;

typedef struct wd_lease {
    wd_ledger_key key;
    int64_t row;      /* its row in the store's leases, 0 none */
    int64_t granted;  /* reserved in the store for this engine (a flush out: its new size) */
    int64_t used;     /* held by calls in flight */
    int64_t pending;  /* settled, not yet written */
    int64_t inflight; /* settled, written by the flush that is out */
    int64_t sent_old; /* the flush out: the size the store held before it */
    int64_t id;       /* unique in the process: the store counts its total by it */
    int64_t flushed;  /* spend the store has acknowledged, in all (store.h: totals) */
    int active;       /* reserved on since the last flush: its room is kept */
    struct wd_lease *next;
} wd_lease;

/* A run waiting for the store's answer about its call's room: again(r) is called on the
** loop when it may ask again. Lives in the run; wd_ledger_unwait before it goes. */
typedef struct wd_ledger_wait {
    wd_run *r;
    void (*again)(wd_run *r);
    struct wd_ledger_wait *next;
    int queued;
    /* the answer to this wait's own question, for its next wd_ledger_room */
    int answered, got, which;
    wd_ledger_row row;
} wd_ledger_wait;

typedef void (*wd_ledger_warn_fn)(void *ud, const wd_ledger_key *k, int64_t spent);

/* caller frees; the store is borrowed. warn (may be NULL) is called for each budget
** whose warning line a flush's write of spend crossed */
wd_ledger *wd_ledger_new(wd_store *s, wd_ledger_warn_fn warn, void *ud);
/* flushes, returns every lease, frees; accepts NULL. The store must answer at once by
** then (no loop watches it). */
void wd_ledger_free(wd_ledger *l);
/* Writes pending spend and returns the room of leases not reserved on since the last
** flush (idle: of every lease), keeping what calls hold. Asked without waiting; a
** question already out puts it off to the next. 0, or -1 (kept for the next) */
int wd_ledger_flush(wd_ledger *l, int idle);
/* spend not yet in the store, in nano-dollars, of the key (for ctx:budget and checks) */
int64_t wd_ledger_unflushed(wd_ledger *l, const wd_ledger_key *k);
/* the ledger's lease on k (NULL none) / made when absent (NULL out of memory) */
wd_lease *wd_ledger_find(wd_ledger *l, const wd_ledger_key *k);
wd_lease *wd_ledger_lease(wd_ledger *l, const wd_ledger_key *k);
/* a flush has something to write */
void wd_ledger_touch(wd_ledger *l);

/* Room for amount on the lease of each of n keys (leases[i] set): 1 there, in memory;
** 0 refused (*which: the key, *row: its row, what this engine's calls hold counted as
** theirs); -1 store error or out of memory; 2 the store was asked and w->again(w->r) is
** called on the loop when the answer came: ask again then (the answer waits in w). The
** caller takes the room at once (wd_lease.used) when it is there. */
int wd_ledger_room(wd_ledger *l, const wd_ledger_key *keys, int n, int64_t amount, wd_lease **leases, wd_ledger_wait *w,
                   int *which, wd_ledger_row *row);
/* w stops waiting (its run ends); accepts one not waiting */
void wd_ledger_unwait(wd_ledger *l, wd_ledger_wait *w);

#endif
