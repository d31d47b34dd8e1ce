/* engine.h - the runtime's structures: the engine (one loop, its runs) and the run, shared
** by the runtime's files and the layers above it (ops, bindings). Not installed.
**
** The runtime never names the files above it: the kinds of operation a run waits on and
** the detectors and Lua bindings reach it through wd_engine_hooks, a table of functions
** bindings/warden.c gives when it makes an engine (docs/architecture.md). */
#ifndef WD_ENGINE_H
#define WD_ENGINE_H

#include <event2/event.h>
#include <jansson.h>
#include <lua.h>
#include <stdint.h>

#include "warden.h"
#include "host.h"
#include "audit.h"
#include "seal.h"
#include "events.h"
#include "breaker.h"
#include "budget.h"
#include "http.h"
#include "policy.h"
#include "retry.h"
#include "version.h"
#include "store.h"
#include "sandbox.h"
#include "killswitch.h"
#include "util.h"
#include "schema.h"

typedef struct wd_mock wd_mock;
typedef struct wd_detect wd_detect;
typedef struct wd_llm_state wd_llm_state;         /* ops/llm.c */
typedef struct wd_fetch_state wd_fetch_state;     /* ops/fetch.c */
typedef struct wd_mcpcall_state wd_mcpcall_state; /* ops/mcpcall.c */
typedef struct wd_exec_state wd_exec_state;       /* ops/exec.c */
typedef struct wd_appr_state wd_appr_state;       /* ops/approve.c */
typedef struct wd_tool_state wd_tool_state;       /* ops/toolcall.c */

/* The kinds of operation a run waits on. An engine call records its request in r->req and
** yields; the driver starts it by its kind (wd_run_start_op); a run that ends while it
** waits has every kind cancel what it holds, in this order (wd_run_end). */
typedef enum {
    OP_NONE,
    OP_TOOL,
    OP_APPROVAL,
    OP_HTTP,
    OP_EXEC,
    OP_MCP,
    OP_AGENT,
    OP_LLM,
    OP_SLEEP,
    OP_STORE, /* a check waiting for the state store's answer (pipeline.c) */
    OP_END,
    OP_COUNT
} wd_opkind;

/* one kind of operation: its file defines it, bindings/warden.c puts it in the hooks */
typedef struct wd_op_kind {
    const char *name;
    void (*start)(wd_run *r);                   /* the request reached the loop: begin it */
    void (*cancel)(wd_run *r, const char *why); /* the run ends: release what it holds; a no-op when idle */
    /* the script it runs returned (ok, nres results on its thread) or failed (error) */
    void (*settle)(wd_run *r, int ok, int nres, const char *error, int transient);
    void (*free)(wd_run *r); /* the run is freed: the kind's state in it goes */
    /* another process changed what it may wait for (notices.c): look now; NULL nothing */
    void (*notice)(wd_run *r);
} wd_op_kind;

/* what detectors answer when shown a run's events (wd_engine_hooks.drain) */
enum { WD_DET_GO = 0, WD_DET_ENDED, WD_DET_HELD };

/* What the runtime needs from the layers above it. Every function is required; in ops,
** the tool kind must settle, and a kind's cancel, settle or free may be NULL where it has
** nothing to do. */
typedef struct wd_engine_hooks {
    const wd_op_kind *ops[OP_COUNT];                                  /* by wd_opkind */
    int (*open_warden)(lua_State *L);                                 /* installs `warden` into a run's sandbox env */
    void (*push_ctx)(lua_State *L, wd_run *r, int for_tool);          /* a run's ctx (for a tool's handler) */
    void (*observe)(wd_run *r, json_t *ev);                           /* an event for the run's detectors; takes ev */
    void (*answer)(wd_run *r, const char *result);                    /* the agent answered (detect.h) */
    int (*drain)(wd_run *r, int finish);                              /* the detectors see the queue: WD_DET_* */
    void (*finish)(wd_run *r, const char *status, const char *error); /* the run is ending */
    void (*free_detect)(wd_detect *d);
} wd_engine_hooks;

#define WD_MAX_TOOL_CALLS_IN_RESULT 1000

struct wd_engine {
    const wd_engine_hooks *hooks;
    struct event_base *base;
    wd_policy *policy; /* current snapshot; swapped whole on reload */
    wd_audit *audit;
    char *llm;
    wd_mock *mock; /* last scenario loaded, by path */
    char *mock_path;
    wd_run *ready_head, *ready_tail;
    struct event *ready_ev;
    int in_ready; /* inside on_ready: re-arm after timers, not at once */
    struct event *flush_ev;
    struct event *deliver_ev; /* results wait for their records (on_deliver) */
    struct ending *endings, *endings_tail;
    int unwritten_starts; /* a run acted in this pass before its run_started was written */
    wd_http *http;        /* libcurl multi on this loop */
    wd_store *store;      /* shared state (breakers, ...) */
    wd_breakers *breakers;
    wd_ledger *ledger; /* leases on the store's spend ledger (budget.h) */
    int active;
    int unstarted; /* submitted runs waiting for their first turn */
    int record_overhead;
    void (*notice)(void *ud, const char *line); /* lines for a person watching (warden run: stderr) */
    void *notice_ud;
    void (*on_record)(void *ud, const json_t *rec); /* wd_engine_on_record */
    void *on_record_ud;
    long long *lat;
    size_t nlat, caplat;
    wd_run *live;                 /* every submitted run not yet ended */
    wd_versions *versions;        /* agents' versions (version.h) */
    struct wd_notifier *notifier; /* webhooks' deliveries (notify.h) */
    struct wd_mcp_host *mcp;      /* the policy's MCP servers, started with the engine (mcphost.h) */
    struct {                      /* the kill switch's tables as last read (killswitch.c) */
        json_t *killed, *failing;
        int64_t read_ns;
        int asking; /* a read without waiting is out (killtick.c): the copy stands until it answers */
        struct event *ev;
    } kills;
};

/* a tool script loaded into the run */
typedef struct wd_tool_impl {
    char *name;
    char *description;
    json_t *parameters; /* the schema as written */
    wd_schema *schema;
    int fn_ref;    /* registry ref of run(args, ctx) */
    char *breaker; /* "tool:NAME" */
} wd_tool_impl;

typedef enum {
    WD_ST_RUNNING = 0,
    WD_ST_COMPLETED,
    WD_ST_FAILED,
    WD_ST_MAX_ITERATIONS,
    WD_ST_TIMEOUT,
    WD_ST_BUDGET_EXCEEDED,
    WD_ST_RATE_LIMITED,
    WD_ST_UNAUTHORIZED,
    WD_ST_HALTED,
    WD_ST_REJECTED,
    WD_ST_KILLED,
    WD_ST_STORE_UNAVAILABLE
} wd_status;

struct wd_run {
    wd_engine *eng;
    wd_policy *pol; /* pinned at start: run-level limits */
    char run_id[37];
    char *session_id, *user_id, *agent_name, *agent_path, *agent_dir, *query;
    char *agent_key;                             /* the agent as its file or directory names it: whose state is whose */
    char *direct_tool;                           /* a direct call of this tool (wd_run_opts.tool), not an agent's run */
    void (*progress)(const json_t *p, void *ud); /* wd_run_opts.progress, with done_ud */
    json_t *history;                             /* wd_run_opts.history, checked: an array of {role, content} */
    void (*on_text)(const char *text, size_t len, void *ud); /* wd_run_opts.on_text, with done_ud */
    int session_explicit;  /* its session id was given (shared history), not made up */
    json_t *session_turns; /* the session's, as the run was given them (session.c) */
    int session_replaced;  /* the agent's summarize hook replaced them */
    int session_hook;      /* the agent has a summarize hook */
    /* a sub-run: another agent's run called as a tool (agentcall.c), inside its parent's
    ** limits */
    char parent_run_id[37];               /* "" none */
    int depth;                            /* 0 a run of its own, 1 its sub-run, ... */
    double cap_usd;                       /* the run's cost limit: what its parent had left; -1 none */
    int64_t cap_deadline_ns;              /* its parent's deadline; 0 none */
    int cap_iterations;                   /* the LLM calls its parent had left; 0 none */
    struct wd_agentcall_state *agentcall; /* a sub-run in flight (agentcall.c) */
    json_t *output_schema;                /* the final answer's: the agent's output_schema, or wd_run_opts' */
    struct wd_schema *output_check;       /* it compiled */
    json_t *output;                       /* a completed run's answer, parsed, when it has one */
    json_t *j_ids[4];                     /* run_id, session_id, user_id, agent as JSON, shared by every record */
    wd_mock *mock;                        /* borrowed from the engine while the run lives */
    char *llm;
    wd_sandbox *sb;
    lua_State *L;
    lua_State *agent_co;
    int agent_ref;
    wd_tool_impl *tools;
    size_t ntools;
    char **allowed; /* the agent's tools (and a workflow's steps): all it may call */
    size_t nallowed;
    int configured;       /* ctx:_configure ran (once, by the runner) */
    long long start_mark; /* the audit log's count once run_started was appended */
    json_t *tool_specs;   /* wd_run_tool_specs: of the first tool_specs_n tools */
    size_t tool_specs_n, tool_specs_bytes;
    char *default_model;
    int max_iterations; /* the agent's, never above the policy's */

    /* the request an engine call made before yielding */
    struct {
        wd_opkind kind;
        wd_status end_status;
        char *end_error;
        size_t tool;  /* index into tools */
        json_t *args; /* validated arguments */
        int64_t t0;   /* pipeline entry (ns) */
        long long sleep_ms;
        char *model; /* alias */
        int nmessages;
        size_t input_bytes;       /* of the messages and tools: the input estimate */
        long long max_tokens;     /* the call's, 0 when it gave none */
        double temperature;       /* -1 when not given */
        json_t *call;             /* {messages, tools, temperature, max_tokens} for HTTP providers */
        int stream;               /* ctx:llm's stream: 1 true, 0 false, -1 not given */
        struct wd_schema *format; /* ctx:llm's response_format, compiled (NULL none) */
        json_t *format_json;      /* and as sent: {name, schema, strict?} */
    } req;
    lua_State *waiting; /* the top-level thread an operation will resume */

    /* the tool call in flight, as the driver and the handler's ctx calls see it; the
    ** rest is the call's own (wd_tool_state, ops/toolcall.c) */
    struct {
        int active;    /* from its start to its end */
        char *name;    /* set when the call is requested */
        lua_State *co; /* the handler's thread: NULL between attempts */
        int64_t t0, deadline_ns, overhead_ns;
        long long timeout_ms;
    } tool;
    wd_tool_state *tool_st; /* ops/toolcall.c, made when a call is first admitted */

    wd_llm_state *call;              /* the LLM call in flight (llm.c), made on first use */
    int last_fail_timeout;           /* the last LLM call failed by a timeout */
    long long tokens_in, tokens_out; /* of every LLM answer the run was given: its result's usage */
    wd_fetch_state *fetch;           /* ctx:http in flight (fetch.c) */
    wd_mcpcall_state *mcpcall;       /* an MCP tool's call in flight (mcpcall.c) */
    wd_exec_state *exec;             /* ctx:exec in flight (exec.c) */

    struct event *op_timer, *run_timer;
    json_t *pending_llm; /* the mock answer delivered when op_timer fires */
    int64_t t0_ns, deadline_ns, wall0_ms;
    int steps;
    double cost;
    int64_t held_nusd; /* reserved by this run's calls in flight */
    wd_budget_hold llm_hold, tool_hold;
    wd_ledger_wait lwait;    /* a call's reservation waiting for the store (ledger.h) */
    wd_budget_upto upto;     /* a streamed call's reservation, between its waits */
    struct wd_question *ask; /* the run's question out to the store (ask.h) */
    void *pcall;             /* a tool call whose checks wait for the store (pipeline.c) */
    int store_wait;          /* where that wait is (pipeline.c) */
    int start_stage;         /* the run-start checks done before a wait for the store (engine.c) */
    /* the run's ledger keys, made again for another policy or another UTC day */
    wd_ledger_key bkeys[WD_BUDGET_KEYS];
    unsigned long long bkeys_gen;
    int64_t bkeys_day;
    int run_warned;         /* the per-run budget_warning was audited */
    wd_appr_state *appr;    /* a wait for a person (approve.c), made at the first request */
    int64_t retry_after_ms; /* a rate-limited run: when to try again */
    int store_down;         /* the state store failed a check this run needed (store_unavailable) */
    json_t *tool_calls, *errors;
    long tool_calls_omitted; /* past WD_MAX_TOOL_CALLS_IN_RESULT */
    long long ncalls;        /* ctx:call_tool so far (defaults.max_tool_calls) */
    struct {                 /* what the run wrote to the log (defaults.max_audit_*) */
        long long bytes, records, dropped;
        int over; /* past its limit less the reserve: fields cut short from here */
    } audit;
    wd_status limit_status; /* a run limit was reached: how the run ends, and why */
    char *limit_msg;
    char *traceback; /* of the last script error, for its record (never the user's answer) */
    int sealing;     /* personal fields are sealed under seal (seal.h) */
    wd_seal_key seal;
    wd_status status;
    char *result_text;
    char *start_error; /* the run cannot start: start() ends it from the loop */
    char *refuse;      /* wd_run_opts.refuse: start() ends it rate_limited */
    int finishing;

    wd_run_done_fn done;
    void *done_ud;

    wd_run *next_ready;
    wd_run *live_next, *live_prev;
    wd_detect *det;         /* the run's detectors, NULL when none (detect.h) */
    int consecutive_errors; /* tool calls that failed or were refused in a row (hitl) */
    int in_ready;
    lua_State *resume_co;
    int resume_nargs;
};

/* run.c: a run's records and settings */
const char *wd_status_name(wd_status st);
const char *wd_status_message(wd_status st);                        /* what the user reads for st */
json_t *wd_run_event(wd_run *r, wd_audit_event event, int success); /* audit record skeleton */
/* redacts, bounds (bound.h, the run's audit limits), appends; takes ownership */
int wd_run_audit(wd_run *r, json_t *rec);
/* A run limit was reached (msg says which): the run ends with st as soon as its script
** runs again, which it cannot catch; from the loop, where a script is not running */
void wd_run_limit(wd_run *r, wd_status st, const char *msg);
/* a guardrail_violation record for what the running tool asked (args: taken), with the
** violation's type and severity (docs/safety.md: low, medium, high, critical) */
void wd_run_audit_guardrail(wd_run *r, json_t *args, const char *reason, const char *type, const char *severity);
/* audits a breaker's change of state, if any (tool or model names the subject) */
/* the state store failed a check (operation: budget, rate_limit, breaker) the run needed:
** audited as store_unavailable, and the run, if it ends for it, ends store_unavailable */
/* notices.c: what another process changed, from the store's watch (wd_store_notice) */
void wd_notice_take(void *ud, const char *kind, const char *name);
void wd_run_store_down(wd_run *r, const char *operation, const char *tool, const char *msg);
void wd_run_audit_breaker(wd_run *r, const char *breaker, const wd_breaker_change *ch, const char *tool,
                          const char *model);
wd_breaker_cfg wd_run_breaker_cfg(const wd_run *r);
wd_retry_cfg wd_run_retry_cfg(const wd_run *r);
/* When retry number `retries` (from 0) is allowed: arms r->op_timer to call cb(r) after
** the backoff (or Retry-After), writes "transient: retry i of n in N ms" into reason and
** returns the wait; the caller audits the failed attempt and counts the retry.
** -1 when max_retries are used up. */
long long wd_run_retry_arm(wd_run *r, int retries, long long retry_after_ms, event_callback_fn cb, char *reason,
                           size_t n);
/* a tool's progress to the run's submitter (wd_run_opts.progress), if it listens */
void wd_run_progress(wd_run *r, const json_t *p);
/* a piece of a model's answer text to the run's listener (wd_run_opts.on_text), if any */
void wd_run_text(wd_run *r, const char *text, size_t len);
/* wd_engine_submit, giving the run (NULL out of memory): its caller may set the fields of
** a sub-run before it starts on the loop */
wd_run *wd_run_submit(wd_engine *e, const wd_run_opts *o, wd_run_done_fn done, void *ud);
/* an event for the run's detectors (a no-op without any); takes ev */
void wd_run_observe(wd_run *r, json_t *ev);
/* pushes the run's ctx on L (for_tool: a tool handler's) */
void wd_run_push_ctx(wd_run *r, lua_State *L, int for_tool);

/* ready.c: the runs whose turn it is */
void wd_run_schedule(wd_run *r, lua_State *co, int nargs); /* resume co from the loop */
void wd_ready_remove(wd_run *r);
/* co, waiting on an operation, is answered (nil, msg), or {error = msg}, and resumed */
void wd_run_reply_fail(wd_run *r, lua_State *co, const char *msg);
void wd_run_reply_error(wd_run *r, lua_State *co, const char *msg);
void wd_push_error_table(lua_State *L, const char *msg); /* pushes {error = msg} */

/* startcheck.c: the run-start checks. A run that may not start is ended here with the
** record that says why; 0 when it may, 2 when the store was asked (again(r) is called
** on the loop with its answer, and calls this again) */
int wd_run_may_start(wd_run *r, void (*again)(wd_run *r));

/* finish.c: the end of a run */
void wd_run_end(wd_run *r, wd_status st, const char *error); /* from the loop only */
/* the run's run_started record is in the file (written now if it was not): 0, or -1 with
** msg when the log failed, and the run must not act */
int wd_run_may_act(wd_run *r, char *msg, size_t n);
/* after a pass of the ready queue: the runs that acted before their run_started was
** written get one write for them all, or end failed */
void wd_run_end_of_pass(wd_engine *e);
/* the loop event that hands out the results of ended runs (after their records) */
void wd_run_deliver(evutil_socket_t fd, short what, void *arg);

/* engine.c */
/* starts r->req by its kind (the hooks' table), once the yield reached the top */
void wd_run_start_op(wd_run *r);
/* the engine with the hooks of the layers above; what wd_engine_new (warden.h) calls.
** Caller frees with wd_engine_free; h is borrowed for the engine's life (a static table). */
wd_engine *wd_engine_create(const wd_engine_opts *o, const wd_engine_hooks *h, char *err, size_t errlen);

#endif
