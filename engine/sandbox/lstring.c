/* lstring.c - bounded string.rep. */
#include "lstring.h"

#include <lauxlib.h>
#include <string.h>

/* the largest string Lua can hold: both a size_t and a lua_Integer */
#define MAX_LEN ((size_t)(sizeof(size_t) < sizeof(lua_Integer) ? (size_t)-1 : (size_t)LUA_MAXINTEGER))

static int s_rep(lua_State *L)
{
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (n == 1) {
        lua_pushvalue(L, 1);
        return 1;
    }
    size_t unit = l + lsep;
    if (unit < l || unit > MAX_LEN / (lua_Unsigned)n)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * unit - lsep; /* no separator after the last copy */
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total); /* the memory cap refuses it here */
    memcpy(p, s, l);
    memcpy(p + l, sep, lsep);
    /* the result has period `unit`: copying its written prefix doubles it */
    size_t done = unit;
    while (done < total) {
        size_t c = done < total - done ? done : total - done;
        memcpy(p + done, p, c);
        done += c;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

void wd_lstring_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"rep", s_rep},
        {NULL, NULL},
    };
    lua_pushvalue(L, idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
