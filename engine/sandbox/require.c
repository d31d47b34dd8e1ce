/* require.c - the sandbox's require: engine modules (warden.*, cjson) and the agent's
** own files, confined to its directory, compiled once per file version (chunks.h). */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"
#include "home.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "chunks.h"
#include "guard.h"
#include "lcjson.h"

int wd_sandbox_loadfile(lua_State *L, const char *path, const char *chunkname)
{
    int rc = wd_chunks_load(L, path, chunkname ? chunkname : path);
    if (rc != LUA_OK)
        return rc == LUA_ERRFILE ? WD_SANDBOX_NOFILE : -1;
    lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 0;
}

const char *wd_sandbox_agent_dir(wd_sandbox *sb)
{
    if (!sb->agent_canon && sb->agent_dir)
        sb->agent_canon = wd_guard_canon(NULL, sb->agent_dir);
    return sb->agent_canon;
}

static char lua_dir[4200];
static void find_lua_dir(void) { wd_home_path("lua", lua_dir, sizeof lua_dir); }

/* WARDEN_LUA_DIR, else the home's lua/ (home.h) */
const char *wd_sandbox_lua_dir(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const char *d = getenv("WARDEN_LUA_DIR");
    if (d && *d)
        return d;
    pthread_once(&once, find_lua_dir);
    return lua_dir;
}

static int valid_modname(const char *s)
{
    if (!*s || *s == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              (*p == '.' && p[1] != '.' && p[1])))
            return 0;
    return 1;
}

/* require: engine modules (warden.*, cjson) and files under the agent's directory */
int wd_sandbox_require(lua_State *L)
{
    wd_sandbox *sb = wd_sandbox_of(L);
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_LOADED);
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (!strcmp(name, "cjson") || !strcmp(name, "cjson.safe")) {
        /* its settings live in a userdata with a finalizer: the state needs lua_close */
        sb->needs_close = 1;
        if (!wd_lcjson_open(L))
            return luaL_error(L, "module '%s' not found: lua-cjson is not installed", name);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "cjson");
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "cjson.safe");
        return 1;
    }
    if (!valid_modname(name))
        return luaL_error(L, "module '%s' not found: names are letters, digits, _ and dots", name);
    char rel[512], path[1024];
    snprintf(rel, sizeof rel, "%s", name);
    for (char *p = rel; *p; p++)
        if (*p == '.')
            *p = '/';
    int engine = !strncmp(name, "warden.", 7);
    const char *dir = engine ? NULL : wd_sandbox_agent_dir(sb);
    if (engine)
        snprintf(path, sizeof path, "%s/%s.lua", wd_sandbox_lua_dir(), rel);
    else if (dir)
        snprintf(path, sizeof path, "%s/%s.lua", dir, rel);
    else
        return luaL_error(L, "module '%s' not found", name);
    if (!engine) {
        char *c = wd_guard_canon(dir, path);
        size_t l = strlen(dir);
        int inside = c && !strncmp(c, dir, l) && c[l] == '/';
        free(c);
        if (!inside)
            return luaL_error(L,
                              "module '%s' not found: only engine modules and files in the agent's "
                              "directory can be required",
                              name);
    }
    int rc = wd_sandbox_loadfile(L, path, engine ? path : rel);
    if (rc == WD_SANDBOX_NOFILE)
        return luaL_error(L, "module '%s' not found (looked for %s)", name, engine ? path : rel);
    if (rc < 0)
        return lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}
