/* jsonrpc.h - JSON-RPC 2.0 messages as MCP's stdio transport frames them: one JSON
** object per line (docs/mcp.md). A reader cuts a byte stream into messages, with caps;
** a line that is not a JSON-RPC object is reported, never trusted. */
#ifndef WD_JSONRPC_H
#define WD_JSONRPC_H

#include <jansson.h>
#include <stddef.h>

#include "util.h"

typedef struct wd_rpc_reader {
    wd_buf line;     /* the line being read */
    size_t max_line; /* longer lines are dropped whole (and reported) */
    int skipping;    /* inside a line that grew past max_line */
} wd_rpc_reader;

/* what one line was */
enum { WD_RPC_MESSAGE, WD_RPC_GARBAGE, WD_RPC_TOO_LONG };

/* for each whole line in p[0..n): fn(ud, kind, msg or NULL, why or NULL); msg borrowed
** for the call. Returns 0, or -1 out of memory. */
typedef void (*wd_rpc_line_fn)(void *ud, int kind, json_t *msg, const char *why);
int wd_rpc_feed(wd_rpc_reader *r, const char *p, size_t n, wd_rpc_line_fn fn, void *ud);
void wd_rpc_reader_free(wd_rpc_reader *r); /* its buffer */

/* a message as one line (with its newline) onto out; 0 or -1 */
int wd_rpc_write(wd_buf *out, const json_t *msg);

/* a response's parts: 1 a result (*result borrowed), 0 an error (its text into err),
** -1 not a response */
int wd_rpc_response(const json_t *msg, json_t **result, char *err, size_t n);

#endif
