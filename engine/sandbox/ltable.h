/* ltable.h - table.insert, remove, move, sort, concat and unpack for the sandbox, with a
** step budget.
**
** Lua's versions loop inside C, where the count hook cannot fire: table.move over a huge
** range, or insert/remove/sort on a table whose __len lies, would hold the loop thread
** for hours without allocating anything, and so would concat reading through a C
** __index (table.concat itself answers "" for any key). These follow the reference
** manual's semantics (sort is an in-place quicksort; the manual promises no stability)
** and stop at the slice's deadline like the hook does. */
#ifndef WD_LTABLE_H
#define WD_LTABLE_H

#include <lua.h>

/* replaces insert, remove, move, sort, concat and unpack in the table at idx */
void wd_ltable_install(lua_State *L, int idx);

#endif
