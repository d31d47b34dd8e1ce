/* check.c - scripts checked as a run would load them (check.h). */
#include "check.h"
#include "lua_warden.h"
#include "checkdef.h"
#include "engine.h"
#include "jsonlua.h"
#include "sandbox.h"

#include <dirent.h>
#include <lauxlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_MS        250 /* a script's top level, wall time */
#define CHECK_INSTR     50000000LL
#define CHECK_MEM       (64u << 20)
#define CHECK_MAX_BYTES (4u << 20) /* as the chunk cache reads them */
#define TREE_MAX_DEPTH  8

/* ---- one script ------------------------------------------------------------------ */

typedef enum { K_AGENT, K_TOOL, K_DETECTOR, K_MODULE } kind;

/* what the file is by where it lives; name gets a tool's or detector's name, dir the agent
** directory its runs would have (the parent of tools/ or detectors/) */
static kind kind_of(const char *path, char *name, size_t nn, char *dir, size_t dn)
{
    char *copy = wd_strdup(path), *copy2 = wd_strdup(path);
    kind k = K_MODULE;
    if (!copy || !copy2)
        goto out;
    const char *base = basename(copy);
    char *parent = dirname(copy2);
    snprintf(dir, dn, "%s", parent);
    size_t bl = strlen(base);
    snprintf(name, nn, "%.*s", bl > 4 ? (int)(bl - 4) : 0, base);
    if (!strcmp(base, "agent.lua")) {
        k = K_AGENT;
        goto out;
    }
    const char *pb = strrchr(parent, '/');
    pb = pb ? pb + 1 : parent;
    if (!strcmp(pb, "tools") || !strcmp(pb, "detectors")) {
        k = !strcmp(pb, "tools") ? K_TOOL : K_DETECTOR;
        size_t l = (size_t)(pb - parent); /* "a/b/" of "a/b/tools" */
        if (l == 0)
            snprintf(dir, dn, ".");
        else if (l == 1)
            snprintf(dir, dn, "/");
        else
            snprintf(dir, dn, "%.*s", (int)(l - 1), parent);
    }
out:
    free(copy);
    free(copy2);
    return k;
}

/* the line of the first occurrence of the first 'quoted' word of msg in text, else 1 */
static int line_of(const char *text, size_t len, const char *msg)
{
    const char *q = strchr(msg, '\'');
    const char *e = q ? strchr(q + 1, '\'') : NULL;
    if (!q || !e || e == q + 1)
        return 1;
    size_t wl = (size_t)(e - q - 1);
    int line = 1;
    for (size_t i = 0; i + wl <= len; i++) {
        if (!memcmp(text + i, q + 1, wl))
            return line;
        if (text[i] == '\n')
            line++;
    }
    return 1;
}

/* runs the function on top of the sandbox's state under the check's limits: 0 with its
** first result on top, or -1 with err */
static int run_top(wd_sandbox *sb, char *err, size_t n)
{
    int rc = wd_sandbox_call(sb, 0, wd_now_ns() + CHECK_MS * 1000000LL, err, n);
    if (rc == WD_CALL_KILLED)
        wd_errf(err, n, "its top level was stopped: %s (a script's top level must return at once)",
                wd_sandbox_kill_text(sb->kill_reason));
    else if (rc == WD_CALL_YIELDED)
        wd_errf(err, n, "its top level waits (coroutine.yield or an engine call outside a function)");
    return rc == WD_CALL_OK ? 0 : -1;
}

/* the names in list field f of the definition at idx are text without NUL bytes; and,
** for tools and detectors, found where a run would look (scripts or built-ins) */
static int check_names(lua_State *L, int idx, const char *f, const wd_policy *p, const char *dir, const char *file,
                       char *err, size_t n)
{
    if (wd_check_rawfield(L, idx, f) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    int rc = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; rc == 0 && i <= len; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_istable(L, -1) && strcmp(f, "detectors")) { /* a step {tool = NAME, args = ...} */
            wd_check_rawfield(L, -1, "tool");
            lua_remove(L, -2);
        }
        size_t sl;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &sl) : NULL;
        char p1[4200], p2[4200];
        if (!s || strlen(s) != sl || !sl) {
            wd_errf(err, n, "%s: %s[%d] must be a name", file, f, (int)i);
            rc = -1;
        } else if (!strcmp(f, "detectors")) {
            snprintf(p1, sizeof p1, "%s/detectors/%s.lua", dir, s);
            snprintf(p2, sizeof p2, "%s/warden/detectors/%s.lua", wd_sandbox_lua_dir(), s);
            if (access(p1, F_OK) < 0 && access(p2, F_OK) < 0) {
                wd_errf(err, n, "%s: detectors[%d] '%s': no detectors/%s.lua here and no built-in of that name", file,
                        (int)i, s, s);
                rc = -1;
            }
        } else if (strstr(s, "__") && strstr(s, "__") > s &&
                   (!p || wd_policy_mcp_server(p, s, (size_t)(strstr(s, "__") - s)))) {
            /* an MCP server's tool (docs/mcp.md): the server lists it when the engine starts */
        } else if (!p || wd_policy_tool(p, s)) {
            snprintf(p1, sizeof p1, "%s/tools/%s.lua", dir, s);
            snprintf(p2, sizeof p2, "%s/../tools/%s.lua", dir, s);
            if (access(p1, F_OK) < 0 && access(p2, F_OK) < 0) {
                wd_errf(err, n, "%s: %s[%d] '%s': no script (tools/%s.lua here or in ../tools/)", file, f, (int)i, s,
                        s);
                rc = -1;
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

/* a tool's definition as a client sees it: {name, description, inputSchema} (caller
** frees); NULL out of memory */
static json_t *tool_spec(lua_State *L, int idx, const char *name, json_t *params)
{
    const char *d = wd_check_rawfield(L, idx, "description") == LUA_TSTRING ? lua_tostring(L, -1) : "";
    json_t *spec = json_pack("{s:s,s:s,s:O}", "name", name, "description", d, "inputSchema", params);
    lua_pop(L, 1);
    return spec;
}

/* the definition on top of the state, by the file's kind; 0 or -1 with err. A tool's
** definition into *spec when spec is not NULL (tool_spec) */
static int check_def(lua_State *L, kind k, const char *name, const wd_policy *p, const char *dir, const char *file,
                     json_t **spec, char *err, size_t n)
{
    if (k == K_TOOL) {
        json_t *params;
        wd_schema *schema;
        int rc = wd_check_tool_def(L, -1, name, file, &params, &schema, err, n);
        if (rc == 0 && spec && !(*spec = tool_spec(L, -1, name, params))) {
            wd_errf(err, n, "%s: out of memory", file);
            rc = -1;
        }
        json_decref(params);
        wd_schema_free(schema);
        return rc;
    }
    if (k == K_DETECTOR) {
        unsigned on;
        int per_user;
        return wd_check_detector_def(L, -1, name, file, &on, &per_user, err, n);
    }
    if (!wd_check_is_kind(L, -1, "agent") && !wd_check_is_kind(L, -1, "workflow")) {
        wd_errf(err, n, "%s must return warden.agent{...} or warden.workflow{...}", file);
        return -1;
    }
    static const char *const LISTS[] = {"tools", "steps", "choose", "detectors", NULL};
    for (int i = 0; LISTS[i]; i++)
        if (check_names(L, -1, LISTS[i], p, dir, file, err, n) < 0)
            return -1;
    return 0;
}

static int check_script(const char *path, const wd_policy *p, json_t **spec, char *err, size_t n)
{
    char name[256], dir[2048];
    kind k = kind_of(path, name, sizeof name, dir, sizeof dir);
    if (spec && k != K_TOOL) {
        wd_errf(err, n, "%s:1: not a tool's script (tools/NAME.lua)", path);
        return -1;
    }
    size_t len;
    char *text = wd_read_file(path, CHECK_MAX_BYTES, &len);
    if (!text) {
        wd_errf(err, n, "%s:1: cannot read: %s", path, wd_read_error(errno, CHECK_MAX_BYTES));
        return -1;
    }
    char chunk[2100], why[1024];
    snprintf(chunk, sizeof chunk, "@%s", path);
    wd_sandbox *sb = wd_sandbox_new(CHECK_MEM, CHECK_INSTR, dir, why, sizeof why);
    int rc = -1, line = 1;
    if (!sb) {
        wd_errf(err, n, "%s:1: %s", path, why);
        goto out;
    }
    lua_State *L = sb->L;
    sb->in_engine++;
    wd_lua_open_warden(L);
    if (luaL_loadbufferx(L, text, len, chunk, "t") != LUA_OK) {
        /* the compiler's message starts with path:line: already */
        wd_errf(err, n, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "cannot compile");
        goto out;
    }
    if (k == K_MODULE) { /* run when required, with what the requirer gives it */
        rc = 0;
        goto out;
    }
    wd_sandbox_push_env(L);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    if (run_top(sb, why, sizeof why) < 0) {
        /* an error raised at the top level carries path:line: itself */
        if (!strncmp(why, path, strlen(path)) && why[strlen(path)] == ':')
            wd_errf(err, n, "%s", why);
        else
            wd_errf(err, n, "%s:1: %s", path, why);
        goto out;
    }
    if (check_def(L, k, name, p, dir, path, spec, why, sizeof why) < 0) {
        line = line_of(text, len, why);
        /* why starts with the path: put the line after it */
        size_t pl = strlen(path);
        wd_errf(err, n, "%s:%d:%s", path, line, !strncmp(why, path, pl) ? why + pl + (why[pl] == ':') : why);
        goto out;
    }
    rc = 0;
out:
    wd_sandbox_free(sb);
    free(text);
    return rc;
}

int wd_check_script(const char *path, const wd_policy *p, char *err, size_t n)
{
    return check_script(path, p, NULL, err, n);
}

json_t *wd_check_tool(const char *path, char *err, size_t n)
{
    json_t *spec = NULL;
    if (check_script(path, NULL, &spec, err, n) < 0) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

/* ---- a tree ---------------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int tree(const char *path, const wd_policy *p, wd_buf *report, int *checked, int depth)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        char err[1200];
        (*checked)++;
        if (wd_check_script(path, p, err, sizeof err) == 0) {
            wd_buf_addf(report, "%s: ok\n", path);
            return 0;
        }
        wd_buf_addf(report, "%s\n", err);
        return 1;
    }
    if (depth > TREE_MAX_DEPTH)
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    char **names = NULL;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char **v = realloc(names, (nn + 1) * sizeof *v);
        if (!v)
            break;
        names = v;
        if (asprintf(&names[nn], "%s/%s", path, de->d_name) > 0)
            nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_names);
    int bad = 0;
    for (size_t i = 0; i < nn; i++) {
        struct stat s2;
        if (stat(names[i], &s2) == 0 && (S_ISDIR(s2.st_mode) || has_suffix(names[i], ".lua"))) {
            int r = tree(names[i], p, report, checked, depth + 1);
            bad += r > 0 ? r : 0;
        }
        free(names[i]);
    }
    free(names);
    return bad;
}

int wd_check_tree(const char *path, const wd_policy *p, wd_buf *report, int *checked)
{
    *checked = 0;
    return tree(path, p, report, checked, 0);
}
