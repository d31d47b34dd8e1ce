/* mcpsession.h - an MCP session over a connection (mcpconn.h): the initialize handshake
** with protocol version negotiation, then the server's tools, page by page (docs/mcp.md). */
#ifndef WD_MCPSESSION_H
#define WD_MCPSESSION_H

#include "mcpconn.h"

/* the protocol versions warden speaks, newest first; it asks for the first */
extern const char *const wd_mcp_versions[];

/* init: the server's initialize result (protocolVersion, capabilities, serverInfo);
** tools: every tool it lists (an array); both borrowed for the call. error NULL on success. */
typedef void (*wd_mcp_ready_fn)(void *ud, json_t *init, json_t *tools, const char *error);

/* initialize, notifications/initialized, then tools/list until no nextCursor (at most
** 100 pages and 10,000 tools); each request within timeout_ms. 0, or -1 (fn not called) */
int wd_mcp_session_start(wd_mcp *m, long long timeout_ms, wd_mcp_ready_fn fn, void *ud);
/* tools/list again (after notifications/tools/list_changed): fn gets init NULL */
int wd_mcp_session_tools(wd_mcp *m, long long timeout_ms, wd_mcp_ready_fn fn, void *ud);

#endif
