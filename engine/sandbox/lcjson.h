/* lcjson.h - lua-cjson for the sandbox.
**
** Each state gets its own instance (its settings are module state), and scripts see only
** encode, decode and null: never the setters, whose depth limits crash the process when
** raised. lua-cjson decodes every number as a float, so 4 would travel on as 4.0 (in a
** tool's arguments, its result, the log): decode here gives whole numbers up to 2^53 as
** integers. */
#ifndef WD_LCJSON_H
#define WD_LCJSON_H

#include <lua.h>

/* pushes the module table; 0 (nothing pushed) when lua-cjson is not installed */
int wd_lcjson_open(lua_State *L);

#endif
