/* sandbox.h - one lua_State per run with a memory cap, the safe library subset, and
** preemption by a watchdog that arms a count hook only on a slice that overran.
**
** Engine calls yield the running coroutine with WD_ENGINE_MARK as first value. The
** sandbox's coroutine.resume/wrap pass such yields up to the engine and pass the
** engine's answer back down, so ctx calls work inside script coroutines too. */
#ifndef WD_SANDBOX_H
#define WD_SANDBOX_H

#include <signal.h>
#include <stdint.h>
#include <lua.h>

#include "arena.h"

enum { WD_MODE_NONE = 0, WD_MODE_METER = 1, WD_MODE_KILL = 2 };
enum { WD_KILL_NONE = 0, WD_KILL_TIMEOUT, WD_KILL_INSTRUCTIONS, WD_KILL_MEMORY, WD_KILL_CANCEL, WD_KILL_LIMIT };

typedef struct wd_sandbox {
    lua_State *L;
    wd_arena arena;             /* all of L's memory */
    size_t used, limit;         /* used: bytes asked for and not given back */
    int needs_close;            /* L holds a finalizer: lua_close must run at the end */
    int in_engine;              /* >0 while the engine itself allocates: small slack */
    volatile sig_atomic_t mode; /* WD_MODE_* set by the watchdog, allocator or engine */
    volatile sig_atomic_t kill_reason;
    lua_State *volatile running; /* the thread executing Lua right now */
    int64_t deadline_ns;         /* of the current slice */
    int64_t slice_start_ns;
    volatile sig_atomic_t preempted; /* the hook yielded a slice that used its quantum */
    long long instr, instr_limit;
    void *owner;       /* the run */
    char *agent_dir;   /* as given */
    char *agent_canon; /* canonical, on first use: wd_sandbox_agent_dir */
} wd_sandbox;

#define WD_SANDBOX_MARK "wd.sandboxed" /* registry key present in sandbox states only */

extern char wd_engine_mark_addr;
#define WD_ENGINE_MARK ((void *)&wd_engine_mark_addr)

/* caller frees with wd_sandbox_free; NULL with a message in err */
wd_sandbox *wd_sandbox_new(size_t mem_limit, long long instr_limit, const char *agent_dir, char *err, size_t errlen);
/* the agent's directory with symlinks resolved, worked out on first use (most runs never
** need it, and realpath reads a link per path component); NULL when the sandbox has none
** or it cannot be resolved. Owned by sb. */
const char *wd_sandbox_agent_dir(wd_sandbox *sb);
void wd_sandbox_free(wd_sandbox *sb);
wd_sandbox *wd_sandbox_of(lua_State *L);

/* pushes the table scripts see as _ENV */
void wd_sandbox_push_env(lua_State *L);
/* loads a text file as a function with the sandbox env; pushes it, or returns -1 with
** the message pushed (WD_SANDBOX_NOFILE, also below 0, when the file cannot be read).
** Never raises. */
#define WD_SANDBOX_NOFILE (-2)
int wd_sandbox_loadfile(lua_State *L, const char *path, const char *chunkname);
/* yield the calling thread to the engine (use as `return wd_sandbox_yield(L)`) */
int wd_sandbox_yield(lua_State *L);
/* the same, with k called when the engine resumes it (ctx given back) */
int wd_sandbox_yieldk(lua_State *L, lua_KContext ctx, lua_KFunction k);

/* Resume co (a top-level thread of the run) under the watchdog. Returns lua_resume's
** status; *nres as lua_resume. After it, sb->mode == WD_MODE_KILL means the slice was
** stopped (sb->kill_reason says why) and co must never be resumed again; a LUA_YIELD
** with no values and sb->preempted set means the slice used its quantum and co must be
** resumed later with no arguments, after other runs had their turn. */
int wd_sandbox_resume(wd_sandbox *sb, lua_State *co, int nargs, int *nres, int64_t deadline_ns);

/* Calls the function under nargs arguments at the top of sb's state in a fresh thread
** until it returns, under deadline and the sandbox's instruction and memory limits,
** resuming it through preemptions at once (no other run waits on this: detectors, the
** check of a script). Call with sb->in_engine raised; returns with it raised.
** WD_CALL_OK: its first result on top (nil when none). Otherwise nothing is left on the
** stack: WD_CALL_KILLED (sb->kill_reason says why; the caller resets sb->mode),
** WD_CALL_YIELDED (it waited: coroutine.yield or an engine call at its top), or
** WD_CALL_ERROR with the error's text in err. */
enum { WD_CALL_OK = 0, WD_CALL_KILLED = -1, WD_CALL_YIELDED = -2, WD_CALL_ERROR = -3 };
int wd_sandbox_call(wd_sandbox *sb, int nargs, int64_t deadline, char *err, size_t n);

/* For long loops in C functions given to scripts (patterns, table functions), where the
** count hook cannot fire: every 1024 calls, raises "run stopped" once the slice is past
** its deadline or the run is being killed. A no-op outside a sandbox. */
void wd_sandbox_tick(lua_State *L, unsigned long *steps);

/* kill the run from the engine's side (e.g. out of memory while the engine pushes) */
void wd_sandbox_kill(wd_sandbox *sb, int reason);
const char *wd_sandbox_kill_text(int reason);

/* An error object raised by a script, as text in out (n bytes): a string or number as is
** (NUL bytes as \x00), a table's raw `message` field (and *transient from its raw
** `transient` field, when transient is not NULL), anything else by its type. Reads
** without metamethods: a script's __index or __tostring never runs in the engine. */
void wd_sandbox_error_text(lua_State *L, int idx, char *out, size_t n, int *transient);

/* the engine's Lua library directory (lua/ in the source tree or WARDEN_LUA_DIR) */
const char *wd_sandbox_lua_dir(void);

/* the watchdog thread: started once per process; each loop thread registers */
int wd_watchdog_attach(void);
void wd_watchdog_detach(void);

#endif
