/* ltable.c - bounded table.insert / remove / move / sort / concat / unpack. */
#include "ltable.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <limits.h>

/* tables only (the sandbox gives scripts no userdata that could stand in for one) */
static lua_Integer length_of(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    return luaL_len(L, idx);
}

static int t_insert(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer e = length_of(L, 1);
    e = (lua_Integer)((lua_Unsigned)e + 1u); /* first empty slot */
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2: pos = e; break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            wd_sandbox_tick(L, &steps);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default: return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int t_remove(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer size = length_of(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        wd_sandbox_tick(L, &steps);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int t_move(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                wd_sandbox_tick(L, &steps);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                wd_sandbox_tick(L, &steps);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

/* a < b for the values at the top (a below b); pops both */
static int less(lua_State *L, int has_cmp)
{
    if (!has_cmp) {
        int r = lua_compare(L, -2, -1, LUA_OPLT);
        lua_pop(L, 2);
        return r;
    }
    lua_pushvalue(L, 2);
    lua_insert(L, -3);
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

static int less_at(lua_State *L, lua_Integer i, lua_Integer j, int has_cmp)
{
    lua_geti(L, 1, i);
    lua_geti(L, 1, j);
    return less(L, has_cmp);
}

static void swap(lua_State *L, lua_Integer i, lua_Integer j)
{
    lua_geti(L, 1, i);
    lua_geti(L, 1, j);
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

/* in-place quicksort of [lo, hi], median of three, recursing into the smaller half */
static void quicksort(lua_State *L, lua_Integer lo, lua_Integer hi, int has_cmp, unsigned long *steps)
{
    while (lo < hi) {
        wd_sandbox_tick(L, steps);
        lua_Integer mid = lo + (hi - lo) / 2;
        if (less_at(L, mid, lo, has_cmp))
            swap(L, mid, lo);
        if (less_at(L, hi, mid, has_cmp)) {
            swap(L, hi, mid);
            if (less_at(L, mid, lo, has_cmp))
                swap(L, mid, lo);
        }
        if (hi - lo < 3)
            return;
        lua_geti(L, 1, mid); /* the pivot stays on the stack */
        lua_Integer i = lo, j = hi;
        for (;;) {
            do {
                wd_sandbox_tick(L, steps);
                i++;
                lua_geti(L, 1, i);
                lua_pushvalue(L, -2);
            } while (less(L, has_cmp) && i < hi);
            do {
                wd_sandbox_tick(L, steps);
                j--;
                lua_pushvalue(L, -1);
                lua_geti(L, 1, j);
            } while (less(L, has_cmp) && j > lo);
            if (i >= j)
                break;
            swap(L, i, j);
        }
        lua_pop(L, 1);
        if (j - lo < hi - j) {
            quicksort(L, lo, j, has_cmp, steps);
            lo = j + 1;
        } else {
            quicksort(L, j + 1, hi, has_cmp, steps);
            hi = j;
        }
    }
}

static int t_sort(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer n = length_of(L, 1);
    if (n > 1) {
        luaL_argcheck(L, n < LUA_MAXINTEGER / 2, 1, "array too big");
        int has_cmp = !lua_isnoneornil(L, 2);
        if (has_cmp)
            luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        quicksort(L, 1, n, has_cmp, &steps);
    }
    return 0;
}

/* the manual's concat; every element may be read through a C __index (table.concat
** itself returns "" for any key), so the loop ticks */
static int t_concat(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer last = length_of(L, 1);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i <= last; i++) {
        wd_sandbox_tick(L, &steps);
        lua_geti(L, 1, i);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "invalid value (at index %I) in table for 'concat'", (LUAI_UACINT)i);
        luaL_addvalue(&b);
        if (i < last)
            luaL_addlstring(&b, sep, lsep);
        if (i == LUA_MAXINTEGER)
            break;
    }
    luaL_pushresult(&b);
    return 1;
}

static int t_unpack(lua_State *L)
{
    unsigned long steps = 0;
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
    if (i > e)
        return 0;
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i; /* elements minus one */
    if (n >= (unsigned)INT_MAX || !lua_checkstack(L, (int)(++n)))
        return luaL_error(L, "too many results to unpack");
    for (lua_Unsigned k = 0; k < n; k++) {
        wd_sandbox_tick(L, &steps);
        lua_geti(L, 1, (lua_Integer)((lua_Unsigned)i + k));
    }
    return (int)n;
}

void wd_ltable_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"insert", t_insert}, {"remove", t_remove}, {"move", t_move}, {"sort", t_sort},
        {"concat", t_concat}, {"unpack", t_unpack}, {NULL, NULL},
    };
    lua_pushvalue(L, idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
