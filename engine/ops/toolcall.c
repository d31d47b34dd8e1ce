/* toolcall.c - a tool call on the loop: the breaker admits it, the handler runs in a
** coroutine of its own under its timeout, transient failures are retried, and the
** outcome is settled (cost, breaker, audit, the agent resumed) */
#include "toolpriv.h"
#include "ask.h"
#include "settle.h"
#include "mcpcall.h"
#include "agentcall.h"
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

#define MAX_RESULT_BYTES (1u << 20)

/* the tool call's own state; r->tool holds what the driver and the handler's ctx see */
struct wd_tool_state {
    size_t impl; /* into r->tools */
    int co_ref;  /* the handler's thread, kept from the collector */
    json_t *args;
    struct event *timer; /* the handler's timeout */
    int64_t start_ns;    /* for latency_ms: r->tool.t0 is shifted to leave handler time out */
    int retries;         /* transient failures retried so far */
    int admitted, probe; /* by the tool's breaker; an outcome is owed */
};

/* the state, made at the first call of the run: NULL when memory ran out */
static wd_tool_state *tool_state(wd_run *r)
{
    if (r->tool_st)
        return r->tool_st;
    wd_tool_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    if (!(st->timer = evtimer_new(r->eng->base, NULL, NULL))) {
        free(st);
        return NULL;
    }
    return r->tool_st = st;
}

/* the tool's breaker: 1 admitted (admitted, probe set in the call's state), 0 refused at once
** while open, without running the handler: audited and listed, msg says why */
int wd_toolcall_admit(wd_run *r, int idx, const char *name, json_t *args, char *msg, size_t msgn,
                      void (*again)(wd_run *r))
{
    const char *bname = r->tools[idx].breaker ? r->tools[idx].breaker : "tool:?";
    wd_breaker_cfg bc = wd_run_breaker_cfg(r);
    wd_breaker_change ch;
    int probe;
    if (!tool_state(r)) {
        snprintf(msg, msgn, "tool '%s': out of memory", name);
        wd_budget_settle(r, &r->tool_hold, 0);
        wd_tool_record(r, name, args, msg, 0, NULL, 0);
        return 0;
    }
    int admit = wd_run_breaker_admit(r, bname, &bc, &probe, msg, msgn, &ch, again);
    if (admit == 2)
        return 2;
    if (admit < 0)
        wd_run_store_down(r, "breaker", name, msg);
    if (admit <= 0) {
        wd_budget_settle(r, &r->tool_hold, 0);
        wd_run_audit_breaker(r, bname, &ch, name, NULL);
        json_t *ev = wd_run_event(r, WD_AE_TOOL_CALL, 0);
        json_object_set_new(ev, "tool_name", json_string(name));
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
        json_object_set_new(ev, "agent_step", json_integer(r->steps));
        json_object_set_new(ev, "error", json_string(msg));
        json_object_set_new(ev, "reason", json_string(admit < 0 ? "store_unavailable" : "circuit_open"));
        json_object_set_new(ev, "circuit_breaker_state",
                            json_string(wd_breaker_state_name(wd_breakers_state(r->eng->breakers, bname))));
        wd_run_audit(r, ev);
        wd_tool_record(r, name, args, msg, 0, NULL, 0);
        return 0;
    }
    wd_run_audit_breaker(r, bname, &ch, name, NULL);
    r->tool_st->admitted = 1;
    r->tool_st->probe = probe;
    return 1;
}

/* the call the loop starts after the yield; takes ownership of args */
void wd_toolcall_request(wd_run *r, wd_opkind kind, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
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
    wd_tool_impl *t = &r->tools[r->tool_st->impl];
    r->sb->in_engine++;
    lua_State *co = lua_newthread(L);
    r->tool_st->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->fn_ref);
    wd_json_push(co, r->tool_st->args);
    wd_run_push_ctx(r, co, 1);
    r->sb->in_engine--;
    r->tool.co = co;
    r->tool.deadline_ns = wd_now_ns() + r->tool.timeout_ms * 1000000LL;
    struct timeval tv = {(time_t)(r->tool.timeout_ms / 1000), (suseconds_t)(r->tool.timeout_ms % 1000) * 1000};
    event_assign(r->tool_st->timer, e->base, -1, 0, on_tool_timeout, r);
    evtimer_add(r->tool_st->timer, &tv);
    wd_run_schedule(r, co, 2);
}

static void on_tool_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_handler(arg);
}

void wd_toolcall_start(wd_run *r)
{
    wd_tool_state *st = tool_state(r);
    if (!st) {
        wd_run_end(r, WD_ST_FAILED, "out of memory");
        return;
    }
    r->tool.active = 1;
    st->impl = r->req.tool;
    json_decref(st->args);
    st->args = r->req.args;
    r->req.args = NULL;
    r->tool.t0 = r->req.t0;
    st->start_ns = r->req.t0;
    st->retries = 0;
    r->tool.overhead_ns = 0;
    run_handler(r);
}

static void end_start(wd_run *r) { wd_run_end(r, r->req.end_status, r->req.end_error); }

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
    event_del(r->tool_st->timer);
    wd_fetch_cancel(r, NULL);
    wd_exec_cancel(r, NULL);
    wd_mcpcall_cancel(r, "the tool call ended");
    wd_agentcall_cancel(r, "the tool call that ran it ended");
    if (r->L && r->tool.co) {
        r->sb->in_engine++;
        luaL_unref(r->L, LUA_REGISTRYINDEX, r->tool_st->co_ref);
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
    if (r->tool_st->admitted && r->tool_st->probe && r->tools[r->tool_st->impl].breaker) /* no outcome to report */
        wd_breakers_release(r->eng->breakers, r->tools[r->tool_st->impl].breaker);
    r->tool_st->admitted = 0;
}

/* a transient failure with retries left: the attempt audited, the handler dropped, the
** call tried again after the backoff. 1 when it will be. */
static int retry_tool(wd_run *r, const char *error)
{
    char reason[80], msg[700];
    if (wd_run_retry_arm(r, r->tool_st->retries, -1, on_tool_retry, reason, sizeof reason) < 0)
        return 0;
    snprintf(msg, sizeof msg, "tool '%s' failed: %s", r->tool.name, error ? error : "error");
    json_t *ev = wd_run_event(r, WD_AE_TOOL_CALL, 0);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args", json_deep_copy(r->tool_st->args));
    json_object_set_new(ev, "latency_ms", json_integer((wd_now_ns() - r->tool_st->start_ns) / 1000000));
    json_object_set_new(ev, "retry_count", json_integer(r->tool_st->retries));
    json_object_set_new(ev, "error", json_string(msg));
    json_object_set_new(ev, "reason", json_string(reason));
    if (r->traceback) {
        json_object_set_new(ev, "traceback", json_string(r->traceback));
        free(r->traceback);
        r->traceback = NULL;
    }
    wd_run_audit(r, ev);
    drop_handler(r);
    r->tool_st->retries++;
    return 1;
}

/* What the handler gave (ok: nres values on its thread): *result, what the agent gets
** (caller owns it; NULL when the call failed, msg saying why), and *dump, its redacted
** rendering within MAX_RESULT_BYTES (caller frees). 1 when the call succeeded: a value
** that is not {error = ...}; nil, message is an answer that says no. */
static int read_result(wd_run *r, int ok, int nres, const char *error, json_t **result, char **dump, int *hits,
                       char *msg, size_t n)
{
    lua_State *co = r->tool.co;
    int success = ok;
    *result = NULL;
    *dump = NULL;
    if (ok) {
        int base = lua_gettop(co) - nres + 1;
        if (nres >= 2 && lua_isnil(co, base) && lua_type(co, base + 1) == LUA_TSTRING) {
            wd_sandbox_error_text(co, base + 1, msg, n, NULL);
            success = 0;
        } else {
            char err[300];
            /* a handler that returned nothing gave null: there is no value to read */
            *result = nres ? wd_lua_to_json(co, base, err, sizeof err) : json_null();
            if (!*result) {
                snprintf(msg, n, "tool '%s' returned data that is not JSON: %s", r->tool.name, err);
                success = 0;
            } else if (json_is_object(*result) && json_object_get(*result, "error")) {
                success = 0; /* the tool reported its own failure */
            }
        }
        lua_settop(co, 0);
    } else {
        snprintf(msg, n, "tool '%s' failed: %s", r->tool.name, error ? error : "error");
        if (error && !strncmp(error, "tool '", 6))
            snprintf(msg, n, "%s", error);
    }
    if (!*result)
        return success;
    /* one rendering of the redacted result: the size cap and the summary for the log */
    json_t *box = json_pack("{s:o}", "v", json_deep_copy(*result)); /* the agent gets it unredacted */
    *hits = wd_redact_value(r->pol, box);
    *dump = wd_json_compact_text(json_object_get(box, "v"));
    json_decref(box);
    if (*dump && strlen(*dump) > MAX_RESULT_BYTES) {
        snprintf(msg, n, "tool '%s' returned more than %u bytes", r->tool.name, MAX_RESULT_BYTES);
        json_decref(*result);
        *result = NULL;
        free(*dump);
        *dump = NULL;
        success = 0;
    }
    return success;
}

/* the call's tool_call record: its cost, the breaker's state is added by the settle */
static json_t *call_record(wd_run *r, int success, int transient, const char *sum, int truncated, const char *error,
                           double cost, int hits)
{
    json_t *ev = wd_run_event(r, WD_AE_TOOL_CALL, success);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args", json_deep_copy(r->tool_st->args));
    json_object_set_new(ev, "tool_result_summary", json_string(sum ? sum : ""));
    json_object_set_new(ev, "tool_result_truncated", json_boolean(truncated));
    json_object_set_new(ev, "cost_usd", json_real(cost));
    json_object_set_new(ev, "latency_ms", json_integer((wd_now_ns() - r->tool_st->start_ns) / 1000000));
    json_object_set_new(ev, "retry_count", json_integer(r->tool_st->retries));
    if (!success) {
        json_object_set_new(ev, "error", json_string(error));
        if (transient)
            json_object_set_new(ev, "reason", json_string("transient"));
    }
    if (r->traceback) { /* the handler's error, where it happened: for the log only */
        json_object_set_new(ev, "traceback", json_string(r->traceback));
        free(r->traceback);
        r->traceback = NULL;
    }
    if (hits) /* what redaction took out of the result before it was summarized */
        json_object_set_new(ev, "sensitive_data", json_integer(hits));
    wd_tool_data_touched(r, ev, r->tool_st->impl, r->tool_st->args);
    return ev;
}

/* what the settle pushes for a tool call: the call kept in the run's history (and told
** the detectors), then its result, or {error = msg} */
typedef struct tool_outcome {
    const char *summary; /* of the result, or the failure */
    int success;
    json_t *result;
    const char *msg;
} tool_outcome;

static int push_tool(wd_run *r, lua_State *co, void *ud)
{
    tool_outcome *o = ud;
    wd_tool_record(r, r->tool.name, r->tool_st->args, o->summary, o->success, o->result, 1);
    if (o->result)
        wd_json_push(co, o->result);
    else
        wd_push_error_table(co, o->msg);
    r->tool.overhead_ns = 1;
    return 1;
}

/* ** A tool call's end: its result read and summarized, then the common settle (the
** breaker told a raised error or a timeout, ok == 0, from an answer; the record; the
** reservation settled at the tool's cost; the breaker's change audited after the call
** that caused it). */
void wd_pipeline_tool_done(wd_run *r, int ok, int nres, const char *error, int transient)
{
    if (!ok && transient && retry_tool(r, error))
        return;
    char msg[700];
    json_t *result;
    char *dump;
    int hits = 0;
    r->sb->in_engine++;
    int success = read_result(r, ok, nres, error, &result, &dump, &hits, msg, sizeof msg);
    r->sb->in_engine--;
    int truncated = 0;
    char *sum = wd_tool_summary(dump ? dump : msg, &truncated);
    const char *failure = result ? "the tool returned an error" : msg;
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_tool_policy *tp = wd_policy_tool(p, r->tool.name);
    double cost = success && tp ? tp->cost_usd : 0;
    wd_policy_unref(p);
    tool_outcome o = {success ? sum : failure, success, result, msg};
    const char *bname = r->tools[r->tool_st->impl].breaker ? r->tools[r->tool_st->impl].breaker : "tool:?";
    wd_settle st = {.record = call_record(r, success, transient, sum, truncated, failure, cost, hits),
                    .cost = cost,
                    .hold = &r->tool_hold,
                    .breaker = bname,
                    .admitted = &r->tool_st->admitted,
                    .probe = r->tool_st->probe,
                    .ok = ok,
                    .state_in_record = 1,
                    .tool = r->tool.name,
                    .co = r->agent_co,
                    .push = push_tool,
                    .ud = &o,
                    .clear = wd_pipeline_tool_cancel};
    wd_run_settle(r, &st);
    json_decref(result);
    free(sum);
    free(dump);
}

static void tool_cancel(wd_run *r, const char *why)
{
    (void)why;
    if (r->tool.active)
        wd_pipeline_tool_cancel(r);
}

/* the run's tools and the call's state */
static void tool_free(wd_run *r)
{
    wd_tool_free_all(r);
    if (!r->tool_st)
        return;
    event_free(r->tool_st->timer);
    json_decref(r->tool_st->args);
    free(r->tool_st);
    r->tool_st = NULL;
}

const wd_op_kind wd_op_tool = {"tool", wd_toolcall_start, tool_cancel, wd_pipeline_tool_done, tool_free, NULL};
const wd_op_kind wd_op_sleep = {"sleep", sleep_start, NULL, NULL, NULL, NULL};
const wd_op_kind wd_op_end = {"end", end_start, NULL, NULL, NULL, NULL};
