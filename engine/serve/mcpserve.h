/* mcpserve.h - warden as an MCP server: the /mcp route of warden serve (docs/mcp.md),
** answered on the worker a request arrives on */
#ifndef WD_MCPSERVE_H
#define WD_MCPSERVE_H

#include "apicall.h"

typedef struct wd_mcp_call wd_mcp_call;

void wd_mcp_post(wd_call *c);   /* POST /mcp: one JSON-RPC message */
void wd_mcp_delete(wd_call *c); /* DELETE /mcp: the client ends its session */
void wd_mcp_get(wd_call *c);    /* GET /mcp: 405, warden opens no stream of its own */
/* the worker stops: its calls forget their connections (their runs still end them) */
void wd_mcp_stop(wd_front *f);

#endif
