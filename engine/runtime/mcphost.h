/* mcphost.h - an engine's MCP servers (docs/mcp.md): each server of the policy's
** mcp.servers started on the engine's loop when the engine starts, its handshake done and
** its tools listed (each within the server's timeout_ms), its list followed when it says
** the list changed. A server that failed keeps why, and its tools say it when called. */
#ifndef WD_MCPHOST_H
#define WD_MCPHOST_H

#include <jansson.h>

#include "mcpconn.h"
#include "policy.h"

struct event_base;
typedef struct wd_mcp_host wd_mcp_host;

/* p's servers started on b and waited for; NULL only when p has none (or out of memory).
** Each stdio server's stderr goes beside the audit log (audit_path's directory), into
** mcp-NAME.stderr.log (audit_path NULL: nowhere) */
wd_mcp_host *wd_mcp_host_new(struct event_base *b, const wd_policy *p, const char *audit_path);
/* the tool `tool` of the server named by server[0..len): its definition as the server
** listed it (borrowed) and the connection to call it on; NULL with why (the server is
** not configured, did not start, has ended, or lists no such tool) into why */
const json_t *wd_mcp_host_tool(wd_mcp_host *h, const char *server, size_t len, const char *tool, wd_mcp **conn,
                               char *why, size_t n);
/* fn called with each tool of each server usable now, as the server listed it (borrowed
** for the call); h may be NULL */
typedef void (*wd_mcp_tool_fn)(void *ud, const char *server, const json_t *tool);
void wd_mcp_host_each(wd_mcp_host *h, wd_mcp_tool_fn fn, void *ud);
void wd_mcp_host_free(wd_mcp_host *h); /* ends every server; accepts NULL */

#endif
