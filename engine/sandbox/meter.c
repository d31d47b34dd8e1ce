/* meter.c - a sandbox's meter: the allocator that holds the memory cap, the count hook
** that holds the deadline and the instruction limit and preempts long slices, and the
** kills the engine, the watchdog or the allocator decide. */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char wd_engine_mark_addr;

wd_sandbox *wd_sandbox_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* The state's allocator. The cap holds on the bytes the state has asked for and not
** given back (plus a slack while the engine itself allocates); an overrun by the script
** kills the run. The arena may hold more than that (chunk tails, freed blocks of one
** size serving only that size), but never more than twice the cap: a script churning
** through sizes to make the arena grow behind a small live count runs out there. */
void *wd_sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    wd_sandbox *sb = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        wd_arena_release(&sb->arena, ptr, osize);
        sb->used -= old;
        return NULL;
    }
    size_t cap = sb->limit + (sb->in_engine ? ENGINE_SLACK : 0);
    if (nsize > old && sb->used + (nsize - old) > cap) {
        if (!sb->in_engine && sb->L)
            wd_sandbox_kill(sb, WD_KILL_MEMORY);
        return NULL;
    }
    size_t held_cap = cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * cap;
    void *p =
        ptr ? wd_arena_resize(&sb->arena, ptr, osize, nsize, held_cap) : wd_arena_alloc(&sb->arena, nsize, held_cap);
    if (p)
        sb->used = sb->used - old + nsize;
    else if (nsize > old && !sb->in_engine && sb->L)
        wd_sandbox_kill(sb, WD_KILL_MEMORY);
    return p;
}

const char *wd_sandbox_kill_text(int reason)
{
    switch (reason) {
    case WD_KILL_TIMEOUT: return "time limit exceeded";
    case WD_KILL_INSTRUCTIONS: return "instruction limit exceeded";
    case WD_KILL_MEMORY: return "memory limit exceeded";
    case WD_KILL_CANCEL: return "cancelled";
    case WD_KILL_LIMIT: return "a run limit was reached";
    default: return "stopped";
    }
}

/*
** The hook. Armed by the watchdog (METER) on a slice that ran past METER_AFTER_NS,
** by the allocator (KILL) on a memory overrun, or by the engine. In METER mode it
** checks the deadline and the instruction budget every METER_COUNT instructions of a
** thread, and at the next instruction of whatever thread runs when the watchdog fires
** again (every RECHECK_NS): counts are per thread and a script that spreads its work
** over coroutines never lets one count run down, but it cannot escape the watchdog. In
** KILL mode it fires on every instruction and yields out of the thread, which the
** engine never resumes; where a yield is impossible (inside a C call such as
** table.sort) it raises, and since it fires again on the next instruction outside any
** pcall, no pcall can swallow the kill.
*/
void wd_sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    wd_sandbox *sb = wd_sandbox_of(L);
    if (sb->mode == WD_MODE_NONE) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    if (sb->mode == WD_MODE_METER) {
        int count = lua_gethookcount(L);
        sb->instr += count;
        if (count != METER_COUNT) /* the watchdog's forced check: back to the period */
            lua_sethook(L, wd_sandbox_hook, LUA_MASKCOUNT, METER_COUNT);
        int64_t now = wd_now_ns();
        if (now >= sb->deadline_ns)
            wd_sandbox_kill(sb, WD_KILL_TIMEOUT);
        else if (sb->instr_limit > 0 && sb->instr > sb->instr_limit)
            wd_sandbox_kill(sb, WD_KILL_INSTRUCTIONS);
        else {
            /* preemption: a long slice gives the loop back, so other runs go on */
            if (now - sb->slice_start_ns > QUANTUM_NS && lua_isyieldable(L)) {
                sb->preempted = 1;
                lua_yield(L, 0);
            }
            return;
        }
    }
    if (sb->kill_reason == WD_KILL_TIMEOUT && wd_now_ns() < sb->deadline_ns) {
        /* a stale alarm from the previous slice: go back to metering */
        sb->mode = WD_MODE_METER;
        sb->kill_reason = WD_KILL_NONE;
        lua_sethook(L, wd_sandbox_hook, LUA_MASKCOUNT, METER_COUNT);
        return;
    }
    wd_sandbox_arm_now(L);
    if (lua_isyieldable(L))
        lua_yield(L, 0);
    sb->in_engine++;
    lua_pushfstring(L, "run stopped: %s", wd_sandbox_kill_text(sb->kill_reason));
    sb->in_engine--;
    lua_error(L);
}

void wd_sandbox_error_text(lua_State *L, int idx, char *out, size_t n, int *transient)
{
    idx = lua_absindex(L, idx);
    if (transient)
        *transient = 0;
    int t = lua_type(L, idx);
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "transient");
        lua_rawget(L, idx);
        if (transient)
            *transient = lua_toboolean(L, -1);
        lua_pushliteral(L, "message");
        if (lua_rawget(L, idx) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
            wd_sandbox_error_text(L, -1, out, n, NULL);
        } else {
            snprintf(out, n, "(error object is a table)");
        }
        lua_pop(L, 2);
        return;
    }
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, idx); /* lua_tolstring turns a number into a string in place */
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        wd_cstr_copy(out, n, s, len);
        lua_pop(L, 1);
        return;
    }
    snprintf(out, n, "(error object is a %s value)", lua_typename(L, t));
}

/* ** lua_sethook marks every frame of the thread for the hook (Lua 5.4's settraps walks
** its whole CallInfo list), so it costs the depth of the stack. A thread already hooked
** at every instruction is left as it is: a kill re-arming it at each instruction of a
** recursion a million frames deep held the run ten times past its deadline. */
void wd_sandbox_arm_now(lua_State *L)
{
    if (lua_gethook(L) == wd_sandbox_hook && lua_gethookmask(L) == LUA_MASKCOUNT && lua_gethookcount(L) == 1)
        return;
    lua_sethook(L, wd_sandbox_hook, LUA_MASKCOUNT, 1);
}

void wd_sandbox_kill(wd_sandbox *sb, int reason)
{
    if (sb->mode != WD_MODE_KILL || sb->kill_reason == WD_KILL_NONE)
        sb->kill_reason = reason;
    sb->mode = WD_MODE_KILL;
    lua_State *r = sb->running;
    if (r)
        wd_sandbox_arm_now(r);
}

void wd_sandbox_tick(lua_State *L, unsigned long *steps)
{
    if ((++*steps & 1023))
        return;
    if (lua_getfield(L, LUA_REGISTRYINDEX, WD_SANDBOX_MARK) != LUA_TBOOLEAN) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    wd_sandbox *sb = wd_sandbox_of(L);
    if (sb->mode == WD_MODE_KILL || wd_now_ns() >= sb->deadline_ns) {
        wd_sandbox_kill(sb, sb->mode == WD_MODE_KILL && sb->kill_reason ? sb->kill_reason : WD_KILL_TIMEOUT);
        luaL_error(L, "run stopped: %s", wd_sandbox_kill_text(sb->kill_reason));
    }
}

/* Carries the hook of the current mode onto th, the thread about to run. Hooks are per
** thread; a thread already metered keeps its count running (lua_sethook would restart
** it, and a coroutine resumed in a loop would never reach the end of its period). */
void wd_sandbox_arm(wd_sandbox *sb, lua_State *th)
{
    if (sb->mode == WD_MODE_KILL)
        wd_sandbox_arm_now(th);
    else if (sb->mode == WD_MODE_METER && lua_gethook(th) != wd_sandbox_hook)
        lua_sethook(th, wd_sandbox_hook, LUA_MASKCOUNT, METER_COUNT);
}
