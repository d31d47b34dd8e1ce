/* fuzz_lmatch.c - the sandbox's pattern matcher (lmatch.c) against Lua's own, on the same
** subject, pattern and replacement: find, match, gsub and gmatch give the same results,
** or both raise. The pattern is kept short and its quantifiers few, so the stock
** matcher (which has no step budget) finishes; where the stock one gives up on a
** pattern too complex for its C stack, there is nothing to compare. */
#include "fuzz.h"
#include "lmatch.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

static const char *const PROBE =
    "local s, p, r = ...\n"
    "local out = {}\n"
    "local function put(ok, ...)\n"
    "  local n = select('#', ...)\n"
    "  if not ok then\n"
    "    local e = tostring((...))\n"
    "    out[#out + 1] = (e:find('too complex') or e:find('stack overflow')) and 'GIVEUP' or 'ERR'\n"
    "    return\n"
    "  end\n"
    "  local t = {}\n"
    "  for i = 1, n do local v = select(i, ...) t[i] = math.type(v) or type(v) t[#t + 1] = tostring(v) end\n"
    "  out[#out + 1] = table.concat(t, ',')\n"
    "end\n"
    "put(pcall(string.find, s, p))\n"
    "put(pcall(string.find, s, p, 2))\n"
    "put(pcall(string.match, s, p))\n"
    "put(pcall(string.gsub, s, p, r))\n"
    "put(pcall(string.gsub, s, p, { a = 'A', [1] = 'one' }, 3))\n"
    "put(pcall(function()\n"
    "  local t = {}\n"
    "  for a, b in string.gmatch(s, p) do t[#t + 1] = tostring(a) .. '/' .. tostring(b) if #t > 50 then break end end\n"
    "  return table.concat(t, '|')\n"
    "end))\n"
    "return table.concat(out, '\\n')\n";

static lua_State *stock, *ours;

static lua_State *state(int bounded)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (bounded) {
        lua_getglobal(L, "string");
        wd_lmatch_install(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    if (luaL_loadstring(L, PROBE) != LUA_OK)
        abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "probe");
    return L;
}

static const char *probe(lua_State *L, const char *s, size_t sl, const char *p, size_t pl, const char *r, size_t rl)
{
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "probe");
    lua_pushlstring(L, s, sl);
    lua_pushlstring(L, p, pl);
    lua_pushlstring(L, r, rl);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK)
        return NULL;
    return lua_tostring(L, -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!stock) {
        stock = state(0);
        ours = state(1);
    }
    /* subject \0 pattern \0 replacement */
    const char *d = (const char *)data, *end = d + size;
    const char *z1 = memchr(d, '\0', size);
    if (!z1)
        return 0;
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    const char *p = z1 + 1, *r = z2 ? z2 + 1 : end;
    size_t sl = (size_t)(z1 - d), pl = (size_t)((z2 ? z2 : end) - p), rl = (size_t)(end - r);
    int quant = 0;
    for (size_t i = 0; i < pl; i++)
        quant += p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?' || p[i] == '%';
    if (sl > 256 || pl > 32 || rl > 32 || quant > 4)
        return 0;
    const char *a = probe(stock, d, sl, p, pl, r, rl);
    const char *b = probe(ours, d, sl, p, pl, r, rl);
    if (!a || !b || strstr(a, "GIVEUP") || strstr(b, "GIVEUP"))
        return 0;
    FUZZ_ASSERT(!strcmp(a, b), "lmatch differs from Lua's matcher:\n--- stock\n%s\n--- lmatch\n%s", a, b);
    return 0;
}
