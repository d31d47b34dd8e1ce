/* baselib.c - the library a script sees: the safe base functions, string, table, math,
** utf8, coroutine and os subsets, built from lists made once a process. */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lmatch.h"
#include "lstring.h"
#include "ltable.h"

#include <lualib.h>
#include <pthread.h>

/* ---- safe globals ------------------------------------------------------------- */

static int sb_print(lua_State *L)
{
    wd_buf b = {0};
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        wd_buf_add(&b, i > 1 ? "\t" : "", i > 1);
        wd_buf_add(&b, s, l);
        lua_pop(L, 1);
    }
    if (getenv("WARDEN_SCRIPT_PRINT"))
        fprintf(stderr, "[script] %s\n", b.p ? b.p : "");
    wd_buf_free(&b);
    return 0;
}

/*
** setmetatable without finalizers: a __gc metamethod would run when the collector or
** lua_close decides, outside any watched slice (an endless finalizer would hang the
** engine at the end of the run). Lua 5.4 marks an object for finalization only if its
** metatable has __gc when it is set, so refusing it here is enough.
*/
static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* load's source in pieces: compiling is C the hook cannot reach, so the slice's
** deadline is checked between pieces (a piece compiles in about a millisecond) */
typedef struct {
    wd_sandbox *sb;
    const char *s;
    size_t left;
} load_src;

static const char *load_piece(lua_State *L, void *ud, size_t *size)
{
    (void)L;
    load_src *src = ud;
    if (!src->left || wd_now_ns() >= src->sb->deadline_ns) {
        if (src->left)
            wd_sandbox_kill(src->sb, WD_KILL_TIMEOUT);
        *size = 0;
        return NULL;
    }
    size_t n = src->left < (64u << 10) ? src->left : (64u << 10);
    const char *p = src->s;
    src->s += n;
    src->left -= n;
    *size = n;
    return p;
}

static int sb_load(lua_State *L)
{
    size_t l;
    const char *s = lua_tolstring(L, 1, &l);
    if (!s)
        return luaL_argerror(L, 1, "load accepts source text only (no reader functions, no bytecode)");
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t"))
        return luaL_argerror(L, 3, "only mode \"t\" (text) is allowed");
    int has_env = !lua_isnone(L, 4);
    wd_sandbox *sb = wd_sandbox_of(L);
    load_src src = {sb, s, l};
    int st = lua_load(L, load_piece, &src, name, "t");
    if (sb->mode == WD_MODE_KILL) {
        wd_sandbox_arm_now(L);
        return wd_sandbox_stop_here(sb, L);
    }
    if (st != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env)
        lua_pushvalue(L, 4);
    else
        lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    static const char *const ok[] = {"collect", "count", "step", "isrunning", NULL};
    const char *opt = luaL_optstring(L, 1, "collect");
    for (int i = 0; ok[i]; i++)
        if (!strcmp(opt, ok[i])) {
            switch (i) {
            case 0:
                lua_gc(L, LUA_GCCOLLECT);
                lua_pushinteger(L, 0);
                return 1;
            case 1: {
                int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
                lua_pushnumber(L, (lua_Number)kb + ((lua_Number)b / 1024));
                return 1;
            }
            case 2: lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0))); return 1;
            default: lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING)); return 1;
            }
        }
    return luaL_argerror(L, 1, "only collect, count, step and isrunning are allowed in the sandbox");
}

/* ---- the libraries a script sees -------------------------------------------- */

/*
** The standard libraries, listed once.
**
** Every run gets a new state, and opening the standard libraries in each made tables
** and names the sandbox then threw away (most of os and base, the module table), a
** fifth of the cost of starting a run. Instead a scratch state opens them once, as
** usual, and we list the C functions of each library a script may see; every run's
** state then builds just those tables from the lists. math is opened in each state as
** before: random and randomseed share a generator state (an upvalue). Should another
** library's function ever keep an upvalue, the lists cannot be made and no sandbox
** starts, with a message saying which.
*/
typedef struct {
    const char *name;
    lua_CFunction fn;
} lib_fn;

typedef struct {
    lib_fn *fns;
    int n;
} lib_list;

enum { LIST_BASE, LIST_STRING, LIST_STRMETA, LIST_TABLE, LIST_UTF8, LIST_CO, LIST_OS, NLISTS };
static lib_list lists[NLISTS];
static char *utf8_pattern;
static size_t utf8_pattern_len;
static char lists_err[200];
static pthread_once_t lists_once = PTHREAD_ONCE_INIT;

static const char *const BASE_FNS[] = {"assert",       "error",    "ipairs",   "next",   "pairs",  "pcall",
                                       "xpcall",       "rawequal", "rawget",   "rawlen", "rawset", "select",
                                       "getmetatable", "tonumber", "tostring", "type",   NULL};
static const char *const CO_FNS[] = {"create", "yield", "status", "running", "isyieldable", NULL};
static const char *const OS_FNS[] = {"clock", "time", "date", "difftime", NULL};

static int listed(const char *const *names, const char *s)
{
    for (; *names; names++)
        if (!strcmp(*names, s))
            return 1;
    return 0;
}

/* the functions of the table at idx in S: only those named (all when only is NULL),
** never those in skip; -1 with lists_err set on a value that cannot be listed */
static int list_fns(lua_State *S, int idx, const char *lib, const char *const *only, const char *const *skip,
                    lib_list *out)
{
    int cap = 0;
    lua_pushnil(S);
    while (lua_next(S, idx)) {
        const char *k = lua_type(S, -2) == LUA_TSTRING ? lua_tostring(S, -2) : NULL;
        if (k && (only ? listed(only, k) : !listed(skip, k))) {
            lua_CFunction fn = lua_tocfunction(S, -1);
            if (!fn || lua_getupvalue(S, -1, 1)) {
                snprintf(lists_err, sizeof lists_err, "the %s library's '%s' is not a plain C function", lib, k);
                lua_pop(S, 2);
                return -1;
            }
            if (out->n == cap) {
                cap = cap ? 2 * cap : 16;
                lib_fn *f = realloc(out->fns, (size_t)cap * sizeof *f);
                if (!f)
                    goto oom;
                out->fns = f;
            }
            out->fns[out->n].name = strdup(k);
            if (!out->fns[out->n].name)
                goto oom;
            out->fns[out->n++].fn = fn;
        }
        lua_pop(S, 1);
    }
    return 0;
oom:
    snprintf(lists_err, sizeof lists_err, "out of memory");
    lua_pop(S, 2);
    return -1;
}

static void make_lists(void)
{
    static const char *const none[] = {NULL}, *const no_dump[] = {"dump", NULL};
    static const char *const no_index[] = {"__index", NULL}, *const no_pattern[] = {"charpattern", NULL};
    lua_State *S = luaL_newstate();
    if (!S) {
        snprintf(lists_err, sizeof lists_err, "out of memory");
        return;
    }
    luaL_openlibs(S);
    int ok = 1;
    struct {
        const char *global;
        const char *const *only, *const *skip;
        int list;
    } libs[] = {
        {"_G", BASE_FNS, none, LIST_BASE},    {"string", NULL, no_dump, LIST_STRING},
        {"table", NULL, none, LIST_TABLE},    {"utf8", NULL, no_pattern, LIST_UTF8},
        {"coroutine", CO_FNS, none, LIST_CO}, {"os", OS_FNS, none, LIST_OS},
    };
    for (size_t i = 0; ok && i < sizeof libs / sizeof *libs; i++) {
        lua_getglobal(S, libs[i].global);
        ok = list_fns(S, lua_gettop(S), libs[i].global, libs[i].only, libs[i].skip, &lists[libs[i].list]) == 0;
        lua_pop(S, 1);
    }
    if (ok) { /* the strings' metatable: its arithmetic, and __index we set to each state's string */
        lua_pushliteral(S, "");
        lua_getmetatable(S, -1);
        ok = list_fns(S, lua_gettop(S), "string metatable", NULL, no_index, &lists[LIST_STRMETA]) == 0;
        lua_pop(S, 2);
    }
    if (ok) {
        lua_getglobal(S, "utf8");
        lua_getfield(S, -1, "charpattern");
        size_t n;
        const char *pat = lua_tolstring(S, -1, &n);
        if (pat && (utf8_pattern = malloc(n + 1))) {
            memcpy(utf8_pattern, pat, n + 1);
            utf8_pattern_len = n;
        } else {
            snprintf(lists_err, sizeof lists_err, "no utf8.charpattern");
            ok = 0;
        }
        lua_pop(S, 2);
    }
    lua_close(S);
    if (ok)
        lists_err[0] = '\0';
}

static void set_fns(lua_State *L, const lib_list *l)
{
    for (int i = 0; i < l->n; i++) {
        lua_pushcfunction(L, l->fns[i].fn);
        lua_setfield(L, -2, l->fns[i].name);
    }
}

/* a new table holding list l's functions, on the stack; its index */
static int new_lib(lua_State *L, int list, int extra)
{
    lua_createtable(L, 0, lists[list].n + extra);
    set_fns(L, &lists[list]);
    return lua_gettop(L);
}

/* the base functions the sandbox gives its own versions of (beside BASE_FNS, Lua's own) */
static const luaL_Reg SAFE_BASE[] = {
    {"print", sb_print},
    {"setmetatable", sb_setmetatable},
    {"load", sb_load},
    {"collectgarbage", sb_collectgarbage},
    {"require", wd_sandbox_require},
    {NULL, NULL},
};

/* builds the env in a protected call: every allocation may fail */
int wd_sandbox_build_env(lua_State *L)
{
    if (lists_err[0])
        return luaL_error(L, "%s", lists_err);
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, WD_SANDBOX_MARK);

    /* string.dump would hand out bytecode; the metatable must not expose the table;
    ** pattern matching gets a step budget the hook cannot give it (lmatch.h) */
    int str = new_lib(L, LIST_STRING, 0);
    wd_lmatch_install(L, str);
    wd_lstring_install(L, str);
    new_lib(L, LIST_STRMETA, 2);
    lua_pushvalue(L, str);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushliteral(L, "");
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_pop(L, 2);
    int tab = new_lib(L, LIST_TABLE, 0);
    wd_ltable_install(L, tab);
    lua_pushcfunction(L, luaopen_math);
    lua_call(L, 0, 1);
    int mth = lua_gettop(L);
    int utf = new_lib(L, LIST_UTF8, 1);
    lua_pushlstring(L, utf8_pattern, utf8_pattern_len);
    lua_setfield(L, utf, "charpattern");

    int env = new_lib(L, LIST_BASE, 16); /* sized for what goes in: no rehash on the way */
    lua_pushliteral(L, LUA_VERSION);
    lua_setfield(L, env, "_VERSION");
    lua_pushvalue(L, str);
    lua_setfield(L, env, "string");
    lua_pushvalue(L, tab);
    lua_setfield(L, env, "table");
    lua_pushvalue(L, mth);
    lua_setfield(L, env, "math");
    lua_pushvalue(L, utf);
    lua_setfield(L, env, "utf8");
    wd_sandbox_co_install(L, new_lib(L, LIST_CO, 3));
    lua_setfield(L, env, "coroutine");
    new_lib(L, LIST_OS, 0);
    lua_setfield(L, env, "os");
    lua_pushvalue(L, env);
    luaL_setfuncs(L, SAFE_BASE, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pushvalue(L, env);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_ENV);

    lua_newtable(L); /* loaded modules; cjson comes on first require */
    lua_setfield(L, LUA_REGISTRYINDEX, REG_LOADED);
    /* the state's real globals table stays empty: scripts never see it */
    return 0;
}

void wd_sandbox_push_env(lua_State *L) { lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV); }

void wd_sandbox_lists_once(void) { pthread_once(&lists_once, make_lists); }
