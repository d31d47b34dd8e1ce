/* fuzz_jsonlua.c - JSON to Lua and back: any JSON document pushed into a Lua state and
** read back is the same document (objects' members in any order; an empty object may
** come back as an empty array, which Lua cannot tell apart). */
#include "fuzz.h"
#include "jsonlua.h"

#include <lauxlib.h>
#include <lualib.h>

static lua_State *L;

/* a == b, but for {} and [] which are one value in Lua */
static int same(json_t *a, json_t *b)
{
    if (!a || !b) /* a member missing on one side */
        return a == b;
    if ((json_is_object(a) && !json_object_size(a) && json_is_array(b) && !json_array_size(b)) ||
        (json_is_array(a) && !json_array_size(a) && json_is_object(b) && !json_object_size(b)))
        return 1;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v) if (!same(v, json_object_get(b, k))) return 0;
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    return json_equal(a, b);
}

static int push(lua_State *S)
{
    wd_json_push(S, lua_touserdata(S, 1));
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        L = luaL_newstate();
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j)
        return 0;
    lua_settop(L, 0);
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, j);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) { /* deeper than the stack: an error, caught */
        char err[300];
        json_t *back = wd_lua_to_json(L, -1, err, sizeof err);
        /* past 64 levels the way back refuses, by design; a real NaN cannot come in */
        if (back)
            FUZZ_ASSERT(same(j, back), "a document changed on its way through Lua");
        json_decref(back);
    }
    lua_settop(L, 0);
    json_decref(j);
    return 0;
}
