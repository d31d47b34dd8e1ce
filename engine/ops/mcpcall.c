/* mcpcall.c - a call of an MCP server's tool (mcpcall.h) */
#include "mcpcall.h"
#include "breaker.h"
#include "jsonlua.h"
#include "mcphost.h"
#include "sandbox.h"
#include "settle.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wd_mcpcall_state {
    char *server, *tool;
    json_t *args;
    long long timeout_ms;
    wd_mcp *conn;
    long long id;     /* the request in flight; 0 none */
    char breaker[64]; /* "mcp:SERVER": the server's own breaker, beside the tool's */
    int admitted, probe;
    int64_t told_ns; /* the last progress passed on */
};

#define PROGRESS_EVERY_NS  100000000LL /* at most ten a second go on; the rest are dropped */
#define PROGRESS_MSG_BYTES 300

/* ** The server's progress on the call, passed to whoever submitted the run (an MCP client
** of warden serve: wd_run_opts.progress) as {tool, progress, total?, message?}: at most
** ten a second, the message cut, so a chatty or hostile server cannot flood the client. */
static void on_progress(void *ud, json_t *params)
{
    wd_run *r = ud;
    wd_mcpcall_state *s = r->mcpcall;
    if (!s || !s->id)
        return;
    double progress = json_number_value(json_object_get(params, "progress"));
    json_t *total = json_object_get(params, "total");
    int last = json_is_number(total) && progress >= json_number_value(total);
    int64_t now = wd_now_ns();
    if (!last && s->told_ns && now - s->told_ns < PROGRESS_EVERY_NS)
        return;
    s->told_ns = now;
    char msg[PROGRESS_MSG_BYTES + 1] = "";
    const char *m = json_string_value(json_object_get(params, "message"));
    if (m)
        wd_strlcpy(msg, m, sizeof msg);
    json_t *p = json_pack("{s:s,s:f}", "tool", r->tool.name, "progress", progress);
    if (p && json_is_number(total))
        json_object_set_new(p, "total", json_real(json_number_value(total)));
    if (p && *msg)
        json_object_set_new(p, "message", json_string(msg));
    if (p)
        wd_run_progress(r, p);
    json_decref(p);
}

/* the server's breaker told the call's outcome: a failure of the server (it ended, did
** not answer, answered a JSON-RPC error) counts, a tool's isError does not */
static void server_outcome(wd_run *r, int ok)
{
    wd_mcpcall_state *s = r->mcpcall;
    if (!s->admitted)
        return;
    s->admitted = 0;
    wd_breaker_cfg cfg = wd_run_breaker_cfg(r);
    wd_breaker_change ch = {0};
    wd_breakers_outcome(r->eng->breakers, s->breaker, &cfg, ok, s->probe, &ch);
    wd_run_audit_breaker(r, s->breaker, &ch, r->tool.name, NULL);
}

static void mcp_clear(wd_run *r)
{
    free(r->mcpcall->server);
    free(r->mcpcall->tool);
    json_decref(r->mcpcall->args);
    memset(r->mcpcall, 0, sizeof *r->mcpcall);
}

void wd_mcpcall_cancel(wd_run *r, const char *why)
{
    if (!r->mcpcall)
        return;
    long long id = r->mcpcall->id;
    r->mcpcall->id = 0; /* its callback, called by the cancel, finds nothing to settle */
    if (id > 0 && r->mcpcall->conn)
        wd_mcp_cancel(r->mcpcall->conn, id, why ? why : "the tool call was cancelled");
    if (r->mcpcall->admitted) { /* no outcome to tell: its slot goes back */
        r->mcpcall->admitted = 0;
        wd_breakers_release(r->eng->breakers, r->mcpcall->breaker);
    }
    mcp_clear(r);
}

/* after the resume: (nil, msg, true) is a failure of the server, raised for the breaker */
static int after(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int nres = lua_gettop(L) - (int)ctx;
    if (nres == 3 && lua_isnil(L, -3) && lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return lua_error(L);
    }
    return nres;
}

int wd_mcpcall_handler(lua_State *L)
{
    wd_run *r = wd_sandbox_of(L)->owner;
    if (!r || !r->tool.active)
        return luaL_error(L, "an MCP tool runs only as a tool");
    char err[300];
    json_t *args = wd_lua_to_json(L, 1, err, sizeof err);
    if (!args)
        return luaL_error(L, "tool '%s': arguments: %s", r->tool.name, err);
    if (json_is_array(args) && !json_array_size(args)) { /* an empty table: no arguments */
        json_decref(args);
        args = json_object();
    }
    if (!r->mcpcall && !(r->mcpcall = calloc(1, sizeof *r->mcpcall))) {
        json_decref(args);
        return luaL_error(L, "out of memory");
    }
    mcp_clear(r);
    r->mcpcall->server = wd_strdup(lua_tostring(L, lua_upvalueindex(1)));
    r->mcpcall->tool = wd_strdup(lua_tostring(L, lua_upvalueindex(2)));
    r->mcpcall->args = args;
    r->mcpcall->timeout_ms = r->tool.timeout_ms;
    r->req.kind = OP_MCP;
    return wd_sandbox_yieldk(L, lua_gettop(L), after);
}

typedef struct {
    json_t *result;
    const char *msg;
} answer;

/* the text blocks of a result, joined by newlines; caller frees */
static char *text_of(const json_t *result)
{
    wd_buf b = {0};
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(result, "content"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "text"));
        if (t && json_is_string(json_object_get(c, "type")) &&
            !strcmp(json_string_value(json_object_get(c, "type")), "text"))
            wd_buf_addf(&b, "%s%s", b.len ? "\n" : "", t);
    }
    if (!b.p)
        wd_buf_add(&b, "", 0);
    return b.p;
}

static int push_answer(wd_run *r, lua_State *co, void *ud)
{
    (void)r;
    answer *a = ud;
    if (a->msg) { /* a failure of the server: raised by after() */
        lua_pushnil(co);
        lua_pushstring(co, a->msg);
        lua_pushboolean(co, 1);
        return 3;
    }
    char *text = text_of(a->result);
    if (json_is_true(json_object_get(a->result, "isError"))) { /* the tool said no */
        lua_pushnil(co);
        lua_pushstring(co, text && *text ? text : "the MCP tool reported an error");
        free(text);
        return 2;
    }
    wd_json_push(co, a->result);
    lua_pushstring(co, text ? text : "");
    lua_setfield(co, -2, "text");
    free(text);
    return 1;
}

static void on_answer(void *ud, json_t *result, const char *error)
{
    wd_run *r = ud;
    if (!r->mcpcall || !r->mcpcall->id)
        return; /* cancelled */
    r->mcpcall->id = 0;
    server_outcome(r, error == NULL);
    char msg[800];
    if (error && !strncmp(error, "mcp server ", 11)) /* the connection's own messages name the server */
        snprintf(msg, sizeof msg, "%s", error);
    else if (error)
        snprintf(msg, sizeof msg, "mcp server %s: %s", r->mcpcall->server, error);
    answer a = {result, error ? msg : NULL};
    wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = mcp_clear});
}

static void mcp_start(wd_run *r)
{
    wd_mcpcall_state *s = r->mcpcall;
    char why[700];
    wd_mcp *conn = NULL;
    answer a = {NULL, why};
    snprintf(s->breaker, sizeof s->breaker, "mcp:%s", s->server);
    wd_breaker_cfg cfg = wd_run_breaker_cfg(r);
    wd_breaker_change ch = {0};
    int admit = wd_breakers_admit(r->eng->breakers, s->breaker, &cfg, &s->probe, why, sizeof why, &ch);
    if (admit < 0)
        wd_run_store_down(r, "breaker", NULL, why);
    s->admitted = admit > 0;
    wd_run_audit_breaker(r, s->breaker, &ch, r->tool.name, NULL);
    if (!s->admitted) { /* the server failed often enough: its tools fail at once */
        wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = mcp_clear});
        return;
    }
    if (!wd_mcp_host_tool(r->eng->mcp, s->server, strlen(s->server), s->tool, &conn, why, sizeof why)) {
        server_outcome(r, 0);
        wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = mcp_clear});
        return;
    }
    s->conn = conn;
    /* the tool's own deadline ends the call first (toolcall.c); this one only frees the slot */
    json_t *params = json_pack("{s:s,s:O}", "name", s->tool, "arguments", s->args);
    s->id = wd_mcp_request_progress(conn, "tools/call", params, s->timeout_ms + 1000, on_answer,
                                    r->progress ? on_progress : NULL, r);
    if (s->id < 0) {
        s->id = 0;
        server_outcome(r, 0);
        snprintf(why, sizeof why, "mcp server %s has ended", s->server);
        wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = mcp_clear});
    }
}

static void mcp_free(wd_run *r)
{
    wd_mcpcall_cancel(r, NULL);
    free(r->mcpcall);
    r->mcpcall = NULL;
}

const wd_op_kind wd_op_mcp = {"mcp", mcp_start, wd_mcpcall_cancel, NULL, mcp_free, NULL};
