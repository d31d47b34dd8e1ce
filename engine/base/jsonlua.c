/* jsonlua.c - Lua <-> jansson. */
#include "jsonlua.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

/* caller owns: a JSON string, invalid UTF-8 bytes written as \\xNN; for an object key
** (key set) NUL bytes too, as jansson's keys end at the first one and its parser refuses
** them: the log's writer and its verifier must read the same key */
static json_t *str_json(const char *s, size_t l, int key)
{
    json_t *j = key && memchr(s, '\0', l) ? NULL : json_stringn(s, l);
    if (j)
        return j;
    /* keep the bytes readable rather than lose the value */
    wd_buf b = {0};
    for (size_t i = 0; i < l; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && c)
            wd_buf_add(&b, (const char *)&c, 1);
        else
            wd_buf_addf(&b, "\\x%02x", c);
    }
    j = json_stringn(b.p ? b.p : "", b.len);
    wd_buf_free(&b);
    return j;
}

/* the JSON pointer of an element, for errors: "/" and the key or index (no printf:
** this runs for every element of every call's messages) */
static void ptr_push(wd_buf *ptr, const char *k, size_t kl, lua_Integer i)
{
    char d[24];
    if (!k) {
        char *e = d + sizeof d, *p = e;
        unsigned long long u = (unsigned long long)i;
        do
            *--p = (char)('0' + u % 10);
        while ((u /= 10));
        k = p;
        kl = (size_t)(e - p);
    }
    wd_buf_add(ptr, "/", 1);
    wd_buf_add(ptr, k, kl);
}

/* caller owns; NULL with "pointer: why" in err */
static json_t *conv(lua_State *L, int idx, int depth, wd_buf *ptr, size_t *text, char *err, size_t errlen);

/* a table: an array when its keys are exactly 1..n (n > 0), else an object (numeric keys
** as text); its pointer for errors in ptr */
/* the table at idx (an absolute index) as an array of its n elements */
static json_t *conv_array(lua_State *L, int idx, lua_Integer n, int depth, wd_buf *ptr, size_t *text, char *err,
                          size_t errlen)
{
    size_t mark = ptr->len;
    json_t *a = json_array();
    for (lua_Integer i = 1; a && i <= n; i++) {
        lua_rawgeti(L, idx, i);
        ptr_push(ptr, NULL, 0, i - 1);
        json_t *v = conv(L, -1, depth + 1, ptr, text, err, errlen);
        ptr->len = mark;
        ptr->p[mark] = '\0';
        lua_pop(L, 1);
        if (!v) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, v);
    }
    return a;
}

/* the table at idx (an absolute index) as an object, numeric keys as text */
static json_t *conv_object(lua_State *L, int idx, int depth, wd_buf *ptr, size_t *text, char *err, size_t errlen)
{
    size_t mark = ptr->len;
    json_t *o = json_object();
    lua_pushnil(L);
    while (o && lua_next(L, idx)) {
        char kbuf[64];
        const char *k;
        if (lua_type(L, -2) == LUA_TSTRING) {
            k = lua_tostring(L, -2);
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
            if (lua_isinteger(L, -2))
                snprintf(kbuf, sizeof kbuf, "%lld", (long long)lua_tointeger(L, -2));
            else
                snprintf(kbuf, sizeof kbuf, "%.14g", lua_tonumber(L, -2));
            k = kbuf;
        } else {
            wd_errf(err, errlen, "%s: keys must be strings or numbers, not %s", ptr->len ? ptr->p : "/",
                    lua_typename(L, lua_type(L, -2)));
            lua_pop(L, 2);
            json_decref(o);
            return NULL;
        }
        size_t kl = strlen(k);
        if (lua_type(L, -2) == LUA_TSTRING) {
            kl = lua_rawlen(L, -2);
            *text += kl;
        }
        ptr_push(ptr, k, kl, 0);
        json_t *v = conv(L, -1, depth + 1, ptr, text, err, errlen);
        ptr->len = mark;
        ptr->p[mark] = '\0';
        lua_pop(L, 1);
        if (!v) {
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
        json_incref(v); /* a refused key (not UTF-8) costs jansson's reference, not ours */
        if (!memchr(k, '\0', kl) && json_object_set_new(o, k, v) == 0) {
            json_decref(v);
        } else {
            json_t *fixed = str_json(k, kl, 1);
            json_object_set_new(o, fixed ? json_string_value(fixed) : "?", v);
            json_decref(fixed);
        }
    }
    return o;
}

static json_t *conv_table(lua_State *L, int idx, int depth, wd_buf *ptr, size_t *text, char *err, size_t errlen)
{
    if (depth >= MAX_DEPTH) {
        wd_errf(err, errlen, "%s: nested deeper than %d levels (a cycle?)", ptr->len ? ptr->p : "/", MAX_DEPTH);
        return NULL;
    }
    if (!lua_checkstack(L, 4)) {
        wd_errf(err, errlen, "stack overflow");
        return NULL;
    }
    idx = lua_absindex(L, idx);
    /* an array when keys are exactly 1..n (n > 0) */
    lua_Integer n = 0, count = 0;
    int is_array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k > n)
                n = k;
            if (k < 1)
                is_array = 0;
        } else {
            is_array = 0;
        }
        lua_pop(L, 1);
    }
    if (count == 0)
        return json_object();
    if (is_array && n == count)
        return conv_array(L, idx, n, depth, ptr, text, err, errlen);
    return conv_object(L, idx, depth, ptr, text, err, errlen);
}

static json_t *conv(lua_State *L, int idx, int depth, wd_buf *ptr, size_t *text, char *err, size_t errlen)
{
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TTABLE)
        *text += 4;
    switch (t) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                wd_errf(err, errlen, "%s: NaN and infinity cannot be represented", ptr->len ? ptr->p : "/");
                return NULL;
            }
            return json_real(d);
        }
    case LUA_TSTRING: {
        size_t l;
        const char *s = lua_tolstring(L, idx, &l);
        *text += l;
        return str_json(s, l, 0);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return json_null();
        break;
    case LUA_TTABLE: return conv_table(L, idx, depth, ptr, text, err, errlen);
    default: break;
    }
    wd_errf(err, errlen, "%s: a %s cannot be passed as data", ptr->len ? ptr->p : "/",
            lua_typename(L, lua_type(L, idx)));
    return NULL;
}

json_t *wd_lua_to_json(lua_State *L, int idx, char *err, size_t errlen)
{
    size_t text = 0;
    return wd_lua_to_json_sized(L, idx, &text, err, errlen);
}

json_t *wd_lua_to_json_sized(lua_State *L, int idx, size_t *text, char *err, size_t errlen)
{
    wd_buf ptr = {0};
    wd_buf_add(&ptr, "", 0);
    if (!ptr.p) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    json_t *j = conv(L, idx, 0, &ptr, text, err, errlen);
    wd_buf_free(&ptr);
    return j;
}

void wd_json_push(lua_State *L, const json_t *j)
{
    if (!lua_checkstack(L, 3)) {
        lua_pushliteral(L, "stack overflow");
        lua_error(L);
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        lua_createtable(L, 0, (int)json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            wd_json_push(L, v);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        lua_createtable(L, (int)json_array_size(j), 0);
        json_array_foreach((json_t *)j, i, v)
        {
            wd_json_push(L, v);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default: lua_pushlightuserdata(L, NULL);
    }
}
