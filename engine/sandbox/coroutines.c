/* coroutines.c - coroutine.resume, wrap and close as the sandbox gives them: the hook
** follows the thread that runs, a kill stops every thread of the run, and the engine's
** own yields pass through to the driver. */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Back on L after another thread ran: a kill decided there stops L too (yielding out
** when it can, raising otherwise; the hook, on every instruction of L, raises again
** past any pcall). Returns 0 when the run goes on. */
static int stopped(wd_sandbox *sb, lua_State *L)
{
    if (sb->mode == WD_MODE_METER && wd_now_ns() >= sb->deadline_ns)
        wd_sandbox_kill(sb, WD_KILL_TIMEOUT);
    if (sb->mode != WD_MODE_KILL)
        return 0;
    wd_sandbox_arm_now(L);
    return 1;
}

int wd_sandbox_stop_here(wd_sandbox *sb, lua_State *L)
{
    if (lua_isyieldable(L))
        return lua_yield(L, 0);
    return luaL_error(L, "run stopped: %s", wd_sandbox_kill_text(sb->kill_reason));
}

static int resume_from(lua_State *L, lua_State *co, int narg, int wrap);

static int resume_cont(lua_State *L, int status, lua_KContext k)
{
    (void)status;
    int wrap = (int)k;
    lua_State *co = lua_tothread(L, wrap ? lua_upvalueindex(1) : 1);
    return resume_from(L, co, lua_gettop(L) - (wrap ? 0 : 1), wrap);
}

/* closes co's pending to-be-closed variables (their __close run on co, metered as co) */
static int close_thread(wd_sandbox *sb, lua_State *co, lua_State *L)
{
    lua_State *prev = sb->running;
    sb->running = co;
    wd_sandbox_arm(sb, co);
#if LUA_VERSION_RELEASE_NUM >= 50406
    int st = lua_closethread(co, L);
#else
    (void)L;
    int st = lua_resetthread(co);
#endif
    sb->running = prev;
    return st;
}

static int resume_from(lua_State *L, lua_State *co, int narg, int wrap)
{
    wd_sandbox *sb = wd_sandbox_of(L);
    if (stopped(sb, L))
        return wd_sandbox_stop_here(sb, L);
    if (co == L)
        return luaL_error(L, "cannot resume non-suspended coroutine");
    int cst = lua_status(co);
    if ((cst == LUA_OK && lua_gettop(co) == 0) || (cst != LUA_OK && cst != LUA_YIELD)) {
        if (wrap)
            return luaL_error(L, "cannot resume dead coroutine");
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume dead coroutine");
        return 2;
    }
    if (!lua_checkstack(co, narg))
        return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    lua_State *prev = sb->running;
    int nres = 0;
    int st;
again:
    sb->running = co;
    wd_sandbox_arm(sb, co);
    st = lua_resume(co, L, narg, &nres);
    sb->running = prev;
    wd_sandbox_arm(sb, L);
    if (st == LUA_YIELD && nres == 0 && sb->preempted && sb->mode != WD_MODE_KILL) {
        /* a preemption inside a script coroutine: pass it up to the engine */
        if (lua_isyieldable(L)) {
            lua_settop(L, wrap ? 0 : 1);
            return lua_yieldk(L, 0, (lua_KContext)wrap, resume_cont);
        }
        sb->preempted = 0;
        narg = 0;
        goto again;
    }
    if (stopped(sb, L))
        return wd_sandbox_stop_here(sb, L);
    if (st == LUA_YIELD && nres >= 1 && lua_touserdata(co, -nres) == WD_ENGINE_MARK) {
        if (!lua_isyieldable(L)) {
            lua_pop(co, nres);
            close_thread(sb, co, L);
            if (stopped(sb, L))
                return wd_sandbox_stop_here(sb, L);
            return luaL_error(L, "an engine call (ctx:...) was made in a coroutine resumed from a C function "
                                 "(sort, gsub, a metamethod); call it outside");
        }
        if (!lua_checkstack(L, nres))
            return luaL_error(L, "stack overflow");
        lua_settop(L, wrap ? 0 : 1);
        lua_xmove(co, L, nres);
        return lua_yieldk(L, nres, (lua_KContext)wrap, resume_cont);
    }
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        if (wrap)
            return nres;
        lua_pushboolean(L, 1);
        lua_insert(L, -(nres + 1));
        return nres + 1;
    }
    lua_xmove(co, L, 1); /* the error object */
    if (wrap) {
        close_thread(sb, co, L);
        if (stopped(sb, L))
            return wd_sandbox_stop_here(sb, L);
        return lua_error(L);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    return resume_from(L, co, lua_gettop(L) - 1, 0);
}

static int co_wrap_call(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    return resume_from(L, co, lua_gettop(L), 1);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrap_call, 1);
    return 1;
}

/* coroutine.close: co's __close handlers run metered as co, and a kill there stops L */
static int co_close(lua_State *L)
{
    wd_sandbox *sb = wd_sandbox_of(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    lua_Debug ar;
    if (co == L)
        return luaL_error(L, "cannot close a running coroutine");
    if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
        return luaL_error(L, "cannot close a normal coroutine");
    int st = close_thread(sb, co, L);
    if (stopped(sb, L))
        return wd_sandbox_stop_here(sb, L);
    if (st == LUA_OK || st == LUA_YIELD) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

int wd_sandbox_yield(lua_State *L)
{
    lua_pushlightuserdata(L, WD_ENGINE_MARK);
    return lua_yield(L, 1);
}

int wd_sandbox_yieldk(lua_State *L, lua_KContext ctx, lua_KFunction k)
{
    lua_pushlightuserdata(L, WD_ENGINE_MARK);
    return lua_yieldk(L, 1, ctx, k);
}

static const luaL_Reg CO_FNS[] = {
    {"close", co_close},
    {"resume", co_resume},
    {"wrap", co_wrap},
    {NULL, NULL},
};

void wd_sandbox_co_install(lua_State *L, int t)
{
    lua_pushvalue(L, t);
    luaL_setfuncs(L, CO_FNS, 0);
    lua_pop(L, 1);
}
