/* sbpriv.h - what the sandbox's own files share (not for the rest of the engine):
** sandbox.c puts a state together from the meter (meter.c: allocator, hook, kills),
** the watchdog (watchdog.c), the coroutine wrappers (coroutines.c), require
** (require.c) and the safe library (baselib.c). */
#ifndef WD_SBPRIV_H
#define WD_SBPRIV_H

#include <lua.h>
#include <stddef.h>

#include "sandbox.h"

#define METER_COUNT    10000
#define METER_AFTER_NS (2 * 1000000LL)  /* a slice runs this long unmetered */
#define RECHECK_NS     (2 * 1000000LL)  /* then the watchdog forces a check this often */
#define QUANTUM_NS     (20 * 1000000LL) /* then yields to other runs where it can */
#define ENGINE_SLACK   (32u << 20)      /* the engine may exceed the cap by this much */
#define REG_ENV        "wd.env"
#define REG_LOADED     "wd.loaded"

/* meter.c */
void *wd_sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize); /* lua_Alloc of a state */
void wd_sandbox_hook(lua_State *L, lua_Debug *ar); /* the count hook: deadline, instructions, kills */
/* the hook at every instruction of L from its next one (a thread already so is left as
** it is: arming costs the depth of its stack); async-signal-safe */
void wd_sandbox_arm_now(lua_State *L);
/* carries the hook of the current mode onto th, the thread about to run */
void wd_sandbox_arm(wd_sandbox *sb, lua_State *th);

/* coroutines.c */
/* a kill decided elsewhere stops L here: yields out when it can, raises otherwise */
int wd_sandbox_stop_here(wd_sandbox *sb, lua_State *L);
/* coroutine.close, resume and wrap (the watched versions) into the table at t */
void wd_sandbox_co_install(lua_State *L, int t);

/* require.c: the sandbox's require (engine modules and the agent's own files) */
int wd_sandbox_require(lua_State *L);

/* baselib.c */
int wd_sandbox_build_env(lua_State *L); /* lua_CFunction: the env, in a protected call */
void wd_sandbox_lists_once(void);       /* the standard libraries listed, once a process */

#endif
