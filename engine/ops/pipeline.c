/* pipeline.c - the native enforcement pipeline for ctx:call_tool and ctx:llm
** (docs/safety.md), and the operations they start on the loop. */
#include "pipeline.h"
#include "exec.h"
#include "fetch.h"
#include "guard.h"
#include "llm.h"
#include "jsonlua.h"
#include "redact.h"
#include "approval.h"
#include "canon.h"
#include "checkdef.h"
#include "util.h"

#include <lauxlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUMMARY_CHARS 200
#define MAX_RESULT_BYTES (1u << 20)

void wd_push_error_table(lua_State *L, const char *msg)
{
    lua_createtable(L, 0, 1);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "error");
}

/* args is shared, not copied: nothing changes it after the call. result: the summary,
** or why the call failed; value: what the tool returned (NULL when it did not run) for
** the detectors' tool_result event */
static void add_tool_call(wd_run *r, const char *name, json_t *args, const char *result, int ok, json_t *value,
                          int ran)
{
    r->consecutive_errors = ok ? 0 : r->consecutive_errors + 1; /* a hitl trigger */
    if (r->det) {
        json_t *ev = json_pack("{s:s,s:s,s:O,s:b,s:b}", "type", "tool_result", "tool", name, "args",
                               args ? args : json_null(), "success", ok, "refused", !ran);
        if (ev && value)
            json_object_set(ev, "result", value);
        if (ev && !ok)
            json_object_set_new(ev, "error", json_string(result ? result : "error"));
        wd_run_observe(r, ev);
    }
    if (json_array_size(r->tool_calls) >= WD_MAX_TOOL_CALLS_IN_RESULT) {
        r->tool_calls_omitted++; /* the audit log keeps every call */
        return;
    }
    json_t *c = json_object();
    json_object_set_new(c, "name", json_string(name));
    json_object_set_new(c, "args", args ? json_incref(args) : json_object());
    json_object_set_new(c, "result", json_string(result ? result : ""));
    json_object_set_new(c, "success", json_boolean(ok));
    json_array_append_new(r->tool_calls, c);
}

/* caller frees: the first SUMMARY_CHARS characters of s (UTF-8 safe); *truncated set */
static char *summary(const char *s, int *truncated)
{
    size_t l = strlen(s), cut = 0, chars = 0;
    while (cut < l && chars < SUMMARY_CHARS) {
        cut++;
        while (cut < l && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut++;
        chars++;
    }
    *truncated = cut < l;
    return wd_strndup(s, cut);
}

/* a refusal: audited under event (NULL: by the caller), recorded in tool_calls, {error=msg}
** for the agent */
static json_t *refusal(wd_run *r, const char *event, const char *name, json_t *args, const char *msg)
{
    json_t *ev = wd_run_event(r, event, 0);
    json_object_set_new(ev, "tool_name", json_string(name));
    json_object_set_new(ev, "tool_args", args ? json_deep_copy(args) : json_null());
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "reason", json_string(msg));
    json_object_set_new(ev, "error", json_string(msg));
    return ev;
}

static int refuse(wd_run *r, lua_State *L, const char *event, const char *name, json_t *args,
                  const char *msg)
{
    if (event) /* NULL: audited already */
        wd_run_audit(r, refusal(r, event, name, args, msg));
    add_tool_call(r, name, args, msg, 0, NULL, 0);
    json_decref(args);
    wd_push_error_table(L, msg);
    return 1;
}

/* a refused name the policy does not declare: marked, so that no metric takes it as a label */
static int refuse_undeclared(wd_run *r, lua_State *L, const char *name, json_t *args, const char *msg)
{
    json_t *ev = refusal(r, "authorization_denied", name, args, msg);
    json_object_set_new(ev, "tool_undeclared", json_true());
    wd_run_audit(r, ev);
    return refuse(r, L, NULL, name, args, msg);
}

static int valid_tool_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}

static int allows(const wd_run *r, const char *name)
{
    for (size_t i = 0; i < r->nallowed; i++)
        if (!strcmp(r->allowed[i], name))
            return 1;
    return 0;
}

int wd_tool_allow(wd_run *r, const char *name)
{
    if (allows(r, name))
        return 0;
    char **v = realloc(r->allowed, (r->nallowed + 1) * sizeof *v);
    if (!v)
        return -1;
    r->allowed = v;
    if (!(v[r->nallowed] = wd_strdup(name)))
        return -1;
    r->nallowed++;
    return 0;
}

static int find_impl(wd_run *r, const char *name)
{
    for (size_t i = 0; i < r->ntools; i++)
        if (!strcmp(r->tools[i].name, name))
            return (int)i;
    return -1;
}

/* registers the spec table at the top of L as tool `name`; pops it. -1 with message pushed */
static int register_tool(wd_run *r, lua_State *L, const char *name, const char *file)
{
    char err[600];
    json_t *params;
    wd_schema *schema;
    if (wd_check_tool_def(L, -1, name, file, &params, &schema, err, sizeof err) < 0) {
        lua_pop(L, 1);
        lua_pushstring(L, err);
        return -1;
    }
    wd_tool_impl *t = realloc(r->tools, (r->ntools + 1) * sizeof *t);
    if (!t) {
        json_decref(params);
        wd_schema_free(schema);
        lua_pop(L, 1);
        lua_pushliteral(L, "out of memory");
        return -1;
    }
    r->tools = t;
    t = &r->tools[r->ntools];
    memset(t, 0, sizeof *t);
    t->name = wd_strdup(name);
    if (asprintf(&t->breaker, "tool:%s", name) < 0)
        t->breaker = NULL;
    t->parameters = params;
    t->schema = schema;
    /* read raw: this runs outside the script's slice (warden.tool checked their types) */
    lua_pushliteral(L, "description");
    lua_rawget(L, -2);
    t->description = wd_strdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    lua_pushliteral(L, "run");
    lua_rawget(L, -2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return (int)r->ntools++;
}

/* a JSON value's size as prompt text, counted as wd_lua_to_json_sized does */
static size_t json_text_bytes(const json_t *v, int depth)
{
    size_t n = 0;
    const char *k;
    json_t *x;
    if (depth > 64)
        return 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v);
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x)
            n += strlen(k) + json_text_bytes(x, depth + 1);
        return n;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++)
            n += json_text_bytes(json_array_get(v, i), depth + 1);
        return n;
    default:
        return 4;
    }
}

json_t *wd_run_tool_specs(wd_run *r)
{
    if (r->tool_specs && r->tool_specs_n == r->ntools)
        return r->tool_specs;
    json_t *specs = json_array();
    for (size_t i = 0; specs && i < r->ntools; i++) {
        json_t *t = json_pack("{s:s,s:s,s:O?}", "name", r->tools[i].name, "description",
                              r->tools[i].description ? r->tools[i].description : "", "parameters",
                              r->tools[i].parameters);
        if (!t || json_array_append_new(specs, t) < 0) {
            json_decref(specs);
            return NULL;
        }
    }
    if (!specs)
        return NULL;
    json_decref(r->tool_specs);
    r->tool_specs = specs;
    r->tool_specs_n = r->ntools;
    r->tool_specs_bytes = json_text_bytes(specs, 0); /* for the estimate of a call's input */
    return specs;
}

int wd_tool_load(wd_run *r, lua_State *L, const char *name)
{
    int i = find_impl(r, name);
    if (i >= 0)
        return i;
    if (!valid_tool_name(name)) {
        lua_pushfstring(L, "'%s' is not a valid tool name", name);
        return -1;
    }
    char path[2048], rel[256];
    snprintf(path, sizeof path, "%s/tools/%s.lua", r->agent_dir, name);
    snprintf(rel, sizeof rel, "tools/%s.lua", name);
    int rc = wd_sandbox_loadfile(L, path, path);
    if (rc == WD_SANDBOX_NOFILE) { /* then agents/tools/ beside the agent's directory */
        lua_pop(L, 1);
        char *d = wd_strdup(r->agent_dir);
        snprintf(path, sizeof path, "%s/tools/%s.lua", d ? dirname(d) : ".", name);
        free(d);
        rc = wd_sandbox_loadfile(L, path, path);
    }
    if (rc == WD_SANDBOX_NOFILE) {
        lua_pop(L, 1);
        lua_pushfstring(L, "no script for tool '%s' (looked for %s in the agent's directory and agents/tools/)",
                        name, rel);
        return -1;
    }
    if (rc < 0)
        return -1;
    /* the tool file's own code runs under the script's limits, not the engine's slack */
    int slack = r->sb->in_engine;
    r->sb->in_engine = 0;
    rc = lua_pcall(L, 0, 1, 0);
    r->sb->in_engine = slack;
    if (rc != LUA_OK) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushfstring(L, "%s raised a non-string error", path);
        }
        return -1;
    }
    return register_tool(r, L, name, path);
}

static void start_tool(wd_run *r);

/* the tool's breaker: 1 admitted (r->tool.admitted, .probe set), 0 refused at once
** while open, without running the handler: audited and listed, msg says why */
static int admit_tool(wd_run *r, int idx, const char *name, json_t *args, char *msg, size_t msgn)
{
    const char *bname = r->tools[idx].breaker ? r->tools[idx].breaker : "tool:?";
    wd_breaker_cfg bc = wd_run_breaker_cfg(r);
    wd_breaker_change ch;
    int probe;
    if (!wd_breakers_admit(r->eng->breakers, bname, &bc, &probe, msg, msgn, &ch)) {
        wd_budget_settle(r, &r->tool_hold, 0);
        wd_run_audit_breaker(r, bname, &ch, name, NULL);
        json_t *ev = wd_run_event(r, "tool_call", 0);
        json_object_set_new(ev, "tool_name", json_string(name));
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
        json_object_set_new(ev, "agent_step", json_integer(r->steps));
        json_object_set_new(ev, "error", json_string(msg));
        json_object_set_new(ev, "reason", json_string("circuit_open"));
        json_object_set_new(ev, "circuit_breaker_state",
                            json_string(wd_breaker_state_name(wd_breakers_state(r->eng->breakers, bname))));
        wd_run_audit(r, ev);
        add_tool_call(r, name, args, msg, 0, NULL, 0);
        return 0;
    }
    wd_run_audit_breaker(r, bname, &ch, name, NULL);
    r->tool.admitted = 1;
    r->tool.probe = probe;
    return 1;
}

/* ---- approvals: a tool call waits for a person (approval.h) ---------------------- */

#define APPROVAL_POLL_MS 100

#define risk_rank wd_policy_risk_rank

/* what the agent said of a call: ctx:call_tool(name, args, {justification=, urgency=,
** confidence=}) */
typedef struct call_opts {
    const char *justification; /* kept alive by the opts table while the call is checked */
    int urgency;               /* index into WD_URGENCIES, -1 not given */
    double confidence;         /* 0..1, -1 not given */
} call_opts;

/* 0, or -1 with msg saying what is wrong */
static int read_opts(lua_State *L, call_opts *o, const char *name, char *msg, size_t n)
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

/* ** What a person must do about a call (docs/safety.md, Autonomy levels and human-in-the-loop triggers). The strictest of:
** the autonomy level of the tool's category (5-4 execute, 3 execute and notify, 2
** approval, 1 senior approval: two approvers, 0 never), requires_approval, a risk at or
** above approvals.min_risk, and the hitl triggers (stated confidence below
** hitl.confidence_below, estimated cost above hitl.cost_above_usd, hitl.consecutive_errors
** failed or refused calls in a row). */
enum { OV_EXECUTE, OV_NOTIFY, OV_APPROVE, OV_NEVER };

typedef struct oversight {
    int action, needed, level;
    const char *triggers[6];
    int ntriggers;
} oversight;

static void decide(const wd_run *r, const wd_policy *p, const wd_tool_policy *tp, const call_opts *o, oversight *ov)
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
static void notify(wd_run *r, const wd_tool_policy *tp, const char *name, json_t *args)
{
    char line[500];
    snprintf(line, sizeof line, "agent '%s' calls tool '%s' (category %s at autonomy level 3: execute and notify)",
             r->agent_name ? r->agent_name : "?", name, tp->category ? tp->category : "?");
    json_t *ev = wd_run_event(r, "human_notified", 1);
    json_object_set_new(ev, "tool_name", json_string(name));
    json_object_set_new(ev, "tool_args", json_deep_copy(args));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "autonomy_level", json_integer(3));
    json_object_set_new(ev, "reason", json_string(line));
    wd_run_audit(r, ev);
    if (r->eng->notice)
        r->eng->notice(r->eng->notice_ud, line);
}

/* the call the loop starts after the yield; takes ownership of args */
static void set_request(wd_run *r, wd_opkind kind, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
                        int64_t t0)
{
    json_decref(r->req.args);
    r->req.kind = kind;
    r->req.tool = (size_t)idx;
    r->req.args = args;
    r->req.t0 = t0;
    free(r->tool.name);
    r->tool.name = wd_strdup(name);
    r->tool.timeout_ms = tp->timeout_ms;
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
    wd_policy *p = wd_engine_policy(r->eng);
    int64_t now = wd_store_now(r->eng->store), ttl = p->expiry_ms[urg];
    json_t *approvers = json_object_get(p->routes, risk);
    json_t *args_red = args ? json_deep_copy(args) : json_object();
    wd_redact_value(p, args_red);
    size_t jl = strlen(justification);
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s%,s:o,s:i,s:I,s:I,s:I}", "run_id", r->run_id,
                            "session_id", r->session_id, "user_id", r->user_id ? r->user_id : "", "agent",
                            r->agent_name ? r->agent_name : "", "tool", what, "args", args_red, "risk", risk,
                            "urgency", WD_URGENCIES[urg], "justification", justification, jl > 2000 ? (size_t)2000 : jl,
                            "approvers", json_is_array(approvers) ? json_incref(approvers) : json_array(), "needed",
                            needed, "created_ms", (json_int_t)now, "expires_ms", (json_int_t)(now + ttl),
                            "escalate_ms", (json_int_t)(now + (int64_t)(ttl * p->escalate_at)));
    wd_policy_unref(p);
    char id[37];
    if (!req || wd_approval_create(r->eng->store, req, id) < 0) {
        json_decref(req);
        return NULL;
    }
    json_t *ev = wd_run_event(r, "approval_requested", 1);
    json_object_set_new(ev, "approval_id", json_string(id));
    json_object_set_new(ev, "tool_name", json_string(what));
    if (args)
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    static const char *const COPY[] = {"risk", "urgency", "justification", "approvers", "needed", "expires_ms"};
    for (int i = 0; i < 6; i++)
        json_object_set(ev, COPY[i], json_object_get(req, COPY[i]));
    json_decref(req);
    memcpy(r->appr.id, id, sizeof id);
    snprintf(r->appr.label, sizeof r->appr.label, "%s", what);
    r->appr.escalation_audited = 0;
    *ttl_ms = ttl;
    return ev;
}

/* Creates the request and audits it. -1 asked (the run yields with OP_APPROVAL; args
** taken), 1 refused (error table pushed; args freed). */
static int ask_approval(wd_run *r, lua_State *L, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
                        int64_t t0, const call_opts *o, const oversight *ov, char *msg, size_t n)
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
        return refuse(r, L, "authorization_denied", name, args, msg);
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
        char line[700];
        snprintf(line, sizeof line,
                 "waiting for approval of tool '%s' (request %s, %s risk, expires in %lld s): "
                 "warden approvals approve %s --key-file APPROVER_KEY",
                 name, r->appr.id, risk, (long long)(ttl / 1000), r->appr.id);
        r->eng->notice(r->eng->notice_ud, line);
    }
    r->appr.gate = 0;
    set_request(r, OP_APPROVAL, tp, name, args, idx, t0);
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
    r->appr.remaining_ns = r->deadline_ns - wd_now_ns();
    if (r->appr.remaining_ns < 0)
        r->appr.remaining_ns = 0;
    event_del(r->run_timer);
}

static void resume_deadline(wd_run *r)
{
    int64_t left = r->appr.remaining_ns;
    r->deadline_ns = wd_now_ns() + left;
    struct timeval tv = {(time_t)(left / 1000000000), (suseconds_t)(left % 1000000000 / 1000)};
    evtimer_add(r->run_timer, &tv);
}

static void approval_event(wd_run *r, const char *event, int success, const wd_approval_state *st, const char *msg)
{
    json_t *ev = wd_run_event(r, event, success);
    json_object_set_new(ev, "approval_id", json_string(r->appr.id));
    json_object_set_new(ev, "tool_name", json_string(r->appr.label));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    if (r->appr.gate)
        json_object_set_new(ev, "trigger", json_string("detector"));
    if (st) {
        json_object_set(ev, "approved_by", st->approved_by);
        json_object_set_new(ev, "approvals_needed", json_integer(st->needed));
        if (st->decided_by[0])
            json_object_set_new(ev, "decided_by", json_string(st->decided_by));
        if (st->decided_via[0])
            json_object_set_new(ev, "decided_via", json_string(st->decided_via));
        json_object_set_new(ev, "wait_ms", json_integer((st->decided_ms ? st->decided_ms : wd_store_now(r->eng->store)) - st->created_ms));
    }
    if (msg)
        json_object_set_new(ev, "reason", json_string(msg));
    wd_run_audit(r, ev);
}

/* no approval: a held tool call does not run (the agent gets {error = msg}); a run a
** detector held ends rejected */
static void approval_refused(wd_run *r, const char *msg)
{
    if (r->appr.gate) {
        r->appr.id[0] = '\0';
        wd_run_end(r, WD_ST_REJECTED, msg);
        return;
    }
    wd_budget_settle(r, &r->tool_hold, 0);
    add_tool_call(r, r->tool.name, r->req.args, msg, 0, NULL, 0);
    json_decref(r->req.args);
    r->req.args = NULL;
    r->appr.id[0] = '\0';
    lua_State *co = r->waiting;
    r->sb->in_engine++;
    wd_push_error_table(co, msg);
    r->sb->in_engine--;
    resume_deadline(r);
    wd_run_schedule(r, co, 1);
}

static void on_approval_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    wd_store *s = r->eng->store;
    wd_approval_state st;
    char msg[1000], subject[160];
    snprintf(subject, sizeof subject, "%s '%s'", r->appr.gate ? "the run at" : "tool", r->appr.label);
    const char *outcome = r->appr.gate ? "the run ends" : "the call was not made";
    int got = wd_approval_get(s, r->appr.id, &st);
    if (got <= 0) {
        snprintf(msg, sizeof msg, "approval request %s for %s %s: %s", r->appr.id, subject,
                 got < 0 ? "cannot be read from the state store" : "is gone from the state store", outcome);
        approval_event(r, "approval_expired", 0, NULL, msg);
        approval_refused(r, msg);
        return;
    }
    int64_t now = wd_store_now(s);
    if (!strcmp(st.status, "pending") && now >= st.expires_ms &&
        wd_approval_close(s, r->appr.id, "expired", "no decision before it expired", now) > 0) {
        strcpy(st.status, "expired");
        st.decided_ms = now;
    } else if (!strcmp(st.status, "pending") && now >= st.escalate_ms && !st.escalated) {
        wd_approval_sweep(s, now); /* marks it escalated for every process to see */
        st.escalated = 1;
    }
    if (st.escalated && !r->appr.escalation_audited) {
        r->appr.escalation_audited = 1;
        snprintf(msg, sizeof msg, "no decision on %s after %lld s: escalated", subject,
                 (long long)((st.escalate_ms - st.created_ms) / 1000));
        approval_event(r, "approval_escalated", 1, &st, msg);
        if (r->eng->notice)
            r->eng->notice(r->eng->notice_ud, msg);
    }
    if (!strcmp(st.status, "pending")) {
        wd_approval_state_clear(&st);
        arm_poll(r);
        return;
    }
    if (!strcmp(st.status, "approved")) {
        approval_event(r, "approval_granted", 1, &st, NULL);
        wd_approval_state_clear(&st);
        r->consecutive_errors = 0; /* a person has looked at the run */
        r->appr.id[0] = '\0';
        resume_deadline(r);
        if (r->appr.gate) { /* what the detector held goes on */
            int finish = r->appr.gate == 2;
            r->appr.gate = 0;
            if (finish)
                wd_run_end(r, WD_ST_COMPLETED, NULL);
            else
                wd_run_start_op(r);
            return;
        }
        r->tool.retries = 0;
        int idx = (int)r->req.tool;
        if (!admit_tool(r, idx, r->tool.name, r->req.args, msg, sizeof msg)) {
            json_decref(r->req.args);
            r->req.args = NULL;
            lua_State *co = r->waiting;
            r->sb->in_engine++;
            wd_push_error_table(co, msg);
            r->sb->in_engine--;
            wd_run_schedule(r, co, 1);
            return;
        }
        start_tool(r);
        return;
    }
    if (!strcmp(st.status, "rejected")) {
        snprintf(msg, sizeof msg, "%s was rejected by %s: %s", subject, st.decided_by[0] ? st.decided_by : "an approver",
                 st.reason[0] ? st.reason : "no reason given");
        approval_event(r, "approval_rejected", 0, &st, msg);
    } else {
        snprintf(msg, sizeof msg, "approval of %s %s: %s; %s", subject, st.status,
                 st.reason[0] ? st.reason : "no decision", outcome);
        approval_event(r, "approval_expired", 0, &st, msg);
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
    json_t *ev = open_request(r, tool ? r->tool.name : finish ? "(final answer)" : "(run)", tool ? r->req.args : NULL,
                              WD_RISKS[rank], URG_OF_RISK[rank], just, rank >= 4 ? 2 : 1, &ttl);
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
        snprintf(line, sizeof line, "detector '%s' escalated (%s): the run waits for approval (request %s): "
                 "warden approvals approve %s --key-file APPROVER_KEY", detector, reason, r->appr.id, r->appr.id);
        r->eng->notice(r->eng->notice_ud, line);
    }
    r->appr.gate = finish ? 2 : 1;
    pause_deadline(r);
    arm_poll(r);
    return 0;
}

void wd_pipeline_approval_cancel(wd_run *r, const char *why)
{
    if (!r->appr.id[0])
        return;
    char reason[400];
    snprintf(reason, sizeof reason, "the run ended first: %s", why ? why : "?");
    wd_approval_close(r->eng->store, r->appr.id, "cancelled", reason, wd_store_now(r->eng->store));
    r->appr.id[0] = '\0';
}

int wd_pipeline_tool(wd_run *r, lua_State *L)
{
    int64_t t0 = wd_now_ns();
    size_t name_len;
    const char *asked = luaL_checklstring(L, 2, &name_len);
    char name[160]; /* as asked, fit to print and to log: NUL and non-UTF-8 bytes as \xNN */
    wd_cstr_copy(name, sizeof name, asked, name_len);
    char msg[700];
    json_t *args = NULL;
    int rc;
    if (++r->ncalls > r->pol->max_tool_calls) { /* a loop of calls ends here, whatever it catches */
        snprintf(msg, sizeof msg, "tool call limit: the run asked for more than %lld tool calls "
                 "(defaults.max_tool_calls); the last was %s", r->pol->max_tool_calls, name);
        wd_run_limit(r, WD_ST_MAX_ITERATIONS, msg);
        return luaL_error(L, "run stopped: %s", msg);
    }
    r->sb->in_engine++;
    wd_policy *p = wd_engine_policy(r->eng);
    if (wd_run_may_act(r, msg, sizeof msg) < 0) {
        wd_push_error_table(L, msg);
        rc = 1;
        goto out;
    }
    if (r->tool.active) { /* a handler reached the agent's ctx: one tool call at a time */
        wd_push_error_table(L, "tools cannot call other tools");
        rc = 1;
        goto out;
    }
    /* arguments as JSON first, so every audited refusal shows what was asked; a
    ** conversion failure is reported after the authorization checks (docs/safety.md) */
    char bad_args[400] = "";
    int at = lua_type(L, 3);
    if (at == LUA_TTABLE) {
        char err[300];
        args = wd_lua_to_json(L, 3, err, sizeof err);
        if (!args)
            snprintf(bad_args, sizeof bad_args, "%s", err);
    } else if (at == LUA_TSTRING) {
        args = json_loads(lua_tostring(L, 3), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        if (!args)
            snprintf(bad_args, sizeof bad_args, "not valid JSON");
    } else if (at == LUA_TNIL || at == LUA_TNONE) {
        args = json_object();
    } else {
        snprintf(bad_args, sizeof bad_args, "expected an object, got %s", lua_typename(L, at));
    }
    if (r->det) /* every request, refused or not: a loop of refusals is a loop */
        wd_run_observe(r, json_pack("{s:s,s:s,s:O}", "type", "tool_call", "tool", name, "args",
                                     args ? args : json_null()));
    /* the agent's own list first: whatever the model asks for, an agent reaches only
    ** the tools it names (a workflow its steps) */
    if (!allows(r, name) || strlen(name) != name_len) {
        snprintf(msg, sizeof msg, "tool '%s' is not one of agent %s's tools", name,
                 r->agent_name ? r->agent_name : "?");
        rc = refuse_undeclared(r, L, name, args, msg);
        goto out;
    }
    const wd_tool_policy *tp = wd_policy_tool(p, name);
    if (!tp) {
        snprintf(msg, sizeof msg, "tool '%s' is not declared in the policy: blocked", name);
        rc = refuse_undeclared(r, L, name, args, msg);
        goto out;
    }
    const wd_user *u = wd_policy_user(p, r->user_id);
    if (!u) {
        snprintf(msg, sizeof msg, "user '%s' is no longer in the policy", r->user_id);
        rc = refuse(r, L, "authorization_denied", name, args, msg);
        goto out;
    }
    if (u->role < tp->permission) {
        snprintf(msg, sizeof msg, "permission denied: tool '%s' requires the '%s' role; user '%s' has '%s'", name,
                 p->roles.v[tp->permission], u->name, p->roles.v[u->role]);
        rc = refuse(r, L, "authorization_denied", name, args, msg);
        goto out;
    }
    if (bad_args[0]) {
        snprintf(msg, sizeof msg, "invalid arguments for tool '%s': %s", name, bad_args);
        rc = refuse(r, L, "validation_failed", name, args, msg);
        goto out;
    }
    int idx = wd_tool_load(r, L, name);
    if (idx < 0) {
        snprintf(msg, sizeof msg, "tool '%s' cannot be loaded: %s", name,
                 lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
        lua_pop(L, 1);
        rc = refuse(r, L, "tool_call", name, args, msg);
        goto out;
    }
    if (!json_is_object(args)) {
        snprintf(msg, sizeof msg, "invalid arguments for tool '%s': expected an object", name);
        rc = refuse(r, L, "validation_failed", name, args, msg);
        goto out;
    }
    char err[600];
    if (wd_schema_validate(r->tools[idx].schema, args, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "invalid arguments for tool '%s': %s", name, err);
        rc = refuse(r, L, "validation_failed", name, args, msg);
        goto out;
    }
    int forbidden = wd_guard_patterns(&tp->forbidden, r->tools[idx].schema, r->agent_dir, args, err, sizeof err) < 0;
    if (forbidden || wd_guard_resources(tp, r->tools[idx].schema, r->agent_dir, args, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "guardrail: tool '%s' refused: %s", name, err);
        json_t *ev = refusal(r, "guardrail_violation", name, args, msg);
        json_object_set_new(ev, "violation_type", json_string(forbidden ? "forbidden_pattern" : "resource_access_denied"));
        json_object_set_new(ev, "severity", json_string(forbidden ? "critical" : "high"));
        wd_run_audit(r, ev);
        rc = refuse(r, L, NULL, name, args, msg);
        goto out;
    }
    call_opts opts;
    if (read_opts(L, &opts, name, msg, sizeof msg) < 0) {
        rc = refuse(r, L, "validation_failed", name, args, msg);
        goto out;
    }
    if (tp->rate_limit_per_hour > 0) {
        char key[300], what[200];
        snprintf(key, sizeof key, "tool:%s:user:%s", name, r->user_id);
        snprintf(what, sizeof what, "tool '%s' for user %s", name, r->user_id);
        int64_t retry;
        int got = wd_rate_take(r, key, tp->rate_limit_per_hour, what, &retry, msg, sizeof msg);
        if (got <= 0) {
            rc = refuse(r, L, got == 0 ? "rate_limited" : "tool_call", name, args, msg);
            if (got == 0) {
                lua_pushinteger(L, retry);
                lua_setfield(L, -2, "retry_after_ms");
            }
            goto out;
        }
    }
    /* the tool's cost, reserved against the run's limit and every budget until it ends */
    if (tp->cost_usd > 0 && !wd_budget_reserve(r, tp->cost_usd, name, args, &r->tool_hold, msg, sizeof msg)) {
        rc = refuse(r, L, NULL, name, args, msg);
        goto out;
    }
    oversight ov;
    decide(r, p, tp, &opts, &ov);
    if (ov.action == OV_NEVER) {
        wd_budget_settle(r, &r->tool_hold, 0);
        snprintf(msg, sizeof msg, "tool '%s' is never run by an agent: category '%s' is at autonomy level 0", name,
                 tp->category ? tp->category : "?");
        rc = refuse(r, L, "authorization_denied", name, args, msg);
        goto out;
    }
    if (ov.action == OV_NOTIFY)
        notify(r, tp, name, args);
    if (ov.action == OV_APPROVE) {
        rc = ask_approval(r, L, tp, name, args, idx, t0, &opts, &ov, msg, sizeof msg);
        if (rc < 0) { /* asked: the run waits for the decision */
            r->sb->in_engine--;
            wd_policy_unref(p);
            return wd_sandbox_yield(L);
        }
        goto out;
    }
    if (!admit_tool(r, idx, name, args, msg, sizeof msg)) {
        json_decref(args);
        wd_push_error_table(L, msg);
        rc = 1;
        goto out;
    }
    r->tool.retries = 0;
    /* accepted: the handler runs from the loop */
    set_request(r, OP_TOOL, tp, name, args, idx, t0);
    r->sb->in_engine--;
    wd_policy_unref(p);
    return wd_sandbox_yield(L);
out:
    r->sb->in_engine--;
    wd_policy_unref(p);
    return rc;
}

/* bytes of the strings (and keys) in a table, 8 levels deep at most: what a call's input
** estimate is made from. Raw traversal: no metamethod runs. */
static size_t text_bytes(lua_State *L, int idx, int depth)
{
    size_t n = 0;
    if (depth > 8 || !lua_checkstack(L, 3))
        return 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int t = lua_type(L, -1);
        if (t == LUA_TSTRING)
            n += lua_rawlen(L, -1);
        else if (t == LUA_TTABLE)
            n += text_bytes(L, -1, depth + 1);
        else
            n += 4;
        if (lua_type(L, -2) == LUA_TSTRING)
            n += lua_rawlen(L, -2);
        lua_pop(L, 1);
    }
    return n;
}

static void end_request(wd_run *r, wd_status st, const char *msg)
{
    r->req.kind = OP_END;
    r->req.end_status = st;
    free(r->req.end_error);
    r->req.end_error = wd_strdup(msg);
}

int wd_pipeline_llm(wd_run *r, lua_State *L)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    char msg[300];
    if (wd_run_may_act(r, msg, sizeof msg) < 0) {
        end_request(r, WD_ST_FAILED, msg);
        return wd_sandbox_yield(L);
    }
    /* the iteration limit ends the run: a custom loop cannot ignore it */
    if (r->steps >= r->max_iterations) {
        snprintf(msg, sizeof msg, "max_iterations: the agent reached its limit of %d LLM calls", r->max_iterations);
        end_request(r, WD_ST_MAX_ITERATIONS, msg);
        return wd_sandbox_yield(L);
    }
    wd_policy *p = wd_engine_policy(r->eng);
    double limit = wd_budget_per_run(p, r->user_id);
    wd_policy_unref(p);
    if (r->cost >= limit) {
        snprintf(msg, sizeof msg, "cost limit: the run spent $%.4f of its $%.2f limit", r->cost, limit);
        json_t *ev = wd_run_event(r, "budget_exceeded", 0);
        json_object_set_new(ev, "cost_usd", json_real(r->cost));
        json_object_set_new(ev, "reason", json_string(msg));
        wd_run_audit(r, ev);
        end_request(r, WD_ST_BUDGET_EXCEEDED, msg);
        return wd_sandbox_yield(L);
    }
    lua_getfield(L, 2, "model");
    const char *model = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                       : (r->default_model ? r->default_model : "default");
    free(r->req.model);
    r->req.model = wd_strdup(model);
    lua_pop(L, 1);
    /* the call as JSON: what goes over the wire, and what a cached answer is keyed on.
    ** Its conversion measures the input too; a mock call without a cache only measures */
    int as_json = !r->llm || strncmp(r->llm, "mock:", 5) || r->pol->cache_enabled;
    lua_getfield(L, 2, "messages");
    r->req.nmessages = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    r->req.input_bytes = lua_istable(L, -1) && !as_json ? text_bytes(L, -1, 0) : 0;
    lua_pop(L, 1);
    /* a whole number, sent as one: a 7.0 from decoded JSON must not slip past the bound */
    int mt = lua_getfield(L, 2, "max_tokens"), whole;
    lua_Integer max_tokens = lua_tointegerx(L, -1, &whole);
    if (mt != LUA_TNIL && (mt != LUA_TNUMBER || !whole || max_tokens <= 0 || max_tokens > 100000000))
        return luaL_error(L, "ctx:llm: max_tokens must be a whole number from 1 to 100000000");
    r->req.max_tokens = mt == LUA_TNIL ? 0 : (long long)max_tokens;
    r->req.temperature = lua_getfield(L, 2, "temperature") == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    int given = lua_getfield(L, 2, "tools") != LUA_TNIL;
    if (lua_istable(L, -1) && !as_json)
        r->req.input_bytes += text_bytes(L, -1, 0);
    /* the runner's loops ask for the run's loaded tools by name: the engine holds them
    ** as JSON already, and a table converted at every call cost a third of the call's
    ** conversion */
    int loaded = lua_getfield(L, 2, "_loaded_tools") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 4);
    json_decref(r->req.call);
    r->req.call = NULL;
    if (loaded && given)
        return luaL_error(L, "ctx:llm: tools and _loaded_tools together: give one of them");
    if (loaded && wd_run_tool_specs(r))
        r->req.input_bytes += r->tool_specs_bytes;
    if (as_json) {
        char err[300];
        json_t *call = json_object();
        static const char *const FIELDS[] = {"messages", "tools", "temperature", NULL};
        json_t *specs = loaded ? wd_run_tool_specs(r) : NULL;
        if (specs)
            json_object_set(call, "tools", specs);
        for (int i = 0; FIELDS[i]; i++) {
            if (lua_getfield(L, 2, FIELDS[i]) != LUA_TNIL) {
                size_t text = 0;
                json_t *v = wd_lua_to_json_sized(L, -1, &text, err, sizeof err);
                if (i < 2) /* messages and tools: the temperature is no input */
                    r->req.input_bytes += text;
                if (!v) {
                    json_decref(call);
                    return luaL_error(L, "ctx:llm: %s: %s", FIELDS[i], err);
                }
                json_object_set_new(call, FIELDS[i], v);
            }
            lua_pop(L, 1);
        }
        if (r->req.max_tokens)
            json_object_set_new(call, "max_tokens", json_integer(r->req.max_tokens));
        if (!json_is_array(json_object_get(call, "messages"))) {
            json_decref(call);
            return luaL_error(L, "ctx:llm: messages must be a list of {role=, content=}");
        }
        r->req.call = call;
    }
    r->steps++;
    r->req.t0 = wd_now_ns();
    r->req.kind = OP_LLM;
    return wd_sandbox_yield(L);
}

/* ---- operations ------------------------------------------------------------ */

static void on_sleep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    wd_run_schedule(r, r->waiting, 0);
}

static void on_tool_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    char msg[200];
    event_del(r->op_timer);
    snprintf(msg, sizeof msg, "tool '%s' timed out after %lld ms", r->tool.name, r->tool.timeout_ms);
    wd_pipeline_tool_done(r, 0, 0, msg, 0);
}

/* runs the handler (again, on a retry) in a fresh coroutine under the tool's deadline */
static void run_handler(wd_run *r)
{
    wd_engine *e = r->eng;
    lua_State *L = r->L;
    wd_tool_impl *t = &r->tools[r->tool.impl];
    r->sb->in_engine++;
    lua_State *co = lua_newthread(L);
    r->tool.co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->fn_ref);
    wd_json_push(co, r->tool.args);
    wd_run_push_ctx(r, co, 1);
    r->sb->in_engine--;
    r->tool.co = co;
    r->tool.deadline_ns = wd_now_ns() + r->tool.timeout_ms * 1000000LL;
    struct timeval tv = {(time_t)(r->tool.timeout_ms / 1000), (suseconds_t)(r->tool.timeout_ms % 1000) * 1000};
    event_assign(r->tool.timer, e->base, -1, 0, on_tool_timeout, r);
    evtimer_add(r->tool.timer, &tv);
    wd_run_schedule(r, co, 2);
}

static void on_tool_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_handler(arg);
}

static void start_tool(wd_run *r)
{
    r->tool.active = 1;
    r->tool.impl = r->req.tool;
    json_decref(r->tool.args);
    r->tool.args = r->req.args;
    r->req.args = NULL;
    r->tool.t0 = r->req.t0;
    r->tool.start_ns = r->req.t0;
    r->tool.overhead_ns = 0;
    run_handler(r);
}

/* ---- the kinds of operation this file starts (engine.h) ---------------------- */

static void end_start(wd_run *r) { wd_run_end(r, r->req.end_status, r->req.end_error); }

static void approval_start(wd_run *r)
{
    pause_deadline(r);
    arm_poll(r);
}

static void sleep_start(wd_run *r)
{
    long long ms = r->req.sleep_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_assign(r->op_timer, r->eng->base, -1, 0, on_sleep, r);
    evtimer_add(r->op_timer, &tv);
}

/* drops the handler's coroutine; the call itself stays active (a retry may follow) */
static void drop_handler(wd_run *r)
{
    event_del(r->tool.timer);
    wd_fetch_cancel(r);
    wd_exec_cancel(r);
    if (r->L && r->tool.co) {
        r->sb->in_engine++;
        luaL_unref(r->L, LUA_REGISTRYINDEX, r->tool.co_ref);
        r->sb->in_engine--;
    }
    r->tool.co = NULL;
}

void wd_pipeline_tool_cancel(wd_run *r)
{
    if (!r->tool.active)
        return;
    drop_handler(r);
    r->tool.active = 0;
    wd_budget_settle(r, &r->tool_hold, 0); /* ended without an outcome: the reservation goes back */
    if (r->tool.admitted && r->tool.probe && r->tools[r->tool.impl].breaker) /* no outcome to report */
        wd_breakers_release(r->eng->breakers, r->tools[r->tool.impl].breaker);
    r->tool.admitted = 0;
}

void wd_pipeline_tool_done(wd_run *r, int ok, int nres, const char *error, int transient)
{
    lua_State *co = r->tool.co;
    char msg[700];
    char reason[80];
    if (!ok && transient && wd_run_retry_arm(r, r->tool.retries, -1, on_tool_retry, reason, sizeof reason) >= 0) {
        snprintf(msg, sizeof msg, "tool '%s' failed: %s", r->tool.name, error ? error : "error");
        json_t *ev = wd_run_event(r, "tool_call", 0);
        json_object_set_new(ev, "agent_step", json_integer(r->steps));
        json_object_set_new(ev, "tool_name", json_string(r->tool.name));
        json_object_set_new(ev, "tool_args", json_deep_copy(r->tool.args));
        json_object_set_new(ev, "latency_ms", json_integer((wd_now_ns() - r->tool.start_ns) / 1000000));
        json_object_set_new(ev, "retry_count", json_integer(r->tool.retries));
        json_object_set_new(ev, "error", json_string(msg));
        json_object_set_new(ev, "reason", json_string(reason));
        wd_run_audit(r, ev);
        drop_handler(r);
        r->tool.retries++;
        return;
    }
    json_t *result = NULL;
    int success = ok;
    r->sb->in_engine++;
    if (ok) {
        int base = lua_gettop(co) - nres + 1;
        if (nres >= 2 && lua_isnil(co, base) && lua_type(co, base + 1) == LUA_TSTRING) {
            wd_sandbox_error_text(co, base + 1, msg, sizeof msg, NULL);
            success = 0;
        } else {
            char err[300];
            /* a handler that returned nothing gave null: there is no value to read */
            result = nres ? wd_lua_to_json(co, base, err, sizeof err) : json_null();
            if (!result) {
                snprintf(msg, sizeof msg, "tool '%s' returned data that is not JSON: %s", r->tool.name, err);
                success = 0;
            } else if (json_is_object(result) && json_object_get(result, "error")) {
                success = 0; /* the tool reported its own failure */
            }
        }
        lua_settop(co, 0);
    } else {
        snprintf(msg, sizeof msg, "tool '%s' failed: %s", r->tool.name, error ? error : "error");
        if (error && !strncmp(error, "tool '", 6))
            snprintf(msg, sizeof msg, "%s", error);
    }
    /* one rendering of the redacted result: the size cap and the summary for the log */
    char *dump = NULL;
    if (result) {
        json_t *box = json_pack("{s:o}", "v", json_deep_copy(result)); /* the agent gets it unredacted */
        wd_redact_value(r->pol, box);
        dump = wd_json_compact_text(json_object_get(box, "v"));
        json_decref(box);
    }
    if (dump && strlen(dump) > MAX_RESULT_BYTES) {
        snprintf(msg, sizeof msg, "tool '%s' returned more than %u bytes", r->tool.name, MAX_RESULT_BYTES);
        json_decref(result);
        result = NULL;
        free(dump);
        dump = NULL;
        success = 0;
    }
    int truncated = 0;
    char *sum = summary(dump ? dump : msg, &truncated);
    int64_t now = wd_now_ns();
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_tool_policy *tp = wd_policy_tool(p, r->tool.name);
    double cost = success && tp ? tp->cost_usd : 0;
    r->cost += cost;
    json_t *ev = wd_run_event(r, "tool_call", success);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args", json_deep_copy(r->tool.args));
    json_object_set_new(ev, "tool_result_summary", json_string(sum ? sum : ""));
    json_object_set_new(ev, "tool_result_truncated", json_boolean(truncated));
    json_object_set_new(ev, "cost_usd", json_real(cost));
    json_object_set_new(ev, "latency_ms", json_integer((now - r->tool.start_ns) / 1000000));
    json_object_set_new(ev, "retry_count", json_integer(r->tool.retries));
    if (!success) {
        json_object_set_new(ev, "error", json_string(result ? "the tool returned an error" : msg));
        if (transient)
            json_object_set_new(ev, "reason", json_string("transient"));
    }
    wd_breaker_change ch = {0};
    const char *bname = r->tools[r->tool.impl].breaker ? r->tools[r->tool.impl].breaker : "tool:?";
    if (r->tool.admitted) {
        /* only a raised error or a timeout speaks against the tool; nil, msg is an answer */
        wd_breaker_cfg bc = wd_run_breaker_cfg(r);
        int state = wd_breakers_outcome(r->eng->breakers, bname, &bc, ok, r->tool.probe, &ch);
        r->tool.admitted = 0;
        json_object_set_new(ev, "circuit_breaker_state", json_string(wd_breaker_state_name(state)));
    }
    wd_run_audit(r, ev);
    wd_budget_settle(r, &r->tool_hold, cost); /* its warnings, like the breaker's, after the call */
    wd_run_audit_breaker(r, bname, &ch, r->tool.name, NULL); /* after the call that caused it */
    wd_policy_unref(p);
    add_tool_call(r, r->tool.name, r->tool.args, success ? sum : result ? "the tool returned an error" : msg, success,
                  result, 1);
    free(sum);
    free(dump);

    wd_pipeline_tool_cancel(r);
    lua_State *agent = r->agent_co;
    if (result) {
        wd_json_push(agent, result);
        json_decref(result);
    } else {
        wd_push_error_table(agent, msg);
    }
    r->sb->in_engine--;
    r->tool.overhead_ns = 1;
    wd_run_schedule(r, agent, 1);
}

static void tool_cancel(wd_run *r, const char *why)
{
    (void)why;
    if (r->tool.active)
        wd_pipeline_tool_cancel(r);
}

/* wd_tool_allow and wd_tool_load fill r->tools and r->allowed; the sleep, end and
** approval kinds keep nothing of their own (op_timer is the run's) */
static void tool_free(wd_run *r)
{
    for (size_t i = 0; i < r->ntools; i++) {
        free(r->tools[i].name);
        free(r->tools[i].description);
        free(r->tools[i].breaker);
        json_decref(r->tools[i].parameters);
        wd_schema_free(r->tools[i].schema);
    }
    free(r->tools);
    r->tools = NULL;
    r->ntools = 0;
    for (size_t i = 0; i < r->nallowed; i++)
        free(r->allowed[i]);
    free(r->allowed);
    r->allowed = NULL;
    r->nallowed = 0;
}

const wd_op_kind wd_op_tool = {"tool", start_tool, tool_cancel, wd_pipeline_tool_done, tool_free};
const wd_op_kind wd_op_approval = {"approval", approval_start, wd_pipeline_approval_cancel, NULL, NULL};
const wd_op_kind wd_op_sleep = {"sleep", sleep_start, NULL, NULL, NULL};
const wd_op_kind wd_op_end = {"end", end_start, NULL, NULL, NULL};
