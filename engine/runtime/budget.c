/* budget.c - budgets and rate limits of a run on the store's ledger (see budget.h) */
#include "budget.h"
#include "engine.h"
#include "util.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Any one amount is clamped to $1e9 (what the policy's largest limit can name), so that
** no cost, however it was computed, converts to a wrapped or negative integer; an amount
** that is not a number is the largest (it must not pass as free). Sums saturate. */
#define NUSD_MAX 1000000000000000000LL

static int64_t clamp_nusd(double nusd)
{
    if (nusd != nusd || nusd >= (double)NUSD_MAX)
        return NUSD_MAX;
    return nusd > 0 ? (int64_t)nusd : 0;
}

int64_t wd_budget_nusd(double usd) { return clamp_nusd(ceil(usd * WD_NUSD_PER_USD - 1e-6)); }

static int64_t nusd_near(double usd) { return clamp_nusd(nearbyint(usd * WD_NUSD_PER_USD)); }

static double usd(int64_t nusd) { return (double)nusd / WD_NUSD_PER_USD; }

static void set_key(wd_ledger_key *k, const char *scope, const char *period, double limit, double warn_ratio)
{
    wd_strlcpy(k->scope, scope, sizeof k->scope);
    wd_strlcpy(k->period, period, sizeof k->period);
    k->limit = nusd_near(limit);
    k->warn_at = k->limit > 0 && warn_ratio > 0 ? (int64_t)llround((double)k->limit * warn_ratio) : 0;
}

int wd_budget_keys(const wd_policy *p, const char *user, int64_t now_ms, wd_ledger_key *keys)
{
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char scope[160], day[64], month[64];
    snprintf(scope, sizeof scope, "user:%s", user ? user : "?");
    snprintf(day, sizeof day, "day:%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    snprintf(month, sizeof month, "month:%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    const wd_tier *t = wd_policy_tier_of(p, wd_policy_user(p, user));
    set_key(&keys[0], scope, day, t ? t->daily_usd : 0, p->warn_ratio);
    set_key(&keys[1], scope, month, t ? t->monthly_usd : 0, p->warn_ratio);
    set_key(&keys[2], "global", month, p->global_monthly_usd, p->warn_ratio);
    return WD_BUDGET_KEYS;
}

void wd_budget_name(const wd_ledger_key *k, char *out, size_t n)
{
    const char *span = !strncmp(k->period, "day:", 4) ? "daily" : "monthly";
    if (!strncmp(k->scope, "user:", 5))
        snprintf(out, n, "user %s's %s budget", k->scope + 5, span);
    else
        snprintf(out, n, "the %s %s budget", k->scope, span);
}

double wd_budget_run_limit(const wd_run *r, const wd_policy *p)
{
    double l = wd_budget_per_run(p, r->user_id);
    return r->cap_usd >= 0 && r->cap_usd < l ? r->cap_usd : l;
}

double wd_budget_per_run(const wd_policy *p, const char *user)
{
    const wd_tier *t = wd_policy_tier_of(p, wd_policy_user(p, user));
    return t ? t->per_run_usd : 1.0;
}

/* the run's keys under policy p now: made once per policy and UTC day, as every call
** of a run asks for the same (a borrowed pointer into the run) */
static const wd_ledger_key *run_keys(wd_run *r, const wd_policy *p)
{
    int64_t now = wd_wall_ms(), day = now / 86400000;
    if (r->bkeys_gen != p->gen || r->bkeys_day != day) {
        wd_budget_keys(p, r->user_id, now, r->bkeys);
        r->bkeys_gen = p->gen;
        r->bkeys_day = day;
    }
    return r->bkeys;
}

static void audit_budget(wd_run *r, wd_audit_event event, const char *what, const json_t *args, const char *scope,
                         const char *period, double amount, const char *msg)
{
    json_t *ev = wd_run_event(r, event, event == WD_AE_BUDGET_WARNING);
    if (!ev)
        return;
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    if (what && strcmp(what, "llm") && strcmp(what, "run"))
        json_object_set_new(ev, "tool_name", json_string(what));
    if (args)
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
    json_object_set_new(ev, "budget_scope", json_string(scope));
    if (period)
        json_object_set_new(ev, "budget_period", json_string(period));
    json_object_set_new(ev, "cost_usd", json_real(amount));
    json_object_set_new(ev, "reason", json_string(msg));
    wd_run_audit(r, ev);
}

/* ---- leases ------------------------------------------------------------------------ */

#define LEASE_BUCKETS 256
#define LEASE_CALLS   256 /* a grown lease covers up to this many more such calls */

struct wd_lease {
    wd_ledger_key key;
    int64_t row;     /* its row in the store's leases, 0 none */
    int64_t granted; /* reserved in the store for this engine */
    int64_t used;    /* held by calls in flight */
    int64_t pending; /* settled, not yet written */
    int active;      /* reserved on since the last flush: its room is kept */
    wd_lease *next;
};

struct wd_ledger {
    wd_store *store;
    wd_ledger_warn_fn warn;
    void *warn_ud;
    wd_lease *buckets[LEASE_BUCKETS];
    int dirty; /* a flush has something to do */
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

/* NULL when the ledger has no lease on k */
static wd_lease *lease_find(wd_ledger *l, const wd_ledger_key *k)
{
    for (wd_lease *e = l->buckets[key_hash(k)]; e; e = e->next)
        if (!strcmp(e->key.scope, k->scope) && !strcmp(e->key.period, k->period))
            return e;
    return NULL;
}

/* NULL when out of memory; the key's limit and warning line follow the caller's */
static wd_lease *lease_of(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = lease_find(l, k);
    if (e) {
        e->key.limit = k->limit;
        e->key.warn_at = k->warn_at;
        return e;
    }
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    unsigned h = key_hash(k);
    e->key = *k;
    e->next = l->buckets[h];
    l->buckets[h] = e;
    return e;
}

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

/* the budgets an applied change crossed */
static void report_crossed(wd_ledger *l, const wd_lease_change *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].crossed && l->warn)
            l->warn(l->warn_ud, c[i].key, c[i].spent);
}

int wd_ledger_flush(wd_ledger *l, int idle)
{
    if (!l || !l->dirty)
        return 0;
    wd_lease_change stack[32], *c = stack;
    size_t n = 0, cap = 32;
    int rc = 0;
    int keep = 0;
    /* a lease in use keeps its room, less what was spent; one not reserved on since the
    ** last flush goes back to the store but for what calls hold */
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b]; e; e = e->next) {
            int active = e->active && !idle;
            e->active = 0;
            keep |= active && e->key.limit > 0 && e->granted - e->pending > e->used;
            if (!e->pending && (e->key.limit <= 0 || e->granted == e->used || active))
                continue;
            if (n == cap) {
                wd_lease_change *m = malloc(2 * cap * sizeof *m);
                if (!m) {
                    rc = -1;
                    goto out;
                }
                memcpy(m, c, n * sizeof *m);
                if (c != stack)
                    free(c);
                c = m;
                cap *= 2;
            }
            wd_lease_change *x = &c[n++];
            memset(x, 0, sizeof *x);
            x->key = &e->key;
            x->row = &e->row;
            x->old = e->granted;
            if (e->key.limit <= 0)
                x->new_amount = e->granted; /* unlimited: counted, never leased */
            else
                x->new_amount = active && e->granted - e->pending > e->used ? e->granted - e->pending : e->used;
            x->pending = e->pending;
        }
    int which;
    if (n && wd_store_lease_apply(l->store, c, (int)n, 0, wd_wall_ms(), &which) < 0) {
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        wd_lease *e = (wd_lease *)((char *)c[i].key - offsetof(wd_lease, key));
        e->granted = c[i].new_amount;
        e->pending = 0;
    }
    report_crossed(l, c, n);
    /* leases nobody holds are forgotten: a new period's keys replace the old ones */
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease **pp = &l->buckets[b]; *pp;) {
            wd_lease *e = *pp;
            if (!e->used && !e->granted && !e->pending && !e->row) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
    l->dirty = keep; /* the next flush returns a lease kept now, if it is left idle */
out:
    if (c != stack)
        free(c);
    return rc;
}

void wd_ledger_free(wd_ledger *l)
{
    if (!l)
        return;
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b]; e; e = e->next)
            e->used = 0; /* every run has ended: nothing is held */
    l->dirty = 1;
    wd_ledger_flush(l, 1);
    for (int b = 0; b < LEASE_BUCKETS; b++)
        for (wd_lease *e = l->buckets[b], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(l);
}

int64_t wd_ledger_unflushed(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = lease_find(l, k);
    return e ? e->pending : 0;
}

static int lease_has_room(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = lease_find(l, k);
    return e && e->granted - wd_add_sat(e->used, e->pending) > 0;
}

/* 1 held, 0 refused (*which, *row), -1 store error or out of memory */
static int ledger_reserve(wd_run *r, const wd_ledger_key *keys, int n, int64_t amount, wd_budget_hold *h, int *which,
                          wd_ledger_row *row)
{
    wd_ledger *l = r->eng->ledger;
    wd_lease *ls[WD_BUDGET_KEYS];
    wd_lease_change c[WD_BUDGET_KEYS];
    int nc = 0, at[WD_BUDGET_KEYS];
    for (int i = 0; i < n; i++) {
        if (!(ls[i] = lease_of(l, &keys[i])))
            return -1;
        wd_lease *e = ls[i];
        /* an unlimited key only counts; a limited one must fit what the lease has left */
        if (e->key.limit <= 0 || e->granted - wd_add_sat(e->used, e->pending) >= amount)
            continue;
        int64_t cap = e->key.limit / 100, extra = amount < cap / LEASE_CALLS ? amount * LEASE_CALLS : cap;
        memset(&c[nc], 0, sizeof c[nc]);
        c[nc].key = &e->key;
        c[nc].row = &e->row;
        c[nc].old = e->granted;
        /* the spend waiting in the lease stays in it, for the flush to write after the
        ** records that show it: a call never waits for the audit log's disk */
        c[nc].new_amount = wd_add_sat(wd_add_sat(wd_add_sat(e->used, e->pending), amount), extra);
        at[nc++] = i;
    }
    if (nc) {
        int w, got = wd_store_lease_apply(l->store, c, nc, 1, wd_wall_ms(), &w);
        if (got == 0) { /* the slack did not fit: exactly this call, then */
            for (int j = 0; j < nc; j++)
                c[j].new_amount = wd_add_sat(wd_add_sat(ls[at[j]]->used, ls[at[j]]->pending), amount);
            got = wd_store_lease_apply(l->store, c, nc, 1, wd_wall_ms(), &w);
        }
        if (got <= 0) {
            if (got == 0) {
                *which = at[w];
                *row = c[w].state;
                row->reserved -= c[w].old; /* what others hold, beside this engine's calls */
                row->reserved += ls[at[w]]->used;
                row->spent += ls[at[w]]->pending;
            }
            return got;
        }
        for (int j = 0; j < nc; j++)
            ls[at[j]]->granted = c[j].new_amount;
        l->dirty = 1;
    }
    h->n = n;
    h->amount = amount;
    for (int i = 0; i < n; i++) {
        h->lease[i] = ls[i];
        ls[i]->used = wd_add_sat(ls[i]->used, amount);
        ls[i]->active = 1;
    }
    return 1;
}

/* wd_budget_reserve; quiet: a refusal is not audited (the caller tries a smaller amount) */
static int reserve(wd_run *r, double cost, const char *what, const json_t *args, wd_budget_hold *h, char *msg, size_t n,
                   int quiet)
{
    memset(h, 0, sizeof *h);
    wd_policy *p = wd_engine_policy(r->eng);
    int rc = 0;
    double limit = wd_budget_run_limit(r, p), held = usd(r->held_nusd);
    if (r->cost + held + cost > limit + 1e-12) {
        double left = limit - r->cost - held;
        char c1[40], c2[40], c3[40];
        snprintf(msg, n, "cost limit: this call may cost up to %s and the run has %s of its %s left%s",
                 wd_fmt_usd(cost, c1, sizeof c1), wd_fmt_usd(left > 0 ? left : 0, c2, sizeof c2),
                 wd_fmt_usd(limit, c3, sizeof c3),
                 r->cap_usd >= 0 && limit <= r->cap_usd ? " (a sub-run: what its parent's run had left)" : "");
        if (!quiet)
            audit_budget(r, WD_AE_BUDGET_EXCEEDED, what, args, "run", NULL, cost, msg);
        goto out;
    }
    if (cost <= 0) { /* a free call cannot overspend */
        rc = 1;
        goto out;
    }
    const wd_ledger_key *keys = run_keys(r, p);
    int nk = WD_BUDGET_KEYS;
    int64_t amount = wd_budget_nusd(cost);
    int which = -1;
    wd_ledger_row row;
    wd_store *s = r->eng->store;
    int got = ledger_reserve(r, keys, nk, amount, h, &which, &row);
    if (got == 0 && wd_store_sweep(s) > 0) /* a dead process's leases were in the way */
        got = ledger_reserve(r, keys, nk, amount, h, &which, &row);
    if (got < 0) {
        snprintf(msg, n, "state store unavailable (%s): refusing to spend", wd_store_error(s));
        if (!quiet)
            wd_run_store_down(r, "budget", what, msg);
        goto out;
    }
    if (got == 0) {
        const wd_ledger_key *k = &keys[which];
        char name[200];
        wd_budget_name(k, name, sizeof name);
        int64_t left = k->limit - row.spent - row.reserved;
        char c1[40], c2[40], c3[40], c4[40], c5[40];
        snprintf(msg, n,
                 "budget: %s of %s (%s) has %s left (%s spent, %s held by calls in flight); this call may cost "
                 "up to %s",
                 name, wd_fmt_usd(usd(k->limit), c1, sizeof c1), k->period,
                 wd_fmt_usd(usd(left > 0 ? left : 0), c2, sizeof c2), wd_fmt_usd(usd(row.spent), c3, sizeof c3),
                 wd_fmt_usd(usd(row.reserved), c4, sizeof c4), wd_fmt_usd(cost, c5, sizeof c5));
        if (!quiet)
            audit_budget(r, WD_AE_BUDGET_EXCEEDED, what, args, k->scope, k->period, cost, msg);
        goto out;
    }
    r->held_nusd = wd_add_sat(r->held_nusd, amount);
    rc = 1;
out:
    if (!rc)
        memset(h, 0, sizeof *h);
    wd_policy_unref(p);
    return rc;
}

int wd_budget_reserve(wd_run *r, double cost, const char *what, const json_t *args, wd_budget_hold *h, char *msg,
                      size_t n)
{
    return reserve(r, cost, what, args, h, msg, n, 0);
}

int wd_budget_reserve_upto(wd_run *r, double cost, double least, const char *what, wd_budget_hold *h, double *got,
                           int *which, char *msg, size_t n)
{
    *got = cost;
    *which = -1;
    if (reserve(r, cost, what, NULL, h, msg, n, 1)) {
        msg[0] = '\0';
        return 1;
    }
    wd_policy *p = wd_engine_policy(r->eng);
    double room = wd_budget_run_limit(r, p) - r->cost - usd(r->held_nusd), left[WD_BUDGET_KEYS];
    char name[200] = "the run's cost limit";
    const wd_ledger_key *keys = run_keys(r, p);
    int known = wd_budget_left(r, left, msg, n) == 0;
    for (int i = 0; known && i < WD_BUDGET_KEYS; i++)
        if (left[i] >= 0 && left[i] < room) {
            room = left[i];
            *which = i;
            wd_budget_name(&keys[i], name, sizeof name);
        }
    wd_policy_unref(p);
    char c1[40], c2[40], said[400];
    snprintf(said, sizeof said, "%s had %s left for a call that may cost up to %s", name,
             wd_fmt_usd(room, c1, sizeof c1), wd_fmt_usd(cost, c2, sizeof c2));
    room -= 1e-9; /* a nano-dollar short of the edge: rounding never tips it over */
    if (!known || room < least || !reserve(r, room, what, NULL, h, msg, n, 1))
        return reserve(r, cost, what, NULL, h, msg, n, 0); /* refused, and audited as one */
    wd_strlcpy(msg, said, n);
    *got = room;
    return 1;
}

void wd_budget_audit_exceeded(wd_run *r, const char *what, int which, double cost, const char *msg)
{
    const wd_ledger_key *k = NULL;
    if (which >= 0 && which < WD_BUDGET_KEYS) {
        wd_policy *p = wd_engine_policy(r->eng);
        k = &run_keys(r, p)[which];
        wd_policy_unref(p);
    }
    audit_budget(r, WD_AE_BUDGET_EXCEEDED, what, NULL, k ? k->scope : "run", k ? k->period : NULL, cost, msg);
}

void wd_budget_settle(wd_run *r, wd_budget_hold *h, double actual)
{
    char msg[300];
    int64_t spent = nusd_near(actual);
    if (!h->n && spent > 0) { /* spent without a reservation (a free estimate): still counted */
        wd_policy *p = wd_engine_policy(r->eng);
        const wd_ledger_key *keys = run_keys(r, p);
        wd_policy_unref(p);
        for (int i = 0; i < WD_BUDGET_KEYS; i++) {
            wd_lease *e = lease_of(r->eng->ledger, &keys[i]);
            if (e)
                e->pending = wd_add_sat(e->pending, spent);
        }
        r->eng->ledger->dirty = 1;
    }
    for (int i = 0; i < h->n; i++) {
        wd_lease *e = h->lease[i];
        e->used -= h->amount;
        e->pending = wd_add_sat(e->pending, spent);
        r->eng->ledger->dirty = 1;
    }
    if (h->n) {
        r->held_nusd -= h->amount;
        if (r->held_nusd < 0)
            r->held_nusd = 0;
    }
    memset(h, 0, sizeof *h);
    if (!r->run_warned && actual > 0) {
        wd_policy *p = wd_engine_policy(r->eng);
        double limit = wd_budget_run_limit(r, p), ratio = p->warn_ratio;
        wd_policy_unref(p);
        if (limit > 0 && ratio > 0 && r->cost >= limit * ratio) {
            r->run_warned = 1;
            char c1[40], c2[40];
            snprintf(msg, sizeof msg, "the run's cost limit: %s of %s spent (%.0f%%), past the warning at %.0f%%",
                     wd_fmt_usd(r->cost, c1, sizeof c1), wd_fmt_usd(limit, c2, sizeof c2), 100.0 * r->cost / limit,
                     100.0 * ratio);
            audit_budget(r, WD_AE_BUDGET_WARNING, "run", NULL, "run", NULL, r->cost, msg);
        }
    }
}

int wd_budget_can_start(wd_run *r, char *msg, size_t n)
{
    wd_ledger_row rows[WD_BUDGET_KEYS];
    const wd_ledger_key *keys = run_keys(r, r->pol);
    int nk = WD_BUDGET_KEYS, unknown = 0;
    /* a key this engine holds an unused lease on is not spent: the store granted the
    ** lease within the limit. Only the others need a read of the store */
    for (int i = 0; i < nk; i++)
        unknown |= keys[i].limit > 0 && !lease_has_room(r->eng->ledger, &keys[i]);
    if (!unknown)
        return 1;
    wd_store *s = r->eng->store;
    if (wd_store_ledger_get(s, keys, nk, rows) < 0) {
        snprintf(msg, n, "state store unavailable (%s): refusing to spend", wd_store_error(s));
        wd_run_store_down(r, "budget", "run", msg);
        return 0;
    }
    for (int i = 0; i < nk; i++) {
        rows[i].spent = wd_add_sat(rows[i].spent, wd_ledger_unflushed(r->eng->ledger, &keys[i]));
        if (keys[i].limit <= 0 || rows[i].spent < keys[i].limit)
            continue;
        char name[200];
        wd_budget_name(&keys[i], name, sizeof name);
        char c1[40], c2[40];
        snprintf(msg, n, "budget: %s of %s (%s) is spent (%s)", name, wd_fmt_usd(usd(keys[i].limit), c1, sizeof c1),
                 keys[i].period, wd_fmt_usd(usd(rows[i].spent), c2, sizeof c2));
        audit_budget(r, WD_AE_BUDGET_EXCEEDED, "run", NULL, keys[i].scope, keys[i].period, 0, msg);
        return 0;
    }
    return 1;
}

int wd_budget_left(wd_run *r, double left[WD_BUDGET_KEYS], char *msg, size_t n)
{
    wd_ledger_row rows[WD_BUDGET_KEYS];
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_ledger_key *keys = run_keys(r, p);
    wd_policy_unref(p);
    wd_store *s = r->eng->store;
    if (wd_store_ledger_get(s, keys, WD_BUDGET_KEYS, rows) < 0) {
        snprintf(msg, n, "state store %s: %s", wd_store_path(s), wd_store_error(s));
        return -1;
    }
    for (int i = 0; i < WD_BUDGET_KEYS; i++) {
        if (keys[i].limit <= 0) {
            left[i] = -1;
            continue;
        }
        /* this engine's lease counts in the row's reserved; only its calls hold money */
        wd_lease *e = lease_find(r->eng->ledger, &keys[i]);
        int64_t spent = wd_add_sat(rows[i].spent, e ? e->pending : 0);
        int64_t held = rows[i].reserved - (e ? e->granted - e->used : 0);
        int64_t l = keys[i].limit - spent - (held > 0 ? held : 0);
        left[i] = usd(l > 0 ? l : 0);
    }
    return 0;
}

int wd_rate_take(wd_run *r, const char *key, long long limit, const char *what, int64_t *retry_ms, char *msg, size_t n)
{
    *retry_ms = 0;
    if (limit <= 0)
        return 1;
    long long count;
    wd_store *s = r->eng->store;
    int got = wd_store_rate_take(s, key, limit, 3600000, wd_store_now(s), &count, retry_ms);
    if (got < 0) {
        snprintf(msg, n, "state store unavailable (%s): cannot check the rate limit of %s", wd_store_error(s), what);
        wd_run_store_down(r, "rate_limit", NULL, msg);
        return -1;
    }
    if (got == 0)
        snprintf(msg, n, "rate limit: %s: %lld requests in the last hour (limit %lld per hour); retry in %lld s", what,
                 count, limit, (long long)((*retry_ms + 999) / 1000));
    return got;
}
