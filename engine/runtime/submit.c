/* submit.c - a run submitted to an engine (warden.h): its agent found, its timers made,
** queued for its first turn (engine.c starts it) */
#include "engine.h"
#include "schema.h"
#include "session.h"
#include "killswitch.h"
#include "sandbox.h"
#include "util.h"

#include <lauxlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void run_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    wd_run_end(r, WD_ST_TIMEOUT, "run time limit exceeded");
}

/* A direct call of one tool (wd_run_opts.tool: an MCP client's tools/call): the agent
** is warden's own warden/call_tool.lua, its directory the one the tool's script is
** found under and resources are relative to, its name WD_DIRECT_AGENT. */
static int resolve_direct(wd_run *r, const char *dir, char *err, size_t n)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        wd_errf(err, n, "tool call: %s is not a directory", dir);
        return -1;
    }
    if (asprintf(&r->agent_path, "%s/warden/call_tool.lua", wd_sandbox_lua_dir()) < 0)
        return -1;
    r->agent_dir = wd_strdup(dir);
    r->agent_name = wd_strdup(WD_DIRECT_AGENT);
    r->agent_key = wd_strdup(WD_DIRECT_AGENT);
    return r->agent_dir && r->agent_name && r->agent_key ? 0 : -1;
}

/* wd_run_opts.history read: a conversation as wd_session_turns_check takes it; 0, or -1
** with why in err */
static int read_history(wd_run *r, const char *text, char *err, size_t n)
{
    json_error_t je;
    json_t *h = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    long bad = h ? wd_session_turns_check(h) : -1;
    if (bad < 0)
        wd_errf(err, n, "history: %s", h ? "an array of at most 1000 messages" : je.text);
    else if (bad)
        wd_errf(err, n, "history[%ld]: {role: system, user or assistant, content: text}", bad - 1);
    if (bad) {
        json_decref(h);
        return -1;
    }
    r->history = h;
    return 0;
}

/* wd_run_opts.output_schema compiled into the run's; 0, or -1 with why in err */
static int read_output_schema(wd_run *r, const char *text, char *err, size_t n)
{
    json_error_t je;
    json_t *s = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    char why[300];
    if (!json_is_object(s) || !(r->output_check = wd_schema_compile(s, why, sizeof why))) {
        wd_errf(err, n, "output_schema: %s", !s ? je.text : !json_is_object(s) ? "not a JSON object" : why);
        json_decref(s);
        return -1;
    }
    r->output_schema = s;
    return 0;
}

/* resolves agent path: a directory with agent.lua, or a .lua file */
static int resolve_agent(wd_run *r, const char *agent, char *err, size_t n)
{
    struct stat st;
    if (r->direct_tool)
        return resolve_direct(r, agent, err, n);
    if (stat(agent, &st) < 0) {
        wd_errf(err, n, "agent %s not found", agent);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (asprintf(&r->agent_path, "%s/agent.lua", agent) < 0)
            return -1;
        r->agent_dir = wd_strdup(agent);
    } else {
        r->agent_path = wd_strdup(agent);
        char *d = wd_strdup(agent);
        r->agent_dir = wd_strdup(dirname(d));
        free(d);
    }
    if (access(r->agent_path, R_OK) < 0) {
        wd_errf(err, n, "agent %s: cannot read %s", agent, r->agent_path);
        return -1;
    }
    char *base = wd_strdup(agent);
    size_t l = strlen(base);
    while (l > 1 && base[l - 1] == '/')
        base[--l] = '\0';
    char *b = basename(base);
    l = strlen(b);
    if (l > 4 && !strcmp(b + l - 4, ".lua"))
        b[l - 4] = '\0';
    r->agent_name = wd_strdup(b);
    r->agent_key = wd_strdup(b); /* the name its script may change; this one it may not */
    free(base);
    return 0;
}

int wd_engine_submit(wd_engine *e, const wd_run_opts *o, wd_run_done_fn done, void *ud)
{
    return wd_run_submit(e, o, done, ud) ? 0 : -1;
}

wd_run *wd_run_submit(wd_engine *e, const wd_run_opts *o, wd_run_done_fn done, void *ud)
{
    wd_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cap_usd = -1;
    r->eng = e;
    r->done = done;
    r->done_ud = ud;
    r->t0_ns = wd_now_ns();
    r->wall0_ms = wd_wall_ms();
    r->agent_ref = LUA_NOREF;
    if (o->run_id && strlen(o->run_id) < sizeof r->run_id)
        memcpy(r->run_id, o->run_id, strlen(o->run_id) + 1);
    else
        wd_uuid(r->run_id);
    if (o->session_id) {
        r->session_id = wd_strdup(o->session_id);
        r->session_explicit = 1;
    } else {
        char s[37];
        wd_uuid(s);
        r->session_id = wd_strdup(s);
    }
    r->user_id = wd_strdup(o->user_id);
    r->query = wd_strdup(o->query);
    if (o->tool)
        r->direct_tool = wd_strdup(o->tool);
    r->progress = o->progress;
    r->on_text = o->on_text;
    if (o->refuse) {
        r->refuse = wd_strdup(o->refuse);
        r->retry_after_ms = o->refuse_retry_ms;
    }
    r->llm = wd_strdup(o->llm ? o->llm : e->llm);
    r->tool_calls = json_array();
    r->errors = json_array();
    r->op_timer = evtimer_new(e->base, NULL, NULL); /* callbacks are set per operation */
    r->run_timer = evtimer_new(e->base, run_timeout, r);
    e->active++;
    e->unstarted++;
    r->live_next = e->live;
    if (e->live)
        e->live->live_prev = r;
    e->live = r;
    wd_kills_arm(e);
    char err[300];
    if (!r->session_id || (o->tool && !r->direct_tool) || !r->tool_calls || !r->errors || !r->op_timer ||
        !r->run_timer) {
        r->agent_name = wd_strdup("?");
        wd_run_end(r, WD_ST_FAILED, "out of memory");
        return NULL; /* ended: its callback has run */
    }
    if (!o->agent || resolve_agent(r, o->agent, err, sizeof err) < 0 ||
        (o->history && read_history(r, o->history, err, sizeof err) < 0) ||
        (o->output_schema && read_output_schema(r, o->output_schema, err, sizeof err) < 0)) {
        if (!r->agent_name)
            r->agent_name = wd_strdup(o->agent ? o->agent : "?");
        r->start_error = wd_strdup(o->agent ? err : "no agent given"); /* ended by start() */
    }
    wd_run_schedule(r, NULL, 0);
    return r;
}
