/* mcpconn.h - one MCP server over stdio (docs/mcp.md): its process, in a process group of
** its own, started from a bare environment; JSON-RPC requests to it with timeouts, its
** notifications and requests, its stderr kept (the tail), its exit seen at once (pidfd).
** Everything runs on the event base given; nothing blocks. */
#ifndef WD_MCPCONN_H
#define WD_MCPCONN_H

#include <jansson.h>
#include <stddef.h>

struct event_base;
typedef struct wd_mcp wd_mcp;

#define WD_MCP_LOG_CAP (1LL << 20) /* a server's stderr log: rotated past 1 MiB */

typedef struct wd_mcp_opts {
    const char *name;       /* the server's name in the policy: messages say it */
    char *const *argv;      /* the command (argv[0] looked up in PATH), NULL-terminated */
    char *const *env;       /* NAME=VALUE beside PATH, HOME and LANG (the only variables it gets); may be NULL */
    const char *cwd;        /* its working directory; NULL: warden's */
    size_t max_line;        /* a longer message is dropped and counted as garbage; 0: 8 MiB */
    size_t stderr_cap;      /* the tail of its stderr kept; 0: 64 KiB */
    const char *stderr_log; /* a file its stderr is appended to (rotated to .1 past 1 MiB); may be NULL */
    const char *url;        /* wd_mcp_connect: the server's Streamable HTTP endpoint */
    char *const *headers;   /* wd_mcp_connect: "Name: value" sent with every request; may be NULL */
} wd_mcp_opts;

/* a response: result (borrowed) or error (NULL on success); called exactly once */
typedef void (*wd_mcp_cb)(void *ud, json_t *result, const char *error);
typedef void (*wd_mcp_notify_fn)(void *ud, const char *method, json_t *params); /* params borrowed, may be NULL */
/* its end, as "mcp server NAME exited with status 1: the last line of its stderr" */
typedef void (*wd_mcp_exit_fn)(void *ud, const char *why);

/* the server started on b; NULL with the message in err. Caller frees with wd_mcp_free. */
wd_mcp *wd_mcp_spawn(struct event_base *b, const wd_mcp_opts *o, char *err, size_t n);
/* a server over Streamable HTTP at o->url (o->headers with every POST); NULL with the
** message in err. The same interface as a process's: requests, notifications, cancel. */
wd_mcp *wd_mcp_connect(struct event_base *b, const wd_mcp_opts *o, char *err, size_t n);
/* what it says unasked: notifications, and its end (after which every request fails) */
void wd_mcp_on(wd_mcp *m, wd_mcp_notify_fn notify, wd_mcp_exit_fn on_exit, void *ud);
/* a request (params taken, may be NULL); cb gets the answer, an error, "timed out after N
** ms" or the server's end. Returns the request's id, or -1 (cb not called) when the server
** has ended. A callback may make new requests but must not free m. */
long long wd_mcp_request(wd_mcp *m, const char *method, json_t *params, long long timeout_ms, wd_mcp_cb cb, void *ud);
/* the same, asking for progress (params, an object, gets _meta.progressToken, the id):
** each notifications/progress for it goes to progress (params borrowed, its progress a
** number) until the answer comes */
typedef void (*wd_mcp_progress_fn)(void *ud, json_t *params);
long long wd_mcp_request_progress(wd_mcp *m, const char *method, json_t *params, long long timeout_ms, wd_mcp_cb cb,
                                  wd_mcp_progress_fn progress, void *ud);
int wd_mcp_notify(wd_mcp *m, const char *method, json_t *params); /* params taken; 0 or -1 */
/* gives up a request: notifications/cancelled goes to the server, cb gets why */
void wd_mcp_cancel(wd_mcp *m, long long id, const char *why);
/* over Streamable HTTP, once initialized: the server's own event stream opened (and kept
** open) for its notifications; a no-op over stdio */
void wd_mcp_listen(wd_mcp *m);
/* the protocol version initialize agreed: over HTTP, sent with every later request */
void wd_mcp_agreed(wd_mcp *m, const char *version);
int wd_mcp_running(const wd_mcp *m);        /* 1 until its process ended */
const char *wd_mcp_stderr(const wd_mcp *m); /* the tail of what it wrote there; borrowed */
long wd_mcp_garbage(const wd_mcp *m);       /* lines that were not JSON-RPC messages */
int wd_mcp_pid(const wd_mcp *m);
/* ends its process group (SIGTERM, then SIGKILL) and fails what is pending; accepts NULL */
void wd_mcp_free(wd_mcp *m);

#endif
