/* detect.h - detectors: Lua scripts that watch a run's events and give verdicts the
** engine enforces (docs/lua-api.md, Detectors; docs/safety.md).
**
** A run whose agent names detectors (or whose policy enforces some) gets a second
** sandbox of its own for them, apart from the agent's: a detector that raises, loops or
** eats memory is stopped there, audited as detector_error and switched off for the rest
** of the run, and the run goes on. Events (llm_call, tool_call, tool_result, log,
** run_finished) are queued where they happen and shown to the detectors from the loop,
** never inside a script's slice: when the run next asks the engine for something
** (an LLM call, a tool, a sleep) or ends. A halt verdict ends the run (status halted)
** before that request is carried out; escalate holds it until a person approves. */
#ifndef WD_DETECT_H
#define WD_DETECT_H

#include <jansson.h>
#include <lua.h>

#include "engine.h"
#include "store.h"

typedef struct wd_run wd_run;
typedef struct wd_detect wd_detect;

/* the event types detectors subscribe to (warden.detector{on = {...}}) */
enum { WD_EV_LLM_CALL = 1, WD_EV_TOOL_CALL = 2, WD_EV_TOOL_RESULT = 4, WD_EV_LOG = 8, WD_EV_RUN_FINISHED = 16 };

/* ctx:_configure: the names in the list at idx of L (may be absent) joined by the ones
** the policy enforces. Sets r->det when there is any. 0, or -1 with msg (a bad name). */
int wd_detect_configure(wd_run *r, lua_State *L, int idx, char *msg, size_t n);
/* queues an event for the detectors; takes ownership of ev (an object with "type").
** A no-op (ev freed) when the run has none. */
void wd_detect_event(wd_run *r, json_t *ev);

/* what a drain decided: WD_DET_GO, WD_DET_ENDED or WD_DET_HELD (engine.h) */
/* From the loop: loads the detectors on first use, shows them the queued events and
** acts on their verdicts. finish: the events end with the agent's answer (the
** completion waits on an escalation instead of the next request). WD_DET_ENDED: the run
** was ended (halted, or a detector could not be loaded); WD_DET_HELD: an approval was
** asked and the run waits for it (pipeline.c resumes it). */
int wd_detect_drain(wd_run *r, int finish);
/* the agent answered: run_finished (status completed, the answer) joins the queue, to be
** drained with finish set before the run completes */
void wd_detect_answer(wd_run *r, const char *result);
/* the run is ending with status st: run_finished to the detectors, verdicts audited
** only. Called by wd_run_end. */
void wd_detect_finish(wd_run *r, const char *status, const char *error);
void wd_detect_free(wd_detect *d); /* accepts NULL */
/* what a run's detectors may use together, in MB, beside a run capped at run_mb: its cap,
** at most 64 (warden serve reserves it with the run's own) */
long long wd_detect_memory_mb(long long run_mb);

/* whose a detector's state is: its agent ("*": every agent's, granted by the policy),
** its user ("" unless the detector keeps state per user), its origin ("builtin" or
** "agent": an agent's own detector of a built-in's name never sees the built-in's) and
** its name */
typedef wd_store_scope wd_detect_scope;

/* lua_detect.c: ctx.store for a detector (its persistent state, shared across runs
** and processes, within its scope); pushes the table. State kept before scopes existed
** (by name alone) is copied into each scope the first time that scope is used. */
void wd_detect_push_store(lua_State *L, wd_store *s, const wd_detect_scope *scope);

#endif
