/* breaker.c - the circuit breaker state machine and the per-engine registry that keeps
** it in the store (see breaker.h for the rules) */
#include "breaker.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256

static const char *const STATE_NAMES[] = {"closed", "open", "half_open"};

const char *wd_breaker_state_name(int state) { return state >= 0 && state <= 2 ? STATE_NAMES[state] : "unknown"; }

int wd_breaker_admit(wd_breaker_row *row, const wd_breaker_cfg *c, int64_t now_ms, int *probe, long long *retry_in_ms,
                     int *changed)
{
    *probe = 0;
    *changed = 0;
    *retry_in_ms = 0;
    if (row->state == WD_BR_CLOSED)
        return 1;
    /* a stamp ahead of now (written by a clock that ran ahead) starts its wait again from
    ** now: no wait is ever longer than its length */
    if (row->opened_ms > now_ms || row->probe_ms > now_ms) {
        row->opened_ms = row->opened_ms > now_ms ? now_ms : row->opened_ms;
        row->probe_ms = row->probe_ms > now_ms ? now_ms : row->probe_ms;
        *changed = 1;
    }
    if (row->state == WD_BR_OPEN) {
        int64_t elapsed = now_ms - row->opened_ms;
        if (elapsed < c->open_ms) {
            *retry_in_ms = c->open_ms - elapsed;
            return 0;
        }
        row->state = WD_BR_HALF_OPEN;
        row->probes = 0;
        *changed = 1;
    }
    /* HALF_OPEN: a limited number of probes; a probe whose process died holds its
    ** slot for open_ms at most */
    if (row->probes >= c->half_open_probes) {
        int64_t held = now_ms - row->probe_ms;
        if (held < c->open_ms) {
            *retry_in_ms = c->open_ms - held;
            return 0;
        }
        row->probes = 0;
    }
    row->probes++;
    row->probe_ms = now_ms;
    *probe = 1;
    *changed = 1;
    return 1;
}

void wd_breaker_outcome(wd_breaker_row *row, const wd_breaker_cfg *c, int success, int probe, int64_t now_ms,
                        int *changed)
{
    *changed = 0;
    if (row->state == WD_BR_HALF_OPEN) {
        if (!probe)
            return; /* admitted before the breaker opened: it no longer speaks for the service */
        row->probes = 0;
        if (success) {
            row->state = WD_BR_CLOSED;
            row->failures = 0;
        } else {
            row->state = WD_BR_OPEN;
            row->opened_ms = now_ms;
            row->failures++;
        }
        *changed = 1;
        return;
    }
    if (row->state == WD_BR_OPEN)
        return;
    if (success) {
        if (row->failures) {
            row->failures = 0;
            *changed = 1;
        }
        return;
    }
    row->failures++;
    *changed = 1;
    if (row->failures >= c->failure_threshold) {
        row->state = WD_BR_OPEN;
        row->opened_ms = now_ms;
        row->probes = 0;
    }
}

/* ---- registry ------------------------------------------------------------------ */

typedef struct entry {
    wd_breaker_row row;
    int64_t checked_ns; /* when row was last read from the store (monotonic) */
    struct entry *next;
} entry;

struct wd_breakers {
    wd_store *store;
    entry *buckets[NBUCKETS];
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

wd_breakers *wd_breakers_new(wd_store *s)
{
    wd_breakers *b = calloc(1, sizeof *b);
    if (b)
        b->store = s;
    return b;
}

void wd_breakers_free(wd_breakers *b)
{
    if (!b)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        for (entry *e = b->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(b);
}

/* NULL when out of memory */
static entry *lookup(wd_breakers *b, const char *name)
{
    unsigned h = hash(name);
    for (entry *e = b->buckets[h]; e; e = e->next)
        if (!strcmp(e->row.name, name))
            return e;
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    wd_strlcpy(e->row.name, name, sizeof e->row.name);
    e->next = b->buckets[h];
    b->buckets[h] = e;
    return e;
}

/* opens a transaction and reads the row into e; -1 when the store failed (e kept) */
static int sync_begin(wd_breakers *b, entry *e)
{
    if (!b->store)
        return 0;
    if (wd_store_begin(b->store) < 0)
        return -1;
    wd_breaker_row row;
    if (wd_store_breaker_get(b->store, e->row.name, &row) < 0) {
        wd_store_rollback(b->store);
        return -1;
    }
    e->row = row;
    return 0;
}

static void sync_end(wd_breakers *b, entry *e, int ok, int changed, int64_t now)
{
    if (!b->store || !ok)
        return;
    if (changed) {
        e->row.updated_ms = now;
        if (wd_store_breaker_put(b->store, &e->row) < 0) {
            wd_store_rollback(b->store);
            return;
        }
    }
    if (wd_store_commit(b->store) < 0)
        wd_store_rollback(b->store);
    else
        e->checked_ns = wd_now_ns();
}

/* ** The move done by the store itself when it can (Redis: one script, no lock):
** 1 done (e's row as the store holds it now), 0 not this store's (the caller runs the
** rules in a transaction), -1 the store failed. */
static int stepped(wd_breakers *b, entry *e, const wd_breaker_cfg *c, wd_breaker_step *st)
{
    if (!b->store)
        return 0;
    st->failure_threshold = c->failure_threshold;
    st->open_ms = c->open_ms;
    st->half_open_probes = c->half_open_probes;
    int got = wd_store_breaker_step(b->store, e->row.name, st);
    if (got == 1) {
        e->row = st->row;
        e->checked_ns = wd_now_ns();
    }
    return got;
}

static void describe(wd_breaker_change *ch, int from, const wd_breaker_row *row, const wd_breaker_cfg *c)
{
    if (!ch)
        return;
    ch->happened = from != row->state;
    ch->from = from;
    ch->to = row->state;
    if (!ch->happened)
        return;
    if (row->state == WD_BR_OPEN && from == WD_BR_CLOSED)
        snprintf(ch->reason, sizeof ch->reason, "%lld consecutive failures (threshold %lld)", row->failures,
                 c->failure_threshold);
    else if (row->state == WD_BR_OPEN)
        snprintf(ch->reason, sizeof ch->reason, "the half-open probe failed");
    else if (row->state == WD_BR_HALF_OPEN)
        snprintf(ch->reason, sizeof ch->reason, "open for %lld ms: admitting %lld probe%s", c->open_ms,
                 c->half_open_probes, c->half_open_probes == 1 ? "" : "s");
    else
        snprintf(ch->reason, sizeof ch->reason, "the half-open probe succeeded");
}

static void refusal(char *msg, size_t msglen, const wd_breaker_row *row, const char *name, long long retry_in)
{
    snprintf(msg, msglen, "circuit %s for %s, retry in %lld s",
             row->state == WD_BR_HALF_OPEN ? "half-open (a probe is in flight)" : "open", name,
             (retry_in + 999) / 1000);
}

/* the moment of a breaker's admission: 1 the store must take a step (st filled), 0 the
** copy here decides (*now: the store's clock, or 0 for the fresh closed case) */
static int admit_due(wd_breakers *b, entry *e, const wd_breaker_cfg *c, wd_breaker_step *st, int64_t *now)
{
    *now = 0;
    /* the common case, a closed breaker read lately, costs no clock but the vDSO's */
    int fresh = b->store && wd_now_ns() - e->checked_ns < WD_BREAKER_REFRESH_MS * 1000000LL;
    if (fresh && e->row.state == WD_BR_CLOSED)
        return 0;
    *now = wd_store_now(b->store);
    /* a fresh copy that is open and not yet due needs no transaction */
    if ((fresh && e->row.state == WD_BR_OPEN && *now - e->row.opened_ms < c->open_ms) || !b->store)
        return 0;
    *st = (wd_breaker_step){.kind = WD_BRS_ADMIT,
                            .now_ms = *now,
                            .failure_threshold = c->failure_threshold,
                            .open_ms = c->open_ms,
                            .half_open_probes = c->half_open_probes};
    return 1;
}

/* the rules run on the copy here; ok: inside the store's transaction, written back */
static int admit_here(wd_breakers *b, entry *e, const wd_breaker_cfg *c, int64_t now, int ok, int *probe, char *msg,
                      size_t msglen, wd_breaker_change *ch)
{
    long long retry_in;
    int changed, from = e->row.state;
    int admitted = wd_breaker_admit(&e->row, c, now, probe, &retry_in, &changed);
    sync_end(b, e, ok, changed, now);
    describe(ch, from, &e->row, c);
    if (!admitted)
        refusal(msg, msglen, &e->row, e->row.name, retry_in);
    return admitted;
}

int wd_breakers_admit_ask(wd_breakers *b, const char *name, const wd_breaker_cfg *c, wd_breaker_step *st)
{
    entry *e = lookup(b, name);
    int64_t now;
    return e && admit_due(b, e, c, st, &now);
}

int wd_breakers_admit_answer(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int rc,
                             const wd_breaker_step *st, int *probe, char *msg, size_t msglen, wd_breaker_change *ch)
{
    if (ch)
        ch->happened = 0;
    *probe = 0;
    entry *e = lookup(b, name);
    if (!e)
        return 1;
    if (rc == 1) { /* the store took the step, whole */
        e->row = st->row;
        e->checked_ns = wd_now_ns();
        *probe = st->probe_out;
        describe(ch, st->from, &e->row, c);
        if (!st->admitted)
            refusal(msg, msglen, &e->row, name, st->retry_in_ms);
        return st->admitted;
    }
    if (rc < 0 || sync_begin(b, e) < 0) { /* the breaker cannot be read: a call it guards is not let through */
        snprintf(msg, msglen, "state store unavailable (%s): the breaker of %s cannot be checked",
                 wd_store_error(b->store), name);
        return -1;
    }
    return admit_here(b, e, c, st->now_ms, 1, probe, msg, msglen, ch);
}

int wd_breakers_admit(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int *probe, char *msg, size_t msglen,
                      wd_breaker_change *ch)
{
    if (ch)
        ch->happened = 0;
    *probe = 0;
    entry *e = lookup(b, name);
    if (!e)
        return 1; /* out of memory: the breaker cannot judge, the timeouts still apply */
    wd_breaker_step st;
    int64_t now;
    if (!admit_due(b, e, c, &st, &now))
        return now ? admit_here(b, e, c, now, 0, probe, msg, msglen, ch) : 1;
    int rc = wd_store_breaker_step(b->store, name, &st);
    return wd_breakers_admit_answer(b, name, c, rc, &st, probe, msg, msglen, ch);
}

int wd_breakers_outcome(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int success, int probe,
                        wd_breaker_change *ch)
{
    if (ch)
        ch->happened = 0;
    entry *e = lookup(b, name);
    if (!e)
        return WD_BR_CLOSED;
    if (success && !probe && e->row.state == WD_BR_CLOSED && e->row.failures == 0)
        return WD_BR_CLOSED; /* the common case: nothing to record */
    int64_t now = wd_store_now(b->store);
    wd_breaker_step st = {.kind = WD_BRS_OUTCOME, .success = success, .probe = probe, .now_ms = now};
    if (stepped(b, e, c, &st) == 1) {
        describe(ch, st.from, &e->row, c);
        return e->row.state;
    }
    int changed, ok = sync_begin(b, e) == 0;
    int from = e->row.state;
    wd_breaker_outcome(&e->row, c, success, probe, now, &changed);
    sync_end(b, e, ok, changed, now);
    describe(ch, from, &e->row, c);
    return e->row.state;
}

void wd_breakers_release(wd_breakers *b, const char *name)
{
    entry *e = lookup(b, name);
    if (!e)
        return;
    int64_t now = wd_store_now(b->store);
    wd_breaker_step st = {.kind = WD_BRS_RELEASE, .now_ms = now};
    wd_breaker_cfg none = {0, 0, 0};
    if (stepped(b, e, &none, &st) == 1)
        return;
    int ok = sync_begin(b, e) == 0, changed = 0;
    if (e->row.state == WD_BR_HALF_OPEN && e->row.probes > 0) {
        e->row.probes--;
        changed = 1;
    }
    sync_end(b, e, ok, changed, now);
}

void wd_breakers_forget(wd_breakers *b, const char *name)
{
    for (int i = 0; b && i < NBUCKETS; i++)
        for (entry *e = b->buckets[i]; e; e = e->next)
            if (!name || !strcmp(e->row.name, name))
                e->checked_ns = 0;
}

int wd_breakers_state(wd_breakers *b, const char *name)
{
    entry *e = lookup(b, name);
    return e ? e->row.state : WD_BR_CLOSED;
}
