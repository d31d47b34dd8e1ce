/* approve.c - what a person must do about a call (autonomy, requires_approval, risk,
** the hitl triggers) and the wait for them: a request in the state store, polled until it
** is decided, expires or escalates; the run's deadline waits with it */
#include "notify.h"
#include "toolpriv.h"
#include "ask.h"
#include "approval.h"
#include "canon.h"
#include "checkdef.h"
#include "exec.h"
#include "fetch.h"
#include "guard.h"
#include "jsonlua.h"
#include "llm.h"
#include "redact.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPROVAL_POLL_MS 100

#define risk_rank wd_policy_risk_rank

/* a wait for a person (approval.h), the run's while it lasts; made at the first request */
struct wd_appr_state {
    char id[37]; /* "" when none */
    int escalation_audited;
    int expiring_told;    /* notify: the last tenth of its time began */
    int64_t remaining_ns; /* of the run's deadline, which waits too */
    int gate;             /* a detector's escalation: 1 holds the next request, 2 the answer */
    char label[100];      /* what waits: a tool's name, "(run)" or "(final answer)" */
    int64_t unread_ns;    /* since when the store has not answered its polls (0: it has) */
};

/* how long a wait for a person outlasts a store that does not answer (a Redis restarting)
** before the request is given up as unreadable */
#define APPROVAL_UNREAD_MS 10000

/* 0, or -1 with msg saying what is wrong */
int wd_approve_opts(lua_State *L, wd_call_opts *o, const char *name, char *msg, size_t n)
{
    o->justification = "";
    o->urgency = -1;
    o->confidence = -1;
    if (lua_type(L, 4) != LUA_TTABLE)
        return 0;
    if (lua_getfield(L, 4, "justification") == LUA_TSTRING)
        o->justification = lua_tostring(L, -1);
    lua_pop(L, 1);
    int t = lua_getfield(L, 4, "urgency");
    for (int i = 0; i < 4 && t == LUA_TSTRING; i++)
        if (!strcmp(lua_tostring(L, -1), WD_URGENCIES[i]))
            o->urgency = i;
    lua_pop(L, 1);
    if (t != LUA_TNIL && o->urgency < 0) {
        snprintf(msg, n, "invalid options for tool '%s': urgency must be low, normal, high or critical", name);
        return -1;
    }
    t = lua_getfield(L, 4, "confidence");
    int isnum = 0;
    double c = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (t != LUA_TNIL && (t != LUA_TNUMBER || !isnum || !(c >= 0 && c <= 1))) {
        snprintf(msg, n, "invalid options for tool '%s': confidence must be a number from 0 to 1", name);
        return -1;
    }
    if (t != LUA_TNIL)
        o->confidence = c;
    return 0;
}

void wd_approve_decide(const wd_run *r, const wd_policy *p, const wd_tool_policy *tp, const wd_call_opts *o,
                       wd_oversight *ov)
{
    memset(ov, 0, sizeof *ov);
    ov->level = wd_policy_autonomy(p, tp->category);
    ov->needed = risk_rank(tp->risk) >= 4 ? 2 : 1;
    if (ov->level == 0) {
        ov->action = OV_NEVER;
        return;
    }
    if (ov->level <= 2) {
        ov->triggers[ov->ntriggers++] = "autonomy";
        if (ov->level == 1)
            ov->needed = 2;
    }
    if (tp->requires_approval)
        ov->triggers[ov->ntriggers++] = "requires_approval";
    if (risk_rank(tp->risk) >= p->approval_min_risk)
        ov->triggers[ov->ntriggers++] = "risk";
    if (p->hitl_confidence_below >= 0 && o->confidence >= 0 && o->confidence < p->hitl_confidence_below)
        ov->triggers[ov->ntriggers++] = "low_confidence";
    if (p->hitl_cost_above_usd >= 0 && tp->cost_usd > p->hitl_cost_above_usd)
        ov->triggers[ov->ntriggers++] = "cost_threshold";
    if (p->hitl_consecutive_errors > 0 && r->consecutive_errors >= p->hitl_consecutive_errors)
        ov->triggers[ov->ntriggers++] = "error_threshold";
    ov->action = ov->ntriggers ? OV_APPROVE : ov->level == 3 ? OV_NOTIFY : OV_EXECUTE;
}

/* autonomy level 3: the call goes on, and a person hears of it */
void wd_approve_notify(wd_run *r, const wd_tool_policy *tp, const char *name, json_t *args)
{
    char line[500];
    snprintf(line, sizeof line, "agent '%s' calls tool '%s' (category %s at autonomy level 3: execute and notify)",
             r->agent_name ? r->agent_name : "?", name, tp->category ? tp->category : "?");
    json_t *ev = wd_run_event(r, WD_AE_HUMAN_NOTIFIED, 1);
    json_object_set_new(ev, "tool_name", json_string(name));
    json_object_set_new(ev, "tool_args", json_deep_copy(args));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "autonomy_level", json_integer(3));
    json_object_set_new(ev, "reason", json_string(line));
    wd_run_audit(r, ev);
    if (r->eng->notice)
        r->eng->notice(r->eng->notice_ud, line);
}

/* urgency: what the risk says (low, normal, high, critical), raised by the caller's own */
static const int URG_OF_RISK[5] = {0, 0, 1, 2, 3};

/* ** Opens an approval request for `what` (a tool's name, or what a detector holds) with
** args (redacted here; NULL: none) in the store, and fills r->appr (id, label). Returns
** the approval_requested record, not yet written, for the caller to add its triggers
** and audit (caller owns it); NULL when the store cannot take the request. *ttl_ms:
** until it expires. */
static json_t *open_request(wd_run *r, const char *what, const json_t *args, const char *risk, int urg,
                            const char *justification, int needed, int64_t *ttl_ms)
{
    if (!r->appr && !(r->appr = calloc(1, sizeof *r->appr)))
        return NULL;
    wd_policy *p = wd_engine_policy(r->eng);
    int64_t now = wd_store_now(r->eng->store), ttl = p->expiry_ms[urg];
    json_t *approvers = json_object_get(p->routes, risk);
    json_t *args_red = args ? json_deep_copy(args) : json_object();
    wd_redact_value(p, args_red);
    size_t jl = strlen(justification);
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s%,s:o,s:i,s:I,s:I,s:I}", "run_id", r->run_id,
                            "session_id", r->session_id, "user_id", r->user_id ? r->user_id : "", "agent",
                            r->agent_name ? r->agent_name : "", "tool", what, "args", args_red, "risk", risk, "urgency",
                            WD_URGENCIES[urg], "justification", justification, jl > 2000 ? (size_t)2000 : jl,
                            "approvers", json_is_array(approvers) ? json_incref(approvers) : json_array(), "needed",
                            needed, "created_ms", (json_int_t)now, "expires_ms", (json_int_t)(now + ttl), "escalate_ms",
                            (json_int_t)(now + (int64_t)(ttl * p->escalate_at)));
    wd_policy_unref(p);
    char id[37];
    if (!req || wd_approval_create(r->eng->store, req, id) < 0) {
        json_decref(req);
        return NULL;
    }
    json_t *ev = wd_run_event(r, WD_AE_APPROVAL_REQUESTED, 1);
    json_object_set_new(ev, "approval_id", json_string(id));
    json_object_set_new(ev, "tool_name", json_string(what));
    if (args)
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    static const char *const COPY[] = {"risk", "urgency", "justification", "approvers", "needed", "expires_ms"};
    for (int i = 0; i < 6; i++)
        json_object_set(ev, COPY[i], json_object_get(req, COPY[i]));
    json_decref(req);
    memcpy(r->appr->id, id, sizeof id);
    snprintf(r->appr->label, sizeof r->appr->label, "%s", what);
    r->appr->escalation_audited = 0;
    r->appr->expiring_told = 0;
    *ttl_ms = ttl;
    return ev;
}

/* Creates the request and audits it. -1 asked (the run yields with OP_APPROVAL; args
** taken), 1 refused (error table pushed; args freed). */
int wd_approve_ask(wd_run *r, lua_State *L, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
                   int64_t t0, const wd_call_opts *o, const wd_oversight *ov, char *msg, size_t n)
{
    const char *risk = tp->risk ? tp->risk : "medium";
    int urg = URG_OF_RISK[risk_rank(risk)];
    if (o->urgency > urg)
        urg = o->urgency;
    int64_t ttl;
    json_t *ev = open_request(r, name, args, risk, urg, o->justification, ov->needed, &ttl);
    if (!ev) {
        snprintf(msg, n, "state store %s: %s: cannot ask for approval of tool '%s': refused",
                 wd_store_path(r->eng->store), wd_store_error(r->eng->store), name);
        wd_budget_settle(r, &r->tool_hold, 0);
        return wd_tool_refuse(r, L, WD_AE_AUTHORIZATION_DENIED, name, args, msg);
    }
    json_t *trig = json_array();
    for (int i = 0; i < ov->ntriggers; i++)
        json_array_append_new(trig, json_string(ov->triggers[i]));
    json_object_set_new(ev, "trigger", json_string(ov->ntriggers ? ov->triggers[0] : "requires_approval"));
    json_object_set_new(ev, "triggers", trig);
    json_object_set_new(ev, "autonomy_level", json_integer(ov->level));
    if (o->confidence >= 0)
        json_object_set_new(ev, "confidence", json_real(o->confidence));
    if (ov->level <= 2 || r->consecutive_errors)
        json_object_set_new(ev, "consecutive_errors", json_integer(r->consecutive_errors));
    wd_run_audit(r, ev);
    if (r->eng->notice) {
        char line[700], in[40];
        snprintf(line, sizeof line,
                 "waiting for approval of tool '%s' (request %s, %s risk, expires in %s): "
                 "warden approvals approve %s --key-file APPROVER_KEY",
                 name, r->appr->id, risk, wd_fmt_duration(ttl, in, sizeof in), r->appr->id);
        r->eng->notice(r->eng->notice_ud, line);
    }
    r->appr->gate = 0;
    wd_toolcall_request(r, OP_APPROVAL, tp, name, args, idx, t0);
    return -1;
}

static void on_approval_poll(evutil_socket_t fd, short what, void *arg);

static void arm_poll(wd_run *r)
{
    struct timeval tv = {0, APPROVAL_POLL_MS * 1000};
    event_assign(r->op_timer, r->eng->base, -1, 0, on_approval_poll, r);
    evtimer_add(r->op_timer, &tv);
}

/* the run's deadline waits with it: a person's hours are not the agent's */
static void pause_deadline(wd_run *r)
{
    r->appr->remaining_ns = r->deadline_ns - wd_now_ns();
    if (r->appr->remaining_ns < 0)
        r->appr->remaining_ns = 0;
    event_del(r->run_timer);
}

static void resume_deadline(wd_run *r)
{
    int64_t left = r->appr->remaining_ns;
    r->deadline_ns = wd_now_ns() + left;
    struct timeval tv = {(time_t)(left / 1000000000), (suseconds_t)(left % 1000000000 / 1000)};
    evtimer_add(r->run_timer, &tv);
}

static void approval_event(wd_run *r, wd_audit_event event, int success, const wd_approval_state *st, const char *msg)
{
    json_t *ev = wd_run_event(r, event, success);
    json_object_set_new(ev, "approval_id", json_string(r->appr->id));
    json_object_set_new(ev, "tool_name", json_string(r->appr->label));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    if (r->appr->gate)
        json_object_set_new(ev, "trigger", json_string("detector"));
    if (st) {
        json_object_set(ev, "approved_by", st->approved_by);
        json_object_set_new(ev, "approvals_needed", json_integer(st->needed));
        if (st->decided_by[0])
            json_object_set_new(ev, "decided_by", json_string(st->decided_by));
        if (st->decided_via[0])
            json_object_set_new(ev, "decided_via", json_string(st->decided_via));
        json_object_set_new(
            ev, "wait_ms",
            json_integer((st->decided_ms ? st->decided_ms : wd_store_now(r->eng->store)) - st->created_ms));
    }
    if (msg)
        json_object_set_new(ev, "reason", json_string(msg));
    wd_run_audit(r, ev);
}

/* no approval: a held tool call does not run (the agent gets {error = msg}); a run a
** detector held ends rejected */
static void approval_refused(wd_run *r, const char *msg)
{
    if (r->appr->gate) {
        r->appr->id[0] = '\0';
        wd_run_end(r, WD_ST_REJECTED, msg);
        return;
    }
    wd_budget_settle(r, &r->tool_hold, 0);
    wd_tool_record(r, r->tool.name, r->req.args, msg, 0, NULL, 0);
    json_decref(r->req.args);
    r->req.args = NULL;
    r->appr->id[0] = '\0';
    lua_State *co = r->waiting;
    resume_deadline(r);
    wd_run_reply_error(r, co, msg);
}

static void admit_held(wd_run *r);

/* a person approved: what waited goes on (the held call, still through its breaker) */
static void granted(wd_run *r)
{
    r->consecutive_errors = 0; /* a person has looked at the run */
    r->appr->id[0] = '\0';
    resume_deadline(r);
    if (r->appr->gate) { /* what the detector held goes on */
        int finish = r->appr->gate == 2;
        r->appr->gate = 0;
        if (finish)
            wd_run_end(r, WD_ST_COMPLETED, NULL);
        else
            wd_run_start_op(r);
        return;
    }
    admit_held(r);
}

/* the approved call through its breaker (asked without waiting: again with the answer),
** then started */
static void admit_held(wd_run *r)
{
    char msg[700];
    int idx = (int)r->req.tool;
    int admit = wd_toolcall_admit(r, idx, r->tool.name, r->req.args, msg, sizeof msg, admit_held);
    if (admit == 2)
        return;
    if (!admit) {
        json_decref(r->req.args);
        r->req.args = NULL;
        lua_State *co = r->waiting;
        wd_run_reply_error(r, co, msg);
        return;
    }
    wd_toolcall_start(r);
}

static void poll(wd_run *r);

static void on_approval_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    poll(arg);
}

/* the request read (asked without waiting: poll comes again with the answer) and what it
** says done: wait on, go on, or refuse */
static void poll(wd_run *r)
{
    wd_store *s = r->eng->store;
    wd_approval_state st;
    char msg[1000], subject[160];
    wd_store_op op = {.kind = WD_SOP_APPROVAL_GET, .key = r->appr->id, .approval = &st};
    int got;
    if (wd_run_ask(r, &op, poll, &got) == 2)
        return;
    snprintf(subject, sizeof subject, "%s '%s'", r->appr->gate ? "the run at" : "tool", r->appr->label);
    const char *outcome = r->appr->gate ? "the run ends" : "the call was not made";
    if (got < 0) { /* the store is away: the request waits on, for a while */
        int64_t now_ns = wd_now_ns();
        if (!r->appr->unread_ns)
            r->appr->unread_ns = now_ns;
        if (now_ns - r->appr->unread_ns < APPROVAL_UNREAD_MS * 1000000LL) {
            arm_poll(r);
            return;
        }
    }
    r->appr->unread_ns = got >= 0 ? 0 : r->appr->unread_ns;
    if (got <= 0) {
        snprintf(msg, sizeof msg, "approval request %s for %s %s: %s", r->appr->id, subject,
                 got < 0 ? "could not be read from the state store for 10 s" : "is gone from the state store", outcome);
        approval_event(r, WD_AE_APPROVAL_EXPIRED, 0, NULL, msg);
        approval_refused(r, msg);
        return;
    }
    int64_t now = wd_store_now(s);
    if (!strcmp(st.status, "pending") && now >= st.expires_ms &&
        wd_approval_close(s, r->appr->id, "expired", "no decision before it expired", now) > 0) {
        strcpy(st.status, "expired");
        st.decided_ms = now;
    } else if (!strcmp(st.status, "pending") && now >= st.escalate_ms && !st.escalated) {
        wd_store_approval_sweep(s, now); /* marks it escalated for every process to see */
        st.escalated = 1;
    }
    if (st.escalated && !r->appr->escalation_audited) {
        r->appr->escalation_audited = 1;
        snprintf(msg, sizeof msg, "no decision on %s after %lld s: escalated", subject,
                 (long long)((st.escalate_ms - st.created_ms) / 1000));
        approval_event(r, WD_AE_APPROVAL_ESCALATED, 1, &st, msg);
        if (r->eng->notice)
            r->eng->notice(r->eng->notice_ud, msg);
    }
    if (!strcmp(st.status, "pending") && !r->appr->expiring_told &&
        now >= st.expires_ms - (st.expires_ms - st.created_ms) / 10) {
        r->appr->expiring_told = 1; /* a person is told while there is time to decide */
        char in[40];
        snprintf(msg, sizeof msg, "approval request %s for %s expires in %s", r->appr->id, subject,
                 wd_fmt_duration(st.expires_ms - now, in, sizeof in));
        json_t *d = json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:I}", "approval_id", r->appr->id, "subject", subject, "run_id",
                              r->run_id, "user_id", r->user_id, "agent", r->agent_name, "expires_in_ms",
                              (json_int_t)(st.expires_ms - now));
        wd_notify(r->eng, "approval_expiring", msg, d);
        json_decref(d);
    }
    if (!strcmp(st.status, "pending")) {
        wd_approval_state_clear(&st);
        arm_poll(r);
        return;
    }
    if (!strcmp(st.status, "approved")) {
        approval_event(r, WD_AE_APPROVAL_GRANTED, 1, &st, NULL);
        wd_approval_state_clear(&st);
        granted(r);
        return;
    }
    if (!strcmp(st.status, "rejected")) {
        snprintf(msg, sizeof msg, "%s was rejected by %s: %s", subject,
                 st.decided_by[0] ? st.decided_by : "an approver", st.reason[0] ? st.reason : "no reason given");
        approval_event(r, WD_AE_APPROVAL_REJECTED, 0, &st, msg);
    } else {
        snprintf(msg, sizeof msg, "approval of %s %s: %s; %s", subject, st.status,
                 st.reason[0] ? st.reason : "no decision", outcome);
        approval_event(r, WD_AE_APPROVAL_EXPIRED, 0, &st, msg);
    }
    wd_approval_state_clear(&st);
    approval_refused(r, msg);
}

int wd_pipeline_gate(wd_run *r, int finish, const char *detector, const char *reason, const char *risk, char *msg,
                     size_t n)
{
    int tool = !finish && r->req.kind == OP_TOOL && r->tool.name;
    int rank = risk_rank(risk);
    char just[900];
    snprintf(just, sizeof just, "detector '%s' escalated: %s", detector, reason);
    int64_t ttl;
    json_t *ev =
        open_request(r,
                     tool     ? r->tool.name
                     : finish ? "(final answer)"
                              : "(run)",
                     tool ? r->req.args : NULL, WD_RISKS[rank], URG_OF_RISK[rank], just, rank >= 4 ? 2 : 1, &ttl);
    if (!ev) {
        wd_errf(msg, n, "detector '%s' escalated (%s) and the state store %s cannot take the approval request: %s",
                detector, reason, wd_store_path(r->eng->store), wd_store_error(r->eng->store));
        return -1;
    }
    json_object_set_new(ev, "trigger", json_string("detector"));
    json_object_set_new(ev, "triggers", json_pack("[s]", "detector"));
    json_object_set_new(ev, "detector", json_string(detector));
    json_object_set_new(ev, "reason", json_string(reason));
    wd_run_audit(r, ev);
    if (r->eng->notice) {
        char line[900];
        snprintf(line, sizeof line,
                 "detector '%s' escalated (%s): the run waits for approval (request %s): "
                 "warden approvals approve %s --key-file APPROVER_KEY",
                 detector, reason, r->appr->id, r->appr->id);
        r->eng->notice(r->eng->notice_ud, line);
    }
    r->appr->gate = finish ? 2 : 1;
    pause_deadline(r);
    arm_poll(r);
    return 0;
}

void wd_pipeline_approval_cancel(wd_run *r, const char *why)
{
    if (!r->appr || !r->appr->id[0])
        return;
    char reason[400];
    snprintf(reason, sizeof reason, "the run ended first: %s", why ? why : "?");
    wd_approval_close(r->eng->store, r->appr->id, "cancelled", reason, wd_store_now(r->eng->store));
    r->appr->id[0] = '\0';
}

static void approval_start(wd_run *r)
{
    pause_deadline(r);
    arm_poll(r);
}

static void approval_free(wd_run *r)
{
    free(r->appr);
    r->appr = NULL;
}

/* a decision made by another process: the waiting run polls now, not at its next tick */
static void approval_notice(wd_run *r)
{
    if (r->appr && evtimer_pending(r->op_timer, NULL) && event_get_callback(r->op_timer) == on_approval_poll) {
        event_del(r->op_timer);
        event_active(r->op_timer, EV_TIMEOUT, 0);
    }
}

const wd_op_kind wd_op_approval = {"approval", approval_start, wd_pipeline_approval_cancel,
                                   NULL,       approval_free,  approval_notice};
