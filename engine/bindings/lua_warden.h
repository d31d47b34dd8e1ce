/* lua_warden.h - what scripts see (lua_warden.c): the `warden` table and the per-run
** `ctx`. */
#ifndef WD_LUA_WARDEN_H
#define WD_LUA_WARDEN_H

#include "engine.h"

int wd_lua_open_warden(lua_State *L); /* installs `warden` into the sandbox env */
void wd_lua_push_ctx(lua_State *L, wd_run *r, int for_tool);

#endif
