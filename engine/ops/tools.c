/* tools.c - a run's tools: the agent's allow-list, the scripts loaded with their
** schemas, the specs the model sees, and the record of every call (tool_calls) */
#include "toolpriv.h"
#include "approval.h"
#include "canon.h"
#include "checkdef.h"
#include "exec.h"
#include "fetch.h"
#include "guard.h"
#include "jsonlua.h"
#include "llm.h"
#include "mcpcall.h"
#include "agentcall.h"
#include "mcphost.h"
#include "redact.h"
#include "util.h"

#include <lauxlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_CHARS 200

/* args is shared, not copied: nothing changes it after the call. result: the summary,
** or why the call failed; value: what the tool returned (NULL when it did not run) for
** the detectors' tool_result event */
void wd_tool_record(wd_run *r, const char *name, json_t *args, const char *result, int ok, json_t *value, int ran)
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
char *wd_tool_summary(const char *s, int *truncated) { return wd_utf8_head(s, strlen(s), SUMMARY_CHARS, truncated); }

/* ** What a call touched, for the record (docs/safety.md, Audit schema): the canonical
** paths of its path arguments, or the tool itself ("tool:NAME") when it takes none;
** read, when the tool's category is read; read and changed for any other category. */
void wd_tool_data_touched(wd_run *r, json_t *ev, int impl, const json_t *args)
{
    const wd_tool_policy *tp = wd_policy_tool(r->pol, r->tool.name);
    json_t *res =
        wd_guard_touched(impl >= 0 && (size_t)impl < r->ntools ? r->tools[impl].schema : NULL, r->agent_dir, args);
    if (!res)
        return;
    if (!json_array_size(res)) {
        char nm[300];
        snprintf(nm, sizeof nm, "tool:%s", r->tool.name);
        json_array_append_new(res, json_string(nm));
    }
    int reads = !tp || !tp->category || !strcmp(tp->category, "read");
    json_object_set_new(ev, "data_modified", reads ? json_array() : json_incref(res)); /* one value, twice */
    json_object_set_new(ev, "data_accessed", res);
}

/* a refusal: audited under event (NULL: by the caller), recorded in tool_calls, {error=msg}
** for the agent */
json_t *wd_tool_refusal(wd_run *r, wd_audit_event event, const char *name, json_t *args, const char *msg)
{
    json_t *ev = wd_run_event(r, event, 0);
    json_object_set_new(ev, "tool_name", json_string(name));
    json_object_set_new(ev, "tool_args", args ? json_deep_copy(args) : json_null());
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "reason", json_string(msg));
    json_object_set_new(ev, "error", json_string(msg));
    return ev;
}

int wd_tool_refuse(wd_run *r, lua_State *L, wd_audit_event event, const char *name, json_t *args, const char *msg)
{
    if (event != WD_AE_NONE) /* audited already otherwise */
        wd_run_audit(r, wd_tool_refusal(r, event, name, args, msg));
    wd_tool_record(r, name, args, msg, 0, NULL, 0);
    json_decref(args);
    wd_push_error_table(L, msg);
    return 1;
}

/* a refused name the policy does not declare: marked, so that no metric takes it as a label */
int wd_tool_refuse_undeclared(wd_run *r, lua_State *L, const char *name, json_t *args, const char *msg)
{
    json_t *ev = wd_tool_refusal(r, WD_AE_AUTHORIZATION_DENIED, name, args, msg);
    json_object_set_new(ev, "tool_undeclared", json_true());
    wd_run_audit(r, ev);
    return wd_tool_refuse(r, L, WD_AE_NONE, name, args, msg);
}

int wd_tool_allows(const wd_run *r, const char *name)
{
    for (size_t i = 0; i < r->nallowed; i++)
        if (!strcmp(r->allowed[i], name))
            return 1;
    return 0;
}

int wd_tool_allow(wd_run *r, const char *name)
{
    if (wd_tool_allows(r, name))
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

/* a new entry of r->tools for `name` (takes params and schema, freed on failure); NULL
** out of memory */
static wd_tool_impl *add_impl(wd_run *r, const char *name, json_t *params, wd_schema *schema)
{
    wd_tool_impl *t = realloc(r->tools, (r->ntools + 1) * sizeof *t);
    if (!t) {
        json_decref(params);
        wd_schema_free(schema);
        return NULL;
    }
    r->tools = t;
    t = &r->tools[r->ntools];
    memset(t, 0, sizeof *t);
    t->name = wd_strdup(name);
    if (asprintf(&t->breaker, "tool:%s", name) < 0)
        t->breaker = NULL;
    t->parameters = params;
    t->schema = schema;
    return t;
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
    wd_tool_impl *t = add_impl(r, name, params, schema);
    if (!t) {
        lua_pop(L, 1);
        lua_pushliteral(L, "out of memory");
        return -1;
    }
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

/* ** An MCP server's tool (docs/mcp.md), NAME__TOOL where NAME is a server of the
** policy: registered like a script's, its schema the server's inputSchema compiled by
** warden's validator (a keyword it does not know is an error here, naming the tool), its
** handler the MCP call. -1 with the message pushed */
static int register_mcp(wd_run *r, lua_State *L, const char *name, size_t server_len)
{
    char why[700], err[600];
    wd_mcp *conn;
    const json_t *def = wd_mcp_host_tool(r->eng->mcp, name, server_len, name + server_len + 2, &conn, why, sizeof why);
    if (!def) {
        lua_pushfstring(L, "tool '%s': %s", name, why);
        return -1;
    }
    json_t *params = json_deep_copy(json_object_get(def, "inputSchema"));
    if (!json_is_object(params)) {
        json_decref(params);
        params = json_pack("{s:s}", "type", "object");
    }
    json_object_del(params, "$schema"); /* the draft it follows: an annotation */
    /* the policy names which arguments are paths: guardrails confine them like a script's */
    const wd_tool_policy *tp = wd_policy_tool(r->pol, name);
    json_t *props = json_object_get(params, "properties");
    for (size_t i = 0; tp && json_is_object(props) && i < tp->path_arguments.n; i++) {
        json_t *prop = json_object_get(props, tp->path_arguments.v[i]);
        json_t *items = json_object_get(prop, "items");
        if (json_is_object(items)) /* a list of paths: each one */
            json_object_set_new(items, "format", json_string("path"));
        if (json_is_object(prop))
            json_object_set_new(prop, "format", json_string("path"));
    }
    wd_schema *schema = wd_schema_compile(params, err, sizeof err);
    wd_tool_impl *t = schema ? add_impl(r, name, params, schema) : NULL;
    if (!t) {
        if (!schema)
            json_decref(params);
        lua_pushfstring(L, "tool '%s': its inputSchema: %s", name, schema ? "out of memory" : err);
        return -1;
    }
    const char *d = json_string_value(json_object_get(def, "description"));
    t->description = wd_strdup(d ? d : "");
    lua_pushlstring(L, name, server_len);
    lua_pushstring(L, name + server_len + 2);
    lua_pushcclosure(L, wd_mcpcall_handler, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return (int)r->ntools++;
}

/* another agent as a tool (agentcall.h); -1 with the message pushed */
static int register_agent(wd_run *r, lua_State *L, const char *name)
{
    json_t *params = NULL;
    char *desc = NULL, err[300];
    if (wd_agentcall_prepare(r, L, name, &params, &desc) < 0)
        return -1;
    wd_schema *schema = params ? wd_schema_compile(params, err, sizeof err) : NULL;
    wd_tool_impl *t = schema && desc ? add_impl(r, name, params, schema) : NULL;
    if (!t) {
        wd_schema_free(schema);
        json_decref(params);
        free(desc);
        lua_pop(L, 1);
        lua_pushfstring(L, "tool '%s': out of memory", name);
        return -1;
    }
    t->description = desc;
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
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
    case JSON_STRING: return json_string_length(v);
    case JSON_OBJECT: json_object_foreach((json_t *)v, k, x) n += strlen(k) + json_text_bytes(x, depth + 1); return n;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++)
            n += json_text_bytes(json_array_get(v, i), depth + 1);
        return n;
    default: return 4;
    }
}

json_t *wd_run_tool_specs(wd_run *r)
{
    if (r->tool_specs && r->tool_specs_n == r->ntools)
        return r->tool_specs;
    json_t *specs = json_array();
    for (size_t i = 0; specs && i < r->ntools; i++) {
        json_t *t =
            json_pack("{s:s,s:s,s:O?}", "name", r->tools[i].name, "description",
                      r->tools[i].description ? r->tools[i].description : "", "parameters", r->tools[i].parameters);
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
    if (!wd_name_ok(name)) {
        lua_pushfstring(L, "'%s' is not a valid tool name", name);
        return -1;
    }
    const char *sep = strstr(name, "__");
    if (sep && sep > name && wd_policy_mcp_server(r->pol, name, (size_t)(sep - name)))
        return register_mcp(r, L, name, (size_t)(sep - name));
    if (!strncmp(name, WD_AGENT_TOOL_PREFIX, strlen(WD_AGENT_TOOL_PREFIX)) && name[strlen(WD_AGENT_TOOL_PREFIX)])
        return register_agent(r, L, name);
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
        lua_pushfstring(L, "no script for tool '%s' (looked for %s in the agent's directory and agents/tools/)", name,
                        rel);
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

/* wd_tool_allow and wd_tool_load fill r->tools and r->allowed; the sleep, end and
** approval kinds keep nothing of their own (op_timer is the run's) */
void wd_tool_free_all(wd_run *r)
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
