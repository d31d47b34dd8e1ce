/* host.h - what a host of engines (warden serve, the command, the Lua module) may ask of an
** engine beside warden.h: its current policy, its store, its audit log and its loop. The
** engine's structures stay in engine.h, for the runtime and the layers that run inside it. */
#ifndef WD_HOST_H
#define WD_HOST_H

#include "warden.h"

struct event_base;
typedef struct json_t json_t;
typedef struct wd_store wd_store;
typedef struct wd_audit wd_audit;

wd_policy *wd_engine_policy(wd_engine *e);       /* a new reference */
wd_store *wd_engine_store(wd_engine *e);         /* the engine's state store */
wd_audit *wd_engine_audit(wd_engine *e);         /* its audit log (shared by a pool) */
struct event_base *wd_engine_base(wd_engine *e); /* its loop */
int wd_engine_unstarted(const wd_engine *e);     /* runs submitted, not yet started */
/* the audit buffer, then pending spend to the store; idle: no run is left to use the
** leases' room */
void wd_engine_flush(wd_engine *e, int idle);
/* the descriptor limit raised and the table sized for thousands of sockets; cheapest
** before any thread starts, harmless to repeat */
void wd_engine_prepare_fds(void);
/* a record the host wrote itself (redacted): the notification it calls for queued and
** sent from the engine's loop (notify.h) */
void wd_engine_notify(wd_engine *e, const json_t *rec);
/* a record of no run the host wrote itself shown to wd_engine_on_record's watcher (the
** server's metrics) */
void wd_engine_observe(wd_engine *e, const json_t *rec);

/* fn called with each tool of the engine's MCP servers usable now (mcp.servers, started
** with the engine): the server's name and the tool as it listed it, borrowed for the call */
void wd_engine_mcp_tools(wd_engine *e, void (*fn)(void *ud, const char *server, const json_t *tool), void *ud);

#endif
