/* agentcall.h - another agent called as a tool: a handoff (docs/lua-api.md, Agents as
** tools). An agent lists "agent:NAME" among its tools; the model sees the tool
** agent__NAME ({input}), which the pipeline checks like any (a rule of the policy's tools
** must match it); its call runs agent NAME as a sub-run: the same user, that agent's own
** tools and checks, inside its parent's per-run cost limit, deadline and LLM calls, its
** records carrying parent_run_id. Chains are followed at load: a cycle is refused, and
** so is one deeper than WD_AGENT_DEPTH. */
#ifndef WD_AGENTCALL_H
#define WD_AGENTCALL_H

#include "engine.h"

#define WD_AGENT_TOOL_PREFIX "agent__"
#define WD_AGENT_DEPTH       3 /* sub-runs of sub-runs ... at most this deep */

/* The tool agent__NAME of run r: its agent found beside r's (a directory with agent.lua,
** or NAME.lua) and its chain of handoffs followed. 0 with its handler pushed on L,
** *params its schema (caller owns) and *desc its description (caller frees); or -1 with
** the message pushed. */
int wd_agentcall_prepare(wd_run *r, lua_State *L, const char *name, json_t **params, char **desc);
/* the run(args, ctx) of an agent tool: upvalue 1 the agent's path */
int wd_agentcall_handler(lua_State *L);
/* the sub-run in flight, if any, is ended (killed, why) and its parent told nothing */
void wd_agentcall_cancel(wd_run *r, const char *why);
extern const wd_op_kind wd_op_agent;

#endif
