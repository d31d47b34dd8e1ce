/* warden.h - the public C interface of the warden engine.
**
** An engine owns one libevent loop, the current policy snapshot, the audit log and the
** mock provider. Runs are submitted to it and always end with a result object (JSON,
** docs/safety.md) handed to the callback, from the loop. */
#ifndef WARDEN_H
#define WARDEN_H

#include <jansson.h>

#define WARDEN_VERSION "0.1.0"

typedef struct wd_engine wd_engine;
typedef struct wd_run wd_run;
typedef struct wd_policy wd_policy;

typedef struct wd_engine_opts {
    const char *policy_path; /* default policies/default.yaml */
    const char *llm;         /* "mock:FILE" for every run unless a run says otherwise */
    const char *audit_path;  /* overrides audit.path of the policy */
    const char *store_path;  /* overrides store.path of the policy (the state store) */
} wd_engine_opts;

typedef struct wd_run_opts {
    const char *agent; /* a directory holding agent.lua, or a .lua file */
    const char *query;
    const char *user_id;
    const char *session_id;    /* generated when NULL */
    const char *llm;           /* overrides the engine's */
    const char *run_id;        /* a UUID the caller chose (it names the run before it starts); generated when NULL */
    const char *refuse;        /* set: the run ends at its first turn, rate_limited, with this error */
    long long refuse_retry_ms; /* and this retry_after_ms */
    /* set: the run calls this one tool through the pipeline, as a client of warden serve's
    ** /mcp asks: its output is what the call returned, its tool_calls[1] says whether it
    ** succeeded; agent is then the directory its script is under, query its arguments (a JSON
    ** object), and the run's agent is named WD_DIRECT_AGENT */
    const char *tool;
    /* set: told, with the done callback's ud, of the progress an MCP server reports on a
    ** tool call of the run: {tool, progress, total?, message?} (borrowed), at most ten a
    ** second; warden serve's /mcp passes it to its client */
    void (*progress)(const json_t *p, void *ud);
    /* JSON text: the conversation before query, [{role, content}] (roles system, user,
    ** assistant; at most 1,000), as an OpenAI client of warden serve sent it; ctx:history()
    ** gives it to the agent, and the ReAct loop puts it between its prompt and the query.
    ** NULL: none */
    const char *history;
    /* set: told, with the done callback's ud, each piece of the text of the model's
    ** answers as it arrives (the run's LLM calls are then streamed from the provider,
    ** unless a call says stream = false); an answer not streamed (the mock's, a cached
    ** one) is told whole when it comes. warden serve's OpenAI facade streams it on */
    void (*on_text)(const char *text, size_t len, void *ud);
    /* JSON text: a JSON Schema the run's final answer must fit (docs/lua-api.md,
    ** output_schema), for an agent that declares none; the result then has `output`.
    ** warden serve's OpenAI facade sets it from a client's response_format. NULL: none */
    const char *output_schema;
} wd_run_opts;

#define WD_DIRECT_AGENT "mcp"

/* result is borrowed: valid during the call only (incref to keep it) */
typedef void (*wd_run_done_fn)(const json_t *result, void *ud);

/* caller frees with wd_engine_free; NULL with the reason (policy errors one per line) in err */
wd_engine *wd_engine_new(const wd_engine_opts *o, char *err, size_t errlen);
void wd_engine_free(wd_engine *e);
/* queue a run; the callback runs from the loop when it ends. 0, or -1 when out of memory */
int wd_engine_submit(wd_engine *e, const wd_run_opts *o, wd_run_done_fn done, void *ud);
/* drive the loop until every submitted run has ended */
int wd_engine_wait(wd_engine *e);
const char *wd_engine_audit_path(const wd_engine *e);
/* fn gets lines meant for a person watching the runs (a run waiting for approval, an
** escalation), on the engine's thread; NULL: none */
void wd_engine_on_notice(wd_engine *e, void (*fn)(void *ud, const char *line), void *ud);

/* fn sees every record a run audits (redacted, before it is chained), on the engine's
** thread; the record is borrowed. NULL: none */
void wd_engine_on_record(wd_engine *e, void (*fn)(void *ud, const json_t *rec), void *ud);
/* the snapshot checks read from now on (takes a reference); runs in flight see it at
** their next check, their run-level limits stay those they started with */
void wd_engine_set_policy(wd_engine *e, wd_policy *p);
/* ends every run of the engine (run_id set: that one) as killed with why; returns how many */
int wd_engine_cancel(wd_engine *e, const char *run_id, const char *why);
int wd_engine_active(const wd_engine *e);

/* benchmarking: when on, the engine records the enforcement time of each tool call
** (pipeline entry to the agent's resumption, handler time excluded) in nanoseconds */
void wd_engine_record_tool_overhead(wd_engine *e, int on);
size_t wd_engine_tool_overhead(const wd_engine *e, const long long **samples);

/* ---- worker pool: one engine, one loop, one thread per worker (docs/architecture-decision.md) ----
** The workers share the policy file, the audit log (one chain: writers take turns under
** its file lock) and the state store; each has its own loop, libcurl multi and Lua
** states. Runs go to the worker with the fewest in flight. */
typedef struct wd_pool wd_pool;
/* caller frees with wd_pool_free; NULL with the reason in err (the first worker's) */
wd_pool *wd_pool_new(const wd_engine_opts *o, int workers, char *err, size_t errlen);
/* thread-safe. The callback runs on the worker's thread. 0, or -1 when out of memory
** (the callback then runs at once with a failed result) */
int wd_pool_submit(wd_pool *p, const wd_run_opts *o, wd_run_done_fn done, void *ud);
/* blocks until every run submitted so far has ended and its records are written */
void wd_pool_wait(wd_pool *p);
/* waits, stops the workers, frees; accepts NULL */
void wd_pool_free(wd_pool *p);
int wd_pool_workers(const wd_pool *p);

/* what a host runs on each worker's thread: start before its loop turns (index from 0),
** stop after it ended, with its engine */
typedef struct wd_pool_hooks {
    void (*start)(void *ud, int index, wd_engine *e);
    void (*stop)(void *ud, int index, wd_engine *e);
    void *ud;
} wd_pool_hooks;
/* wd_pool_new with hooks (copied; NULL: none) */
wd_pool *wd_pool_new_hooked(const wd_engine_opts *o, int workers, const wd_pool_hooks *h, char *err, size_t errlen);
/* thread-safe: fn(arg, index, engine) runs on worker index's thread, soon, in the order
** posted (still before its stop hook when the pool is being freed). 0, or -1 (out of
** memory, no such worker) */
int wd_pool_post(wd_pool *p, int index, void (*fn)(void *arg, int index, wd_engine *e), void *arg);

#endif
