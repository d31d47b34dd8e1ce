/* startcheck.c - the checks a run passes before its agent starts (docs/safety.md): its
** start error or refusal by `warden serve`, its user, the audit log, its session, the kill
** switch, its rate and its budgets, and its audit key. Those that ask the state store
** ask without waiting: the run's starter is called again with the answer, and the checks
** go on from the one that asked (r->start_stage). */
#include "engine.h"
#include "ask.h"
#include "session.h"
#include "killswitch.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* warden serve had no room for the run in time (wd_run_opts.refuse): it ends so */
static void end_refused(wd_run *r)
{
    json_t *ev = wd_run_event(r, WD_AE_RATE_LIMITED, 0);
    json_object_set_new(ev, "reason", json_string(r->refuse));
    json_object_set_new(ev, "retry_after_ms", json_integer(r->retry_after_ms));
    wd_run_audit(r, ev);
    wd_run_end(r, WD_ST_RATE_LIMITED, r->refuse);
}

/* the user's key, for the personal fields of its records (audit.personal_fields): 0, -1
** the run ended, 2 the store was asked */
static int start_seal(wd_run *r, void (*again)(wd_run *r))
{
    if (!wd_seal_wanted(r->pol) || !r->user_id)
        return 0;
    wd_store *s = r->eng->store;
    wd_store_op op = {.kind = WD_SOP_AUDIT_KEY, .key = r->user_id, .now_ms = wd_store_now(s)};
    int got;
    if (wd_run_ask(r, &op, again, &got) == 2)
        return 2;
    if (got < 0) {
        char err[400];
        snprintf(err, sizeof err, "audit keys unavailable (state store: %s): refusing to run", wd_store_error(s));
        wd_run_end(r, WD_ST_FAILED, err);
        return -1;
    }
    memcpy(r->seal.id, op.id, sizeof r->seal.id);
    memcpy(r->seal.key, op.secret, sizeof r->seal.key);
    sodium_memzero(op.secret, sizeof op.secret);
    r->sealing = 1;
    return 0;
}

/* the user's requests per hour (its tier's): 0 admitted, -1 the run ended refused, 2 the
** store was asked */
static int start_rate(wd_run *r, const wd_tier *tier, void (*again)(wd_run *r))
{
    if (!tier || tier->requests_per_hour <= 0)
        return 0;
    char key[200], what[200], err[400];
    snprintf(key, sizeof key, "runs:user:%s", r->user_id);
    snprintf(what, sizeof what, "user %s (tier %s)", r->user_id, tier->name);
    int64_t retry;
    int got = wd_rate_take(r, key, tier->requests_per_hour, what, &retry, err, sizeof err, again);
    if (got == WD_BUDGET_WAIT)
        return 2;
    if (got < 0) { /* audited as store_unavailable */
        wd_run_end(r, WD_ST_STORE_UNAVAILABLE, err);
        return -1;
    }
    if (got == 0) {
        json_t *ev = wd_run_event(r, WD_AE_RATE_LIMITED, 0);
        json_object_set_new(ev, "reason", json_string(err));
        json_object_set_new(ev, "retry_after_ms", json_integer(retry));
        wd_run_audit(r, ev);
        r->retry_after_ms = retry;
        wd_run_end(r, WD_ST_RATE_LIMITED, err);
        return -1;
    }
    return 0;
}

int wd_run_may_start(wd_run *r, void (*again)(wd_run *r))
{
    char err[400];
    wd_engine *e = r->eng;
    wd_policy *p = r->pol;
    if (r->start_error) {
        json_t *ev = wd_run_event(r, WD_AE_RUN_STARTED, 0);
        json_object_set_new(ev, "error", json_string(r->start_error));
        wd_run_audit(r, ev);
        wd_run_end(r, WD_ST_FAILED, r->start_error);
        return -1;
    }
    if (r->refuse) {
        end_refused(r);
        return -1;
    }
    const wd_user *u = wd_policy_user(p, r->user_id);
    if (!u) {
        json_t *ev = wd_run_event(r, WD_AE_AUTHORIZATION_DENIED, 0);
        json_object_set_new(ev, "reason", json_string("unknown user"));
        wd_run_audit(r, ev);
        wd_run_end(r, WD_ST_UNAUTHORIZED, "unknown user");
        return -1;
    }
    if (wd_audit_failed(e->audit)) {
        wd_run_end(r, WD_ST_FAILED, "audit log unavailable: refusing to run");
        return -1;
    }
    /* the checks that ask the store go on from where the last answer left them */
    int theirs = r->start_stage > 0 ? 0 : wd_session_load(r, err, sizeof err, again);
    if (theirs == 2)
        return 2;
    if (!theirs && r->start_stage < 1)
        r->start_stage = 1;
    if (theirs < 0) { /* audited as store_unavailable */
        wd_run_end(r, WD_ST_STORE_UNAVAILABLE, err);
        return -1;
    }
    if (theirs) {
        json_t *ev = wd_run_event(r, WD_AE_AUTHORIZATION_DENIED, 0);
        json_object_set_new(ev, "reason", json_string(err));
        wd_run_audit(r, ev);
        wd_run_end(r, WD_ST_UNAUTHORIZED, err);
        return -1;
    }
    if (wd_kills_refuse(r, err, sizeof err)) {
        wd_run_end(r, WD_ST_KILLED, err);
        return -1;
    }
    /* the user's request rate, then its budgets (docs/safety.md) */
    int rated = r->start_stage < 2 ? start_rate(r, wd_policy_tier_of(p, u), again) : 0;
    if (rated)
        return rated;
    int may = 1;
    if (r->start_stage < 3) {
        r->start_stage = 2;
        may = wd_budget_can_start(r, err, sizeof err, again);
    }
    if (may == WD_BUDGET_WAIT)
        return 2;
    if (!may) {
        wd_run_end(r, r->store_down ? WD_ST_STORE_UNAVAILABLE : WD_ST_BUDGET_EXCEEDED, err);
        return -1;
    }
    r->start_stage = 3;
    return start_seal(r, again);
}
