/* lua_core.c - the engine as a Lua module (`require "warden.core"`) for busted specs
** and plain lua5.4: runs agents, checks policies, verifies audit logs. */
#include "approval.h"
#include "engine.h"
#include "jsonlua.h"
#include "lmatch.h"
#include "ltable.h"
#include "seal.h"
#include "store.h"
#include "util.h"

#include <dlfcn.h>
#include <sodium.h>
#include <stdio.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    json_t *results;
    size_t index;
} collect_t;

typedef struct {
    collect_t *c;
    size_t i;
} slot_t;

static void on_done(const json_t *res, void *ud)
{
    slot_t *s = ud;
    json_array_set(s->c->results, s->i, (json_t *)res);
}

/* borrowed from the table: a string field, or NULL when absent */
static const char *opt_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the table */
    return v;
}

/* core.run_many(engine_opts, {run_opts, ...}) -> {result, ...} ; core.run(opts) -> result */
static int run_list(lua_State *L, int eng_idx, int list_idx, int single)
{
    char err[2048] = "";
    wd_engine_opts eo = {opt_field(L, eng_idx, "policy"), opt_field(L, eng_idx, "llm"), opt_field(L, eng_idx, "audit"),
                         opt_field(L, eng_idx, "store")};
    wd_engine *e = wd_engine_new(&eo, err, sizeof err);
    if (!e) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    size_t n = single ? 1 : lua_rawlen(L, list_idx);
    collect_t c = {json_array(), 0};
    slot_t *slots = calloc(n ? n : 1, sizeof *slots);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(c.results, json_null());
    for (size_t i = 0; i < n; i++) {
        int t = list_idx;
        if (!single) {
            lua_rawgeti(L, list_idx, (lua_Integer)i + 1);
            t = lua_gettop(L);
        }
        wd_run_opts ro = {opt_field(L, t, "agent"),
                          opt_field(L, t, "query"),
                          opt_field(L, t, "user"),
                          opt_field(L, t, "session"),
                          opt_field(L, t, "llm"),
                          NULL,
                          NULL,
                          0,
                          opt_field(L, t, "tool"),
                          NULL,
                          opt_field(L, t, "history"),
                          NULL,
                          opt_field(L, t, "output_schema")};
        slots[i].c = &c;
        slots[i].i = i;
        wd_engine_submit(e, &ro, on_done, &slots[i]);
        if (!single)
            lua_pop(L, 1);
    }
    wd_engine_wait(e);
    lua_pushstring(L, wd_engine_audit_path(e));
    int audit_idx = lua_gettop(L);
    wd_engine_free(e);
    free(slots);
    if (single) {
        wd_json_push(L, json_array_get(c.results, 0));
    } else {
        wd_json_push(L, c.results);
    }
    json_decref(c.results);
    lua_pushvalue(L, audit_idx);
    return 2;
}

static int l_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    return run_list(L, 1, 1, 1);
}

static int l_run_many(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    return run_list(L, 1, 2, 0);
}

static int l_policy_check(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(path, &pe);
    if (p) {
        wd_policy_unref(p);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_createtable(L, (int)pe.n, 0);
    for (size_t i = 0; i < pe.n; i++) {
        lua_pushstring(L, pe.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    wd_perrors_free(&pe);
    return 2;
}

static int l_audit_verify(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    wd_buf rep = {0};
    long n = 0;
    int rc = wd_audit_verify(path, &rep, &n);
    lua_pushboolean(L, rc == 0);
    lua_pushstring(L, rep.p ? rep.p : "");
    lua_pushinteger(L, n);
    wd_buf_free(&rep);
    return 3;
}

/* core.unseal({record_json_text, ...}, store_path) -> the same list, each record's sealed
** fields opened with the keys of that store ([ERASED] where a key was destroyed); or
** nil, message when the store cannot be read */
/* core.decide(store_path, id, approve, by [, reason]): a person's decision on a pending
** approval request, as `warden approvals` takes it (warden.testing's T.approve/T.reject);
** true, msg or false, msg */
static int l_decide(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1), *id = luaL_checkstring(L, 2);
    int approve = lua_toboolean(L, 3);
    const char *by = luaL_checkstring(L, 4), *reason = luaL_optstring(L, 5, NULL);
    char err[1400];
    wd_store *st = wd_store_open(path, err, sizeof err);
    if (!st) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err);
        return 2;
    }
    int64_t now = wd_store_now(st);
    int got = wd_store_approval_sweep(st, now) < 0
                  ? -1
                  : wd_approval_decide(st, id, approve, by, "spec", reason, now, err, sizeof err);
    if (got < 0)
        snprintf(err, sizeof err, "state store %s: %s", path, wd_store_error(st));
    wd_store_close(st);
    lua_pushboolean(L, got > 0);
    lua_pushstring(L, err);
    return 2;
}

static int l_unseal(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *path = luaL_checkstring(L, 2);
    char err[400];
    wd_store *st = wd_store_open(path, err, sizeof err);
    wd_keyring *kr = st ? wd_keyring_new(st) : NULL;
    if (!kr) {
        wd_store_close(st);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_Integer n = luaL_len(L, 1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        size_t len;
        const char *text = lua_tolstring(L, -1, &len);
        json_t *rec = text ? json_loadb(text, len, JSON_ALLOW_NUL, NULL) : NULL;
        char *out = NULL;
        if (json_is_object(rec) && wd_unseal_record(kr, rec) >= 0)
            out = json_dumps(rec, WD_AUDIT_JSON_FLAGS);
        json_decref(rec);
        lua_pop(L, 1);
        if (out)
            lua_pushstring(L, out);
        else
            lua_geti(L, 1, i); /* as it was */
        free(out);
        lua_seti(L, -2, i);
    }
    wd_keyring_free(kr);
    wd_store_close(st);
    return 1;
}

/* core.hmac_sha256(key, data) -> hex: what a webhook's receiver computes to check a
** signature (specs) */
static int l_hmac_sha256(lua_State *L)
{
    size_t kl, dl;
    const char *k = luaL_checklstring(L, 1, &kl), *d = luaL_checklstring(L, 2, &dl);
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[2 * sizeof mac + 1];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)k, kl);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)d, dl);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    lua_pushstring(L, hex);
    return 1;
}

/* core.clock(wall_ms): the engine's wall clock reads wall_ms now (nil: the real clock) */
static int l_clock(lua_State *L)
{
    wd_clock_set(lua_isnoneornil(L, 1) ? 0 : (int64_t)luaL_checkinteger(L, 1));
    lua_pushinteger(L, (lua_Integer)wd_wall_ms());
    return 1;
}

/* core.advance_clock(ms): the wall clock moves ahead by ms */
static int l_advance_clock(lua_State *L)
{
    wd_clock_advance((int64_t)luaL_checkinteger(L, 1));
    lua_pushinteger(L, (lua_Integer)wd_wall_ms());
    return 1;
}

/* core.ledger(store_path) -> {{scope=, period=, spent_usd=, reserved_usd=, warned=}, ...}
** Opening the store sweeps the leases of dead processes, as every start does. */
static int l_ledger(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[600];
    wd_store *s = wd_store_open(path, err, sizeof err);
    if (!s) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    wd_ledger_row *rows;
    size_t n;
    int rc = wd_store_ledger_list(s, &rows, &n);
    if (rc < 0)
        snprintf(err, sizeof err, "%s", wd_store_error(s));
    wd_store_close(s);
    if (rc < 0) {
        free(rows);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, rows[i].scope);
        lua_setfield(L, -2, "scope");
        lua_pushstring(L, rows[i].period);
        lua_setfield(L, -2, "period");
        lua_pushnumber(L, (double)rows[i].spent / WD_NUSD_PER_USD);
        lua_setfield(L, -2, "spent_usd");
        lua_pushnumber(L, (double)rows[i].reserved / WD_NUSD_PER_USD);
        lua_setfield(L, -2, "reserved_usd");
        lua_pushboolean(L, rows[i].warned);
        lua_setfield(L, -2, "warned");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(rows);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"clock", l_clock},
    {"advance_clock", l_advance_clock},
    {"ledger", l_ledger},
    {"run", l_run},
    {"run_many", l_run_many},
    {"policy_check", l_policy_check},
    {"audit_verify", l_audit_verify},
    {"unseal", l_unseal},
    {"decide", l_decide},
    {"hmac_sha256", l_hmac_sha256},
    {NULL, NULL},
};

int luaopen_warden_core(lua_State *L); /* the module's entry, found by require */

int luaopen_warden_core(lua_State *L)
{
    /* the watchdog thread runs code from this library: it must never be unloaded,
    ** even when the host closes its Lua state and dlcloses the module */
    Dl_info info;
    if (dladdr((void *)luaopen_warden_core, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, WARDEN_VERSION);
    lua_setfield(L, -2, "version");
    lua_newtable(L); /* the sandbox's pattern functions, for differential tests */
    wd_lmatch_install(L, -1);
    lua_setfield(L, -2, "pattern");
    lua_newtable(L); /* the sandbox's table functions, likewise */
    wd_ltable_install(L, -1);
    lua_setfield(L, -2, "table");
    return 1;
}
