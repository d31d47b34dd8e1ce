/* mcpsess.h - the sessions of warden serve's /mcp (docs/mcp.md, warden as an MCP server):
** each opened by an initialize request, named by a random Mcp-Session-Id, bound to the
** user whose key opened it, forgotten after MCP_SESSION_IDLE_MS unused or when its client
** ends it. Any worker may be asked for any session: thread-safe. */
#ifndef WD_MCPSESS_H
#define WD_MCPSESS_H

#include <stddef.h>
#include <stdint.h>

#define MCP_SESSION_IDLE_MS (60LL * 60 * 1000)
#define MCP_SESSIONS_MAX    10000 /* in all: past it, new sessions are refused */
#define MCP_SESSIONS_USER   256   /* per user: past it, the user's least recently used goes */
#define MCP_SESSION_ID_LEN  64    /* hex characters */

typedef struct wd_mcp_sessions wd_mcp_sessions;

wd_mcp_sessions *wd_mcpsess_new(void);     /* caller frees with wd_mcpsess_free */
void wd_mcpsess_free(wd_mcp_sessions *ss); /* accepts NULL */

/* a new session of user speaking version; its id into id. 0, or -1 when the server holds
** MCP_SESSIONS_MAX already (or out of memory) */
int wd_mcpsess_open(wd_mcp_sessions *ss, const char *user, const char *version, char id[MCP_SESSION_ID_LEN + 1],
                    int64_t now_ms);
/* 1 when id is a live session of user (its version into version, its use noted), else 0:
** unknown, forgotten, or another user's (which is not told apart from unknown) */
int wd_mcpsess_use(wd_mcp_sessions *ss, const char *id, const char *user, char *version, size_t n, int64_t now_ms);
/* ends user's session id: 1, or 0 when there was none */
int wd_mcpsess_close(wd_mcp_sessions *ss, const char *id, const char *user);
size_t wd_mcpsess_count(wd_mcp_sessions *ss);

#endif
