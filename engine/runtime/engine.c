/* engine.c - the loop, the run lifecycle and the driver that resumes run coroutines.
**
** Every run is a lua_State of its own; its agent runs as a coroutine. Engine calls
** (ctx:llm, ctx:call_tool, ctx:sleep) record a request on the run and yield; the driver
** sees the yield reach the top, starts the operation, and a loop event resumes the
** coroutine with the answer, even when the answer is immediate. */
#include "bound.h"
#include "mcphost.h"
#include "engine.h"
#include "session.h"
#include "ask.h"
#include "jsonlua.h"
#include "mock.h"
#include "notify.h"
#include "redact.h"
#include "canon.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define READY_BATCH 256
/* a turn of the ready queue stops after this long: answers waiting on sockets and
** requests waiting on curl's timer get the loop back within it (a 256-run turn of
** new runs held them for 50 ms; 2 ms turns cost a warm burst of 1,000 runs 3% more
** wall time than 1 ms ones, 0.5 ms turns cost more CPU) */
#define READY_SLICE_NS 1000000LL
#define FLUSH_MS       20

/* ---- audit helpers ------------------------------------------------------------ */

/* ---- ready queue ------------------------------------------------------------ */

/* ---- run end ------------------------------------------------------------------ */

/* ---- the driver ------------------------------------------------------------- */

/* the agent's answer: the detectors see it before the run completes */
static void complete(wd_run *r)
{
    if (r->det) {
        r->eng->hooks->answer(r, r->result_text);
        if (r->eng->hooks->drain(r, 1) != WD_DET_GO)
            return;
    }
    wd_run_end(r, WD_ST_COMPLETED, NULL);
}

static void agent_returned(wd_run *r, lua_State *co, int nres)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres >= 1 && (lua_type(co, base) == LUA_TSTRING || lua_type(co, base) == LUA_TNUMBER)) {
        size_t len;
        const char *s = lua_tolstring(co, base, &len);
        r->result_text = wd_cstr_of(s, len);
        complete(r);
        return;
    }
    if (nres >= 1 && lua_type(co, base) == LUA_TTABLE) {
        char err[200];
        r->sb->in_engine++;
        json_t *j = wd_lua_to_json(co, base, err, sizeof err);
        r->sb->in_engine--;
        if (j) {
            char *s = wd_json_compact_text(j);
            json_decref(j);
            r->result_text = s;
            complete(r);
            return;
        }
        char msg[300];
        snprintf(msg, sizeof msg, "the agent returned a result that is not data: %s", err);
        wd_run_end(r, WD_ST_FAILED, msg);
        return;
    }
    char msg[600];
    if (nres >= 2 && lua_type(co, base + 1) == LUA_TSTRING)
        wd_sandbox_error_text(co, base + 1, msg, sizeof msg, NULL);
    else
        snprintf(msg, sizeof msg, "the agent returned no result");
    /* an agent that gave up after an LLM timeout timed out; the error is already in errors[] */
    if (r->last_fail_timeout) {
        wd_run_end(r, WD_ST_TIMEOUT, NULL);
        return;
    }
    wd_run_end(r, WD_ST_FAILED, msg);
}

/* a tool's handler returned or failed: the tool kind settles the call */
static void settle_tool(wd_run *r, int ok, int nres, const char *error, int transient)
{
    r->eng->hooks->ops[OP_TOOL]->settle(r, ok, nres, error, transient);
}

void wd_run_start_op(wd_run *r)
{
    wd_opkind k = r->req.kind;
    r->req.kind = OP_NONE;
    const wd_op_kind *op = k > OP_NONE && k < OP_COUNT ? r->eng->hooks->ops[k] : NULL;
    if (op && op->start)
        op->start(r);
    else
        wd_run_end(r, WD_ST_FAILED, "coroutine.yield was called outside a coroutine");
}

static void on_kill(wd_run *r, lua_State *co)
{
    wd_sandbox *sb = r->sb;
    int reason = sb->kill_reason;
    int64_t now = wd_now_ns();
    if (reason == WD_KILL_LIMIT) {
        wd_run_end(r, r->limit_status, r->limit_msg ? r->limit_msg : "a run limit was reached");
        return;
    }
    if (co == r->tool.co && r->tool.active && !(reason == WD_KILL_TIMEOUT && now >= r->deadline_ns)) {
        char msg[200];
        if (reason == WD_KILL_TIMEOUT)
            snprintf(msg, sizeof msg, "tool '%s' timed out after %lld ms", r->tool.name, r->tool.timeout_ms);
        else if (reason == WD_KILL_MEMORY)
            snprintf(msg, sizeof msg, "tool '%s' exceeded the run's memory limit (%lld MB)", r->tool.name,
                     r->pol->memory_mb);
        else
            snprintf(msg, sizeof msg, "tool '%s' stopped: %s", r->tool.name, wd_sandbox_kill_text(reason));
        sb->mode = WD_MODE_NONE;
        sb->kill_reason = WD_KILL_NONE;
        settle_tool(r, 0, 0, msg, 0);
        /* the abandoned handler's memory comes back before the agent goes on */
        sb->in_engine++;
        lua_gc(r->L, LUA_GCCOLLECT);
        sb->in_engine--;
        if (sb->used > sb->limit)
            wd_run_end(r, WD_ST_FAILED, "memory limit exceeded");
        return;
    }
    if (reason == WD_KILL_TIMEOUT)
        wd_run_end(r, WD_ST_TIMEOUT, "run time limit exceeded");
    else {
        char msg[160];
        snprintf(msg, sizeof msg, "%s (%s)", wd_sandbox_kill_text(reason),
                 reason == WD_KILL_MEMORY ? "defaults.sandbox.memory_mb" : "defaults.sandbox.instructions_per_call");
        wd_run_end(r, WD_ST_FAILED, msg);
    }
}

/* ** A script's error: where it happened goes to the log (the record of the call or of
** the run's end carries it), never to the user, whose answer has the message only. The
** dead coroutine keeps its stack, so it is read from there: its top TRACE_LEVELS
** frames, each found from the top (luaL_traceback also finds the bottom, walking the
** whole stack a few dozen times: a second for a recursion a million slots deep). */
#define TRACE_LEVELS 16

static void keep_traceback(wd_run *r, lua_State *co, const char *msg)
{
    wd_buf b = {0};
    lua_Debug ar;
    wd_buf_addf(&b, "%s\nstack traceback:", msg);
    int level = 0;
    for (; level < TRACE_LEVELS && lua_getstack(co, level, &ar); level++) {
        if (!lua_getinfo(co, "Sln", &ar))
            continue;
        wd_buf_addf(&b, "\n\t%s:", ar.short_src);
        if (ar.currentline > 0)
            wd_buf_addf(&b, "%d:", ar.currentline);
        if (ar.namewhat && *ar.namewhat)
            wd_buf_addf(&b, " in %s '%s'", ar.namewhat, ar.name ? ar.name : "?");
        else if (ar.what && !strcmp(ar.what, "main"))
            wd_buf_addf(&b, " in main chunk");
        else if (ar.what && !strcmp(ar.what, "C"))
            wd_buf_addf(&b, " in a C function");
        else
            wd_buf_addf(&b, " in function <%s:%d>", ar.short_src, ar.linedefined);
    }
    if (level == TRACE_LEVELS && lua_getstack(co, level, &ar))
        wd_buf_addf(&b, "\n\t...");
    free(r->traceback);
    r->traceback = b.p && b.len > 8192 ? wd_strndup(b.p, 8192) : b.p ? b.p : NULL;
    if (r->traceback != b.p)
        wd_buf_free(&b);
}

static void step(wd_run *r, lua_State *co, int nargs)
{
    int nres = 0;
    int64_t dl = r->deadline_ns;
    int is_tool = r->tool.active && co == r->tool.co;
    if (is_tool && r->tool.deadline_ns < dl)
        dl = r->tool.deadline_ns;
    if (co == r->agent_co && r->tool.overhead_ns) {
        if (r->eng->record_overhead) {
            wd_engine *e = r->eng;
            if (e->nlat == e->caplat) {
                size_t cap = e->caplat ? e->caplat * 2 : 1024;
                long long *p = realloc(e->lat, cap * sizeof *p);
                if (p) {
                    e->lat = p;
                    e->caplat = cap;
                }
            }
            if (e->nlat < e->caplat)
                e->lat[e->nlat++] = r->tool.overhead_ns + (wd_now_ns() - r->tool.t0);
        }
        r->tool.overhead_ns = 0;
    }
    int64_t h0 = is_tool ? wd_now_ns() : 0;
    int st = wd_sandbox_resume(r->sb, co, nargs, &nres, dl);
    if (is_tool)
        r->tool.t0 += wd_now_ns() - h0; /* handler time is not enforcement overhead */
    if (r->sb->mode == WD_MODE_KILL) {
        on_kill(r, co);
        return;
    }
    if (st == LUA_YIELD && nres == 0 && r->sb->preempted) {
        wd_run_schedule(r, co, 0); /* back of the queue: other runs take their turn */
        return;
    }
    if (st == LUA_YIELD) {
        if (nres >= 1 && lua_touserdata(co, -nres) == WD_ENGINE_MARK) {
            lua_pop(co, nres);
            r->waiting = co;
            /* what happened since the agent's last request, shown to the detectors
            ** before the next one is carried out (a tool's own requests wait: the
            ** call's outcome comes first) */
            if (r->det && co == r->agent_co && r->req.kind != OP_STORE && r->eng->hooks->drain(r, 0) != WD_DET_GO)
                return; /* a call waiting for the store is shown with its request, once its checks are done */
            wd_run_start_op(r);
            return;
        }
        lua_pop(co, nres);
        if (is_tool)
            settle_tool(r, 0, 0, "coroutine.yield was called outside a coroutine", 0);
        else
            wd_run_end(r, WD_ST_FAILED, "coroutine.yield was called outside a coroutine");
        return;
    }
    if (st == LUA_OK) {
        if (is_tool)
            settle_tool(r, 1, nres, NULL, 0);
        else
            agent_returned(r, co, nres);
        return;
    }
    char msg[600];
    int transient;
    wd_sandbox_error_text(co, -1, msg, sizeof msg, &transient);
    if (st == LUA_ERRMEM)
        wd_strlcpy(msg, "memory limit exceeded", sizeof msg);
    else
        keep_traceback(r, co, msg);
    if (is_tool)
        settle_tool(r, 0, 0, msg, transient);
    else
        wd_run_end(r, WD_ST_FAILED, msg);
}

static int push_args(lua_State *L)
{
    wd_json_push(L, lua_touserdata(L, 1));
    return 1;
}

/* The agent coroutine's body and its three arguments: warden/runner.lua with the agent's
** chunk, the query and ctx; for a direct call of a tool, warden/call_tool.lua with the
** tool's name, its arguments (the query, a JSON object, as a table) and ctx. 0, or -1 with
** why in err. Allocates on the run's state under its slack: never raises. */
static int load_body(wd_run *r, char *err, size_t n)
{
    lua_State *co = r->agent_co;
    char body[1024];
    const char *name = r->direct_tool ? "warden/call_tool.lua" : "warden/runner.lua";
    snprintf(body, sizeof body, "%s/%s", wd_sandbox_lua_dir(), name);
    if (wd_sandbox_loadfile(co, body, name) < 0) {
        snprintf(err, n, "engine library: %s", lua_tostring(co, -1));
        return -1;
    }
    if (r->direct_tool) {
        json_error_t je;
        json_t *args = json_loads(r->query ? r->query : "", JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(args)) {
            snprintf(err, n, "tool call: the arguments must be a JSON object%s%s", args ? "" : ": ",
                     args ? "" : je.text);
            json_decref(args);
            return -1;
        }
        lua_pushstring(co, r->direct_tool);
        lua_pushcfunction(co, push_args); /* a large table may not fit the run's memory */
        lua_pushlightuserdata(co, args);
        int st = lua_pcall(co, 1, 1, 0);
        json_decref(args);
        if (st != LUA_OK) {
            snprintf(err, n, "tool call: the arguments do not fit the run's memory");
            return -1;
        }
    } else {
        if (wd_sandbox_loadfile(co, r->agent_path, r->agent_path) < 0) {
            snprintf(err, n, "%s", lua_tostring(co, -1));
            return -1;
        }
        lua_pushstring(co, r->query ? r->query : "");
    }
    wd_run_push_ctx(r, co, 0);
    return 0;
}

static void start_checked(wd_run *r);

/* the start of a run, from the loop: run-start checks, sandbox, agent coroutine */
static void start(wd_run *r)
{
    wd_engine *e = r->eng;
    e->unstarted--;
    r->pol = wd_engine_policy(e);
    start_checked(r);
}

/* the run-start checks, then its sandbox and its agent's coroutine */
static void start_checked(wd_run *r)
{
    char err[400];
    wd_engine *e = r->eng;
    wd_policy *p = r->pol;
    if (wd_run_may_start(r, start_checked) != 0)
        return;
    r->max_iterations = p->max_iterations;
    if (r->cap_iterations > 0 && r->cap_iterations < r->max_iterations) /* a sub-run: what its parent had left */
        r->max_iterations = r->cap_iterations;
    r->sb = wd_sandbox_new((size_t)p->memory_mb << 20, p->instructions_per_call, r->agent_dir, err, sizeof err);
    if (!r->sb) {
        wd_run_end(r, WD_ST_FAILED, err);
        return;
    }
    r->sb->owner = r;
    r->L = r->sb->L;
    lua_State *L = r->L;
    r->sb->in_engine++;
    /* everything below allocates on the run's state: protected by the slack, and the
    ** loaders never raise */
    r->eng->hooks->open_warden(L);
    r->agent_co = lua_newthread(L);
    r->agent_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int loaded = load_body(r, err, sizeof err);
    r->sb->in_engine--;
    if (loaded < 0) {
        wd_run_end(r, WD_ST_FAILED, err);
        return;
    }

    r->deadline_ns = r->t0_ns + p->run_ms * 1000000LL;
    long long ms = p->run_ms;
    if (r->cap_deadline_ns && r->cap_deadline_ns < r->deadline_ns) { /* a sub-run ends by its parent's deadline */
        r->deadline_ns = r->cap_deadline_ns;
        ms = (r->deadline_ns - wd_now_ns() + 999999) / 1000000; /* never before it */
        if (ms < 0)
            ms = 0;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(r->run_timer, &tv);
    json_t *ev = wd_run_event(r, WD_AE_RUN_STARTED, 1);
    if (ev) {
        json_object_set_new(ev, "reason", json_string(r->direct_tool ? "tool call" : r->query ? "query" : "no query"));
        json_object_set_new(ev, "query", json_string(r->query ? r->query : ""));
        json_object_set_new(ev, "agent_version",
                            json_string(wd_agent_version(&e->versions, r->agent_dir, r->agent_path)));
        json_object_set_new(ev, "policy_generation", json_integer((json_int_t)p->generation));
        json_object_set_new(ev, "policy_sha256", json_string(p->sha256));
        if (r->parent_run_id[0]) /* another agent's run called it as a tool */
            json_object_set_new(ev, "parent_run_id", json_string(r->parent_run_id));
        wd_run_audit(r, ev);
    }
    r->start_mark = wd_audit_appended(e->audit);
    step(r, r->agent_co, 3);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_engine *e = arg;
    /* only what was queued before this turn: a run requeued now (preempted, or
    ** answered at once) waits until timers and I/O have had their turn */
    wd_run *last = e->ready_tail;
    e->in_ready = 1;
    int64_t until = wd_now_ns() + READY_SLICE_NS;
    for (int i = 0; i < READY_BATCH && e->ready_head && (i == 0 || wd_now_ns() < until); i++) {
        wd_run *r = e->ready_head;
        int was_last = r == last;
        e->ready_head = r->next_ready;
        if (!e->ready_head)
            e->ready_tail = NULL;
        r->in_ready = 0;
        lua_State *co = r->resume_co;
        int n = r->resume_nargs;
        r->resume_co = NULL;
        if (!co)
            start(r);
        else
            step(r, co, n);
        if (was_last)
            break;
    }
    e->in_ready = 0;
    wd_run_end_of_pass(e);
    /* event_active here would rerun us in this same dispatch pass and starve timers;
    ** a zero timeout runs us again after the loop has polled and fired its timers */
    if (e->ready_head) {
        struct timeval zero = {0, 0};
        event_add(e->ready_ev, &zero);
    }
}

/* a budget's warning line was crossed (found by a ledger flush, after the call that
** crossed it): one record, not tied to a run */
static void on_budget_warning(void *ud, const wd_ledger_key *k, int64_t spent)
{
    wd_engine *e = ud;
    json_t *ev = e->audit ? json_object() : NULL;
    if (!ev)
        return;
    const char *user = !strncmp(k->scope, "user:", 5) ? k->scope + 5 : NULL;
    double s = (double)spent / WD_NUSD_PER_USD, lim = (double)k->limit / WD_NUSD_PER_USD;
    char name[200], msg[400];
    wd_budget_name(k, name, sizeof name);
    char c1[40], c2[40];
    snprintf(msg, sizeof msg, "%s: %s of %s spent (%.0f%%), past the warning at %.0f%%", name,
             wd_fmt_usd(s, c1, sizeof c1), wd_fmt_usd(lim, c2, sizeof c2), 100.0 * s / lim,
             100.0 * (double)k->warn_at / (double)k->limit);
    json_object_set_new(ev, "event", json_string(wd_event_name(WD_AE_BUDGET_WARNING)));
    json_object_set_new(ev, "user_id", user ? json_string(user) : json_null());
    json_object_set_new(ev, "success", json_true());
    json_object_set_new(ev, "budget_scope", json_string(k->scope));
    json_object_set_new(ev, "budget_period", json_string(k->period));
    json_object_set_new(ev, "cost_usd", json_real(s));
    json_object_set_new(ev, "reason", json_string(msg));
    json_incref(ev);
    wd_redact_append(e->policy, e->audit, ev);
    wd_notify_record(e, ev); /* redacted as written */
    json_decref(ev);
}

/* records first, then the spend they show: after a crash the audit log never shows less
** than the ledger (the warnings the ledger finds go out with the next flush) */
void wd_engine_flush(wd_engine *e, int idle)
{
    if (wd_audit_pending(e->audit))
        wd_audit_flush(e->audit);
    wd_ledger_flush(e->ledger, idle);
    wd_store_keepalive(e->store);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_engine_flush(arg, 0);
}

/* ---- public ---------------------------------------------------------------- */

/* Thousands of runs waiting on the network hold as many sockets: the soft limit on
** descriptors (often 1024) goes up to the hard one. And the descriptor table is sized
** now: the kernel doubles it as it fills, and in a process with several threads every
** doubling waits out an RCU grace period during which no thread can open a socket (a
** burst of a thousand runs stalled both workers ~30 ms at each of 256, 512 and 1024).
** F_DUPFD takes the lowest free number from the one asked, so nothing is clobbered;
** the table never shrinks. */
#define PRESIZED_FDS 16384

void wd_engine_prepare_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    long want = rl.rlim_cur > PRESIZED_FDS ? PRESIZED_FDS : (long)rl.rlim_cur;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    int hi = want > 1 ? fcntl(fd, F_DUPFD_CLOEXEC, (int)want - 1) : -1;
    if (hi >= 0)
        close(hi);
    close(fd);
}

wd_engine *wd_engine_create(const wd_engine_opts *o, const wd_engine_hooks *h, char *err, size_t errlen)
{
    wd_engine_prepare_fds();
    wd_engine *e = calloc(1, sizeof *e);
    if (!e) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    e->hooks = h;
    const char *pp = o && o->policy_path ? o->policy_path : "policies/default.yaml";
    wd_perrors pe = {0};
    e->policy = wd_policy_load(pp, &pe);
    if (!e->policy) {
        wd_buf b = {0};
        for (size_t i = 0; i < pe.n; i++)
            wd_buf_addf(&b, "%s%s", i ? "\n" : "", pe.v[i]);
        wd_strlcpy(err, b.p ? b.p : "invalid policy", errlen);
        wd_buf_free(&b);
        wd_perrors_free(&pe);
        free(e);
        return NULL;
    }
    const char *ap = o && o->audit_path ? o->audit_path : e->policy->audit_path;
    e->audit = wd_audit_open(ap, e->policy->audit_fsync, err, errlen);
    if (!e->audit)
        goto fail;
    wd_audit_apply_policy(e->audit, e->policy);
    const char *sp = o && o->store_path ? o->store_path : e->policy->store_path;
    e->store = wd_store_open(sp, err, errlen);
    if (!e->store)
        goto fail;
    e->breakers = wd_breakers_new(e->store);
    e->ledger = wd_ledger_new(e->store, on_budget_warning, e);
    e->llm = o && o->llm ? wd_strdup(o->llm) : NULL;
    /* deadlines are measured from now (not from when the loop last polled) on the
    ** precise monotonic clock (the coarse one fires up to a jiffy early) */
    struct event_config *cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME | EVENT_BASE_FLAG_PRECISE_TIMER);
        e->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!e->base || !e->breakers || !e->ledger)
        goto fail;
    e->http = wd_http_new(e->base);
    if (!e->http) {
        wd_errf(err, errlen, "libcurl cannot start");
        goto fail;
    }
    e->mcp = wd_mcp_host_new(e->base, e->policy, wd_audit_path(e->audit)); /* waits for their tools */
    e->ready_ev = event_new(e->base, -1, 0, on_ready, e);
    e->flush_ev = event_new(e->base, -1, EV_PERSIST, on_flush, e);
    e->deliver_ev = event_new(e->base, -1, 0, wd_run_deliver, e);
    e->notifier = wd_notifier_new(e);
    if (!e->ready_ev || !e->flush_ev || !e->deliver_ev || !e->notifier)
        goto fail;
    wd_store_watch(e->store, e->base, wd_notice_take, e); /* without it, the polls alone */
    struct timeval tv = {0, FLUSH_MS * 1000};
    event_add(e->flush_ev, &tv);
    /* without the watchdog a runaway script could not be preempted: no engine then */
    if (wd_watchdog_attach() < 0) {
        wd_errf(err, errlen, "no watchdog slot left: at most 256 threads can drive engines at once");
        goto fail;
    }
    return e;
fail:
    if (!err[0])
        wd_errf(err, errlen, "out of memory");
    wd_engine_free(e);
    return NULL;
}

void wd_engine_free(wd_engine *e)
{
    if (!e)
        return;
    /* every run still here ends with a result: those never started, and those waiting
    ** on a timer, the network or a person */
    while (e->live)
        wd_run_end(e->live, WD_ST_FAILED, "engine stopped");
    wd_run_deliver(-1, 0, e);
    wd_notifier_free(e->notifier, 2000); /* a last notification gets two seconds to go out */
    wd_mcp_host_free(e->mcp);
    wd_http_free(e->http);
    wd_kills_free(e);
    if (e->ready_ev)
        event_free(e->ready_ev);
    if (e->flush_ev)
        event_free(e->flush_ev);
    if (e->deliver_ev)
        event_free(e->deliver_ev);
    wd_store_watch(e->store, NULL, NULL, NULL); /* its events are on the loop's base */
    if (e->base)
        event_base_free(e->base);
    wd_ledger_free(e->ledger);
    wd_audit_close(e->audit);
    wd_breakers_free(e->breakers);
    wd_store_close(e->store);
    wd_policy_unref(e->policy);
    wd_mock_free(e->mock);
    free(e->mock_path);
    free(e->llm);
    free(e->lat);
    wd_versions_free(e->versions);
    free(e);
}

void wd_engine_mcp_tools(wd_engine *e, void (*fn)(void *ud, const char *server, const json_t *tool), void *ud)
{
    wd_mcp_host_each(e->mcp, fn, ud);
}

const char *wd_engine_audit_path(const wd_engine *e) { return wd_audit_path(e->audit); }

void wd_engine_on_notice(wd_engine *e, void (*fn)(void *ud, const char *line), void *ud)
{
    e->notice = fn;
    e->notice_ud = ud;
}

void wd_engine_on_record(wd_engine *e, void (*fn)(void *ud, const json_t *rec), void *ud)
{
    e->on_record = fn;
    e->on_record_ud = ud;
}

void wd_engine_observe(wd_engine *e, const json_t *rec)
{
    if (e->on_record)
        e->on_record(e->on_record_ud, rec);
}

/* A new policy may lower a budget: the room this engine's leases hold beyond what calls
** in flight reserved goes back to the store now, so every later reservation is checked
** against the new limits there (the calls already holding theirs may still finish: at
** most one per run). The records of what was spent go first, as at every flush. */
void wd_engine_set_policy(wd_engine *e, wd_policy *p)
{
    wd_policy *old = e->policy;
    e->policy = wd_policy_ref(p);
    if (e->audit)
        wd_audit_apply_policy(e->audit, p);
    wd_notifier_wake(e->notifier); /* a reload may have added webhooks */
    if (old && old != p)
        wd_engine_flush(e, 1);
    wd_policy_unref(old);
}

int wd_engine_cancel(wd_engine *e, const char *run_id, const char *why)
{
    int n = 0;
    wd_run *next;
    for (wd_run *r = e->live; r; r = next) { /* as the kill switch's poll: one already ending is left to end */
        next = r->live_next;
        if (r->finishing || (run_id && strcmp(r->run_id, run_id)))
            continue;
        wd_run_end(r, WD_ST_KILLED, why);
        n++;
    }
    return n;
}

int wd_engine_active(const wd_engine *e) { return e->active; }

void wd_engine_record_tool_overhead(wd_engine *e, int on)
{
    e->record_overhead = on;
    e->nlat = 0;
}

size_t wd_engine_tool_overhead(const wd_engine *e, const long long **samples)
{
    *samples = e->lat;
    return e->nlat;
}

int wd_engine_wait(wd_engine *e)
{
    while (e->active > 0)
        if (event_base_loop(e->base, EVLOOP_ONCE) < 0)
            return -1;
    wd_engine_flush(e, 1);
    wd_audit_flush(e->audit); /* the warnings it found */
    return 0;
}
