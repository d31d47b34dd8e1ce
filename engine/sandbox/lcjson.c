/* lcjson.c - lua-cjson for the sandbox (lcjson.h). */
#include "lcjson.h"

#include <dlfcn.h>
#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#ifndef WD_CJSON_SO
#define WD_CJSON_SO "/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so"
#endif

#define MAX_DEPTH 1000                 /* lua-cjson's own decoding limit */
#define EXACT     (9007199254740992.0) /* 2^53: every whole number up to it is exact as a float */

static lua_CFunction cjson_opener;

static void find_cjson(void)
{
    /* the path found at build time, then Debian's multiarch location */
    static const char *const where[] = {WD_CJSON_SO, "/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so",
                                        "/usr/lib/aarch64-linux-gnu/lua/5.4/cjson.so", NULL};
    for (int i = 0; !cjson_opener && where[i]; i++) {
        void *h = *where[i] ? dlopen(where[i], RTLD_NOW | RTLD_LOCAL) : NULL;
        if (h)
            cjson_opener = (lua_CFunction)(uintptr_t)dlsym(h, "luaopen_cjson");
    }
}

/* the value on top, made an integer when it is a whole float within 2^53 */
static int whole(lua_State *L)
{
    if (lua_type(L, -1) != LUA_TNUMBER || lua_isinteger(L, -1))
        return 0;
    lua_Number d = lua_tonumber(L, -1);
    if (d != floor(d) || fabs(d) > EXACT)
        return 0;
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)d);
    return 1;
}

/* every whole float in the tree at idx (fresh from the decoder: no cycles, no
** metatables) becomes an integer; its work is what the decoder just built */
static void ints(lua_State *L, int idx, int depth)
{
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4))
        return;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            ints(L, -1, depth + 1);
        } else if (whole(L)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, idx); /* an existing key: allowed while traversing */
            lua_pushnil(L);     /* the slot lua_next pops */
        }
        lua_pop(L, 1);
    }
}

/* decode(text): lua-cjson's, whole numbers as integers */
static int decode(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) == LUA_TTABLE)
        ints(L, -1, 0);
    else
        whole(L);
    return 1;
}

int wd_lcjson_open(lua_State *L)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_cjson);
    lua_CFunction opener = cjson_opener;
    if (!opener)
        return 0;
    lua_pushcfunction(L, opener);
    lua_call(L, 0, 1); /* this state's own instance: its settings are private to the run */
    lua_createtable(L, 0, 3);
    lua_getfield(L, -2, "encode");
    lua_setfield(L, -2, "encode");
    lua_getfield(L, -2, "null");
    lua_setfield(L, -2, "null");
    lua_getfield(L, -2, "decode");
    lua_pushcclosure(L, decode, 1);
    lua_setfield(L, -2, "decode");
    lua_remove(L, -2);
    return 1;
}
