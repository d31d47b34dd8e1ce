/* lua_detect.c - ctx.store for detectors: a small persistent state per detector in the
** state store, so statistics can span runs and processes
** (selection bias over the last few hundred choices, say), within the detector's scope
** (detect.h): its agent, its user when it asks, its origin, its name. The scope is in
** the functions' upvalues, out of any script's reach. Values are JSON; expected failures
** (the store busy or broken, a value too big) come back as nil, msg. */
#include "detect.h"
#include "jsonlua.h"
#include "util.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY   200
#define MAX_VALUE (256u << 10)
#define MAX_LIST  10000

static wd_store *store_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* the scope in the calling function's upvalues 2..5 */
static wd_detect_scope scope_of(lua_State *L)
{
    return (wd_detect_scope){lua_tostring(L, lua_upvalueindex(2)), lua_tostring(L, lua_upvalueindex(3)),
                             lua_tostring(L, lua_upvalueindex(4)), lua_tostring(L, lua_upvalueindex(5))};
}

static const char *check_key(lua_State *L)
{
    size_t l;
    const char *k = luaL_checklstring(L, 2, &l);
    luaL_argcheck(L, l > 0 && l <= MAX_KEY, 2, "a key of 1 to 200 bytes");
    /* the store keeps keys as C strings: "a\0b" would be the key "a" of another value */
    luaL_argcheck(L, strlen(k) == l, 2, "a key without NUL bytes");
    return k;
}

static int fail(lua_State *L, wd_store *s, const char *what)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "detector state %s: %s: %s", wd_store_path(s), what, wd_store_error(s));
    return 2;
}

/* caller decrefs: the value under key (NULL: none); -1 on a store error */
static int get_value(wd_store *s, const wd_detect_scope *sc, const char *key, json_t **out)
{
    char *text;
    *out = NULL;
    if (wd_store_detect_get(s, sc, key, &text) < 0)
        return -1;
    *out = text ? json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
    free(text);
    return 0;
}

/* text NULL deletes; 0 or -1 */
static int put_value(wd_store *s, const wd_detect_scope *sc, const char *key, const char *text)
{
    return wd_store_detect_put(s, sc, key, text, wd_wall_ms());
}

/* store:get(key) -> value or nil */
static int s_get(lua_State *L)
{
    wd_store *s = store_of(L);
    wd_detect_scope sc = scope_of(L);
    const char *key = check_key(L);
    json_t *v;
    if (get_value(s, &sc, key, &v) < 0)
        return fail(L, s, "get");
    if (!v)
        lua_pushnil(L);
    else
        wd_json_push(L, v);
    json_decref(v);
    return 1;
}

/* caller frees: the value at idx as JSON text within MAX_VALUE; raises on bad data */
static char *value_text(lua_State *L, int idx)
{
    char err[200];
    json_t *j = wd_lua_to_json(L, idx, err, sizeof err);
    if (!j)
        luaL_argerror(L, idx, err);
    char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!t)
        luaL_error(L, "out of memory");
    if (strlen(t) > MAX_VALUE) {
        free(t);
        luaL_argerror(L, idx, "a value of at most 256 KiB as JSON");
        return NULL; /* not reached: luaL_argerror raises */
    }
    return t;
}

/* store:set(key, value): nil deletes. true, or nil, msg */
static int s_set(lua_State *L)
{
    wd_store *s = store_of(L);
    wd_detect_scope sc = scope_of(L);
    const char *key = check_key(L);
    lua_settop(L, 3);
    char *text = lua_isnil(L, 3) ? NULL : value_text(L, 3);
    int rc = -1;
    if (wd_store_begin(s) == 0) {
        rc = put_value(s, &sc, key, text) == 0 && wd_store_commit(s) == 0 ? 0 : -1;
        if (rc < 0)
            wd_store_rollback(s);
    }
    free(text);
    if (rc < 0)
        return fail(L, s, "set");
    lua_pushboolean(L, 1);
    return 1;
}

/* store:incr(key [, by]): the number under key raised by `by` (1) in one transaction;
** the new number, or nil, msg */
static int s_incr(lua_State *L)
{
    wd_store *s = store_of(L);
    wd_detect_scope sc = scope_of(L);
    const char *key = check_key(L);
    lua_Number by = luaL_optnumber(L, 3, 1);
    if (wd_store_begin(s) < 0)
        return fail(L, s, "incr");
    json_t *v;
    if (get_value(s, &sc, key, &v) < 0) {
        wd_store_rollback(s);
        return fail(L, s, "incr");
    }
    double now = (json_is_number(v) ? json_number_value(v) : 0) + by;
    json_decref(v);
    json_t *nv = now == (double)(json_int_t)now ? json_integer((json_int_t)now) : json_real(now);
    char *text = json_dumps(nv, JSON_ENCODE_ANY);
    json_decref(nv);
    if (!text || put_value(s, &sc, key, text) < 0 || wd_store_commit(s) < 0) {
        free(text);
        wd_store_rollback(s);
        return fail(L, s, "incr");
    }
    free(text);
    if (now == (double)(json_int_t)now && now > -9.0e15 && now < 9.0e15)
        lua_pushinteger(L, (lua_Integer)now); /* a count stays a whole number: "2", not "2.0" */
    else
        lua_pushnumber(L, now);
    return 1;
}

/* appends items (a JSON array, taken) to the list under key, keeping its last max, in
** one transaction; pushes the list's length, or nil, msg */
static int append(lua_State *L, const char *key, json_t *items, lua_Integer max)
{
    wd_store *s = store_of(L);
    wd_detect_scope sc = scope_of(L);
    if (wd_store_begin(s) < 0) {
        json_decref(items);
        return fail(L, s, "push");
    }
    json_t *list;
    if (get_value(s, &sc, key, &list) < 0) {
        json_decref(items);
        wd_store_rollback(s);
        return fail(L, s, "push");
    }
    if (!json_is_array(list)) {
        json_decref(list);
        list = json_array();
    }
    json_array_extend(list, items);
    json_decref(items);
    size_t n = json_array_size(list), drop = n > (size_t)max ? n - (size_t)max : 0;
    json_t *kept = list;
    if (drop) { /* one copy of the tail, not a shift per item */
        kept = json_array();
        for (size_t i = drop; i < n; i++)
            json_array_append(kept, json_array_get(list, i));
        json_decref(list);
        n -= drop;
    }
    char *text = json_dumps(kept, JSON_COMPACT);
    json_decref(kept);
    if (text && strlen(text) > MAX_VALUE * 4) {
        free(text);
        wd_store_rollback(s);
        luaL_pushfail(L);
        lua_pushliteral(L, "detector state: the list would pass 1 MiB as JSON");
        return 2;
    }
    if (!text || put_value(s, &sc, key, text) < 0 || wd_store_commit(s) < 0) {
        free(text);
        wd_store_rollback(s);
        return fail(L, s, "push");
    }
    free(text);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static lua_Integer check_max(lua_State *L)
{
    lua_Integer max = luaL_optinteger(L, 4, 1000);
    luaL_argcheck(L, max >= 1 && max <= MAX_LIST, 4, "a length from 1 to 10000");
    return max;
}

/* store:push(key, value [, max]): appends one item to the list under key, keeping its
** last max (1000); the list's length, or nil, msg */
static int s_push(lua_State *L)
{
    const char *key = check_key(L);
    lua_Integer max = check_max(L);
    char err[200];
    json_t *item = wd_lua_to_json(L, 3, err, sizeof err);
    if (!item)
        return luaL_argerror(L, 3, err);
    return append(L, key, json_pack("[o]", item), max);
}

/* store:extend(key, items [, max]): push for every item of a list, in one transaction */
static int s_extend(lua_State *L)
{
    const char *key = check_key(L);
    lua_Integer max = check_max(L);
    luaL_checktype(L, 3, LUA_TTABLE);
    char err[200];
    json_t *items = wd_lua_to_json(L, 3, err, sizeof err);
    if (!items)
        return luaL_argerror(L, 3, err);
    if (json_is_object(items) && !json_object_size(items)) { /* {} is an empty list too */
        json_decref(items);
        items = json_array();
    }
    if (!json_is_array(items)) {
        json_decref(items);
        return luaL_argerror(L, 3, "a list");
    }
    return append(L, key, items, max);
}

static const luaL_Reg store_funcs[] = {
    {"get", s_get}, {"set", s_set}, {"incr", s_incr}, {"push", s_push}, {"extend", s_extend}, {NULL, NULL},
};

void wd_detect_push_store(lua_State *L, wd_store *s, const wd_detect_scope *sc)
{
    wd_store_detect_adopt(s, sc);
    lua_createtable(L, 0, 5);
    for (const luaL_Reg *f = store_funcs; f->name; f++) {
        lua_pushlightuserdata(L, s);
        lua_pushstring(L, sc->agent);
        lua_pushstring(L, sc->user);
        lua_pushstring(L, sc->origin);
        lua_pushstring(L, sc->detector);
        lua_pushcclosure(L, f->func, 5);
        lua_setfield(L, -2, f->name);
    }
}
