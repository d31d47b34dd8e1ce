/* test_sandbox.c - the sandbox's limits without an engine: safe globals, memory cap,
** the watchdog stopping a loop that pcall cannot catch, coroutines carrying the hook */
#include "harness.h"
#include "sandbox.h"
#include "util.h"

#include <lauxlib.h>

/* runs src as a coroutine with a deadline; returns the status and leaves sb for checks */
static int run_src(wd_sandbox *sb, const char *src, int64_t budget_ms, char *out, size_t n)
{
    lua_State *co = lua_newthread(sb->L);
    sb->in_engine++;
    int rc = luaL_loadbufferx(co, src, strlen(src), "=src", "t");
    sb->in_engine--;
    if (rc != LUA_OK) {
        snprintf(out, n, "%s", lua_tostring(co, -1));
        return -1;
    }
    wd_sandbox_push_env(co);
    lua_setupvalue(co, -2, 1);
    int nres = 0;
    int st = wd_sandbox_resume(sb, co, 0, &nres, wd_now_ns() + budget_ms * 1000000LL);
    while (st == LUA_YIELD && sb->preempted && sb->mode != WD_MODE_KILL)
        st = wd_sandbox_resume(sb, co, 0, &nres, sb->deadline_ns);
    out[0] = '\0';
    if (lua_gettop(co) > 0 && lua_type(co, -1) == LUA_TSTRING)
        snprintf(out, n, "%s", lua_tostring(co, -1));
    lua_pop(sb->L, 1);
    return st;
}

TEST(safe_globals)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    REQUIRE(sb != NULL);
    CHECK(run_src(sb, "return tostring(io) .. tostring(debug) .. tostring(os.execute) .. tostring(string.dump)", 1000,
                  out, sizeof out) == LUA_OK);
    CHECK_STR(out, "nilnilnilnil");
    CHECK(run_src(sb, "return tostring(getmetatable(''))", 1000, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "false");
    wd_sandbox_free(sb);
}

/* every name a script can reach through the globals, sorted: nothing more, nothing less */
TEST(the_globals_are_exactly_the_listed_ones)
{
    char err[200], out[4096];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    REQUIRE(sb != NULL);
    const char *src = "local names = {}\n"
                      "for k, v in pairs(_G) do\n"
                      "  if type(v) == 'table' and k ~= '_G' then\n"
                      "    for k2, v2 in pairs(v) do names[#names + 1] = k .. '.' .. k2 .. ':' .. type(v2) end\n"
                      "  else names[#names + 1] = k .. ':' .. type(v) end\n"
                      "end\n"
                      "table.sort(names)\n"
                      "return table.concat(names, ' ')";
    CHECK(run_src(sb, src, 1000, out, sizeof out) == LUA_OK);
    /* Debian builds Lua 5.4 with the 5.3 math functions (LUA_COMPAT_MATHLIB) */
    CHECK_STR(out,
              "_G:table _VERSION:string assert:function collectgarbage:function coroutine.close:function "
              "coroutine.create:function coroutine.isyieldable:function coroutine.resume:function "
              "coroutine.running:function coroutine.status:function coroutine.wrap:function "
              "coroutine.yield:function error:function getmetatable:function ipairs:function load:function "
              "math.abs:function math.acos:function math.asin:function math.atan2:function math.atan:function "
              "math.ceil:function math.cos:function math.cosh:function math.deg:function math.exp:function "
              "math.floor:function math.fmod:function math.frexp:function math.huge:number math.ldexp:function "
              "math.log10:function math.log:function math.max:function math.maxinteger:number math.min:function "
              "math.mininteger:number math.modf:function math.pi:number math.pow:function math.rad:function "
              "math.random:function math.randomseed:function math.sin:function math.sinh:function "
              "math.sqrt:function math.tan:function math.tanh:function math.tointeger:function math.type:function "
              "math.ult:function next:function os.clock:function os.date:function os.difftime:function "
              "os.time:function pairs:function pcall:function print:function rawequal:function rawget:function "
              "rawlen:function rawset:function require:function select:function setmetatable:function "
              "string.byte:function string.char:function string.find:function string.format:function "
              "string.gmatch:function string.gsub:function string.len:function string.lower:function "
              "string.match:function string.pack:function string.packsize:function string.rep:function "
              "string.reverse:function string.sub:function string.unpack:function string.upper:function "
              "table.concat:function table.insert:function table.move:function table.pack:function "
              "table.remove:function table.sort:function table.unpack:function tonumber:function tostring:function "
              "type:function utf8.char:function utf8.charpattern:string utf8.codepoint:function utf8.codes:function "
              "utf8.len:function utf8.offset:function xpcall:function");
    /* strings keep their methods and arithmetic; the sandbox's find is the budgeted one */
    CHECK(run_src(sb,
                  "return ('ab'):upper() .. ('10' + 1) .. ('x'):rep(2) .. tostring(('abc'):find('b')) .. "
                  "tostring(('a').len == string.len) .. _VERSION .. #utf8.charpattern",
                  1000, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "AB11xx2trueLua 5.414");
    wd_sandbox_free(sb);
}

TEST(memory_cap_holds_through_pcall)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(4u << 20, 0, NULL, err, sizeof err);
    int st = run_src(sb,
                     "local ok = pcall(function() local t = {} while true do t[#t+1] = ('x'):rep(1000) .. #t end end) "
                     "return 'survived'",
                     5000, out, sizeof out);
    CHECK(sb->mode == WD_MODE_KILL);
    CHECK(sb->kill_reason == WD_KILL_MEMORY);
    CHECK(st != LUA_OK || strcmp(out, "survived") != 0);
    CHECK(sb->used <= sb->limit + (32u << 20));
    wd_sandbox_free(sb);
}

TEST(watchdog_stops_loop_in_pcall)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    int64_t t0 = wd_now_ns();
    run_src(sb, "while true do pcall(function() while true do end end) end", 100, out, sizeof out);
    int64_t ms = (wd_now_ns() - t0) / 1000000;
    CHECK(sb->mode == WD_MODE_KILL);
    CHECK(sb->kill_reason == WD_KILL_TIMEOUT);
    CHECK(ms >= 90 && ms < 2000);
    wd_sandbox_free(sb);
}

TEST(hook_follows_into_coroutines)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    run_src(sb, "local co = coroutine.create(function() while true do end end) coroutine.resume(co) return 'escaped'",
            100, out, sizeof out);
    CHECK(sb->mode == WD_MODE_KILL);
    CHECK(strcmp(out, "escaped") != 0);
    wd_sandbox_free(sb);
}

TEST(instruction_budget)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 5000000, NULL, err, sizeof err);
    run_src(sb, "local i = 0 while true do i = i + 1 end", 10000, out, sizeof out);
    CHECK(sb->mode == WD_MODE_KILL);
    CHECK(sb->kill_reason == WD_KILL_INSTRUCTIONS);
    wd_sandbox_free(sb);
}

TEST(short_code_is_not_disturbed)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    CHECK(run_src(sb, "local s = 0 for i = 1, 1000 do s = s + i end return tostring(s)", 1000, out, sizeof out) ==
          LUA_OK);
    CHECK_STR(out, "500500");
    CHECK(sb->mode == WD_MODE_NONE);
    wd_sandbox_free(sb);
}

/* cjson keeps its settings in a userdata with a finalizer: a state that loaded it is
** closed with lua_close (LeakSanitizer under make asan sees the buffer freed), one that
** did not is dropped with its arena */
TEST(cjson_state_is_closed_with_its_finalizer)
{
    char err[200], out[200];
    wd_sandbox *sb = wd_sandbox_new(16u << 20, 0, NULL, err, sizeof err);
    CHECK(run_src(sb, "return tostring(#string.rep('x', 100))", 1000, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "100");
    CHECK(sb->needs_close == 0);
    CHECK(run_src(sb, "return require('cjson').encode({a = string.rep('y', 5000)}):sub(1, 9)", 1000, out, sizeof out) ==
          LUA_OK);
    CHECK_STR(out, "{\"a\":\"yyy");
    CHECK(sb->needs_close == 1);
    wd_sandbox_free(sb);
}

/* live data stays small while the script walks through every block size, each round
** kept, dropped and collected: freed blocks of one size serve only that size, so the
** arena grows behind the live count, and stops at twice the cap */
TEST(arena_stays_within_twice_the_cap)
{
    char err[200], out[200];
    size_t cap = 4u << 20;
    wd_sandbox *sb = wd_sandbox_new(cap, 0, NULL, err, sizeof err);
    int st = run_src(sb,
                     "for round = 1, 3 do for size = 1, 500, 9 do local keep = {} "
                     "for i = 1, (1 << 20) // (size + 64) do keep[i] = string.rep('x', size) .. i end "
                     "keep = nil collectgarbage() end end return 'done'",
                     20000, out, sizeof out);
    CHECK(st == LUA_OK || sb->kill_reason == WD_KILL_MEMORY);
    CHECK(sb->arena.held <= 2 * cap + 8192);
    CHECK(sb->used <= cap);
    wd_sandbox_free(sb);
}

int main(void)
{
    wd_watchdog_attach();
    RUN(safe_globals);
    RUN(the_globals_are_exactly_the_listed_ones);
    RUN(memory_cap_holds_through_pcall);
    RUN(watchdog_stops_loop_in_pcall);
    RUN(hook_follows_into_coroutines);
    RUN(instruction_budget);
    RUN(short_code_is_not_disturbed);
    RUN(cjson_state_is_closed_with_its_finalizer);
    RUN(arena_stays_within_twice_the_cap);
    DONE();
}
