/* pipeline.h - the native enforcement pipeline for ctx:call_tool and ctx:llm
** (pipeline.c), called by the Lua bindings on the calling thread L, and the kinds of
** operation it starts: a tool call, a wait for approval, a sleep, the end of a run. */
#ifndef WD_PIPELINE_H
#define WD_PIPELINE_H

#include "engine.h"

int wd_pipeline_tool(wd_run *r, lua_State *L); /* ctx:call_tool(name, args) */
int wd_pipeline_llm(wd_run *r, lua_State *L);  /* ctx:llm{...} */
void wd_pipeline_tool_done(wd_run *r, int ok, int nres, const char *error, int transient);
void wd_pipeline_tool_cancel(wd_run *r);
/* a detector escalated: the run's next request (finish: its completion) waits for a
** person's approval with the detector's reason; rejected or expired, the run ends
** rejected. 0 asked, -1 not possible (msg says why) */
int wd_pipeline_gate(wd_run *r, int finish, const char *detector, const char *reason, const char *risk, char *msg,
                     size_t n);
/* a run ending while it waits for an approval: the request is cancelled */
void wd_pipeline_approval_cancel(wd_run *r, const char *why);
int wd_tool_load(wd_run *r, lua_State *L, const char *name); /* index, or -1 with message pushed */
int wd_tool_allow(wd_run *r, const char *name);              /* adds to the allow-list; 0 or -1 (memory) */
/* the loaded tools as the model sees them, [{name, description, parameters}], rebuilt
** only when a tool was loaded since; the run keeps it (borrowed), NULL out of memory */
json_t *wd_run_tool_specs(wd_run *r);

/* the kinds of operation (engine.h) */
extern const wd_op_kind wd_op_tool, wd_op_approval, wd_op_sleep, wd_op_end, wd_op_store;

#endif
