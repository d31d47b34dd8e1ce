/* test_chunks.c - the compiled-chunk cache: a file version compiles once, a changed
** file is seen at the next load (unless pinned), error positions survive the dump */
#include "harness.h"
#include "chunks.h"

#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-chunks-test.XXXXXX";

static const char *write_file(const char *name, const char *text, int old)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    if (old) { /* out of the racy window: the next load may be cached */
        struct timespec t[2] = {{1600000000, 0}, {1600000000, 0}};
        utimensat(AT_FDCWD, p, t, 0);
    }
    return p;
}

/* loads and calls path; the result (or error) as a string into out */
static int run(lua_State *L, const char *path, char *out, size_t n)
{
    int rc = wd_chunks_load(L, path, "chunk.lua");
    if (rc == LUA_OK)
        rc = lua_pcall(L, 0, 1, 0);
    snprintf(out, n, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    return rc;
}

static long hits_now(long *compiles)
{
    long h, c;
    wd_chunks_stats(&h, &c);
    if (compiles)
        *compiles = c;
    return h;
}

TEST(a_version_compiles_once)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200];
    const char *p = write_file("a.lua", "return 'one'", 1);
    long c0, c1, h0 = hits_now(&c0);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "one");
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "one");
    long h1 = hits_now(&c1);
    CHECK(c1 - c0 == 1);
    CHECK(h1 - h0 == 1);
    lua_close(L);
}

TEST(a_rewrite_with_the_same_size_and_mtime_is_seen)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200];
    const char *p = write_file("b.lua", "return 'one'", 1);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "one");
    usleep(20000); /* ctime moves on: it cannot be set back */
    p = write_file("b.lua", "return 'two'", 1);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "two");
    lua_close(L);
}

TEST(error_positions_survive_the_cache)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200];
    const char *p = write_file("c.lua", "local x = 1\nerror('boom ' .. x)\n", 1);
    CHECK(run(L, p, out, sizeof out) != LUA_OK);
    CHECK_STR(out, "chunk.lua:2: boom 1");
    long h0 = hits_now(NULL);
    CHECK(run(L, p, out, sizeof out) != LUA_OK);
    CHECK_STR(out, "chunk.lua:2: boom 1");
    CHECK(hits_now(NULL) == h0 + 1);
    lua_close(L);
}

TEST(syntax_errors_and_missing_files_are_reported)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200];
    const char *p = write_file("d.lua", "return (", 1);
    CHECK(run(L, p, out, sizeof out) == LUA_ERRSYNTAX);
    CHECK_HAS(out, "chunk.lua:1:");
    CHECK(run(L, p, out, sizeof out) == LUA_ERRSYNTAX);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.lua", dir);
    CHECK(run(L, missing, out, sizeof out) == LUA_ERRFILE);
    CHECK_HAS(out, "No such file");
    lua_close(L);
}

TEST(a_freshly_written_file_is_not_cached)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200];
    wd_chunks_set_racy_window(2000);
    const char *p = write_file("e.lua", "return 'new'", 0);
    long h0 = hits_now(NULL);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "new");
    CHECK(hits_now(NULL) == h0);
    wd_chunks_set_racy_window(0);
    lua_close(L);
}

/* serving: the accepted version loads whatever the file holds, until a refresh that
** compiles replaces it; a refresh that does not compile changes nothing */
TEST(a_pinned_file_changes_only_by_a_refresh_that_compiles)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char out[200], err[300];
    wd_chunks_pin(1);
    const char *p = write_file("f.lua", "return 'v1'", 0); /* cached at once when pinned: no racy window */
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "v1");
    p = write_file("f.lua", "return 'v2'", 0);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "v1");
    p = write_file("f.lua", "return (", 0);
    CHECK(wd_chunks_refresh(p, err, sizeof err) == -1);
    CHECK_HAS(err, "f.lua:1:");
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "v1");
    p = write_file("f.lua", "return 'v3'", 0);
    CHECK(wd_chunks_refresh(p, err, sizeof err) == 1); /* its one cached name */
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "v3");
    wd_chunks_forget(p);
    p = write_file("f.lua", "return 'v4'", 0);
    CHECK(run(L, p, out, sizeof out) == LUA_OK);
    CHECK_STR(out, "v4");
    wd_chunks_pin(0);
    lua_close(L);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    wd_chunks_set_racy_window(0);
    RUN(a_version_compiles_once);
    RUN(a_rewrite_with_the_same_size_and_mtime_is_seen);
    RUN(error_positions_survive_the_cache);
    RUN(syntax_errors_and_missing_files_are_reported);
    RUN(a_freshly_written_file_is_not_cached);
    RUN(a_pinned_file_changes_only_by_a_refresh_that_compiles);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    DONE();
}
