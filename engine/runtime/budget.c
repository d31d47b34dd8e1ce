/* budget.c - budgets and rate limits of a run on the store's ledger (see budget.h) */
#include "budget.h"
#include "ask.h"
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

/* ---- reservations on the engine's leases (ledger.c) -------------------------------- */

static int lease_has_room(wd_ledger *l, const wd_ledger_key *k)
{
    wd_lease *e = wd_ledger_find(l, k);
    return e && e->granted - wd_add_sat(e->used, e->pending) > 0;
}

/* 1 held, 0 refused (*which, *row), -1 store error or out of memory, WD_BUDGET_WAIT */
static int ledger_reserve(wd_run *r, const wd_ledger_key *keys, int n, int64_t amount, wd_budget_hold *h, int *which,
                          wd_ledger_row *row, void (*again)(wd_run *r))
{
    wd_ledger *l = r->eng->ledger;
    wd_lease *ls[WD_BUDGET_KEYS];
    r->lwait.r = r;
    r->lwait.again = again;
    int got = wd_ledger_room(l, keys, n, amount, ls, &r->lwait, which, row);
    if (got != 1)
        return got;
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
                   int quiet, void (*again)(wd_run *r))
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
    int got = ledger_reserve(r, keys, nk, amount, h, &which, &row, again);
    if (got == WD_BUDGET_WAIT) {
        rc = WD_BUDGET_WAIT;
        goto out;
    }
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
    if (rc != 1)
        memset(h, 0, sizeof *h);
    wd_policy_unref(p);
    return rc;
}

int wd_budget_reserve(wd_run *r, double cost, const char *what, const json_t *args, wd_budget_hold *h, char *msg,
                      size_t n, void (*again)(wd_run *r))
{
    return reserve(r, cost, what, args, h, msg, n, 0, again);
}

/* what each budget has left in USD (-1 no limit), from the store's rows of the run's keys */
static void left_of(wd_run *r, const wd_ledger_key *keys, const wd_ledger_row *rows, double left[WD_BUDGET_KEYS])
{
    for (int i = 0; i < WD_BUDGET_KEYS; i++) {
        if (keys[i].limit <= 0) {
            left[i] = -1;
            continue;
        }
        /* this engine's lease counts in the row's reserved; only its calls hold money */
        wd_lease *e = wd_ledger_find(r->eng->ledger, &keys[i]);
        int64_t spent = wd_add_sat(rows[i].spent, e ? wd_add_sat(e->pending, e->inflight) : 0);
        int64_t held = rows[i].reserved - (e ? e->granted - e->used : 0);
        int64_t l = keys[i].limit - spent - (held > 0 ? held : 0);
        left[i] = usd(l > 0 ? l : 0);
    }
}

/* ** The steps of a streamed call's reservation, each of which may wait for the store
** (r->upto.stage says where it goes on): the whole worst case; else the rows of the
** budgets, read to find what is left; that room; else the worst case once more, refused
** and audited. */
enum { UPTO_WHOLE, UPTO_READ, UPTO_ROOM, UPTO_REFUSE };

/* the room a streamed call may take, from the budgets' rows (known: they were read) */
static void upto_room(wd_run *r, double cost, int known, const wd_ledger_row *rows)
{
    wd_policy *p = wd_engine_policy(r->eng);
    double room = wd_budget_run_limit(r, p) - r->cost - usd(r->held_nusd), left[WD_BUDGET_KEYS];
    char name[200] = "the run's cost limit";
    const wd_ledger_key *keys = run_keys(r, p);
    r->upto.which = -1;
    if (known)
        left_of(r, keys, rows, left);
    for (int i = 0; known && i < WD_BUDGET_KEYS; i++)
        if (left[i] >= 0 && left[i] < room) {
            room = left[i];
            r->upto.which = i;
            wd_budget_name(&keys[i], name, sizeof name);
        }
    wd_policy_unref(p);
    char c1[40], c2[40];
    snprintf(r->upto.said, sizeof r->upto.said, "%s had %s left for a call that may cost up to %s", name,
             wd_fmt_usd(room, c1, sizeof c1), wd_fmt_usd(cost, c2, sizeof c2));
    r->upto.room = room - 1e-9; /* a nano-dollar short of the edge: rounding never tips it over */
    r->upto.known = known;
}

int wd_budget_reserve_upto(wd_run *r, double cost, double least, const char *what, wd_budget_hold *h, double *got,
                           int *which, char *msg, size_t n, void (*again)(wd_run *r))
{
    wd_budget_upto *u = &r->upto;
    int rc;
    *got = cost;
    *which = -1;
    switch (u->stage) {
    case UPTO_WHOLE:
        if ((rc = reserve(r, cost, what, NULL, h, msg, n, 1, again)) == WD_BUDGET_WAIT)
            return rc;
        if (rc == 1) {
            msg[0] = '\0';
            return 1;
        }
        u->stage = UPTO_READ;
        /* fall through */
    case UPTO_READ: {
        wd_ledger_row rows[WD_BUDGET_KEYS];
        wd_policy *p = wd_engine_policy(r->eng);
        wd_store_op op = {.kind = WD_SOP_LEDGER_GET, .keys = run_keys(r, p), .n = WD_BUDGET_KEYS, .rows = rows};
        int read;
        wd_policy_unref(p);
        if (wd_run_ask(r, &op, again, &read) == 2)
            return WD_BUDGET_WAIT;
        upto_room(r, cost, read == 0, rows);
        u->stage = UPTO_ROOM;
    }
        /* fall through */
    case UPTO_ROOM:
        rc = u->known && u->room >= least ? reserve(r, u->room, what, NULL, h, msg, n, 1, again) : 0;
        if (rc == WD_BUDGET_WAIT)
            return rc;
        if (rc == 1) {
            u->stage = UPTO_WHOLE;
            wd_strlcpy(msg, u->said, n);
            *got = u->room;
            *which = u->which;
            return 1;
        }
        u->stage = UPTO_REFUSE;
        /* fall through */
    default:
        if ((rc = reserve(r, cost, what, NULL, h, msg, n, 0, again)) == WD_BUDGET_WAIT)
            return rc; /* refused, and audited as one */
        u->stage = UPTO_WHOLE;
        return rc;
    }
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
            wd_lease *e = wd_ledger_lease(r->eng->ledger, &keys[i]);
            if (e)
                e->pending = wd_add_sat(e->pending, spent);
        }
        wd_ledger_touch(r->eng->ledger);
    }
    for (int i = 0; i < h->n; i++) {
        wd_lease *e = h->lease[i];
        e->used -= h->amount;
        e->pending = wd_add_sat(e->pending, spent);
        wd_ledger_touch(r->eng->ledger);
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

int wd_budget_can_start(wd_run *r, char *msg, size_t n, void (*again)(wd_run *r))
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
    wd_store_op op = {.kind = WD_SOP_LEDGER_GET, .keys = keys, .n = nk, .rows = rows};
    int got;
    if (wd_run_ask(r, &op, again, &got) == 2)
        return WD_BUDGET_WAIT;
    if (got < 0) {
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
    left_of(r, keys, rows, left);
    return 0;
}

int wd_rate_take(wd_run *r, const char *key, long long limit, const char *what, int64_t *retry_ms, char *msg, size_t n,
                 void (*again)(wd_run *r))
{
    *retry_ms = 0;
    if (limit <= 0)
        return 1;
    long long count;
    wd_store *s = r->eng->store;
    int got;
    if (again) {
        wd_store_op op = {
            .kind = WD_SOP_RATE_TAKE, .key = key, .limit = limit, .window_ms = 3600000, .now_ms = wd_store_now(s)};
        if (wd_run_ask(r, &op, again, &got) == 2)
            return WD_BUDGET_WAIT;
        count = op.count;
        *retry_ms = op.retry_ms;
    } else {
        got = wd_store_rate_take(s, key, limit, 3600000, wd_store_now(s), &count, retry_ms);
    }
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
