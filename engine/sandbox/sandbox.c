/* sandbox.c - a run's lua_State put together: its meter (meter.c), its library
** (baselib.c) and its place under the watchdog (watchdog.c). */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int panic(lua_State *L)
{
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    fprintf(stderr, "warden: unprotected Lua error in the engine: %s\n", m);
    abort();
}

wd_sandbox *wd_sandbox_new(size_t mem_limit, long long instr_limit, const char *agent_dir, char *err, size_t errlen)
{
    wd_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    sb->limit = mem_limit;
    sb->instr_limit = instr_limit;
    if (agent_dir && !(sb->agent_dir = wd_strdup(agent_dir))) {
        wd_errf(err, errlen, "out of memory");
        free(sb);
        return NULL;
    }
    sb->in_engine = 1;
    lua_State *L = lua_newstate(wd_sandbox_alloc, sb);
    if (!L) {
        wd_errf(err, errlen, "cannot create a Lua state within %zu bytes", mem_limit);
        wd_sandbox_free(sb); /* what the failed state took is still in the arena */
        return NULL;
    }
    sb->L = L;
    lua_atpanic(L, panic);
    wd_sandbox_lists_once();
    lua_pushcfunction(L, wd_sandbox_build_env);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        wd_errf(err, errlen, "sandbox setup failed: %s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
        wd_sandbox_free(sb);
        return NULL;
    }
    sb->in_engine = 0;
    return sb;
}

void wd_sandbox_free(wd_sandbox *sb)
{
    if (!sb)
        return;
    /* without finalizers nothing in the state holds anything outside its memory, and
    ** the arena drops that at once (lua_close would free object after object) */
    if (sb->L && sb->needs_close) {
        sb->in_engine = 1;
        lua_close(sb->L);
    }
    wd_arena_clear(&sb->arena);
    free(sb->agent_dir);
    free(sb->agent_canon);
    free(sb);
}
