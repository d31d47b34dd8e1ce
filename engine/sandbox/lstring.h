/* lstring.h - string.rep for the sandbox, bounded by construction.
**
** Lua's string.rep loops once per copy inside C, where the count hook cannot fire: an
** empty string (and separator) repeated 1e15 times allocates nothing and holds the loop
** thread for days. This one returns "" at once for an empty unit and otherwise fills
** its result by doubling copies: its work is the result's length, which the run's
** memory cap bounds before the first byte is written. */
#ifndef WD_LSTRING_H
#define WD_LSTRING_H

#include <lua.h>

/* replaces rep in the table at idx */
void wd_lstring_install(lua_State *L, int idx);

#endif
