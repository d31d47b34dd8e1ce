/* lmatch.h - Lua 5.4 string patterns (find, match, gmatch, gsub) with a step budget.
**
** Lua's own matcher runs inside C, where the count hook never fires: a pathological
** pattern over a long subject would hold the loop thread for as long as it takes. This
** one follows the reference manual's pattern semantics and, every 1024 steps, checks
** the sandbox's slice deadline and kill flag; past them it stops the run like the hook
** does. Outside a sandbox (sb NULL: the host's `warden.core.pattern`) it is unbounded. */
#ifndef WD_LMATCH_H
#define WD_LMATCH_H

#include <lua.h>

/* replaces find, match, gmatch and gsub in the table at idx */
void wd_lmatch_install(lua_State *L, int idx);

#endif
