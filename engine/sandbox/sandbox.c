/* sandbox.c - per-run lua_State, safe globals, confined require, preemption. */
#include "sandbox.h"
#include "chunks.h"
#include "guard.h"
#include "lcjson.h"
#include "lmatch.h"
#include "lstring.h"
#include "ltable.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef WD_LUA_DIR
#define WD_LUA_DIR "lua"
#endif

#define METER_COUNT 10000
#define METER_AFTER_NS (2 * 1000000LL)  /* a slice runs this long unmetered */
#define RECHECK_NS (2 * 1000000LL)      /* then the watchdog forces a check this often */
#define QUANTUM_NS (20 * 1000000LL)     /* then yields to other runs where it can */
#define ENGINE_SLACK (32u << 20)        /* the engine may exceed the cap by this much */
#define REG_ENV "wd.env"
#define REG_LOADED "wd.loaded"

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
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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
    void *p = ptr ? wd_arena_resize(&sb->arena, ptr, osize, nsize, held_cap)
                  : wd_arena_alloc(&sb->arena, nsize, held_cap);
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
static void sb_hook(lua_State *L, lua_Debug *ar)
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
            lua_sethook(L, sb_hook, LUA_MASKCOUNT, METER_COUNT);
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
        lua_sethook(L, sb_hook, LUA_MASKCOUNT, METER_COUNT);
        return;
    }
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
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

void wd_sandbox_kill(wd_sandbox *sb, int reason)
{
    if (sb->mode != WD_MODE_KILL || sb->kill_reason == WD_KILL_NONE)
        sb->kill_reason = reason;
    sb->mode = WD_MODE_KILL;
    lua_State *r = sb->running;
    if (r)
        lua_sethook(r, sb_hook, LUA_MASKCOUNT, 1);
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

/* ---- watchdog ---------------------------------------------------------------- */

#define MAX_SLOTS 256

typedef struct {
    _Atomic int used;
    _Atomic(pthread_t) thread; /* read by the watchdog while a new thread takes the slot */
    _Atomic(wd_sandbox *) sb;
    _Atomic int64_t started;
    _Atomic int64_t signalled; /* when the watchdog last interrupted this slice (0: never) */
} slot_t;

static slot_t slots[MAX_SLOTS];
static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static int wd_started;
static _Thread_local slot_t *my_slot;

static slot_t *find_slot(void)
{
    pthread_t self = pthread_self();
    for (int i = 0; i < MAX_SLOTS; i++)
        if (atomic_load(&slots[i].used) && pthread_equal(atomic_load(&slots[i].thread), self))
            return &slots[i];
    return NULL;
}

/* Runs on the loop thread, interrupting Lua: lua_sethook is async-signal-safe. Only the
** loop thread (and this handler, on it) touches a sandbox: the watchdog sees slots,
** never sandboxes, so a sandbox freed after its slice is never written by it. */
static void on_signal(int sig)
{
    (void)sig;
    int e = errno;
    slot_t *s = find_slot();
    wd_sandbox *sb = s ? atomic_load(&s->sb) : NULL;
    if (sb && sb->running) {
        if (sb->mode == WD_MODE_NONE)
            sb->mode = WD_MODE_METER;
        lua_sethook(sb->running, sb_hook, LUA_MASKCOUNT, 1); /* check at the next instruction */
    }
    errno = e;
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec tick = {0, 1000000}; /* 1 ms */
    for (;;) {
        nanosleep(&tick, NULL);
        int64_t now = wd_now_ns();
        for (int i = 0; i < MAX_SLOTS; i++) {
            slot_t *s = &slots[i];
            if (!atomic_load(&s->used))
                continue;
            if (!atomic_load(&s->sb))
                continue;
            int64_t last = atomic_load(&s->signalled);
            if (now - atomic_load(&s->started) > METER_AFTER_NS && (!last || now - last >= RECHECK_NS)) {
                atomic_store(&s->signalled, now);
                pthread_kill(atomic_load(&s->thread), SIGURG);
            }
        }
    }
    return NULL;
}

int wd_watchdog_attach(void)
{
    if (my_slot)
        return 0;
    pthread_mutex_lock(&wd_mu);
    if (!wd_started) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGURG, &sa, NULL);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* the watchdog takes no signals */
        int rc = pthread_create(&t, &at, watchdog, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&at);
        if (rc) {
            pthread_mutex_unlock(&wd_mu);
            return -1;
        }
        wd_started = 1;
    }
    for (int i = 0; i < MAX_SLOTS; i++)
        if (!atomic_load(&slots[i].used)) {
            atomic_store(&slots[i].thread, pthread_self());
            atomic_store(&slots[i].sb, NULL);
            atomic_store(&slots[i].used, 1);
            my_slot = &slots[i];
            break;
        }
    pthread_mutex_unlock(&wd_mu);
    return my_slot ? 0 : -1;
}

void wd_watchdog_detach(void)
{
    if (!my_slot)
        return;
    atomic_store(&my_slot->sb, NULL);
    atomic_store(&my_slot->used, 0);
    my_slot = NULL;
}

int wd_sandbox_resume(wd_sandbox *sb, lua_State *co, int nargs, int *nres, int64_t deadline_ns)
{
    if (!my_slot)
        wd_watchdog_attach();
    sb->deadline_ns = deadline_ns;
    if (!sb->preempted)
        sb->instr = 0; /* a preempted slice keeps counting where it stopped */
    sb->preempted = 0;
    sb->running = co;
    if (sb->mode != WD_MODE_KILL) {
        sb->mode = WD_MODE_NONE;
        sb->kill_reason = WD_KILL_NONE;
    } else {
        lua_sethook(co, sb_hook, LUA_MASKCOUNT, 1);
    }
    sb->slice_start_ns = wd_now_ns();
    if (deadline_ns <= sb->slice_start_ns) {
        /* already late: meter from the first instruction, the hook will stop it */
        sb->mode = WD_MODE_METER;
        lua_sethook(co, sb_hook, LUA_MASKCOUNT, 1);
    }
    if (my_slot) {
        atomic_store(&my_slot->started, sb->slice_start_ns);
        atomic_store(&my_slot->signalled, 0);
        atomic_store(&my_slot->sb, sb);
    }
    int st = lua_resume(co, NULL, nargs, nres);
    if (my_slot)
        atomic_store(&my_slot->sb, NULL);
    sb->running = NULL;
    if (sb->mode == WD_MODE_METER)
        sb->mode = WD_MODE_NONE; /* hooks left on threads disarm themselves */
    return st;
}

int wd_sandbox_call(wd_sandbox *sb, int nargs, int64_t deadline, char *err, size_t n)
{
    lua_State *L = sb->L;
    lua_State *co = lua_newthread(L);
    lua_insert(L, -(nargs + 2));
    lua_xmove(L, co, nargs + 1);
    int nres = 0, st, narg = nargs;
    sb->in_engine--; /* the script's own allocations are under the cap */
    do {
        st = wd_sandbox_resume(sb, co, narg, &nres, deadline);
        narg = 0;
    } while (st == LUA_YIELD && nres == 0 && sb->preempted && sb->mode != WD_MODE_KILL);
    sb->in_engine++;
    int rc = WD_CALL_OK;
    if (sb->mode == WD_MODE_KILL) {
        rc = WD_CALL_KILLED;
    } else if (st == LUA_YIELD) {
        rc = WD_CALL_YIELDED;
    } else if (st != LUA_OK) {
        if (st == LUA_ERRMEM)
            snprintf(err, n, "memory limit exceeded");
        else
            wd_sandbox_error_text(co, -1, err, n, NULL);
        rc = WD_CALL_ERROR;
    } else {
        if (nres == 0)
            lua_pushnil(co);
        else
            lua_settop(co, lua_gettop(co) - nres + 1);
        lua_xmove(co, L, 1);
        lua_remove(L, -2); /* the thread */
        return WD_CALL_OK;
    }
    lua_pop(L, 1); /* the thread */
    return rc;
}

/* ---- coroutine wrappers -------------------------------------------------------- */

/* Carries the hook of the current mode onto th, the thread about to run. Hooks are per
** thread; a thread already metered keeps its count running (lua_sethook would restart
** it, and a coroutine resumed in a loop would never reach the end of its period). */
static void arm(wd_sandbox *sb, lua_State *th)
{
    if (sb->mode == WD_MODE_KILL)
        lua_sethook(th, sb_hook, LUA_MASKCOUNT, 1);
    else if (sb->mode == WD_MODE_METER && lua_gethook(th) != sb_hook)
        lua_sethook(th, sb_hook, LUA_MASKCOUNT, METER_COUNT);
}

/* Back on L after another thread ran: a kill decided there stops L too (yielding out
** when it can, raising otherwise; the hook, on every instruction of L, raises again
** past any pcall). Returns 0 when the run goes on. */
static int stopped(wd_sandbox *sb, lua_State *L)
{
    if (sb->mode == WD_MODE_METER && wd_now_ns() >= sb->deadline_ns)
        wd_sandbox_kill(sb, WD_KILL_TIMEOUT);
    if (sb->mode != WD_MODE_KILL)
        return 0;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    return 1;
}

static int stop_here(wd_sandbox *sb, lua_State *L)
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
    arm(sb, co);
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
        return stop_here(sb, L);
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
    arm(sb, co);
    st = lua_resume(co, L, narg, &nres);
    sb->running = prev;
    arm(sb, L);
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
        return stop_here(sb, L);
    if (st == LUA_YIELD && nres >= 1 && lua_touserdata(co, -nres) == WD_ENGINE_MARK) {
        if (!lua_isyieldable(L)) {
            lua_pop(co, nres);
            close_thread(sb, co, L);
            if (stopped(sb, L))
                return stop_here(sb, L);
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
            return stop_here(sb, L);
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
        return stop_here(sb, L);
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

/* ---- safe globals ------------------------------------------------------------- */

static int sb_print(lua_State *L)
{
    wd_buf b = {0};
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        wd_buf_add(&b, i > 1 ? "\t" : "", i > 1);
        wd_buf_add(&b, s, l);
        lua_pop(L, 1);
    }
    if (getenv("WARDEN_SCRIPT_PRINT"))
        fprintf(stderr, "[script] %s\n", b.p ? b.p : "");
    wd_buf_free(&b);
    return 0;
}

/*
** setmetatable without finalizers: a __gc metamethod would run when the collector or
** lua_close decides, outside any watched slice (an endless finalizer would hang the
** engine at the end of the run). Lua 5.4 marks an object for finalization only if its
** metatable has __gc when it is set, so refusing it here is enough.
*/
static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* load's source in pieces: compiling is C the hook cannot reach, so the slice's
** deadline is checked between pieces (a piece compiles in about a millisecond) */
typedef struct {
    wd_sandbox *sb;
    const char *s;
    size_t left;
} load_src;

static const char *load_piece(lua_State *L, void *ud, size_t *size)
{
    (void)L;
    load_src *src = ud;
    if (!src->left || wd_now_ns() >= src->sb->deadline_ns) {
        if (src->left)
            wd_sandbox_kill(src->sb, WD_KILL_TIMEOUT);
        *size = 0;
        return NULL;
    }
    size_t n = src->left < (64u << 10) ? src->left : (64u << 10);
    const char *p = src->s;
    src->s += n;
    src->left -= n;
    *size = n;
    return p;
}

static int sb_load(lua_State *L)
{
    size_t l;
    const char *s = lua_tolstring(L, 1, &l);
    if (!s)
        return luaL_argerror(L, 1, "load accepts source text only (no reader functions, no bytecode)");
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t"))
        return luaL_argerror(L, 3, "only mode \"t\" (text) is allowed");
    int has_env = !lua_isnone(L, 4);
    wd_sandbox *sb = wd_sandbox_of(L);
    load_src src = {sb, s, l};
    int st = lua_load(L, load_piece, &src, name, "t");
    if (sb->mode == WD_MODE_KILL) {
        lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
        return stop_here(sb, L);
    }
    if (st != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env)
        lua_pushvalue(L, 4);
    else
        lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    static const char *const ok[] = {"collect", "count", "step", "isrunning", NULL};
    const char *opt = luaL_optstring(L, 1, "collect");
    for (int i = 0; ok[i]; i++)
        if (!strcmp(opt, ok[i])) {
            switch (i) {
            case 0: lua_gc(L, LUA_GCCOLLECT); lua_pushinteger(L, 0); return 1;
            case 1: {
                int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
                lua_pushnumber(L, (lua_Number)kb + ((lua_Number)b / 1024));
                return 1;
            }
            case 2: lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0))); return 1;
            default: lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING)); return 1;
            }
        }
    return luaL_argerror(L, 1, "only collect, count, step and isrunning are allowed in the sandbox");
}

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

const char *wd_sandbox_lua_dir(void)
{
    const char *d = getenv("WARDEN_LUA_DIR");
    return d && *d ? d : WD_LUA_DIR;
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
static int sb_require(lua_State *L)
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
            return luaL_error(L, "module '%s' not found: only engine modules and files in the agent's "
                                 "directory can be required", name);
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

static int panic(lua_State *L)
{
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    fprintf(stderr, "warden: unprotected Lua error in the engine: %s\n", m);
    abort();
}

/* ---- the libraries a script sees -------------------------------------------- */

/*
** The standard libraries, listed once.
**
** Every run gets a new state, and opening the standard libraries in each made tables
** and names the sandbox then threw away (most of os and base, the module table), a
** fifth of the cost of starting a run. Instead a scratch state opens them once, as
** usual, and we list the C functions of each library a script may see; every run's
** state then builds just those tables from the lists. math is opened in each state as
** before: random and randomseed share a generator state (an upvalue). Should another
** library's function ever keep an upvalue, the lists cannot be made and no sandbox
** starts, with a message saying which.
*/
typedef struct {
    const char *name;
    lua_CFunction fn;
} lib_fn;

typedef struct {
    lib_fn *fns;
    int n;
} lib_list;

enum { LIST_BASE, LIST_STRING, LIST_STRMETA, LIST_TABLE, LIST_UTF8, LIST_CO, LIST_OS, NLISTS };
static lib_list lists[NLISTS];
static char *utf8_pattern;
static size_t utf8_pattern_len;
static char lists_err[200];
static pthread_once_t lists_once = PTHREAD_ONCE_INIT;

static const char *const BASE_FNS[] = {"assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall",
                                       "rawequal", "rawget", "rawlen", "rawset", "select",
                                       "getmetatable", "tonumber", "tostring", "type", NULL};
static const char *const CO_FNS[] = {"create", "yield", "status", "running", "isyieldable", NULL};
static const char *const OS_FNS[] = {"clock", "time", "date", "difftime", NULL};

static int listed(const char *const *names, const char *s)
{
    for (; *names; names++)
        if (!strcmp(*names, s))
            return 1;
    return 0;
}

/* the functions of the table at idx in S: only those named (all when only is NULL),
** never those in skip; -1 with lists_err set on a value that cannot be listed */
static int list_fns(lua_State *S, int idx, const char *lib, const char *const *only, const char *const *skip,
                    lib_list *out)
{
    int cap = 0;
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        const char *k = lua_type(S, -2) == LUA_TSTRING ? lua_tostring(S, -2) : NULL;
        if (k && (only ? listed(only, k) : !listed(skip, k))) {
            lua_CFunction fn = lua_tocfunction(S, -1);
            if (!fn || lua_getupvalue(S, -1, 1)) {
                snprintf(lists_err, sizeof lists_err, "the %s library's '%s' is not a plain C function", lib, k);
                lua_pop(S, 2);
                return -1;
            }
            if (out->n == cap) {
                cap = cap ? 2 * cap : 16;
                lib_fn *f = realloc(out->fns, (size_t)cap * sizeof *f);
                if (!f)
                    goto oom;
                out->fns = f;
            }
            out->fns[out->n].name = strdup(k);
            if (!out->fns[out->n].name)
                goto oom;
            out->fns[out->n++].fn = fn;
        }
        lua_pop(S, 1);
    }
    return 0;
oom:
    snprintf(lists_err, sizeof lists_err, "out of memory");
    lua_pop(S, 2);
    return -1;
}

static void make_lists(void)
{
    static const char *const none[] = {NULL}, *const no_dump[] = {"dump", NULL};
    static const char *const no_index[] = {"__index", NULL}, *const no_pattern[] = {"charpattern", NULL};
    lua_State *S = luaL_newstate();
    if (!S) {
        snprintf(lists_err, sizeof lists_err, "out of memory");
        return;
    }
    luaL_openlibs(S);
    int ok = 1;
    struct {
        const char *global;
        const char *const *only, *const *skip;
        int list;
    } libs[] = {
        {"_G", BASE_FNS, none, LIST_BASE},         {"string", NULL, no_dump, LIST_STRING},
        {"table", NULL, none, LIST_TABLE},         {"utf8", NULL, no_pattern, LIST_UTF8},
        {"coroutine", CO_FNS, none, LIST_CO},      {"os", OS_FNS, none, LIST_OS},
    };
    for (size_t i = 0; ok && i < sizeof libs / sizeof *libs; i++) {
        lua_getglobal(S, libs[i].global);
        ok = list_fns(S, lua_gettop(S), libs[i].global, libs[i].only, libs[i].skip, &lists[libs[i].list]) == 0;
        lua_pop(S, 1);
    }
    if (ok) { /* the strings' metatable: its arithmetic, and __index we set to each state's string */
        lua_pushliteral(S, "");
        lua_getmetatable(S, -1);
        ok = list_fns(S, lua_gettop(S), "string metatable", NULL, no_index, &lists[LIST_STRMETA]) == 0;
        lua_pop(S, 2);
    }
    if (ok) {
        lua_getglobal(S, "utf8");
        lua_getfield(S, -1, "charpattern");
        size_t n;
        const char *pat = lua_tolstring(S, -1, &n);
        if (pat && (utf8_pattern = malloc(n + 1))) {
            memcpy(utf8_pattern, pat, n + 1);
            utf8_pattern_len = n;
        } else {
            snprintf(lists_err, sizeof lists_err, "no utf8.charpattern");
            ok = 0;
        }
        lua_pop(S, 2);
    }
    lua_close(S);
    if (ok)
        lists_err[0] = '\0';
}

static void set_fns(lua_State *L, const lib_list *l)
{
    for (int i = 0; i < l->n; i++) {
        lua_pushcfunction(L, l->fns[i].fn);
        lua_setfield(L, -2, l->fns[i].name);
    }
}

/* a new table holding list l's functions, on the stack; its index */
static int new_lib(lua_State *L, int list, int extra)
{
    lua_createtable(L, 0, lists[list].n + extra);
    set_fns(L, &lists[list]);
    return lua_gettop(L);
}

/* builds the env in a protected call: every allocation may fail */
static int build_env(lua_State *L)
{
    if (lists_err[0])
        return luaL_error(L, "%s", lists_err);
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, WD_SANDBOX_MARK);

    /* string.dump would hand out bytecode; the metatable must not expose the table;
    ** pattern matching gets a step budget the hook cannot give it (lmatch.h) */
    int str = new_lib(L, LIST_STRING, 0);
    wd_lmatch_install(L, str);
    wd_lstring_install(L, str);
    new_lib(L, LIST_STRMETA, 2);
    lua_pushvalue(L, str);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushliteral(L, "");
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_pop(L, 2);
    int tab = new_lib(L, LIST_TABLE, 0);
    wd_ltable_install(L, tab);
    lua_pushcfunction(L, luaopen_math);
    lua_call(L, 0, 1);
    int mth = lua_gettop(L);
    int utf = new_lib(L, LIST_UTF8, 1);
    lua_pushlstring(L, utf8_pattern, utf8_pattern_len);
    lua_setfield(L, utf, "charpattern");

    int env = new_lib(L, LIST_BASE, 16); /* sized for what goes in: no rehash on the way */
    lua_pushliteral(L, LUA_VERSION);
    lua_setfield(L, env, "_VERSION");
    lua_pushvalue(L, str);
    lua_setfield(L, env, "string");
    lua_pushvalue(L, tab);
    lua_setfield(L, env, "table");
    lua_pushvalue(L, mth);
    lua_setfield(L, env, "math");
    lua_pushvalue(L, utf);
    lua_setfield(L, env, "utf8");
    new_lib(L, LIST_CO, 3);
    lua_pushcfunction(L, co_close);
    lua_setfield(L, -2, "close");
    lua_pushcfunction(L, co_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_setfield(L, env, "coroutine");
    new_lib(L, LIST_OS, 0);
    lua_setfield(L, env, "os");
    lua_pushcfunction(L, sb_print);
    lua_setfield(L, env, "print");
    lua_pushcfunction(L, sb_setmetatable);
    lua_setfield(L, env, "setmetatable");
    lua_pushcfunction(L, sb_load);
    lua_setfield(L, env, "load");
    lua_pushcfunction(L, sb_collectgarbage);
    lua_setfield(L, env, "collectgarbage");
    lua_pushcfunction(L, sb_require);
    lua_setfield(L, env, "require");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pushvalue(L, env);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_ENV);

    lua_newtable(L); /* loaded modules; cjson comes on first require */
    lua_setfield(L, LUA_REGISTRYINDEX, REG_LOADED);
    /* the state's real globals table stays empty: scripts never see it */
    return 0;
}

void wd_sandbox_push_env(lua_State *L) { lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV); }

const char *wd_sandbox_agent_dir(wd_sandbox *sb)
{
    if (!sb->agent_canon && sb->agent_dir)
        sb->agent_canon = wd_guard_canon(NULL, sb->agent_dir);
    return sb->agent_canon;
}

wd_sandbox *wd_sandbox_new(size_t mem_limit, long long instr_limit, const char *agent_dir, char *err,
                           size_t errlen)
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
    lua_State *L = lua_newstate(sb_alloc, sb);
    if (!L) {
        wd_errf(err, errlen, "cannot create a Lua state within %zu bytes", mem_limit);
        wd_sandbox_free(sb); /* what the failed state took is still in the arena */
        return NULL;
    }
    sb->L = L;
    lua_atpanic(L, panic);
    pthread_once(&lists_once, make_lists);
    lua_pushcfunction(L, build_env);
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
