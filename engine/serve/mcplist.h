/* mcplist.h - what a client of /mcp may call (docs/mcp.md, warden as an MCP server): the
** tools its user's role may call that the policy declares by name (a script under the
** agents directory's tools/, or a tool of an MCP server warden governs, by name or by a
** pattern rule), and each agent it may run, as agent__NAME. Nothing while the kill switch
** stops them (`warden kill mcp` the tools, `warden kill NAME` an agent, --all both). */
#ifndef WD_MCPLIST_H
#define WD_MCPLIST_H

#include <jansson.h>

#include "serve.h"

#define MCP_AGENT_PREFIX "agent__"

/* the tools/list result's tools for user u of policy p, on worker f: an array of
** {name, description, inputSchema} (caller frees); NULL with why in err (the state store) */
json_t *wd_mcplist_tools(wd_front *f, const wd_policy *p, const wd_user *u, char *err, size_t n);
/* the agents of the agents directory the kill switch does not stop, by name (an array of
** strings: what an OpenAI client may name as its model); NULL with why in err */
json_t *wd_mcplist_agents(wd_front *f, char *err, size_t n);
/* the agent a tool name runs (NAME of agent__NAME), or NULL: a tool */
const char *wd_mcplist_agent(const char *name);
void wd_mcplist_free(wd_front *f); /* the worker's cache of definitions */

#endif
