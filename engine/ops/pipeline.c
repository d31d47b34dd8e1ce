/* pipeline.c - the native enforcement pipeline for ctx:call_tool and ctx:llm
** (docs/safety.md): each check in the order docs/safety.md lists them, a refusal audited
** and returned to the agent, an accepted call recorded for the loop to start. */
#include "toolpriv.h"
#include "approval.h"
#include "ask.h"
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

/* ---- ctx:call_tool ----------------------------------------------------------- */

/* one call being checked */
typedef struct {
    wd_run *r;
    lua_State *L;
    wd_policy *p;       /* a reference, for the call's checks */
    char name[160];     /* as asked, fit to print and to log: NUL and non-UTF-8 bytes as \xNN */
    size_t name_len;    /* of what was asked: a name with a NUL in it is no tool's */
    json_t *args;       /* owned here until a refusal or the request takes it */
    char bad_args[400]; /* why the arguments are not JSON: said after the authorization checks */
    const wd_tool_policy *tp;
    int idx; /* the loaded tool */
    wd_call_opts opts;
    int64_t t0;
    size_t at; /* the check it is at */
    char msg[700];
} tool_call;

/* what a check answers: GO on to the next; otherwise what ctx:call_tool returns (1: the
** refusal is pushed) or YIELD (the run waits: for a person, or for the handler), or WAIT
** (the state store was asked: the checks go on from this one when it answered) */
enum { GO = 0, YIELD = -1, WAIT = -2 };

static void pipeline_again(wd_run *r);

/* 0. the tool is one the agent lists: whatever the model asks for, an agent reaches only
** the tools it names (a workflow its steps) */
static int check_listed(tool_call *c)
{
    if (wd_tool_allows(c->r, c->name) && strlen(c->name) == c->name_len)
        return GO;
    snprintf(c->msg, sizeof c->msg, "tool '%s' is not one of agent %s's tools", c->name,
             c->r->agent_name ? c->r->agent_name : "?");
    return wd_tool_refuse_undeclared(c->r, c->L, c->name, c->args, c->msg);
}

/* 1. declared in the policy */
static int check_declared(tool_call *c)
{
    if ((c->tp = wd_policy_tool(c->p, c->name)))
        return GO;
    snprintf(c->msg, sizeof c->msg, "tool '%s' is not declared in the policy: blocked", c->name);
    return wd_tool_refuse_undeclared(c->r, c->L, c->name, c->args, c->msg);
}

/* 2. the user is still in the policy, with the tool's permission */
static int check_role(tool_call *c)
{
    const wd_user *u = wd_policy_user(c->p, c->r->user_id);
    if (u && u->role >= c->tp->permission)
        return GO;
    if (!u)
        snprintf(c->msg, sizeof c->msg, "user '%s' is no longer in the policy", c->r->user_id);
    else
        snprintf(c->msg, sizeof c->msg, "permission denied: tool '%s' requires the '%s' role; user '%s' has '%s'",
                 c->name, c->p->roles.v[c->tp->permission], u->name, c->p->roles.v[u->role]);
    return wd_tool_refuse(c->r, c->L, WD_AE_AUTHORIZATION_DENIED, c->name, c->args, c->msg);
}

/* 3. the arguments were JSON */
static int check_json(tool_call *c)
{
    if (!c->bad_args[0])
        return GO;
    snprintf(c->msg, sizeof c->msg, "invalid arguments for tool '%s': %s", c->name, c->bad_args);
    return wd_tool_refuse(c->r, c->L, WD_AE_VALIDATION_FAILED, c->name, c->args, c->msg);
}

/* 4. the tool's script is loaded (its schema compiled) */
static int check_loaded(tool_call *c)
{
    if ((c->idx = wd_tool_load(c->r, c->L, c->name)) >= 0)
        return GO;
    snprintf(c->msg, sizeof c->msg, "tool '%s' cannot be loaded: %s", c->name,
             lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : "?");
    lua_pop(c->L, 1);
    return wd_tool_refuse(c->r, c->L, WD_AE_TOOL_CALL, c->name, c->args, c->msg);
}

/* 5. the arguments are an object valid against the tool's schema (defaults filled in) */
static int check_schema(tool_call *c)
{
    char err[600];
    if (!json_is_object(c->args))
        snprintf(c->msg, sizeof c->msg, "invalid arguments for tool '%s': expected an object", c->name);
    else if (wd_schema_validate(c->r->tools[c->idx].schema, c->args, err, sizeof err) < 0)
        snprintf(c->msg, sizeof c->msg, "invalid arguments for tool '%s': %.500s", c->name, err);
    else if (c->tp->schema && wd_schema_validate(c->tp->schema, c->args, err, sizeof err) < 0)
        snprintf(c->msg, sizeof c->msg, "invalid arguments for tool '%s' (the policy's schema): %.460s", c->name, err);
    else
        return GO;
    return wd_tool_refuse(c->r, c->L, WD_AE_VALIDATION_FAILED, c->name, c->args, c->msg);
}

/* 6. forbidden patterns, and path arguments confined to the tool's resources */
static int check_guardrails(tool_call *c)
{
    wd_run *r = c->r;
    const wd_schema *schema = r->tools[c->idx].schema;
    char err[600];
    int forbidden = wd_guard_patterns(&c->tp->forbidden, schema, r->agent_dir, c->args, err, sizeof err) < 0;
    if (!forbidden && wd_guard_resources(c->tp, schema, r->agent_dir, c->args, err, sizeof err) == 0)
        return GO;
    snprintf(c->msg, sizeof c->msg, "guardrail: tool '%s' refused: %.500s", c->name, err);
    json_t *ev = wd_tool_refusal(r, WD_AE_GUARDRAIL_VIOLATION, c->name, c->args, c->msg);
    json_object_set_new(ev, "violation_type", json_string(forbidden ? "forbidden_pattern" : "resource_access_denied"));
    json_object_set_new(ev, "severity", json_string(forbidden ? "critical" : "high"));
    wd_run_audit(r, ev);
    return wd_tool_refuse(r, c->L, WD_AE_NONE, c->name, c->args, c->msg);
}

/* the call's options (justification, urgency, confidence) are well formed */
static int check_options(tool_call *c)
{
    if (wd_approve_opts(c->L, &c->opts, c->name, c->msg, sizeof c->msg) == 0)
        return GO;
    return wd_tool_refuse(c->r, c->L, WD_AE_VALIDATION_FAILED, c->name, c->args, c->msg);
}

/* 7. the tool's rate for this user */
static int check_rate(tool_call *c)
{
    wd_run *r = c->r;
    if (c->tp->rate_limit_per_hour <= 0)
        return GO;
    char key[300], what[200];
    snprintf(key, sizeof key, "tool:%s:user:%s", c->name, r->user_id);
    snprintf(what, sizeof what, "tool '%s' for user %s", c->name, r->user_id);
    int64_t retry;
    int got = wd_rate_take(r, key, c->tp->rate_limit_per_hour, what, &retry, c->msg, sizeof c->msg, pipeline_again);
    if (got == WD_BUDGET_WAIT)
        return WAIT;
    if (got > 0)
        return GO;
    int rc = wd_tool_refuse(r, c->L, got == 0 ? WD_AE_RATE_LIMITED : WD_AE_TOOL_CALL, c->name, c->args, c->msg);
    if (got == 0) {
        lua_pushinteger(c->L, retry);
        lua_setfield(c->L, -2, "retry_after_ms");
    }
    return rc;
}

/* 7. its cost, reserved against the run's limit and every budget until it ends */
static int check_budget(tool_call *c)
{
    if (c->tp->cost_usd <= 0)
        return GO;
    int got = wd_budget_reserve(c->r, c->tp->cost_usd, c->name, c->args, &c->r->tool_hold, c->msg, sizeof c->msg,
                                pipeline_again);
    if (got == WD_BUDGET_WAIT)
        return WAIT;
    if (got)
        return GO;
    return wd_tool_refuse(c->r, c->L, WD_AE_NONE, c->name, c->args, c->msg);
}

/* 8. what a person must do: never, be told, or decide first (the run waits) */
static int check_oversight(tool_call *c)
{
    wd_run *r = c->r;
    wd_oversight ov;
    wd_approve_decide(r, c->p, c->tp, &c->opts, &ov);
    if (ov.action == OV_NEVER) {
        wd_budget_settle(r, &r->tool_hold, 0);
        snprintf(c->msg, sizeof c->msg, "tool '%s' is never run by an agent: category '%s' is at autonomy level 0",
                 c->name, c->tp->category ? c->tp->category : "?");
        return wd_tool_refuse(r, c->L, WD_AE_AUTHORIZATION_DENIED, c->name, c->args, c->msg);
    }
    if (ov.action == OV_NOTIFY)
        wd_approve_notify(r, c->tp, c->name, c->args);
    if (ov.action != OV_APPROVE)
        return GO;
    json_t *args = c->args;
    c->args = NULL; /* taken either way */
    return wd_approve_ask(r, c->L, c->tp, c->name, args, c->idx, c->t0, &c->opts, &ov, c->msg, sizeof c->msg) < 0
               ? YIELD
               : 1;
}

/* 9. the tool's breaker admits it */
static int check_breaker(tool_call *c)
{
    int admit = wd_toolcall_admit(c->r, c->idx, c->name, c->args, c->msg, sizeof c->msg, pipeline_again);
    if (admit == 2)
        return WAIT;
    if (admit)
        return GO;
    wd_push_error_table(c->L, c->msg); /* audited and recorded by the breaker's refusal */
    return 1;
}

/* The checks of a tool call, in the order docs/safety.md lists them ("The pipeline of
** a tool call"); the first that does not say GO answers the call. */
static int (*const TOOL_CHECKS[])(tool_call *c) = {
    check_listed,     check_declared, check_role, check_json,   check_loaded,    check_schema,
    check_guardrails, check_options,  check_rate, check_budget, check_oversight, check_breaker,
};

/* the arguments as JSON first, so that every audited refusal shows what was asked; a
** conversion failure is said after the authorization checks */
static void read_args(tool_call *c)
{
    lua_State *L = c->L;
    int at = lua_type(L, 3);
    if (at == LUA_TTABLE) {
        char err[300];
        if (!(c->args = wd_lua_to_json(L, 3, err, sizeof err)))
            snprintf(c->bad_args, sizeof c->bad_args, "%s", err);
    } else if (at == LUA_TSTRING) {
        if (!(c->args = json_loads(lua_tostring(L, 3), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL)))
            snprintf(c->bad_args, sizeof c->bad_args, "not valid JSON");
    } else if (at == LUA_TNIL || at == LUA_TNONE) {
        c->args = json_object();
    } else {
        snprintf(c->bad_args, sizeof c->bad_args, "expected an object, got %s", lua_typename(L, at));
    }
}

/* the checks from c->at on: the request recorded for the loop (YIELD), a refusal pushed
** (1), or WAIT */
static int run_checks(tool_call *c)
{
    for (; c->at < sizeof TOOL_CHECKS / sizeof TOOL_CHECKS[0]; c->at++) {
        int rc = TOOL_CHECKS[c->at](c);
        if (rc != GO)
            return rc;
    }
    wd_toolcall_request(c->r, OP_TOOL, c->tp, c->name, c->args, c->idx, c->t0); /* takes args */
    return YIELD;
}

/* runs the checks on c; YIELD: accepted, the request recorded for the loop */
static int check_call(tool_call *c)
{
    wd_run *r = c->r;
    if (wd_run_may_act(r, c->msg, sizeof c->msg) < 0) {
        wd_push_error_table(c->L, c->msg);
        return 1;
    }
    if (r->tool.active) { /* a handler reached the agent's ctx: one tool call at a time */
        wd_push_error_table(c->L, "tools cannot call other tools");
        return 1;
    }
    read_args(c);
    if (r->det) /* every request, refused or not: a loop of refusals is a loop */
        wd_run_observe(r, json_pack("{s:s,s:s,s:O}", "type", "tool_call", "tool", c->name, "args",
                                    c->args ? c->args : json_null()));
    return run_checks(c);
}

/* ** A call whose check waits for the store: the run yields with the call kept (OP_STORE)
** and the checks go on in the continuation, on the same stack, once the store answered.
** Which of the two comes first (the yield reaching the loop, or the answer) the other
** finds in r->store_wait. */
enum { SW_NONE, SW_ASKED, SW_STARTED, SW_ANSWERED };

static void call_free(tool_call *c)
{
    if (!c)
        return;
    wd_policy_unref(c->p);
    json_decref(c->args);
    free(c);
}

static int finish_call(wd_run *r, lua_State *L, tool_call *c, int rc);

static int pipeline_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    tool_call *c = (tool_call *)ctx;
    wd_run *r = c->r;
    r->pcall = NULL;
    r->sb->in_engine++;
    int rc = run_checks(c);
    r->sb->in_engine--;
    return finish_call(r, L, c, rc);
}

static int finish_call(wd_run *r, lua_State *L, tool_call *c, int rc)
{
    if (rc == WAIT) {
        r->pcall = c;
        r->store_wait = SW_ASKED;
        r->req.kind = OP_STORE;
        return wd_sandbox_yieldk(L, (lua_KContext)c, pipeline_cont);
    }
    c->args = NULL; /* a refusal or the request took them */
    call_free(c);
    return rc == YIELD ? wd_sandbox_yield(L) : rc;
}

static void pipeline_again(wd_run *r)
{
    if (r->store_wait == SW_STARTED) {
        r->store_wait = SW_NONE;
        wd_run_schedule(r, r->waiting, 0);
    } else {
        r->store_wait = SW_ANSWERED;
    }
}

static void store_start(wd_run *r)
{
    if (r->store_wait == SW_ANSWERED) {
        r->store_wait = SW_NONE;
        wd_run_schedule(r, r->waiting, 0);
    } else {
        r->store_wait = SW_STARTED;
    }
}

/* the run ends while its call waits for the store: the call goes, its question dropped */
static void store_cancel(wd_run *r, const char *why)
{
    (void)why;
    wd_ledger_unwait(r->eng->ledger, &r->lwait);
    wd_run_unask(r);
    call_free(r->pcall);
    r->pcall = NULL;
    r->store_wait = SW_NONE;
}

static void store_free(wd_run *r) { store_cancel(r, NULL); }

const wd_op_kind wd_op_store = {"store", store_start, store_cancel, NULL, store_free, NULL};

int wd_pipeline_tool(wd_run *r, lua_State *L)
{
    size_t len;
    const char *asked = luaL_checklstring(L, 2, &len);
    tool_call *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "out of memory");
    c->r = r;
    c->L = L;
    c->t0 = wd_now_ns();
    c->name_len = len;
    wd_cstr_copy(c->name, sizeof c->name, asked, c->name_len);
    if (++r->ncalls > r->pol->max_tool_calls) { /* a loop of calls ends here, whatever it catches */
        snprintf(c->msg, sizeof c->msg,
                 "tool call limit: the run asked for more than %lld tool calls "
                 "(defaults.max_tool_calls); the last was %s",
                 r->pol->max_tool_calls, c->name);
        wd_run_limit(r, WD_ST_MAX_ITERATIONS, c->msg);
        lua_pushstring(L, c->msg);
        free(c);
        return luaL_error(L, "run stopped: %s", lua_tostring(L, -1));
    }
    r->sb->in_engine++;
    c->p = wd_engine_policy(r->eng);
    int rc = check_call(c);
    r->sb->in_engine--;
    return finish_call(r, L, c, rc);
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

/* ---- ctx:llm ------------------------------------------------------------------ */

/* A check of an LLM call before it is recorded: 0 to go on, or -1 with msg and the
** status the run ends with (an LLM call refused ends the run) */
typedef int (*llm_check)(wd_run *r, char *msg, size_t n, wd_status *st);

/* the run's run_started is in the file (as for a tool call) */
static int llm_may_act(wd_run *r, char *msg, size_t n, wd_status *st)
{
    *st = WD_ST_FAILED;
    return wd_run_may_act(r, msg, n);
}

/* the iteration limit ends the run: a custom loop cannot ignore it */
static int llm_iterations(wd_run *r, char *msg, size_t n, wd_status *st)
{
    if (r->steps < r->max_iterations)
        return 0;
    snprintf(msg, n, "max_iterations: the agent reached its limit of %d LLM calls", r->max_iterations);
    *st = WD_ST_MAX_ITERATIONS;
    return -1;
}

/* a run that has spent its per-run limit makes no more calls */
static int llm_cost(wd_run *r, char *msg, size_t n, wd_status *st)
{
    wd_policy *p = wd_engine_policy(r->eng);
    double limit = wd_budget_run_limit(r, p);
    wd_policy_unref(p);
    if (r->cost < limit)
        return 0;
    char c1[40], c2[40];
    snprintf(msg, n, "cost limit: the run spent %s of its %s limit", wd_fmt_usd(r->cost, c1, sizeof c1),
             wd_fmt_usd(limit, c2, sizeof c2));
    json_t *ev = wd_run_event(r, WD_AE_BUDGET_EXCEEDED, 0);
    json_object_set_new(ev, "cost_usd", json_real(r->cost));
    json_object_set_new(ev, "reason", json_string(msg));
    wd_run_audit(r, ev);
    *st = WD_ST_BUDGET_EXCEEDED;
    return -1;
}

/* in the order docs/safety.md lists them ("Every ctx:llm"); the reservation, the cache
** and the breaker follow on the loop (llm.c) */
static const llm_check LLM_CHECKS[] = {llm_may_act, llm_iterations, llm_cost};

/* the call as JSON into r->req.call: what goes over the wire, and what a cached answer is
** keyed on; its conversion measures the input. Raises on what cannot be sent. */
static void build_call(wd_run *r, lua_State *L, int loaded)
{
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
                luaL_error(L, "ctx:llm: %s: %s", FIELDS[i], err);
                return;
            }
            json_object_set_new(call, FIELDS[i], v);
        }
        lua_pop(L, 1);
    }
    if (r->req.max_tokens)
        json_object_set_new(call, "max_tokens", json_integer(r->req.max_tokens));
    if (!json_is_array(json_object_get(call, "messages"))) {
        json_decref(call);
        luaL_error(L, "ctx:llm: messages must be a list of {role=, content=}");
        return;
    }
    r->req.call = call;
}

/* ** ctx:llm's response_format into r->req.format (compiled) and r->req.format_json
** ({name, schema, strict?}): {type = "json_schema", schema = S, name =, strict =}, or
** OpenAI's own {type = "json_schema", json_schema = {name, schema, strict}}, or
** {type = "json_object"} (any object); {type = "text"} or none is no format. Raises on
** a malformed one, the schema's own error named. */
static void read_format(wd_run *r, lua_State *L)
{
    wd_schema_free(r->req.format);
    r->req.format = NULL;
    json_decref(r->req.format_json);
    r->req.format_json = NULL;
    char err[300];
    int own = lua_getfield(L, 2, "_output_schema") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (own && r->output_schema) { /* the run's own schema, as the engine holds it */
        r->req.format_json = json_pack("{s:s,s:O}", "name", "output", "schema", r->output_schema);
        if (!(r->req.format = wd_schema_compile(r->output_schema, err, sizeof err)))
            luaL_error(L, "output_schema: %s", err);
        return;
    }
    if (lua_getfield(L, 2, "response_format") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    json_t *f = wd_lua_to_json(L, -1, err, sizeof err);
    lua_pop(L, 1);
    if (!json_is_object(f)) {
        json_decref(f);
        luaL_error(L, "ctx:llm: response_format must be a table {type = \"json_schema\", schema = {...}}");
        return;
    }
    r->req.format_json = f; /* owned by the run from here: a raise loses nothing */
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *inner = json_object_get(f, "json_schema"), *from = json_is_object(inner) ? inner : f;
    json_t *schema = json_object_get(from, "schema");
    if (type && !strcmp(type, "text")) {
        json_decref(f);
        r->req.format_json = NULL;
        return;
    }
    if (type && !strcmp(type, "json_object") && !schema)
        schema = json_pack("{s:s}", "type", "object");
    else if (!type || strcmp(type, "json_schema") || !json_is_object(schema))
        luaL_error(L, "ctx:llm: response_format: type must be \"json_schema\" with a schema table (or \"json_object\", "
                      "\"text\")");
    else
        json_incref(schema);
    json_t *name = json_object_get(from, "name"), *strict = json_object_get(from, "strict");
    json_t *out =
        json_pack("{s:s,s:o}", "name", json_is_string(name) ? json_string_value(name) : "output", "schema", schema);
    if (json_is_boolean(strict))
        json_object_set(out, "strict", strict);
    json_decref(f);
    r->req.format_json = out;
    if (!(r->req.format = wd_schema_compile(json_object_get(out, "schema"), err, sizeof err)))
        luaL_error(L, "ctx:llm: response_format.schema: %s", err);
}

/* the call's model, size and settings into r->req; raises on a malformed call */
static void read_call(wd_run *r, lua_State *L)
{
    lua_getfield(L, 2, "model");
    const char *model =
        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : (r->default_model ? r->default_model : "default");
    free(r->req.model);
    r->req.model = wd_strdup(model);
    lua_pop(L, 1);
    read_format(r, L);
    /* a mock call without a cache or a format only measures its input; the others are
    ** converted (a format's corrective ask resends the conversation) */
    int as_json = !r->llm || strncmp(r->llm, "mock:", 5) || r->pol->cache_enabled || r->req.format;
    lua_getfield(L, 2, "messages");
    r->req.nmessages = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    r->req.input_bytes = lua_istable(L, -1) && !as_json ? text_bytes(L, -1, 0) : 0;
    lua_pop(L, 1);
    /* a whole number, sent as one: a 7.0 from decoded JSON must not slip past the bound */
    int mt = lua_getfield(L, 2, "max_tokens"), whole;
    lua_Integer max_tokens = lua_tointegerx(L, -1, &whole);
    if (mt != LUA_TNIL && (mt != LUA_TNUMBER || !whole || max_tokens <= 0 || max_tokens > 100000000))
        luaL_error(L, "ctx:llm: max_tokens must be a whole number from 1 to 100000000");
    r->req.max_tokens = mt == LUA_TNIL ? 0 : (long long)max_tokens;
    r->req.temperature = lua_getfield(L, 2, "temperature") == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    int given = lua_getfield(L, 2, "tools") != LUA_TNIL;
    if (lua_istable(L, -1) && !as_json)
        r->req.input_bytes += text_bytes(L, -1, 0);
    /* the runner's loops ask for the run's loaded tools by name: the engine holds them
    ** as JSON already, and a table converted at every call cost a third of the call's
    ** conversion */
    int loaded = lua_getfield(L, 2, "_loaded_tools") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    int st = lua_getfield(L, 2, "stream");
    if (st != LUA_TNIL && st != LUA_TBOOLEAN)
        luaL_error(L, "ctx:llm: stream must be true or false");
    r->req.stream = st == LUA_TNIL ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 5);
    json_decref(r->req.call);
    r->req.call = NULL;
    if (loaded && given)
        luaL_error(L, "ctx:llm: tools and _loaded_tools together: give one of them");
    if (loaded && wd_run_tool_specs(r))
        r->req.input_bytes += r->tool_specs_bytes;
    if (as_json)
        build_call(r, L, loaded);
    if (r->req.call && r->req.format_json)
        json_object_set_new(r->req.call, "response_format",
                            json_pack("{s:s,s:O}", "type", "json_schema", "json_schema", r->req.format_json));
}

int wd_pipeline_llm(wd_run *r, lua_State *L)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    char msg[300];
    wd_status st;
    for (size_t i = 0; i < sizeof LLM_CHECKS / sizeof LLM_CHECKS[0]; i++)
        if (LLM_CHECKS[i](r, msg, sizeof msg, &st) < 0) {
            end_request(r, st, msg);
            return wd_sandbox_yield(L);
        }
    read_call(r, L);
    r->steps++;
    r->req.t0 = wd_now_ns();
    r->req.kind = OP_LLM;
    return wd_sandbox_yield(L);
}
