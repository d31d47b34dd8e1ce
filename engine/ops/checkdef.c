/* checkdef.c - the definition tables scripts return, read raw (checkdef.h) */
#include "checkdef.h"
#include "jsonlua.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

static const char *const EV_NAMES[] = {"llm_call", "tool_call", "tool_result", "log", "run_finished", NULL};

unsigned wd_check_event_bit(const char *name)
{
    for (int i = 0; EV_NAMES[i]; i++)
        if (!strcmp(name, EV_NAMES[i]))
            return 1u << i;
    return 0;
}

/* t[k] without metamethods: a definition is read outside any watched slice */
int wd_check_rawfield(lua_State *L, int idx, const char *k)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

/* 1 when the table at idx has kind == what, raw */
int wd_check_is_kind(lua_State *L, int idx, const char *what)
{
    if (!lua_istable(L, idx))
        return 0;
    int ok = wd_check_rawfield(L, idx, "kind") == LUA_TSTRING && !strcmp(lua_tostring(L, -1), what);
    lua_pop(L, 1);
    return ok;
}

static int named(lua_State *L, int idx, const char *name)
{
    int ok = wd_check_rawfield(L, idx, "name") == LUA_TSTRING && !strcmp(lua_tostring(L, -1), name);
    lua_pop(L, 1);
    return ok;
}

int wd_check_tool_def(lua_State *L, int idx, const char *name, const char *file, json_t **params, wd_schema **schema,
                      char *err, size_t n)
{
    *params = NULL;
    *schema = NULL;
    idx = lua_absindex(L, idx);
    if (!wd_check_is_kind(L, idx, "tool")) {
        wd_errf(err, n, "%s must return warden.tool{...}", file);
        return -1;
    }
    if (!named(L, idx, name)) {
        wd_errf(err, n, "%s declares a tool whose name is not '%s'", file, name);
        return -1;
    }
    char why[400];
    json_t *p;
    if (wd_check_rawfield(L, idx, "parameters") == LUA_TNIL)
        p = json_pack("{s:s}", "type", "object");
    else
        p = wd_lua_to_json(L, -1, why, sizeof why);
    lua_pop(L, 1);
    if (!p) {
        wd_errf(err, n, "%s: parameters: %s", file, why);
        return -1;
    }
    wd_schema *s = wd_schema_compile(p, why, sizeof why);
    if (!s) {
        json_decref(p);
        wd_errf(err, n, "%s: parameters%s", file, why);
        return -1;
    }
    *params = p;
    *schema = s;
    return 0;
}

int wd_check_detector_def(lua_State *L, int idx, const char *name, const char *file, unsigned *on, int *per_user,
                          char *err, size_t n)
{
    *per_user = 0;
    idx = lua_absindex(L, idx);
    if (!wd_check_is_kind(L, idx, "detector")) {
        wd_errf(err, n, "%s must return warden.detector{...}", file);
        return -1;
    }
    if (!named(L, idx, name)) {
        wd_errf(err, n, "%s must return warden.detector{name = \"%s\", ...}", file, name);
        return -1;
    }
    int t = wd_check_rawfield(L, idx, "check");
    lua_pop(L, 1);
    if (t != LUA_TFUNCTION) {
        wd_errf(err, n, "%s: check must be a function(event, history, ctx)", file);
        return -1;
    }
    int st = wd_check_rawfield(L, idx, "state");
    const char *sv = st == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    *per_user = sv && !strcmp(sv, "user");
    lua_pop(L, 1);
    if (st != LUA_TNIL && !(sv && (*per_user || !strcmp(sv, "agent")))) {
        wd_errf(err, n,
                "%s: state must be \"agent\" (the default: ctx.store is the agent's) or \"user\" (the "
                "agent's, per user)",
                file);
        return -1;
    }
    *on = ~0u;
    if (wd_check_rawfield(L, idx, "on") == LUA_TTABLE) {
        *on = 0;
        lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, i);
            unsigned bit = lua_type(L, -1) == LUA_TSTRING ? wd_check_event_bit(lua_tostring(L, -1)) : 0;
            lua_pop(L, 1);
            if (!bit) {
                lua_pop(L, 1);
                wd_errf(err, n, "%s: on[%d] must be one of llm_call, tool_call, tool_result, log, run_finished", file,
                        (int)i);
                return -1;
            }
            *on |= bit;
        }
    }
    lua_pop(L, 1);
    return 0;
}
