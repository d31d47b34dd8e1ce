/* lua_warden.c - what scripts see: the `warden` table and the per-run `ctx`. */
#include "lua_warden.h"
#include "schema.h"
#include "session.h"
#include "detect.h"
#include "exec.h"
#include "fetch.h"
#include "pipeline.h"
#include "guard.h"
#include "canon.h"
#include "jsonlua.h"
#include "redact.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define REG_CTX_MT     "wd.ctx_mt"
#define REG_TOOLCTX_MT "wd.toolctx_mt"

static wd_run *run_of(lua_State *L)
{
    wd_run *r = wd_sandbox_of(L)->owner;
    if (!r)
        luaL_error(L, "no run is active");
    return r;
}

/* ---- warden.* constructors ------------------------------------------------- */

static void check_name(lua_State *L, const char *what)
{
    if (lua_getfield(L, 1, "name") != LUA_TSTRING || !lua_rawlen(L, -1))
        luaL_error(L, "%s needs a name (a non-empty string)", what);
    lua_pop(L, 1);
}

static void check_opt(lua_State *L, const char *field, int type, const char *what)
{
    int t = lua_getfield(L, 1, field);
    if (t != LUA_TNIL && t != type)
        luaL_error(L, "%s: '%s' must be a %s", what, field, lua_typename(L, type));
    lua_pop(L, 1);
}

static int w_tool(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_name(L, "warden.tool");
    if (lua_getfield(L, 1, "run") != LUA_TFUNCTION)
        return luaL_error(L, "warden.tool: 'run' must be a function(args, ctx)");
    lua_pop(L, 1);
    check_opt(L, "parameters", LUA_TTABLE, "warden.tool");
    check_opt(L, "description", LUA_TSTRING, "warden.tool");
    lua_pushliteral(L, "tool");
    lua_setfield(L, 1, "kind");
    lua_settop(L, 1);
    return 1;
}

static int w_agent(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_name(L, "warden.agent");
    check_opt(L, "tools", LUA_TTABLE, "warden.agent");
    check_opt(L, "model", LUA_TSTRING, "warden.agent");
    check_opt(L, "system_prompt", LUA_TSTRING, "warden.agent");
    check_opt(L, "run", LUA_TFUNCTION, "warden.agent");
    check_opt(L, "detectors", LUA_TTABLE, "warden.agent");
    check_opt(L, "output_schema", LUA_TTABLE, "warden.agent");
    check_opt(L, "summarize", LUA_TFUNCTION, "warden.agent");
    int t = lua_getfield(L, 1, "max_iterations");
    if (t != LUA_TNIL && (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1))
        return luaL_error(L, "warden.agent: 'max_iterations' must be a whole number >= 1");
    lua_pop(L, 1);
    lua_pushliteral(L, "agent");
    lua_setfield(L, 1, "kind");
    lua_settop(L, 1);
    return 1;
}

static int w_workflow(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_name(L, "warden.workflow");
    check_opt(L, "steps", LUA_TTABLE, "warden.workflow");
    check_opt(L, "choose", LUA_TTABLE, "warden.workflow");
    int hs = lua_getfield(L, 1, "steps") == LUA_TTABLE, hc = lua_getfield(L, 1, "choose") == LUA_TTABLE;
    lua_pop(L, 2);
    if (hs == hc)
        return luaL_error(L, "warden.workflow needs either 'steps' (a fixed sequence) or 'choose' (one LLM choice)");
    lua_pushliteral(L, "workflow");
    lua_setfield(L, 1, "kind");
    lua_settop(L, 1);
    return 1;
}

static int w_detector(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_name(L, "warden.detector");
    if (lua_getfield(L, 1, "check") != LUA_TFUNCTION)
        return luaL_error(L, "warden.detector: 'check' must be a function(event, history, ctx)");
    lua_pop(L, 1);
    check_opt(L, "on", LUA_TTABLE, "warden.detector");
    check_opt(L, "failure_mode", LUA_TSTRING, "warden.detector");
    lua_pushliteral(L, "detector");
    lua_setfield(L, 1, "kind");
    lua_settop(L, 1);
    return 1;
}

static int w_transient(lua_State *L)
{
    const char *m = luaL_optstring(L, 1, "transient failure");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, m);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "transient");
    return 1;
}

/* warden.prompt(path): a file inside the agent's directory */
static int w_prompt(lua_State *L)
{
    wd_sandbox *sb = wd_sandbox_of(L);
    const char *rel = luaL_checkstring(L, 1);
    const char *dir = wd_sandbox_agent_dir(sb);
    if (!dir)
        return luaL_error(L, "warden.prompt: no agent directory");
    char *c = wd_guard_canon(dir, rel);
    size_t l = strlen(dir);
    if (!c || strncmp(c, dir, l) || c[l] != '/') {
        free(c);
        return luaL_error(L, "warden.prompt: '%s' is outside the agent's directory", rel);
    }
    size_t len;
    char *text = wd_read_file(c, 256u << 10, &len);
    free(c);
    if (!text)
        return luaL_error(L, "warden.prompt: cannot read '%s': %s", rel, strerror(errno));
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

/* ---- ctx methods ----------------------------------------------------------- */

static int c_call_tool(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    return wd_pipeline_tool(run_of(L), L);
}

static int c_llm(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    return wd_pipeline_llm(run_of(L), L);
}

static int c_sleep(lua_State *L)
{
    wd_run *r = run_of(L);
    lua_Integer ms = luaL_checkinteger(L, 2);
    luaL_argcheck(L, ms >= 0 && ms <= 86400000, 2, "milliseconds from 0 to 86400000");
    r->req.kind = OP_SLEEP;
    r->req.sleep_ms = ms;
    return wd_sandbox_yield(L);
}

/* ctx:exec{argv=, stdin=, timeout_ms=} (tools of category execute; exec.c) */
static int c_exec(lua_State *L)
{
    wd_run *r = run_of(L);
    return wd_exec_call(r, L);
}

/* ctx:http{url=, method=, headers=, body=, timeout_ms=} (tools only; fetch.c) */
static int c_http(lua_State *L)
{
    wd_run *r = run_of(L);
    return wd_fetch_call(r, L);
}

static int c_log(lua_State *L)
{
    wd_run *r = run_of(L);
    char err[200];
    json_t *f = wd_lua_to_json(L, 2, err, sizeof err);
    if (!f)
        return luaL_argerror(L, 2, err);
    json_t *ev = wd_run_event(r, WD_AE_AGENT_LOG, 1);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "fields", f);
    if (r->det) /* agents tag choices and evidence this way (selection and confirmation bias) */
        wd_run_observe(r, json_pack("{s:s,s:O}", "type", "log", "fields", f));
    wd_run_audit(r, ev);
    return 0;
}

static int c_budget(lua_State *L)
{
    wd_run *r = run_of(L);
    wd_policy *p = wd_engine_policy(r->eng);
    double limit = wd_budget_run_limit(r, p);
    wd_policy_unref(p);
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, r->cost);
    lua_setfield(L, -2, "cost_usd");
    lua_pushnumber(L, limit);
    lua_setfield(L, -2, "per_run_usd");
    lua_pushnumber(L, limit - r->cost > 0 ? limit - r->cost : 0);
    lua_setfield(L, -2, "remaining_usd");
    lua_pushinteger(L, r->steps);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, r->max_iterations);
    lua_setfield(L, -2, "max_iterations");
    /* the user's and the installation's budgets: absent when unlimited */
    static const char *const LEFT[WD_BUDGET_KEYS] = {"user_daily_remaining_usd", "user_monthly_remaining_usd",
                                                     "global_monthly_remaining_usd"};
    double left[WD_BUDGET_KEYS];
    char msg[300];
    if (wd_budget_left(r, left, msg, sizeof msg) < 0) {
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "budgets_error");
        return 1;
    }
    for (int i = 0; i < WD_BUDGET_KEYS; i++)
        if (left[i] >= 0) {
            lua_pushnumber(L, left[i]);
            lua_setfield(L, -2, LEFT[i]);
        }
    return 1;
}

/* ctx:read_file(path) for tools: inside the tool's allowed resources only */
static int c_read_file(lua_State *L)
{
    wd_run *r = run_of(L);
    size_t plen;
    const char *path = luaL_checklstring(L, 2, &plen);
    if (strlen(path) != plen) {
        luaL_pushfail(L);
        lua_pushliteral(L, "a path cannot hold a NUL byte");
        return 2;
    }
    if (!r->tool.active) {
        luaL_pushfail(L);
        lua_pushliteral(L, "ctx:read_file is for tools whose policy lists allowed_resources");
        return 2;
    }
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_tool_policy *tp = wd_policy_tool(p, r->tool.name);
    char msg[600];
    int ok = 0, forbidden = 0;
    char *c = NULL;
    if (!tp || !tp->allowed_resources.n) {
        snprintf(msg, sizeof msg, "tool '%s' has no allowed_resources in the policy", r->tool.name);
    } else {
        /* the form that will be read is the form that is matched, beside the one given */
        c = wd_guard_canon(r->agent_dir, path);
        const wd_rx *hit = wd_guard_path_forbidden(&tp->forbidden, r->agent_dir, path, c);
        if (hit) {
            snprintf(msg, sizeof msg, "path '%s' matches forbidden pattern '%s'", path, wd_rx_source(hit));
            forbidden = 1;
            goto refused;
        }
        if (!c || !wd_guard_path_allowed(&tp->allowed_resources, r->agent_dir, c))
            snprintf(msg, sizeof msg, "path '%s' is outside the allowed resources", path);
        else
            ok = 1;
    }
refused:
    if (!ok) {
        wd_run_audit_guardrail(r, json_pack("{s:s}", "path", path), msg,
                               forbidden ? "forbidden_pattern" : "resource_access_denied",
                               forbidden ? "critical" : "high");
        wd_policy_unref(p);
        free(c);
        luaL_pushfail(L);
        lua_pushstring(L, msg);
        return 2;
    }
    wd_policy_unref(p);
    size_t len;
    char *text = wd_read_file(c, 1u << 20, &len);
    free(c);
    if (!text) {
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot read '%s': %s", path, errno == ERANGE ? "larger than 1 MiB" : strerror(errno));
        return 2;
    }
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

static int push_text(lua_State *L)
{
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

/* ctx:_json(v): v as compact JSON text, or nil and why (the engine's own libraries use
** it: cjson would give the run's state a finalizer, and the state a slower end) */
static int c_json(lua_State *L)
{
    char err[300];
    lua_settop(L, 2);
    json_t *j = wd_lua_to_json(L, 2, err, sizeof err);
    char *text = j ? wd_json_compact_text(j) : NULL;
    json_decref(j);
    if (!text) {
        lua_pushnil(L);
        lua_pushstring(L, j ? "out of memory" : err);
        return 2;
    }
    /* the text is ours until Lua has its copy: a memory error must not skip the free */
    lua_pushcfunction(L, push_text);
    lua_pushlightuserdata(L, text);
    int rc = lua_pcall(L, 1, 1, 0);
    free(text);
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}

/* ctx:history(): the conversation before the query (wd_run_opts.history), a new list of
** {role, content} each call; empty when the run was given none */
static int c_history(lua_State *L)
{
    wd_run *r = run_of(L);
    if (!r->history) {
        lua_newtable(L);
        return 1;
    }
    wd_json_push(L, r->history);
    return 1;
}

/* the tools loaded for this run, as the LLM should see them */
static int c_tool_specs(lua_State *L)
{
    json_t *specs = wd_run_tool_specs(run_of(L));
    if (!specs)
        return luaL_error(L, "ctx:tool_specs: out of memory");
    wd_json_push(L, specs);
    return 1;
}

/* The names in spec[field] join the run's allow-list: the only tools it may call. Those
** the policy declares are loaded now (a broken one fails the run at its start, naming
** it); a call to another is refused as undeclared. */
static void load_listed(lua_State *L, wd_run *r, const wd_policy *p, int spec, const char *field)
{
    if (lua_getfield(L, spec, field) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "tool");
            lua_remove(L, -2);
        }
        size_t len;
        const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!name || strlen(name) != len)
            luaL_error(L, "%s[%d] must be a tool name", field, (int)i);
        if (!strncmp(name, "agent:", 6)) { /* another agent, as the tool agent__NAME (agentcall.h) */
            lua_pushfstring(L, "agent__%s", name + 6);
            lua_replace(L, -2);
            name = lua_tostring(L, -1);
        }
        if (wd_tool_allow(r, name) < 0)
            luaL_error(L, "out of memory");
        if (wd_policy_tool(p, name) && wd_tool_load(r, L, name) < 0)
            lua_error(L);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* (policy, spec): the run's allow-list from an agent's tools or a workflow's steps */
static int configure_tools(lua_State *L)
{
    const wd_policy *p = lua_touserdata(L, 1);
    wd_run *r = run_of(L);
    load_listed(L, r, p, 2, "tools");
    load_listed(L, r, p, 2, "steps");
    load_listed(L, r, p, 2, "choose");
    return 0;
}

/* the agent's output_schema (a JSON Schema its final answer must fit) compiled into the
** run's, in place of a client's; raises naming what is wrong with it */
static void configure_output(lua_State *L, wd_run *r)
{
    if (lua_getfield(L, 2, "output_schema") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    char err[300];
    json_t *s = lua_istable(L, -1) ? wd_lua_to_json(L, -1, err, sizeof err) : NULL;
    lua_pop(L, 1);
    if (!json_is_object(s)) {
        json_decref(s);
        luaL_error(L, "output_schema must be a JSON Schema table ({type = \"object\", properties = {...}})");
        return;
    }
    wd_schema *c = wd_schema_compile(s, err, sizeof err);
    if (!c) {
        json_decref(s);
        luaL_error(L, "output_schema: %s", err);
        return;
    }
    json_decref(r->output_schema);
    wd_schema_free(r->output_check);
    r->output_schema = s;
    r->output_check = c;
}

/* ctx:_session(): the session's turns as the run was given them and whether they pass
** the policy's caps; nothing outside a session. For the runner's summarize hook. */
static int c_session(lua_State *L)
{
    wd_run *r = run_of(L);
    if (!r->session_turns)
        return 0;
    wd_json_push(L, r->session_turns);
    lua_pushboolean(L, wd_session_over(r));
    return 2;
}

/* ctx:_session_replace(turns): what the agent's summarize hook made of them */
static int c_session_replace(lua_State *L)
{
    wd_run *r = run_of(L);
    char err[300];
    if (!r->session_turns)
        return luaL_error(L, "the run is in no session");
    json_t *t = wd_lua_to_json(L, 2, err, sizeof err);
    if (!t)
        return luaL_error(L, "summarize: %s", err);
    if (json_is_object(t) && !json_object_size(t)) { /* an empty table: no turns */
        json_decref(t);
        t = json_array();
    }
    if (wd_session_replace(r, t, err, sizeof err) < 0)
        return luaL_error(L, "summarize must return the turns to keep: %s", err);
    return 0;
}

/* ctx:output_schema(): the run's (the agent's, or the one its client asked for), or nil */
static int c_output_schema(lua_State *L)
{
    wd_run *r = run_of(L);
    if (!r->output_schema)
        return 0;
    wd_json_push(L, r->output_schema);
    return 1;
}

/* ctx:_configure(spec): the runner hands the agent's spec to the engine */
static int c_configure(lua_State *L)
{
    wd_run *r = run_of(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (r->configured) /* once, by the runner: an agent cannot widen its own tools */
        return luaL_error(L, "ctx:_configure: the run is configured already");
    r->configured = 1;
    if (lua_getfield(L, 2, "name") == LUA_TSTRING) {
        free(r->agent_name);
        r->agent_name = wd_strdup(lua_tostring(L, -1));
        json_decref(r->j_ids[3]); /* the records from now on carry the new name */
        r->j_ids[3] = NULL;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "model") == LUA_TSTRING) {
        free(r->default_model);
        r->default_model = wd_strdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "max_iterations") == LUA_TNUMBER && lua_isinteger(L, -1)) {
        lua_Integer mi = lua_tointeger(L, -1);
        if (mi >= 1 && mi < r->max_iterations) /* the policy may only be lowered */
            r->max_iterations = (int)mi;
    }
    lua_pop(L, 1);
    r->session_hook = lua_getfield(L, 2, "summarize") == LUA_TFUNCTION;
    lua_pop(L, 1);
    configure_output(L, r);
    wd_policy *p = wd_engine_policy(r->eng);
    r->sb->in_engine++; /* the policy's reference must not be lost to a raise */
    lua_pushcfunction(L, configure_tools);
    lua_pushlightuserdata(L, p);
    lua_pushvalue(L, 2);
    int st = lua_pcall(L, 2, 0, 0);
    r->sb->in_engine--;
    wd_policy_unref(p);
    if (st != LUA_OK)
        return lua_error(L);
    char msg[300];
    lua_getfield(L, 2, "detectors");
    if (wd_detect_configure(r, L, lua_gettop(L), msg, sizeof msg) < 0)
        return luaL_error(L, "%s", msg);
    lua_pop(L, 1);
    return 0;
}

static const luaL_Reg warden_funcs[] = {
    {"tool", w_tool},
    {"agent", w_agent},
    {"workflow", w_workflow},
    {"detector", w_detector},
    {"transient", w_transient},
    {"prompt", w_prompt},
    {NULL, NULL},
};

static const luaL_Reg ctx_methods[] = {
    {"llm", c_llm},
    {"call_tool", c_call_tool},
    {"sleep", c_sleep},
    {"log", c_log},
    {"budget", c_budget},
    {"read_file", c_read_file},
    {"tool_specs", c_tool_specs},
    {"history", c_history},
    {"_configure", c_configure},
    {"output_schema", c_output_schema},
    {"_session", c_session},
    {"_session_replace", c_session_replace},
    {"_json", c_json},
    {NULL, NULL},
};

static const luaL_Reg tool_ctx_methods[] = {
    {"sleep", c_sleep}, {"log", c_log},   {"budget", c_budget}, {"read_file", c_read_file},
    {"http", c_http},   {"exec", c_exec}, {NULL, NULL},
};

static void new_mt(lua_State *L, const char *reg, const luaL_Reg *methods)
{
    int n = 0;
    while (methods[n].name)
        n++;
    lua_createtable(L, 0, 2);
    lua_createtable(L, 0, n);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, reg);
}

int wd_lua_open_warden(lua_State *L)
{
    wd_sandbox_push_env(L);
    luaL_newlib(L, warden_funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, WARDEN_VERSION);
    lua_setfield(L, -2, "version");
    lua_setfield(L, -2, "warden");
    lua_pop(L, 1);
    new_mt(L, REG_CTX_MT, ctx_methods);
    new_mt(L, REG_TOOLCTX_MT, tool_ctx_methods);
    return 0;
}

void wd_lua_push_ctx(lua_State *L, wd_run *r, int for_tool)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, r->user_id);
    lua_setfield(L, -2, "user_id");
    lua_pushstring(L, r->run_id);
    lua_setfield(L, -2, "run_id");
    lua_pushstring(L, r->session_id);
    lua_setfield(L, -2, "session_id");
    lua_pushstring(L, r->agent_name);
    lua_setfield(L, -2, "agent");
    if (for_tool) {
        lua_pushstring(L, r->tool.name ? r->tool.name : "");
        lua_setfield(L, -2, "tool");
    }
    lua_getfield(L, LUA_REGISTRYINDEX, for_tool ? REG_TOOLCTX_MT : REG_CTX_MT);
    lua_setmetatable(L, -2);
}
