/* agentcall.c - another agent called as a tool (agentcall.h) */
#include "agentcall.h"
#include "budget.h"
#include "sandbox.h"
#include "settle.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* shared by a sub-run's done callback and its parent's call: parent NULL once the call
** was abandoned; freed by the callback (or by the start, when it ran during the submit) */
typedef struct sublink {
    wd_run *parent;
    int in_submit, ended;
} sublink;

typedef struct wd_agentcall_state wd_agentcall_state;

struct wd_agentcall_state {
    char *path, *name, *input;
    char child_id[37];
    sublink *link; /* a sub-run in flight */
};

/* ---- load: the agent, and its chain of handoffs ------------------------------------ */

/* the path of agent name beside r's (caller frees), or NULL */
static char *agent_path(const wd_run *r, const char *name)
{
    const char *ap = r->agent_path ? r->agent_path : "";
    size_t l = strlen(ap);
    int in_dir = l >= 10 && !strcmp(ap + l - 10, "/agent.lua"); /* agents/NAME/agent.lua: its siblings are up one */
    char *base = wd_strdup(r->agent_dir ? r->agent_dir : "."), *p = NULL;
    if (!base)
        return NULL;
    if (in_dir) {
        char *slash = strrchr(base, '/');
        if (slash && slash != base)
            *slash = '\0';
        else
            strcpy(base, ".");
    }
    struct stat st;
    if (asprintf(&p, "%s/%s/agent.lua", base, name) >= 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        p[strlen(p) - 10] = '\0';
    } else {
        free(p);
        p = NULL;
        if (asprintf(&p, "%s/%s.lua", base, name) < 0 || stat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(p);
            p = NULL;
        }
    }
    free(base);
    return p;
}

/* the file that holds an agent (a directory's agent.lua, or the file) */
static void agent_file(const char *path, char *out, size_t n)
{
    size_t l = strlen(path);
    if (l > 4 && !strcmp(path + l - 4, ".lua"))
        snprintf(out, n, "%s", path);
    else
        snprintf(out, n, "%s/agent.lua", path);
}

/* the agent's spec table, pushed; -1 with the message pushed instead */
static int load_spec(wd_run *r, lua_State *L, const char *path)
{
    char file[2048];
    agent_file(path, file, sizeof file);
    if (wd_sandbox_loadfile(L, file, file) != 0)
        return -1;
    int slack = r->sb->in_engine; /* its file runs under the script's limits */
    r->sb->in_engine = 0;
    int rc = lua_pcall(L, 0, 1, 0);
    r->sb->in_engine = slack;
    if (rc != LUA_OK)
        return -1;
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s does not return warden.agent{...}", file);
        return -1;
    }
    return 0;
}

/* ** The handoffs of the last agent of chain (n names, the first this run's agent),
** followed: one back to a name on the chain is a cycle, one past WD_AGENT_DEPTH too
** deep. 0, or -1 with the message pushed. */
static int follow(wd_run *r, lua_State *L, char **chain, int n)
{
    char *path = agent_path(r, chain[n - 1]);
    if (!path) {
        lua_pushfstring(L, "tool 'agent__%s': no agent %s beside %s", chain[n - 1], chain[n - 1], r->agent_key);
        return -1;
    }
    int rc = load_spec(r, L, path);
    free(path);
    if (rc < 0)
        return -1;
    int tools = lua_getfield(L, -1, "tools") == LUA_TTABLE ? lua_gettop(L) : 0;
    for (lua_Integer i = 1; tools && rc == 0 && i <= (lua_Integer)lua_rawlen(L, tools); i++) {
        lua_rawgeti(L, tools, i);
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        const char *next = !strncmp(t, "agent:", 6) ? t + 6 : !strncmp(t, "agent__", 7) ? t + 7 : NULL;
        if (next) {
            wd_buf b = {0};
            for (int k = 0; k < n; k++)
                wd_buf_addf(&b, "%s%s", k ? " -> " : "", chain[k]);
            wd_buf_addf(&b, " -> %s", next);
            int cycle = 0;
            for (int k = 0; k < n; k++)
                cycle |= !strcmp(chain[k], next);
            if (cycle || n > WD_AGENT_DEPTH) {
                if (cycle)
                    lua_pushfstring(L, "agent handoffs make a cycle: %s", b.p);
                else
                    lua_pushfstring(L, "agent handoffs nest deeper than %d: %s", WD_AGENT_DEPTH, b.p);
                wd_buf_free(&b);
                return -1;
            }
            wd_buf_free(&b);
            chain[n] = (char *)next;
            rc = follow(r, L, chain, n + 1);
        }
        if (rc == 0)
            lua_pop(L, 1);
    }
    if (rc == 0)
        lua_pop(L, 2); /* the list (or nil) and the spec */
    return rc;
}

int wd_agentcall_prepare(wd_run *r, lua_State *L, const char *name, json_t **params, char **desc)
{
    const char *agent = name + strlen(WD_AGENT_TOOL_PREFIX);
    char *path = agent_path(r, agent);
    if (!path) {
        lua_pushfstring(L, "tool '%s': no agent %s beside %s (a directory with agent.lua, or %s.lua)", name, agent,
                        r->agent_key, agent);
        return -1;
    }
    if (!strcmp(agent, r->agent_key)) {
        free(path);
        lua_pushfstring(L, "agent handoffs make a cycle: %s -> %s", agent, agent);
        return -1;
    }
    char *chain[WD_AGENT_DEPTH + 2] = {r->agent_key, (char *)agent};
    int top = lua_gettop(L);
    if (follow(r, L, chain, 2) < 0) {
        lua_replace(L, top + 1); /* the message alone */
        lua_settop(L, top + 1);
        free(path);
        return -1;
    }
    char d[300];
    snprintf(d, sizeof d, "Hand a task to the agent %s, which works on it with its own tools and answers.", agent);
    *desc = wd_strdup(d);
    *params =
        json_pack("{s:s,s:{s:{s:s,s:s}},s:[s],s:b}", "type", "object", "properties", "input", "type", "string",
                  "description", "the task for the agent, in words", "required", "input", "additionalProperties", 0);
    lua_pushstring(L, path);
    lua_pushstring(L, agent);
    lua_pushcclosure(L, wd_agentcall_handler, 2);
    free(path);
    return 0;
}

/* ---- the call ------------------------------------------------------------------------- */

static void agent_clear(wd_run *r)
{
    wd_agentcall_state *s = r->agentcall;
    free(s->path);
    free(s->name);
    free(s->input);
    memset(s, 0, sizeof *s);
}

int wd_agentcall_handler(lua_State *L)
{
    wd_run *r = wd_sandbox_of(L)->owner;
    if (!r || !r->tool.active)
        return luaL_error(L, "an agent tool runs only as a tool");
    const char *input = lua_istable(L, 1) && lua_getfield(L, 1, "input") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!input)
        return luaL_error(L, "tool '%s': input must be text", r->tool.name);
    if (!r->agentcall && !(r->agentcall = calloc(1, sizeof *r->agentcall)))
        return luaL_error(L, "out of memory");
    agent_clear(r);
    r->agentcall->path = wd_strdup(lua_tostring(L, lua_upvalueindex(1)));
    r->agentcall->name = wd_strdup(lua_tostring(L, lua_upvalueindex(2)));
    r->agentcall->input = wd_strdup(input);
    lua_pop(L, 1);
    r->req.kind = OP_AGENT;
    return wd_sandbox_yield(L);
}

typedef struct {
    const char *text, *fail;
} answer;

static int push_answer(wd_run *r, lua_State *co, void *ud)
{
    (void)r;
    answer *a = ud;
    if (a->fail) {
        lua_pushnil(co);
        lua_pushstring(co, a->fail);
        return 2;
    }
    lua_pushstring(co, a->text);
    return 1;
}

/* ** The sub-run ended. Its spend is already in the ledger (its own calls were reserved
** and settled there): it joins the parent's cost, which its limit was cut from, and its
** LLM calls and tokens join the parent's count. Its final answer is the tool's result. */
static void on_child_done(const json_t *res, void *ud)
{
    sublink *l = ud;
    l->ended = 1;
    wd_run *r = l->parent;
    if (r) {
        wd_agentcall_state *s = r->agentcall;
        s->link = NULL;
        json_t *usage = json_object_get(res, "usage");
        r->cost += json_number_value(json_object_get(res, "cost_usd"));
        r->steps += (int)json_integer_value(json_object_get(res, "steps_taken"));
        r->tokens_in += json_integer_value(json_object_get(usage, "input_tokens"));
        r->tokens_out += json_integer_value(json_object_get(usage, "output_tokens"));
        const char *st = json_string_value(json_object_get(res, "status"));
        const char *text = json_string_value(json_object_get(res, "result"));
        const char *err1 = json_string_value(json_array_get(json_object_get(res, "errors"), 0));
        char msg[700];
        answer a = {text ? text : "", NULL};
        if (!st || strcmp(st, "completed")) {
            snprintf(msg, sizeof msg, "agent %s (run %s) ended %s: %s", s->name, s->child_id, st ? st : "?",
                     err1 ? err1 : a.text);
            a.fail = msg;
        }
        wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = agent_clear});
    }
    if (!l->in_submit)
        free(l);
}

static void fail_now(wd_run *r, const char *msg)
{
    answer a = {"", msg};
    wd_run_settle(r, &(wd_settle){.co = r->waiting, .push = push_answer, .ud = &a, .clear = agent_clear});
}

static void agent_start(wd_run *r)
{
    wd_agentcall_state *s = r->agentcall;
    char msg[300];
    int left = r->max_iterations - r->steps;
    if (r->depth >= WD_AGENT_DEPTH || left <= 0) {
        snprintf(msg, sizeof msg,
                 r->depth >= WD_AGENT_DEPTH ? "agent %s: handoffs go at most %d deep"
                                            : "agent %s: the run has no LLM calls left for it (%d)",
                 s->name, r->depth >= WD_AGENT_DEPTH ? WD_AGENT_DEPTH : r->max_iterations);
        fail_now(r, msg);
        return;
    }
    sublink *l = calloc(1, sizeof *l);
    if (!l) {
        fail_now(r, "out of memory");
        return;
    }
    l->parent = r;
    l->in_submit = 1;
    wd_run_opts o = {0};
    o.agent = s->path;
    o.query = s->input;
    o.user_id = r->user_id;
    o.llm = r->llm;
    wd_run *c = wd_run_submit(r->eng, &o, on_child_done, l);
    l->in_submit = 0;
    if (!c) { /* ended at once, its callback told the parent; or never made */
        if (!l->ended)
            fail_now(r, "out of memory");
        free(l);
        return;
    }
    wd_strlcpy(c->parent_run_id, r->run_id, sizeof c->parent_run_id);
    c->depth = r->depth + 1;
    double room = wd_budget_run_limit(r, r->pol) - r->cost - (double)r->held_nusd / WD_NUSD_PER_USD;
    c->cap_usd = room > 0 ? room : 0;
    c->cap_deadline_ns = r->deadline_ns;
    c->cap_iterations = left;
    wd_strlcpy(s->child_id, c->run_id, sizeof s->child_id);
    s->link = l;
}

void wd_agentcall_cancel(wd_run *r, const char *why)
{
    wd_agentcall_state *s = r->agentcall;
    if (!s || !s->link)
        return;
    s->link->parent = NULL; /* its end tells nobody */
    s->link = NULL;
    char id[37];
    wd_strlcpy(id, s->child_id, sizeof id);
    agent_clear(r);
    wd_engine_cancel(r->eng, id, why ? why : "the tool call that ran it ended");
}

static void agent_free(wd_run *r)
{
    wd_agentcall_cancel(r, NULL);
    if (r->agentcall)
        agent_clear(r);
    free(r->agentcall);
    r->agentcall = NULL;
}

const wd_op_kind wd_op_agent = {"agent", agent_start, wd_agentcall_cancel, NULL, agent_free, NULL};
