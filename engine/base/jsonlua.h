/* jsonlua.h - Lua values to and from jansson, for tool arguments, results and audit. */
#ifndef WD_JSONLUA_H
#define WD_JSONLUA_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

/* caller owns the result. Tables with keys 1..n become arrays (an empty table an
** object), nil/cjson.null become null. Functions, userdata, threads, NaN, non-string
** keys and nesting past 64 levels (cycles included) fail with "/a/b: why" in err.
** Never raises; allocations on L are not made. */
json_t *wd_lua_to_json(lua_State *L, int idx, char *err, size_t errlen);
/* the same, adding to *text the bytes of its strings and string keys and 4 for every
** other scalar: the value's size as prompt text, for an estimate of its tokens */
json_t *wd_lua_to_json_sized(lua_State *L, int idx, size_t *text, char *err, size_t errlen);
/* pushes a fresh Lua value for j (null as a light userdata NULL, like cjson.null).
** May raise on memory errors: call where that is caught. */
void wd_json_push(lua_State *L, const json_t *j);

#endif
