/* jsonrpc.c - JSON-RPC 2.0 lines (jsonrpc.h) */
#include "jsonrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one whole line: a JSON-RPC 2.0 object, or why not */
static void one_line(wd_rpc_reader *r, wd_rpc_line_fn fn, void *ud)
{
    const char *s = r->line.p ? r->line.p : "";
    size_t n = r->line.len;
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n)
        return; /* a blank line is no message */
    json_error_t je;
    json_t *m = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    const json_t *v = m ? json_object_get(m, "jsonrpc") : NULL;
    if (!json_is_object(m) || !json_is_string(v) || strcmp(json_string_value(v), "2.0")) {
        char why[300];
        if (!m)
            snprintf(why, sizeof why, "not JSON at column %d: %s", je.column, je.text);
        else
            snprintf(why, sizeof why, "not a JSON-RPC 2.0 object (no \"jsonrpc\": \"2.0\")");
        fn(ud, WD_RPC_GARBAGE, NULL, why);
    } else {
        fn(ud, WD_RPC_MESSAGE, m, NULL);
    }
    json_decref(m);
}

int wd_rpc_feed(wd_rpc_reader *r, const char *p, size_t n, wd_rpc_line_fn fn, void *ud)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!r->skipping) {
            if (r->line.len + take > r->max_line) {
                r->skipping = 1;
                r->line.len = 0;
            } else if (wd_buf_add(&r->line, p, take) < 0) {
                return -1;
            }
        }
        if (!nl)
            break;
        if (r->skipping) {
            char why[100];
            snprintf(why, sizeof why, "a line longer than %zu bytes", r->max_line);
            fn(ud, WD_RPC_TOO_LONG, NULL, why);
        } else {
            one_line(r, fn, ud);
        }
        r->skipping = 0;
        r->line.len = 0;
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

void wd_rpc_reader_free(wd_rpc_reader *r) { wd_buf_free(&r->line); }

int wd_rpc_write(wd_buf *out, const json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (!s)
        return -1;
    int rc = wd_buf_adds(out, s) < 0 || wd_buf_add(out, "\n", 1) < 0 ? -1 : 0;
    free(s);
    return rc;
}

int wd_rpc_response(const json_t *msg, json_t **result, char *err, size_t n)
{
    json_t *res = json_object_get(msg, "result"), *e = json_object_get(msg, "error");
    if (res && !e) {
        *result = res;
        return 1;
    }
    if (json_is_object(e)) {
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(err, n, "%s (code %lld)", m ? m : "error without a message",
                 (long long)json_integer_value(json_object_get(e, "code")));
        return 0;
    }
    return -1;
}
