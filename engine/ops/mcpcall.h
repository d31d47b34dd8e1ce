/* mcpcall.h - a call of an MCP server's tool (mcpcall.c, docs/mcp.md): the tool is
** registered like a script's (tools.c) with this handler, so every check of the pipeline
** runs first; the handler sends tools/call to the server on the loop and yields. */
#ifndef WD_MCPCALL_H
#define WD_MCPCALL_H

#include "engine.h"

/* the run(args, ctx) of an MCP tool: upvalues 1 and 2 are the server's and the tool's
** names. Its answer is the server's result as a table ({content = {...},
** structuredContent = ..., text = the text blocks joined}); an isError result is
** (nil, its text); a server that fails, ends or does not answer raises (the breaker
** counts it) */
int wd_mcpcall_handler(lua_State *L);
void wd_mcpcall_cancel(wd_run *r, const char *why); /* the request dropped (the server told), if any */
extern const wd_op_kind wd_op_mcp;

#endif
