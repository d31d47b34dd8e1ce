/* detect.c - detectors on a run's events and the engine's answer to their verdicts
** (detect.h). */
#include "detect.h"
#include "pipeline.h"
#include "checkdef.h"
#include "engine.h"
#include "jsonlua.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DET_CHECK_MS     100        /* one check, wall time */
#define DET_INSTR        20000000LL /* one check, instructions */
#define DET_HISTORY_MAX  1000       /* events kept; past it, the oldest half goes */
#define DET_HISTORY_KEEP 500
#define DET_MAX          16 /* detectors per run */

typedef struct det {
    char *name;
    char *mode;  /* the failure mode its verdicts are counted under */
    unsigned on; /* WD_EV_* */
    int box;     /* BOX_BUILTIN or BOX_AGENT: the sandbox it runs in */
    int check_ref, ctx_ref;
    int off; /* raised, looped or returned junk: silent for the rest of the run */
} det;

/* ** The built-in detectors and the agent's own run in two sandboxes: a script of the
** agent's shares no table, library or upvalue with warden's, so it cannot reach their
** ctx.store (whose state only they may write) through a patched string or table
** function. Each has its own copy of the run's event history. */
enum { BOX_BUILTIN = 0, BOX_AGENT = 1 };

typedef struct box {
    wd_sandbox *sb; /* NULL: no detector of this kind */
    int hist_ref;
    lua_Integer nhist;
    int dead; /* its memory stayed over its cap: its detectors are off */
} box;

struct wd_detect {
    char *names[DET_MAX];
    size_t nnames;
    det d[DET_MAX];
    size_t n;
    box bx[2];
    int state;     /* 0 not loaded, 1 loaded, -1 unusable */
    json_t *queue; /* events the detectors have not seen */
    int finished;  /* run_finished was queued */
};

static int add_name(wd_detect *D, const char *name, char *msg, size_t n)
{
    for (size_t i = 0; i < D->nnames; i++)
        if (!strcmp(D->names[i], name))
            return 0;
    if (D->nnames == DET_MAX) {
        wd_errf(msg, n, "more than %d detectors", DET_MAX);
        return -1;
    }
    D->names[D->nnames++] = wd_strdup(name);
    return 0;
}

int wd_detect_configure(wd_run *r, lua_State *L, int idx, char *msg, size_t n)
{
    wd_detect *D = calloc(1, sizeof *D);
    if (!D) {
        wd_errf(msg, n, "out of memory");
        return -1;
    }
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, idx, i);
            const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!name || !wd_name_ok(name)) {
                lua_pop(L, 1);
                wd_errf(msg, n, "detectors[%d] must be a detector name (letters, digits, _ and -)", (int)i);
                goto fail;
            }
            int rc = add_name(D, name, msg, n);
            lua_pop(L, 1);
            if (rc < 0)
                goto fail;
        }
    }
    /* the operator's: detectors.NAME.enforce watches every agent */
    const char *k;
    json_t *v;
    json_object_foreach(r->pol->detectors, k, v)
    {
        if (json_is_true(json_object_get(v, "enforce")) && add_name(D, k, msg, n) < 0)
            goto fail;
    }
    if (!D->nnames) {
        wd_detect_free(D);
        return 0;
    }
    wd_detect_free(r->det);
    r->det = D;
    return 0;
fail:
    wd_detect_free(D);
    return -1;
}

void wd_detect_event(wd_run *r, json_t *ev)
{
    wd_detect *D = r->det;
    if (!D || D->state < 0 || !ev) {
        json_decref(ev);
        return;
    }
    json_object_set_new(ev, "step", json_integer(r->steps));
    json_object_set_new(ev, "elapsed_ms", json_integer((wd_now_ns() - r->t0_ns) / 1000000));
    json_object_set_new(ev, "run_cost_usd", json_real(r->cost));
    if (!D->queue)
        D->queue = json_array();
    json_array_append_new(D->queue, ev);
}

long long wd_detect_memory_mb(long long run_mb) { return run_mb < 64 ? run_mb : 64; }

void wd_detect_free(wd_detect *D)
{
    if (!D)
        return;
    for (size_t i = 0; i < D->nnames; i++)
        free(D->names[i]);
    for (size_t i = 0; i < D->n; i++) {
        free(D->d[i].name);
        free(D->d[i].mode);
    }
    wd_sandbox_free(D->bx[0].sb);
    wd_sandbox_free(D->bx[1].sb);
    json_decref(D->queue);
    free(D);
}

/* ---- running detector code ------------------------------------------------------ */

/* t[k] without metamethods: a detector's tables are read outside any watched slice, where
** an __index that loops or raises would hang or abort the engine */
static int rawfield(lua_State *L, int idx, const char *k)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

/* ** Runs the function under nargs arguments at the top of box b's state in a fresh
** thread, under the check's limits (DET_CHECK_MS, DET_INSTR, the memory cap), resuming
** it through preemptions at once. Called with sb->in_engine raised, returns with it
** raised. 0 with the first result on top, or -1 with err; a stopped check leaves the
** state usable unless its memory stays over the cap (the box is dead). */
static int protected_call(box *b, int nargs, char *err, size_t n)
{
    wd_sandbox *sb = b->sb;
    int rc = wd_sandbox_call(sb, nargs, wd_now_ns() + DET_CHECK_MS * 1000000LL, err, n);
    if (rc == WD_CALL_OK)
        return 0;
    if (rc == WD_CALL_KILLED) {
        int why = sb->kill_reason;
        if (why == WD_KILL_TIMEOUT)
            snprintf(err, n, "stopped: it ran longer than %d ms", DET_CHECK_MS);
        else if (why == WD_KILL_INSTRUCTIONS)
            snprintf(err, n, "stopped: more than %lld instructions", DET_INSTR);
        else
            snprintf(err, n, "stopped: %s", wd_sandbox_kill_text(why));
        sb->mode = WD_MODE_NONE;
        sb->kill_reason = WD_KILL_NONE;
    } else if (rc == WD_CALL_YIELDED) {
        snprintf(err, n, "a detector cannot wait (coroutine.yield outside a coroutine, or an engine call)");
        return -1;
    }
    lua_gc(sb->L, LUA_GCCOLLECT);
    if (rc == WD_CALL_KILLED && sb->used > sb->limit)
        b->dead = 1;
    return -1;
}

static void push_ctx(wd_run *r, lua_State *L, const char *name, int bx, int per_user)
{
    lua_createtable(L, 0, 10);
    static const char *const K[] = {"run_id", "session_id", "user_id", "agent"};
    const char *v[] = {r->run_id, r->session_id, r->user_id, r->agent_name};
    for (int i = 0; i < 4; i++) {
        lua_pushstring(L, v[i] ? v[i] : "");
        lua_setfield(L, -2, K[i]);
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "detector");
    lua_pushstring(L, r->query ? r->query : "");
    lua_setfield(L, -2, "query");
    json_t *cfg = json_object_get(r->pol->detectors, name);
    if (json_is_object(cfg))
        wd_json_push(L, cfg);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "config");
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->max_iterations);
    lua_setfield(L, -2, "max_iterations");
    lua_pushnumber(L, wd_budget_run_limit(r, r->pol));
    lua_setfield(L, -2, "cost_usd");
    lua_pushinteger(L, r->pol->run_ms);
    lua_setfield(L, -2, "run_ms");
    lua_setfield(L, -2, "limits");
    lua_createtable(L, (int)r->ntools, 0);
    for (size_t i = 0; i < r->ntools; i++) {
        lua_pushstring(L, r->tools[i].name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "tools");
    /* its state: this agent's (and user's, when it asks), of this kind of detector; all
    ** agents' only where the operator shares it (detectors.NAME.share_state) */
    json_t *cfg2 = json_object_get(r->pol->detectors, name);
    wd_detect_scope sc = {json_is_true(json_object_get(cfg2, "share_state")) ? "*"
                          : r->agent_key                                     ? r->agent_key
                                                                             : "",
                          per_user && r->user_id ? r->user_id : "", bx == BOX_BUILTIN ? "builtin" : "agent", name};
    wd_detect_push_store(L, r->eng->store, &sc);
    lua_setfield(L, -2, "store");
}

/* where detector name comes from: the agent's detectors/NAME.lua, or warden's own */
static int origin(wd_run *r, const char *name, char *path, size_t pn, char *chunk, size_t cn)
{
    const char *dir = r->agent_dir ? r->agent_dir : ".";
    snprintf(path, pn, "%s/detectors/%s.lua", dir, name);
    snprintf(chunk, cn, "detectors/%s.lua", name);
    if (access(path, F_OK) == 0)
        return BOX_AGENT;
    snprintf(path, pn, "%s/warden/detectors/%s.lua", wd_sandbox_lua_dir(), name);
    snprintf(chunk, cn, "warden/detectors/%s.lua", name);
    return BOX_BUILTIN;
}

/* loads detector name: its file run, its spec checked; 0 or -1 with msg */
static int load_one(wd_run *r, wd_detect *D, const char *name, char *msg, size_t n)
{
    char path[1200], chunk[200];
    int bx = origin(r, name, path, sizeof path, chunk, sizeof chunk);
    box *b = &D->bx[bx];
    lua_State *L = b->sb->L;
    int rc = wd_sandbox_loadfile(L, path, chunk);
    if (rc == WD_SANDBOX_NOFILE) {
        lua_pop(L, 1);
        wd_errf(msg, n,
                "detector '%s' not found: no detectors/%s.lua in the agent's directory and no built-in of "
                "that name",
                name, name);
        return -1;
    }
    char err[400];
    if (rc < 0) {
        wd_errf(msg, n, "detector '%s': %s", name, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    if (protected_call(b, 0, err, sizeof err) < 0) {
        wd_errf(msg, n, "detector '%s': %s", name, err);
        return -1;
    }
    det *d = &D->d[D->n];
    memset(d, 0, sizeof *d);
    d->box = bx;
    int per_user = 0;
    if (wd_check_detector_def(L, -1, name, chunk, &d->on, &per_user, msg, n) < 0) {
        lua_pop(L, 1);
        return -1;
    }
    d->mode = wd_strdup(rawfield(L, -1, "failure_mode") == LUA_TSTRING ? lua_tostring(L, -1) : name);
    lua_pop(L, 1);
    rawfield(L, -1, "check");
    d->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1); /* the spec */
    push_ctx(r, L, name, bx, per_user);
    d->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    d->name = wd_strdup(name);
    D->n++;
    return 0;
}

/* the detectors' sandboxes (one for warden's, one for the agent's own, as they are
** used; wd_detect_memory_mb between them) and every detector in them; 0 or -1 with msg */
static int load(wd_run *r, wd_detect *D, char *msg, size_t n)
{
    int used[2] = {0, 0};
    char path[1200], chunk[200];
    for (size_t i = 0; i < D->nnames; i++)
        used[origin(r, D->names[i], path, sizeof path, chunk, sizeof chunk)] = 1;
    long long mb = wd_detect_memory_mb(r->pol->memory_mb);
    if (used[0] && used[1])
        mb = mb / 2 > 0 ? mb / 2 : 1;
    for (int b = 0; b < 2; b++) {
        if (!used[b])
            continue;
        box *x = &D->bx[b];
        if (!(x->sb = wd_sandbox_new((size_t)mb << 20, DET_INSTR, r->agent_dir, msg, n)))
            return -1;
        lua_State *L = x->sb->L;
        x->sb->in_engine++;
        r->eng->hooks->open_warden(L); /* lua_warden.c, through the hooks: it configures us */
        lua_newtable(L);
        x->hist_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int rc = 0;
    for (size_t i = 0; i < D->nnames && rc == 0; i++)
        rc = load_one(r, D, D->names[i], msg, n);
    for (int b = 0; b < 2; b++)
        if (D->bx[b].sb)
            D->bx[b].sb->in_engine--;
    return rc;
}

/* ---- verdicts ---------------------------------------------------------------------- */

enum { V_NONE, V_WARN, V_ESCALATE, V_HALT };
static const char *const KINDS[] = {"", "warn", "escalate", "halt"};

typedef struct verdict {
    int kind;
    char reason[600];
    json_t *details;
} verdict;

static void audit_error(wd_run *r, const det *d, const char *type, const char *err)
{
    json_t *ev = wd_run_event(r, WD_AE_DETECTOR_ERROR, 0);
    json_object_set_new(ev, "detector", json_string(d ? d->name : "?"));
    json_object_set_new(ev, "on", json_string(type));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "error", json_string(err));
    json_object_set_new(ev, "reason", json_string("the detector is off for the rest of the run; the run goes on"));
    wd_run_audit(r, ev);
}

/* the check's result (on top; popped) as a verdict; -1 with err when it is no verdict */
static int read_verdict(wd_run *r, lua_State *L, const det *d, verdict *v, char *err, size_t n)
{
    v->kind = V_NONE;
    v->details = NULL;
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TTABLE) {
        snprintf(err, n, "check returned a %s: expected nil or {verdict = warn|escalate|halt, reason = ...}",
                 lua_typename(L, t));
        lua_pop(L, 1);
        return -1;
    }
    const char *vs = rawfield(L, -1, "verdict") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    for (int i = 1; i < 4 && vs; i++)
        if (!strcmp(vs, KINDS[i]))
            v->kind = i;
    lua_pop(L, 1);
    if (v->kind == V_NONE) {
        snprintf(err, n, "check returned a verdict that is not warn, escalate or halt");
        lua_pop(L, 1);
        return -1;
    }
    if (rawfield(L, -1, "reason") == LUA_TSTRING)
        wd_strlcpy(v->reason, lua_tostring(L, -1), sizeof v->reason);
    else
        snprintf(v->reason, sizeof v->reason, "detector '%s' gave the verdict %s", d->name, KINDS[v->kind]);
    lua_pop(L, 1);
    char jerr[200];
    json_t *all = wd_lua_to_json(L, -1, jerr, sizeof jerr);
    lua_pop(L, 1);
    if (json_is_object(all)) {
        json_object_del(all, "verdict");
        json_object_del(all, "reason");
        if (json_object_size(all))
            v->details = json_incref(all);
    }
    json_decref(all);
    /* the operator has the last word on what a detector that fires does */
    const char *forced = json_string_value(json_object_get(json_object_get(r->pol->detectors, d->name), "verdict"));
    for (int i = 1; i < 4 && forced; i++)
        if (!strcmp(forced, KINDS[i]))
            v->kind = i;
    return 0;
}

static void audit_verdict(wd_run *r, const det *d, const char *type, const json_t *event, const verdict *v, int acted)
{
    json_t *ev = wd_run_event(r, WD_AE_DETECTOR_VERDICT, 0);
    json_object_set_new(ev, "detector", json_string(d->name));
    json_object_set_new(ev, "verdict", json_string(KINDS[v->kind]));
    json_object_set_new(ev, "reason", json_string(v->reason));
    json_object_set_new(ev, "on", json_string(type));
    const json_t *fm = v->details ? json_object_get(v->details, "failure_mode") : NULL;
    json_object_set_new(ev, "failure_mode", json_string(json_is_string(fm) ? json_string_value(fm) : d->mode));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "prevented", json_boolean(acted && v->kind != V_WARN));
    const json_t *tool = json_object_get(event, "tool");
    if (json_is_string(tool))
        json_object_set_new(ev, "tool_name", json_incref((json_t *)tool));
    const json_t *args = json_object_get(event, "args");
    if (args && json_is_string(tool))
        json_object_set_new(ev, "tool_args", json_deep_copy(args));
    if (v->details)
        json_object_set_new(ev, "details", json_incref(v->details));
    wd_run_audit(r, ev);
    if (r->eng->notice) {
        char line[800];
        snprintf(line, sizeof line, "detector '%s' (%s on %s): %s", d->name, KINDS[v->kind], type, v->reason);
        r->eng->notice(r->eng->notice_ud, line);
    }
}

/* appends the event (pushed, popped) to the box's history, trimming it to its last
** DET_HISTORY_KEEP events when it is full */
static void remember(box *b)
{
    lua_State *L = b->sb->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->hist_ref);
    if (b->nhist >= DET_HISTORY_MAX) {
        lua_createtable(L, DET_HISTORY_MAX, 0);
        for (lua_Integer i = 1; i <= DET_HISTORY_KEEP; i++) {
            lua_rawgeti(L, -2, b->nhist - DET_HISTORY_KEEP + i);
            lua_rawseti(L, -2, i);
        }
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, LUA_REGISTRYINDEX, b->hist_ref);
        b->nhist = DET_HISTORY_KEEP;
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, ++b->nhist);
    lua_pop(L, 1);
}

static int box_live(const box *b) { return b->sb && !b->dead; }

/* ** Shows the queued events to the detectors. acting: verdicts are enforced (else only
** audited, the run having ended). Returns the strongest verdict; *who and *why keep the
** one that decides (the first halt, else the first escalation). */
static int process(wd_run *r, wd_detect *D, int acting, const det **who, char *why, size_t whyn)
{
    int worst = V_NONE;
    json_t *q = D->queue;
    D->queue = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(q, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        unsigned bit = wd_check_event_bit(type ? type : "");
        int alive[2];
        for (int b = 0; b < 2; b++) {
            alive[b] = box_live(&D->bx[b]);
            if (!alive[b])
                continue;
            D->bx[b].sb->in_engine++;
            wd_json_push(D->bx[b].sb->L, ev);
            remember(&D->bx[b]);
        }
        for (size_t k = 0; k < D->n && worst < V_HALT; k++) {
            det *d = &D->d[k];
            box *b = &D->bx[d->box];
            if (d->off || !(d->on & bit) || !box_live(b))
                continue;
            lua_State *L = b->sb->L;
            char err[600];
            verdict v;
            lua_rawgeti(L, LUA_REGISTRYINDEX, d->check_ref);
            lua_rawgeti(L, LUA_REGISTRYINDEX, b->hist_ref);
            lua_rawgeti(L, -1, b->nhist);
            lua_insert(L, -2); /* check, event, history */
            lua_rawgeti(L, LUA_REGISTRYINDEX, d->ctx_ref);
            if (protected_call(b, 3, err, sizeof err) < 0 || read_verdict(r, L, d, &v, err, sizeof err) < 0) {
                d->off = 1;
                audit_error(r, d, type ? type : "?", err);
                if (b->dead)
                    audit_error(r, NULL, "?",
                                d->box == BOX_BUILTIN
                                    ? "the built-in detectors' sandbox stayed over its memory limit: they are off"
                                    : "the agent's detectors' sandbox stayed over its memory limit: they are off");
                continue;
            }
            if (v.kind == V_NONE)
                continue;
            audit_verdict(r, d, type ? type : "?", ev, &v, acting);
            if (v.kind > worst && v.kind > V_WARN) {
                worst = v.kind;
                *who = d;
                snprintf(why, whyn, "%s", v.reason);
            }
            json_decref(v.details);
        }
        for (int b = 0; b < 2; b++)
            if (alive[b])
                D->bx[b].sb->in_engine--;
        if (!box_live(&D->bx[0]) && !box_live(&D->bx[1]))
            D->state = -1; /* nothing left to run */
        if (worst == V_HALT || D->state < 0)
            break;
    }
    json_decref(q);
    return worst;
}

int wd_detect_drain(wd_run *r, int finish)
{
    wd_detect *D = r->det;
    char msg[800];
    if (!D || D->state < 0 || (D->state > 0 && !json_array_size(D->queue)))
        return WD_DET_GO;
    if (D->state == 0) {
        if (load(r, D, msg, sizeof msg) < 0) {
            D->state = -1;
            wd_run_end(r, WD_ST_FAILED, msg);
            return WD_DET_ENDED;
        }
        D->state = 1;
        if (!json_array_size(D->queue))
            return WD_DET_GO;
    }
    const det *who = NULL;
    char why[600] = "";
    int worst = process(r, D, 1, &who, why, sizeof why);
    if (worst == V_HALT) {
        snprintf(msg, sizeof msg, "halted by detector '%s': %s", who->name, why);
        wd_run_end(r, WD_ST_HALTED, msg);
        return WD_DET_ENDED;
    }
    if (worst == V_ESCALATE) {
        /* a tool call that waits for a person already is in a person's hands */
        if (!finish && r->req.kind == OP_APPROVAL)
            return WD_DET_GO;
        const char *risk = json_string_value(json_object_get(json_object_get(r->pol->detectors, who->name), "risk"));
        if (wd_pipeline_gate(r, finish, who->name, why, risk ? risk : "high", msg, sizeof msg) == 0)
            return WD_DET_HELD;
        wd_run_end(r, WD_ST_HALTED, msg); /* escalation impossible: fail closed */
        return WD_DET_ENDED;
    }
    return WD_DET_GO;
}

/* run_finished (status, the answer, the error) joins the queue, once */
static void queue_finished(wd_run *r, const char *status, const char *result, const char *error)
{
    wd_detect *D = r->det;
    if (!D || D->finished || D->state < 0)
        return;
    D->finished = 1;
    json_t *ev = json_pack("{s:s,s:s}", "type", "run_finished", "status", status);
    if (ev && result)
        json_object_set_new(ev, "result", json_string(result));
    if (ev && error)
        json_object_set_new(ev, "error", json_string(error));
    wd_detect_event(r, ev);
}

void wd_detect_answer(wd_run *r, const char *result) { queue_finished(r, "completed", result, NULL); }

void wd_detect_finish(wd_run *r, const char *status, const char *error)
{
    wd_detect *D = r->det;
    if (!D || D->state < 0)
        return;
    queue_finished(r, status, NULL, error);
    if (!json_array_size(D->queue))
        return;
    char msg[800];
    if (D->state == 0) {
        if (load(r, D, msg, sizeof msg) < 0) {
            D->state = -1;
            audit_error(r, NULL, "run_finished", msg);
            return;
        }
        D->state = 1;
    }
    const det *who = NULL;
    char why[600];
    process(r, D, 0, &who, why, sizeof why);
}
