/* mcpserve.c - warden as an MCP server: /mcp of warden serve (docs/mcp.md).
**
** Streamable HTTP: a client POSTs one JSON-RPC message at a time, with its user's Bearer
** key like every route. initialize opens a session (mcpsess.h); every later message
** names it in Mcp-Session-Id. tools/list gives what the user may call (mcplist.h).
** tools/call starts a run on this worker (apiruns.c): a direct call of the tool through
** the pipeline (wd_run_opts.tool) or a run of an agent, audited as any run, and answers
** when it ends: as an event stream when the client takes one, which carries progress
** notifications while the call waits for a person (when the client gave a
** progressToken) and is kept alive meanwhile. What the pipeline refuses comes back as a
** result with isError and the reason. */
#include "mcplist.h"
#include "mcpsess.h"
#include "mcpserve.h"
#include "apicall.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TICK_MS      250   /* how often a call's records are looked at */
#define KEEPALIVE_MS 15000 /* the longest a stream stays silent */

/* the versions of the protocol warden speaks, newest first */
static const char *const VERSIONS[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

static int known_version(const char *v)
{
    for (int i = 0; v && VERSIONS[i]; i++)
        if (!strcmp(v, VERSIONS[i]))
            return 1;
    return 0;
}

/* a tools/call answering on this worker */
struct wd_mcp_call {
    struct wd_mcp_call *next, *prev;
    wd_front *f;
    struct evhttp_request *req; /* NULL: the client went away, or the server stops */
    json_t *id, *token;         /* the request's id; its progressToken, or NULL */
    int sse, agent, cancelled;
    char run_id[37];
    char session[MCP_SESSION_ID_LEN + 1];
    struct event *timer;
    long cursor; /* the run's records seen (registry.h) */
    double progress;
    int64_t quiet_since_ms;
    wd_waiter *w;      /* its run's, until answer_later starts it */
    char approval[40]; /* the approval the call waits for, "" none */
    long long expires_ms;
};

/* ---- JSON-RPC replies ---------------------------------------------------------- */

/* {jsonrpc, id, result} (takes result) */
static json_t *rpc_ok(json_t *id, json_t *result)
{
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result", result);
}

static void send_msg(wd_call *c, int status, json_t *msg) /* takes msg */
{
    char *t = msg ? json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(msg);
    if (t)
        wd_call_text(c, status, "application/json", t, strlen(t));
    else
        wd_call_error(c, 500, "out of memory");
    free(t);
}

static void __attribute__((format(printf, 5, 6)))
rpc_error(wd_call *c, int status, json_t *id, int code, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_msg(c, status,
             json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code", code,
                       "message", msg));
}

/* a tool's failure as MCP gives it: a result with isError (takes text) */
static json_t *failed(char *text)
{
    json_t *r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", text ? text : "out of memory",
                          "isError", 1);
    free(text);
    return r;
}

/* ---- tools/call -------------------------------------------------------------- */

static int is_block(const json_t *b)
{
    static const char *const TYPES[] = {"text", "image", "audio", "resource", "resource_link", NULL};
    const char *t = json_string_value(json_object_get(b, "type"));
    for (int i = 0; t && TYPES[i]; i++)
        if (!strcmp(t, TYPES[i]))
            return 1;
    return 0;
}

/* what a direct call's tool returned (the run's output, as text), as a CallToolResult:
** an MCP server's content blocks passed on as it gave them, anything else one text block
** (an object also as structuredContent) */
static json_t *tool_result(const char *out)
{
    json_t *v = json_loads(out, JSON_DECODE_ANY, NULL), *content = json_object_get(v, "content");
    int blocks = json_is_array(content) && json_array_size(content) > 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) blocks = blocks && is_block(b);
    json_t *r;
    if (blocks) {
        r = json_pack("{s:O}", "content", content);
        json_t *sc = json_object_get(v, "structuredContent");
        if (r && json_is_object(sc))
            json_object_set(r, "structuredContent", sc);
    } else {
        r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", out);
        if (r && json_is_object(v))
            json_object_set(r, "structuredContent", v);
    }
    json_decref(v);
    return r;
}

/* the run's result object as the call's result */
static json_t *call_result(const wd_mcp_call *mc, const json_t *res)
{
    const char *status = json_string_value(json_object_get(res, "status"));
    const char *out = json_string_value(json_object_get(res, "result"));
    const char *err1 = json_string_value(json_array_get(json_object_get(res, "errors"), 0));
    int done = status && !strcmp(status, "completed");
    json_t *calls = json_object_get(res, "tool_calls");
    json_t *tc = json_array_get(calls, json_array_size(calls) - 1);
    char *text = NULL;
    json_t *r;
    if (mc->agent && done)
        r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", out ? out : "");
    else if (!mc->agent && done && json_is_true(json_object_get(tc, "success")))
        r = tool_result(out ? out : "");
    else if (!mc->agent && done && tc) /* refused by the pipeline, or failed: its reason */
        r = failed(wd_strdup(json_string_value(json_object_get(tc, "result"))));
    else
        r = failed(asprintf(&text, "the run ended %s: %s", status ? status : "?",
                            err1  ? err1
                            : out ? out
                                  : "") < 0
                       ? NULL
                       : text);
    if (r)
        json_object_set_new(r, "_meta", json_pack("{s:s,s:s?}", "warden/run_id", mc->run_id, "warden/status", status));
    return r;
}

static void sse_add(wd_mcp_call *mc, const char *text)
{
    struct evbuffer *eb = evbuffer_new();
    if (!eb)
        return;
    evbuffer_add(eb, text, strlen(text));
    evhttp_send_reply_chunk(mc->req, eb);
    evbuffer_free(eb);
    mc->quiet_since_ms = wd_wall_ms();
}

/* one JSON-RPC message on the call's stream (takes msg) */
static void sse_msg(wd_mcp_call *mc, json_t *msg)
{
    char *t = msg ? json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(msg);
    char *ev = NULL;
    if (t && asprintf(&ev, "event: message\ndata: %s\n\n", t) >= 0)
        sse_add(mc, ev);
    free(ev);
    free(t);
}

static void progress(wd_mcp_call *mc, const char *message)
{
    if (!mc->token || !mc->req || !mc->sse)
        return;
    mc->progress += 1;
    sse_msg(mc, json_pack("{s:s,s:s,s:{s:O,s:f,s:s}}", "jsonrpc", "2.0", "method", "notifications/progress", "params",
                          "progressToken", mc->token, "progress", mc->progress, "message", message));
}

/* what a record of the run tells the client: the approvals it waits for */
static void on_record(wd_mcp_call *mc, const json_t *rec)
{
    const char *ev = json_string_value(json_object_get(rec, "event"));
    const char *id = json_string_value(json_object_get(rec, "approval_id"));
    char msg[600];
    if (!ev || !id)
        return;
    if (!strcmp(ev, "approval_requested")) {
        wd_strlcpy(mc->approval, id, sizeof mc->approval);
        mc->expires_ms = (long long)json_integer_value(json_object_get(rec, "expires_ms"));
        char in[32];
        wd_fmt_duration(mc->expires_ms - wd_wall_ms(), in, sizeof in);
        snprintf(msg, sizeof msg,
                 "waiting for a person to approve %s (approval %s, expires in %s): warden approvals approve %s",
                 json_string_value(json_object_get(rec, "tool_name")), id, in, id);
        progress(mc, msg);
    } else if (!strncmp(ev, "approval_", 9) && strcmp(ev, "approval_escalated")) {
        snprintf(msg, sizeof msg, "approval %s: %s", id, ev + 9);
        mc->approval[0] = '\0';
        progress(mc, msg);
    }
}

/* an MCP server's progress on the tool the run calls, to the client (when it asked) */
static void on_tool_progress(wd_waiter *w, const json_t *p)
{
    wd_mcp_call *mc = w->ud;
    char msg[600], n[64] = "";
    json_t *total = json_object_get(p, "total");
    const char *m = json_string_value(json_object_get(p, "message"));
    if (json_is_number(total))
        snprintf(n, sizeof n, " of %g", json_number_value(total));
    snprintf(msg, sizeof msg, "%s: %g%s%s%s", json_string_value(json_object_get(p, "tool")),
             json_number_value(json_object_get(p, "progress")), n, m ? ": " : "", m ? m : "");
    progress(mc, msg);
}

/* the run's records not yet read, each told to on_record */
static void read_records(wd_mcp_call *mc)
{
    wd_buf b = {0};
    int ended;
    long next = wd_registry_events(mc->f->srv->reg, mc->run_id, mc->cursor, &b, &ended);
    if (next >= 0)
        mc->cursor = next;
    for (char *p = b.p; p && (p = strstr(p, "data: ")); p++) {
        json_t *rec = json_loadb(p + 6, strcspn(p + 6, "\n"), 0, NULL);
        on_record(mc, rec);
        json_decref(rec);
    }
    wd_buf_free(&b);
}

/* the run's new records read; a stream silent for too long hears from us */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_mcp_call *mc = arg;
    if (!mc->req)
        return;
    read_records(mc);
    if (mc->sse && mc->req && wd_wall_ms() - mc->quiet_since_ms >= KEEPALIVE_MS) {
        char msg[300], in[32];
        if (mc->approval[0] && mc->token) {
            wd_fmt_duration(mc->expires_ms - wd_wall_ms(), in, sizeof in);
            snprintf(msg, sizeof msg, "still waiting for approval %s (expires in %s)", mc->approval, in);
            progress(mc, msg);
        } else
            sse_add(mc, ": the call goes on\n\n");
    }
}

static void call_unlink(wd_mcp_call *mc)
{
    if (mc->prev)
        mc->prev->next = mc->next;
    else if (mc->f->mcp_calls == mc)
        mc->f->mcp_calls = mc->next;
    if (mc->next)
        mc->next->prev = mc->prev;
    mc->next = mc->prev = NULL;
}

static void call_free(wd_mcp_call *mc)
{
    if (!mc)
        return;
    call_unlink(mc);
    if (mc->timer)
        event_free(mc->timer);
    json_decref(mc->id);
    json_decref(mc->token);
    free(mc);
}

static void on_call_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    wd_mcp_call *mc = arg;
    mc->req = NULL; /* the run goes on, audited; its result has no one to go to */
    if (mc->timer)
        event_del(mc->timer);
}

/* the run ended (apiruns.c, on this worker): its result to the client, if it is there */
static void on_end(wd_waiter *w, const json_t *res)
{
    wd_mcp_call *mc = w->ud;
    if (mc->req) {
        struct evhttp_request *req = mc->req;
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
        json_t *msg = mc->cancelled ? NULL : rpc_ok(mc->id, call_result(mc, res));
        if (mc->sse) {
            /* the run's records reach the table of runs before its result (the
             ** flush that delivers it feeds the table): its decision is told first */
            read_records(mc);
            if (msg)
                sse_msg(mc, msg);
            evhttp_send_reply_end(req);
        } else {
            wd_call c = {.f = mc->f, .req = req, .route = "/mcp"};
            if (msg)
                send_msg(&c, 200, msg);
            else
                wd_call_text(&c, 202, "application/json", "", 0);
        }
    }
    call_free(mc);
}

static int takes_stream(wd_call *c)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Accept");
    return a && strstr(a, "text/event-stream");
}

/* the agent's run, or the direct call of the tool, started for the client; NULL after
** answering (an unknown agent, arguments an agent does not take, a full server) */
static wd_mcp_call *start_call(wd_call *c, json_t *id, const char *name, json_t *args, const char *session)
{
    const char *agent = wd_mcplist_agent(name);
    char *path = NULL, *input = NULL;
    if (agent && !(path = wd_api_agent_path(c->f->srv, agent))) {
        rpc_error(c, 200, id, -32602, "unknown tool '%s': no agent '%s' under the agents directory", name, agent);
        return NULL;
    }
    json_t *in = json_object_get(args, "input");
    if (agent && (!json_is_string(in) || json_object_size(args) != 1)) {
        free(path);
        char *why = NULL;
        send_msg(
            c, 200,
            rpc_ok(id, failed(asprintf(&why, "invalid arguments for %s: it takes {\"input\": string} only", name) < 0
                                  ? NULL
                                  : why)));
        return NULL;
    }
    input = agent ? wd_strdup(json_string_value(in)) : json_dumps(args, JSON_COMPACT | JSON_REAL_PRECISION(17));
    wd_mcp_call *mc = calloc(1, sizeof *mc);
    if (!mc || !input || !(mc->timer = event_new(wd_engine_base(c->f->e), -1, EV_PERSIST, on_tick, mc))) {
        free(mc);
        free(input);
        free(path);
        rpc_error(c, 503, id, -32603, "out of memory");
        return NULL;
    }
    wd_waiter *w =
        wd_api_run(c, path, input, session, agent ? NULL : name, agent ? agent : WD_DIRECT_AGENT, on_end, mc);
    free(input);
    if (!w) { /* answered: 429 or 503 */
        event_free(mc->timer);
        free(mc);
        return NULL;
    }
    mc->f = c->f;
    mc->agent = agent != NULL;
    mc->id = json_incref(id);
    mc->w = w;
    w->on_progress = on_tool_progress;
    memcpy(mc->run_id, w->run_id, sizeof mc->run_id);
    wd_strlcpy(mc->session, session, sizeof mc->session);
    mc->next = c->f->mcp_calls;
    if (mc->next)
        mc->next->prev = mc;
    c->f->mcp_calls = mc;
    return mc;
}

/* the call's answer begins: an event stream when the client takes one (kept alive,
** progress on it), else one JSON reply when the run ends */
static void answer_later(wd_call *c, wd_mcp_call *mc, json_t *token)
{
    mc->req = c->req;
    mc->token = json_incref(token);
    mc->sse = takes_stream(c);
    evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_call_gone, mc);
    if (mc->sse) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-store");
        wd_call_stream_start(c->req);
        wd_metrics_http(c->f->srv->met, c->route, 200);
        mc->quiet_since_ms = wd_wall_ms();
    }
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(mc->timer, &tv);
}

static void tools_call(wd_call *c, json_t *id, json_t *params, const char *session)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (!name) {
        rpc_error(c, 200, id, -32602, "tools/call: params.name must be a string");
        return;
    }
    if (args && !json_is_object(args)) {
        rpc_error(c, 200, id, -32602, "tools/call: params.arguments must be an object");
        return;
    }
    if (token && !json_is_string(token) && !json_is_integer(token)) {
        rpc_error(c, 200, id, -32602, "tools/call: params._meta.progressToken must be a string or an integer");
        return;
    }
    if (!wd_name_ok(name)) {
        rpc_error(c, 200, id, -32602, "unknown tool: a tool's name is 1 to 64 letters, digits, '_' or '-'");
        return;
    }
    json_t *none = json_object();
    wd_mcp_call *mc = start_call(c, id, name, args ? args : none, session);
    json_decref(none);
    if (!mc)
        return;
    answer_later(c, mc, token);
    wd_api_go(c, mc->w); /* may end the run at once (out of memory): on_end then answers */
}

/* ---- cancellation ------------------------------------------------------------ */

typedef struct {
    wd_server *s;
    char session[MCP_SESSION_ID_LEN + 1];
    json_t *request_id;
    char why[300];
} cancel_req;

/* on each worker: the session's call of that request id, if it answers there, ends */
static void cancel_on(void *arg, int index, wd_engine *e)
{
    cancel_req *cr = arg;
    for (wd_mcp_call *mc = cr->s->fronts[index].mcp_calls; mc; mc = mc->next)
        if (!strcmp(mc->session, cr->session) && json_equal(mc->id, cr->request_id) && !mc->cancelled) {
            mc->cancelled = 1; /* no answer to a cancelled request */
            wd_engine_cancel(e, mc->run_id, cr->why);
            break;
        }
    json_decref(cr->request_id);
    free(cr);
}

/* notifications/cancelled: the call may answer on any worker; each looks */
static void cancel(wd_call *c, json_t *params, const char *session)
{
    json_t *rid = json_object_get(params, "requestId");
    const char *reason = json_string_value(json_object_get(params, "reason"));
    if (!rid)
        return;
    wd_server *s = c->f->srv;
    for (int i = 0; i < s->nfronts; i++) {
        cancel_req *cr = calloc(1, sizeof *cr);
        if (!cr)
            return;
        cr->s = s;
        wd_strlcpy(cr->session, session, sizeof cr->session);
        cr->request_id = json_incref(rid);
        snprintf(cr->why, sizeof cr->why, "the MCP client cancelled the call%s%.200s", reason ? ": " : "",
                 reason ? reason : "");
        if (!s->pool) /* a server of one front, without workers (the fuzzer's) */
            cancel_on(cr, i, s->fronts[i].e);
        else if (wd_pool_post(s->pool, i, cancel_on, cr) < 0) {
            json_decref(cr->request_id);
            free(cr);
        }
    }
}

/* ---- the messages ------------------------------------------------------------ */

static void initialize(wd_call *c, json_t *id, json_t *params)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    if (!asked) {
        rpc_error(c, 200, id, -32602, "initialize: params.protocolVersion must be a string");
        return;
    }
    const char *v = known_version(asked) ? asked : VERSIONS[0];
    char sid[MCP_SESSION_ID_LEN + 1];
    if (wd_mcpsess_open(c->f->srv->mcp_sessions, c->user->name, v, sid, wd_wall_ms()) < 0) {
        rpc_error(c, 503, id, -32000, "the server holds %d sessions already: end one (DELETE /mcp) or wait",
                  MCP_SESSIONS_MAX);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Mcp-Session-Id", sid);
    send_msg(c, 200,
             rpc_ok(id, json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s},s:s}", "protocolVersion", v, "capabilities", "tools",
                                  "listChanged", 0, "serverInfo", "name", "warden", "version", WARDEN_VERSION,
                                  "instructions",
                                  "Tools and agents governed by warden: every call is checked against the "
                                  "policy, may wait for a person's approval, and is audited.")));
}

static void tools_list(wd_call *c, json_t *id, json_t *params)
{
    if (json_object_get(params, "cursor")) { /* the list comes whole: no cursor was given */
        rpc_error(c, 200, id, -32602, "tools/list: unknown cursor");
        return;
    }
    char err[300];
    json_t *tools = wd_mcplist_tools(c->f, c->p, c->user, err, sizeof err);
    if (!tools)
        rpc_error(c, 503, id, -32603, "%s", err);
    else
        send_msg(c, 200, rpc_ok(id, json_pack("{s:o}", "tools", tools)));
}

/* the message's session: 1 with its id in sid, or 0 answered (400 none, 404 unknown) */
static int session_of(wd_call *c, json_t *id, char *sid)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
    const char *h = evhttp_find_header(in, "Mcp-Session-Id");
    const char *pv = evhttp_find_header(in, "MCP-Protocol-Version");
    char v[32];
    if (!h) {
        rpc_error(c, 400, id, -32000, "Bad Request: no Mcp-Session-Id header (initialize opens a session)");
        return 0;
    }
    if (strlen(h) != MCP_SESSION_ID_LEN ||
        !wd_mcpsess_use(c->f->srv->mcp_sessions, h, c->user->name, v, sizeof v, wd_wall_ms())) {
        rpc_error(c, 404, id, -32001, "Session not found: initialize again");
        return 0;
    }
    if (pv && !known_version(pv)) {
        rpc_error(c, 400, id, -32000,
                  "Bad Request: unsupported MCP-Protocol-Version '%.40s' (warden speaks %s, %s, %s)", pv, VERSIONS[0],
                  VERSIONS[1], VERSIONS[2]);
        return 0;
    }
    wd_strlcpy(sid, h, MCP_SESSION_ID_LEN + 1);
    return 1;
}

/* ** The Origin header a browser sends must be this server's own (the transport's
** defence against DNS rebinding); other clients send none. */
static int origin_ok(wd_call *c)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
    const char *o = evhttp_find_header(in, "Origin"), *host = evhttp_find_header(in, "Host");
    const char *p = o ? strstr(o, "://") : NULL;
    return !o || (p && host && !strcasecmp(p + 3, host));
}

/* the body as one JSON-RPC message; NULL answered 400 */
static json_t *read_message(wd_call *c)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t je;
    json_t *m = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!m) {
        rpc_error(c, 400, NULL, -32700, "Parse error: line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    const char *why = NULL;
    json_t *id = json_object_get(m, "id");
    if (json_is_array(m))
        why = "a batch: send one message per request";
    else if (!json_is_object(m))
        why = "the message is not a JSON object";
    else if (!json_is_string(json_object_get(m, "jsonrpc")) ||
             strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0"))
        why = "jsonrpc must be \"2.0\"";
    else if (id && !json_is_string(id) && !json_is_integer(id))
        why = "id must be a string or an integer";
    else if (json_object_get(m, "method") && !json_is_string(json_object_get(m, "method")))
        why = "method must be a string";
    else if (json_object_get(m, "params") && !json_is_object(json_object_get(m, "params")))
        why = "params must be an object";
    if (why) {
        rpc_error(c, 400, json_is_object(m) && (json_is_string(id) || json_is_integer(id)) ? id : NULL, -32600,
                  "Invalid Request: %s", why);
        json_decref(m);
        return NULL;
    }
    return m;
}

void wd_mcp_post(wd_call *c)
{
    if (!origin_ok(c)) {
        rpc_error(c, 403, NULL, -32600, "Forbidden: the Origin header names another site");
        return;
    }
    json_t *m = read_message(c);
    if (!m)
        return;
    const char *method = json_string_value(json_object_get(m, "method"));
    json_t *id = json_object_get(m, "id"), *params = json_object_get(m, "params");
    char sid[MCP_SESSION_ID_LEN + 1];
    if (method && id && !strcmp(method, "initialize"))
        initialize(c, id, params);
    else if (!session_of(c, id, sid))
        ;                      /* answered */
    else if (!method || !id) { /* a notification, or an answer to a request we never make */
        if (method && !strcmp(method, "notifications/cancelled"))
            cancel(c, params, sid);
        wd_call_text(c, 202, "application/json", "", 0);
    } else if (!strcmp(method, "ping"))
        send_msg(c, 200, rpc_ok(id, json_object()));
    else if (!strcmp(method, "tools/list"))
        tools_list(c, id, params);
    else if (!strcmp(method, "tools/call"))
        tools_call(c, id, params, sid);
    else
        rpc_error(c, 200, id, -32601, "Method not found: %.100s (warden serves tools)", method);
    json_decref(m);
}

void wd_mcp_delete(wd_call *c)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Mcp-Session-Id");
    if (!h || !wd_mcpsess_close(c->f->srv->mcp_sessions, h, c->user->name))
        rpc_error(c, h ? 404 : 400, NULL, -32001, h ? "Session not found" : "Bad Request: no Mcp-Session-Id header");
    else
        wd_call_text(c, 200, "application/json", "{}", 2);
}

void wd_mcp_get(wd_call *c)
{
    /* no stream of the server's own: it sends nothing unasked */
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow", "POST, DELETE");
    rpc_error(c, 405, NULL, -32000, "Method Not Allowed: warden opens no stream of its own (POST a request)");
}

void wd_mcp_stop(wd_front *f)
{
    for (wd_mcp_call *mc = f->mcp_calls; mc; mc = mc->next) {
        if (mc->req)
            evhttp_connection_set_closecb(evhttp_request_get_connection(mc->req), NULL, NULL);
        mc->req = NULL;
        if (mc->timer)
            event_free(mc->timer);
        mc->timer = NULL;
    }
    wd_mcplist_free(f);
}
