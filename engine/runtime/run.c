/* run.c - a run's records and settings: its audit events within its share of the log,
** the limits that stop it, its breaker and retry settings, and the hooks (engine.h)
** through which the runtime and the operations reach the detectors and the bindings. */
#include "bound.h"
#include "engine.h"
#include "redact.h"
#include "seal.h"
#include "notify.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const STATUS_NAMES[] = {"running", "completed",       "failed",       "max_iterations",
                                           "timeout", "budget_exceeded", "rate_limited", "unauthorized",
                                           "halted",  "rejected",        "killed",       "store_unavailable"};

const char *wd_status_name(wd_status st) { return STATUS_NAMES[st]; }

/* what the user reads; internal errors stay in the audit log and errors[] */
const char *wd_status_message(wd_status st)
{
    switch (st) {
    case WD_ST_MAX_ITERATIONS:
        return "I couldn't complete your request within the time limit. Please try rephrasing or "
               "breaking it into smaller tasks.";
    case WD_ST_TIMEOUT: return "Taking longer than expected. Please try again in a few minutes.";
    case WD_ST_BUDGET_EXCEEDED: return "Processing budget exhausted for this request.";
    case WD_ST_RATE_LIMITED: return "Too many requests right now. Please try again later.";
    case WD_ST_UNAUTHORIZED: return "You are not authorized to use this agent.";
    case WD_ST_HALTED: return "I stopped because a safety check found a problem with what I was doing.";
    case WD_ST_REJECTED: return "The requested action was not approved.";
    case WD_ST_KILLED: return "This agent has been disabled by an operator.";
    case WD_ST_STORE_UNAVAILABLE: return "A service this agent depends on is unavailable. Please try again shortly.";
    default: return "Encountered an issue while processing your request. Please try again later.";
    }
}

wd_policy *wd_engine_policy(wd_engine *e) { return wd_policy_ref(e->policy); }

void wd_run_store_down(wd_run *r, const char *operation, const char *tool, const char *msg)
{
    r->store_down = 1;
    json_t *ev = wd_run_event(r, WD_AE_STORE_UNAVAILABLE, 0);
    if (!ev)
        return;
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "operation", json_string(operation));
    if (tool && strcmp(tool, "llm") && strcmp(tool, "run"))
        json_object_set_new(ev, "tool_name", json_string(tool));
    json_object_set_new(ev, "store", json_string(wd_store_backend_name(r->eng->store)));
    json_object_set_new(ev, "reason", json_string(msg));
    wd_run_audit(r, ev);
}

wd_store *wd_engine_store(wd_engine *e) { return e->store; }

wd_audit *wd_engine_audit(wd_engine *e) { return e->audit; }

struct event_base *wd_engine_base(wd_engine *e) { return e->base; }

int wd_engine_unstarted(const wd_engine *e) { return e->unstarted; }

json_t *wd_run_event(wd_run *r, wd_audit_event event, int success)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    /* the run's ids as one JSON value each, referenced by every record (redaction
    ** never replaces them) rather than copied seven times a run */
    static const char *const KEYS[4] = {"run_id", "session_id", "user_id", "agent"};
    const char *vals[4] = {r->run_id, r->session_id, r->user_id, r->agent_name};
    json_object_set_new(o, "event", json_string(wd_event_name(event)));
    for (int i = 0; i < 4; i++) {
        if (!r->j_ids[i])
            r->j_ids[i] = vals[i] ? json_string(vals[i]) : json_null();
        json_object_set(o, KEYS[i], r->j_ids[i]);
    }
    json_object_set_new(o, "success", json_boolean(success));
    return o;
}

/* ** The run's share of the log. Every record is bounded field by field (bound.h) and
** counted; a run that comes within AUDIT_RESERVE of its bytes or records is stopped
** (wd_run_limit), and what it still writes while it stops (the call in flight, the
** detectors' last word, run_finished) has its fields cut to AUDIT_SMALL_FIELD, so the
** reserve holds it. Only past the limit itself is a record dropped, counted in
** run_finished's audit_dropped; run_finished is always written, its result cut to what
** the run has left. */
#define AUDIT_RESERVE_BYTES (64 << 10)

#define AUDIT_RESERVE_RECORDS 50

#define AUDIT_SMALL_FIELD 1024

#define AUDIT_LINE_EXTRA 240

int wd_run_audit(wd_run *r, json_t *rec)
{
    if (!rec)
        return -1;
    const wd_policy *p = r->pol ? r->pol : r->eng->policy;
    wd_redact_record(p, rec);
    const char *ev = json_string_value(json_object_get(rec, "event"));
    int final = ev && !strcmp(ev, "run_finished");
    long long maxb = p->max_audit_bytes, maxr = p->max_audit_records;
    size_t cap = r->audit.over ? AUDIT_SMALL_FIELD : (size_t)p->max_audit_field_bytes, big = cap;
    if (final) {
        long long left = maxb - r->audit.bytes - 4096;
        big = left > (long long)cap ? (size_t)left : cap;
        json_object_set_new(rec, "audit_records", json_integer(r->audit.records + 1));
        if (r->audit.dropped)
            json_object_set_new(rec, "audit_dropped", json_integer(r->audit.dropped));
    }
    /* and what the log adds: seq, timestamp, prev_hash, hash and the newline */
    const char *whole = !final ? NULL : json_object_get(rec, "final_answer") ? "final_answer" : "result";
    if (whole && r->sealing && wd_seal_field(p, whole, NULL)) /* sealed, it grows by a third */
        big = big / 4 * 3 > 512 ? big / 4 * 3 - 512 : big;
    size_t bytes = wd_bound_record(rec, cap, whole, big, NULL) + AUDIT_LINE_EXTRA;
    if (!final && (r->audit.records + 1 > maxr || r->audit.bytes + (long long)bytes > maxb)) {
        r->audit.dropped++;
        json_decref(rec);
        return 0;
    }
    r->audit.bytes += (long long)bytes;
    r->audit.records++;
    if (!r->audit.over && !final &&
        (r->audit.bytes + AUDIT_RESERVE_BYTES > maxb || r->audit.records + AUDIT_RESERVE_RECORDS > maxr)) {
        char msg[300];
        r->audit.over = 1;
        snprintf(msg, sizeof msg,
                 "audit limit: the run wrote %lld records, %lld bytes, of its %lld records "
                 "(defaults.max_audit_records) and %lld bytes (defaults.max_audit_bytes)",
                 r->audit.records, r->audit.bytes, maxr, maxb);
        wd_run_limit(r, WD_ST_FAILED, msg);
    }
    if (r->eng->on_record) /* the run's own watchers see its text; the log keeps it sealed */
        r->eng->on_record(r->eng->on_record_ud, rec);
    wd_notify_record(r->eng, rec);
    if (r->sealing)
        r->audit.bytes += (long long)wd_seal_record(p, rec, &r->seal);
    return wd_audit_append(r->eng->audit, rec);
}

void wd_run_limit(wd_run *r, wd_status st, const char *msg)
{
    if (r->finishing || r->limit_msg)
        return;
    r->limit_status = st;
    r->limit_msg = wd_strdup(msg);
    if (r->sb)
        wd_sandbox_kill(r->sb, WD_KILL_LIMIT);
}

void wd_run_audit_guardrail(wd_run *r, json_t *args, const char *reason, const char *type, const char *severity)
{
    json_t *ev = wd_run_event(r, WD_AE_GUARDRAIL_VIOLATION, 0);
    json_object_set_new(ev, "violation_type", json_string(type));
    json_object_set_new(ev, "severity", json_string(severity));
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args", args ? args : json_null());
    json_object_set_new(ev, "reason", json_string(reason));
    wd_run_audit(r, ev);
}

void wd_run_audit_breaker(wd_run *r, const char *breaker, const wd_breaker_change *ch, const char *tool,
                          const char *model)
{
    if (!ch || !ch->happened)
        return;
    wd_audit_event event = ch->to == WD_BR_OPEN        ? WD_AE_BREAKER_OPENED
                           : ch->to == WD_BR_HALF_OPEN ? WD_AE_BREAKER_HALF_OPEN
                                                       : WD_AE_BREAKER_CLOSED;
    json_t *ev = wd_run_event(r, event, ch->to != WD_BR_OPEN);
    if (!ev)
        return;
    json_object_set_new(ev, "breaker", json_string(breaker));
    json_object_set_new(ev, "circuit_breaker_state", json_string(wd_breaker_state_name(ch->to)));
    json_object_set_new(ev, "reason", json_string(ch->reason));
    if (tool)
        json_object_set_new(ev, "tool_name", json_string(tool));
    if (model)
        json_object_set_new(ev, "model", json_string(model));
    wd_run_audit(r, ev);
}

wd_breaker_cfg wd_run_breaker_cfg(const wd_run *r)
{
    wd_breaker_cfg c = {r->pol->breaker_failure_threshold, r->pol->breaker_open_ms, r->pol->breaker_half_open_probes};
    return c;
}

wd_retry_cfg wd_run_retry_cfg(const wd_run *r)
{
    wd_retry_cfg c = {r->pol->max_retries, r->pol->retry_base_ms, r->pol->retry_max_ms, r->pol->retry_jitter_ms};
    return c;
}

long long wd_run_retry_arm(wd_run *r, int retries, long long retry_after_ms, event_callback_fn cb, char *reason,
                           size_t n)
{
    wd_retry_cfg rc = wd_run_retry_cfg(r);
    if (retries >= rc.max_retries)
        return -1;
    long long wait = wd_retry_delay_ms(&rc, retries, retry_after_ms, wd_retry_random());
    snprintf(reason, n, "transient: retry %d of %lld in %lld ms", retries + 1, rc.max_retries, wait);
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    event_assign(r->op_timer, r->eng->base, -1, 0, cb, r);
    evtimer_add(r->op_timer, &tv);
    return wait;
}

void wd_run_observe(wd_run *r, json_t *ev) { r->eng->hooks->observe(r, ev); }

void wd_run_push_ctx(wd_run *r, lua_State *L, int for_tool) { r->eng->hooks->push_ctx(L, r, for_tool); }

void wd_run_text(wd_run *r, const char *text, size_t len)
{
    if (r->on_text && !r->finishing && len)
        r->on_text(text, len, r->done_ud);
}

void wd_run_progress(wd_run *r, const json_t *p)
{
    if (r->progress && !r->finishing)
        r->progress(p, r->done_ud);
}
