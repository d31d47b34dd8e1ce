/* fetch.c - ctx:http{url=, method=, headers=, body=, timeout_ms=} for tools.
**
** Only hosts in the tool's allowed_hosts; http and https only, no redirects followed;
** the tool's timeout (or a shorter one given); transient failures retried with the
** policy's backoff; the body capped. An HTTP answer of any status is a value
** {status, headers, body}; a request that got no answer is (nil, message). */
#include "fetch.h"
#include "settle.h"
#include "jsonlua.h"
#include "canon.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FETCH_MAX_BODY    (1u << 20)
#define FETCH_MAX_HEADERS 50

/* ctx:http in flight: a run makes it on its first request (r->fetch) */
struct wd_fetch_state {
    wd_http_req *http;
    char *url, *method, *body;
    size_t body_len;
    char **headers;
    size_t nheaders;
    long long timeout_ms;
    int retries;
    int64_t t0;
};

static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

static void fetch_clear(wd_run *r)
{
    free(r->fetch->url);
    free(r->fetch->method);
    free(r->fetch->body);
    for (size_t i = 0; i < r->fetch->nheaders; i++)
        free(r->fetch->headers[i]);
    free(r->fetch->headers);
    memset(r->fetch, 0, sizeof *r->fetch);
}

void wd_fetch_cancel(wd_run *r, const char *why)
{
    (void)why;
    if (!r->fetch)
        return;
    wd_http_cancel(r->fetch->http);
    r->fetch->http = NULL;
    fetch_clear(r);
}

/* "host", "host:port" or "*.example.com" (any subdomain, not the domain itself) */
static int host_allowed(const wd_strlist *allowed, const char *host, int port)
{
    char hp[300];
    snprintf(hp, sizeof hp, "%s:%d", host, port);
    for (size_t i = 0; i < allowed->n; i++) {
        const char *a = allowed->v[i];
        if (!strcasecmp(a, host) || !strcasecmp(a, hp))
            return 1;
        if (a[0] == '*' && a[1] == '.') {
            size_t hl = strlen(host), sl = strlen(a + 1);
            if (hl > sl && !strcasecmp(host + hl - sl, a + 1))
                return 1;
        }
    }
    return 0;
}

static int refuse(wd_run *r, lua_State *L, const char *url, const char *msg)
{
    wd_run_audit_guardrail(r, json_pack("{s:s}", "url", url), msg, "host_not_allowed", "high");
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}

static int valid_header(const char *name, const char *value)
{
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!(*p == '-' || *p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            return 0;
    return 1;
}

lua_Integer wd_tool_timeout_opt(wd_run *r, lua_State *L, int idx, const char *what)
{
    lua_Integer timeout = r->tool.timeout_ms;
    if (lua_getfield(L, idx, "timeout_ms") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
            return luaL_error(L, "%s: timeout_ms must be a positive integer", what);
        if (lua_tointeger(L, -1) < timeout) /* never longer than the tool's own */
            timeout = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return timeout;
}

/* the URL (opts.url) allowed for the running tool: NULL, or why not into msg */
static const char *url_refused(wd_run *r, const char *url, char *msg, size_t n)
{
    char host[256];
    int port;
    if (wd_http_url_host(url, host, sizeof host, &port) < 0) {
        snprintf(msg, n, "ctx:http: '%.200s' is not an http or https URL", url);
        return msg;
    }
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_tool_policy *tp = wd_policy_tool(p, r->tool.name);
    const char *why = NULL;
    if (!tp || !tp->allowed_hosts.n) {
        snprintf(msg, n, "ctx:http: tool '%s' has no allowed_hosts in the policy", r->tool.name);
        why = msg;
    } else if (!host_allowed(&tp->allowed_hosts, host, port)) {
        snprintf(msg, n, "ctx:http: host '%s' is not in the allowed_hosts of tool '%s'", host, r->tool.name);
        why = msg;
    }
    wd_policy_unref(p);
    return why;
}

/* opts.body into body: a string as is, a table as JSON (*json set); raises on another */
static void read_body(lua_State *L, wd_buf *body, int *json)
{
    int bt = lua_getfield(L, 2, "body");
    if (bt == LUA_TSTRING) {
        size_t l;
        const char *b = lua_tolstring(L, -1, &l);
        wd_buf_add(body, b, l);
    } else if (bt == LUA_TTABLE) {
        char err[300];
        json_t *j = wd_lua_to_json(L, -1, err, sizeof err);
        if (!j)
            luaL_error(L, "ctx:http: body: %s", err);
        char *s = wd_json_compact_text(j);
        json_decref(j);
        wd_buf_adds(body, s ? s : "null");
        free(s);
        *json = 1;
    } else if (bt != LUA_TNIL) {
        luaL_error(L, "ctx:http: body must be a string or a table");
    }
    lua_pop(L, 1);
}

/* opts.headers as "Name: value" lines into *out (caller frees each and the list; at most
** FETCH_MAX_HEADERS, a JSON body's Content-Type added), their count into *n. NULL, or
** what is wrong with them (nothing allocated then). Never raises. */
static const char *read_headers(lua_State *L, int json_body, char ***out, size_t *n)
{
    char **hs = calloc(FETCH_MAX_HEADERS + 1, sizeof *hs);
    size_t nh = 0;
    const char *bad = NULL;
    if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (!bad && hs && lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                bad = "headers must map names to strings";
            else if (!valid_header(lua_tostring(L, -2), lua_tostring(L, -1)))
                bad = "a header name or value holds a character it may not (CR, LF, space ...)";
            else if (nh >= FETCH_MAX_HEADERS)
                bad = "more than 50 headers";
            else if (asprintf(&hs[nh], "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1)) >= 0)
                nh++;
            lua_pop(L, 1);
        }
        if (bad)
            lua_pop(L, 1); /* the key lua_next left */
    }
    lua_pop(L, 1);
    if (!bad && json_body && hs && nh < FETCH_MAX_HEADERS && asprintf(&hs[nh], "Content-Type: application/json") >= 0)
        nh++;
    if (bad || !hs) {
        for (size_t i = 0; hs && i < nh; i++)
            free(hs[i]);
        free(hs);
        return bad ? bad : "out of memory";
    }
    *out = hs;
    *n = nh;
    return NULL;
}

int wd_fetch_call(wd_run *r, lua_State *L)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!r->tool.active)
        return luaL_error(L, "ctx:http is for tools");
    if (!r->fetch && !(r->fetch = calloc(1, sizeof *r->fetch)))
        return luaL_error(L, "ctx:http: out of memory");
    lua_getfield(L, 2, "url");
    const char *url = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "ctx:http: url must be a string");
    char msg[600];
    if (url_refused(r, url, msg, sizeof msg))
        return refuse(r, L, url, msg);
    const char *method = NULL;
    if (lua_getfield(L, 2, "method") != LUA_TNIL) {
        method = lua_tostring(L, -1);
        int ok = 0;
        for (int i = 0; method && METHODS[i]; i++)
            ok |= !strcmp(method, METHODS[i]);
        if (!ok)
            return luaL_error(L, "ctx:http: method must be one of GET, POST, PUT, PATCH, DELETE, HEAD");
    }
    lua_Integer timeout = wd_tool_timeout_opt(r, L, 2, "ctx:http");
    /* everything below is copied into r->fetch; nothing raises once the body is held */
    wd_buf body = {0};
    int json_body = 0;
    read_body(L, &body, &json_body);
    char **hs = NULL;
    size_t nh = 0;
    const char *bad = read_headers(L, json_body, &hs, &nh);
    if (bad) {
        wd_buf_free(&body);
        return luaL_error(L, "ctx:http: %s", bad);
    }
    fetch_clear(r);
    r->fetch->url = wd_strdup(url);
    r->fetch->method = wd_strdup(method ? method : (body.p ? "POST" : "GET"));
    r->fetch->body = body.p; /* owned now */
    r->fetch->body_len = body.len;
    r->fetch->headers = hs;
    r->fetch->nheaders = nh;
    r->fetch->timeout_ms = timeout;
    r->fetch->retries = 0;
    r->fetch->t0 = wd_now_ns();
    r->req.kind = OP_HTTP;
    return wd_sandbox_yield(L);
}

static void attempt(wd_run *r);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt(arg);
}

/* the handler's ctx:http returns nil, msg */
static json_t *request_record(wd_run *r, int success, long status, const char *error, const char *reason)
{
    json_t *ev = wd_run_event(r, WD_AE_HTTP_REQUEST, success);
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args", json_pack("{s:s,s:s}", "method", r->fetch->method, "url", r->fetch->url));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "latency_ms", json_integer((wd_now_ns() - r->fetch->t0) / 1000000));
    json_object_set_new(ev, "retry_count", json_integer(r->fetch->retries));
    if (status)
        json_object_set_new(ev, "status", json_integer(status));
    if (error)
        json_object_set_new(ev, "error", json_string(error));
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    return ev;
}

/* the response as the agent reads it: {status, headers, body} */
static int push_response(wd_run *r, lua_State *co, void *ud)
{
    (void)r;
    const wd_http_resp *resp = ud;
    lua_createtable(co, 0, 3);
    lua_pushinteger(co, resp->status);
    lua_setfield(co, -2, "status");
    lua_createtable(co, 0, (int)resp->nheaders);
    for (size_t i = 0; i < resp->nheaders; i++) {
        lua_pushstring(co, resp->headers[i].value);
        lua_setfield(co, -2, resp->headers[i].name);
    }
    lua_setfield(co, -2, "headers");
    lua_pushlstring(co, resp->body, resp->len);
    lua_setfield(co, -2, "body");
    return 1;
}

static void on_done(const wd_http_resp *resp, void *ud)
{
    wd_run *r = ud;
    r->fetch->http = NULL;
    char msg[400], reason[80];
    if (resp->fail != WD_HTTP_OK)
        snprintf(msg, sizeof msg, "ctx:http %s: %s", r->fetch->url, resp->error ? resp->error : "failed");
    else
        snprintf(msg, sizeof msg, "HTTP %ld", resp->status);
    if (wd_retry_transient(resp) &&
        wd_run_retry_arm(r, r->fetch->retries, resp->retry_after_ms, on_retry, reason, sizeof reason) >= 0) {
        wd_run_audit(r, request_record(r, 0, resp->fail == WD_HTTP_OK ? resp->status : 0, msg, reason));
        r->fetch->retries++;
        return;
    }
    int failed = resp->fail != WD_HTTP_OK, ok = !failed && resp->status < 400;
    wd_settle st = {.record = request_record(r, ok, failed ? 0 : resp->status, ok ? NULL : msg, NULL),
                    .co = r->waiting,
                    .fail = failed ? msg : NULL,
                    .push = push_response,
                    .ud = (void *)resp,
                    .clear = fetch_clear};
    wd_run_settle(r, &st);
}

static void attempt(wd_run *r)
{
    char err[300];
    wd_http_opts o = {0};
    o.url = r->fetch->url;
    o.method = r->fetch->method;
    o.headers = (const char *const *)r->fetch->headers;
    o.nheaders = r->fetch->nheaders;
    o.body = r->fetch->body;
    o.body_len = r->fetch->body_len;
    o.connect_ms = r->pol->llm_connect_ms < r->fetch->timeout_ms ? r->pol->llm_connect_ms : r->fetch->timeout_ms;
    o.read_ms = r->fetch->timeout_ms;
    o.max_body = FETCH_MAX_BODY;
    r->fetch->http = wd_http_start(r->eng->http, &o, on_done, r, err, sizeof err);
    if (!r->fetch->http) {
        char msg[320];
        snprintf(msg, sizeof msg, "ctx:http: %s", err);
        wd_run_settle(r, &(wd_settle){.co = r->waiting, .fail = msg, .clear = fetch_clear});
    }
}

void wd_fetch_start(wd_run *r) { attempt(r); }

static void fetch_free(wd_run *r)
{
    wd_fetch_cancel(r, NULL);
    free(r->fetch);
    r->fetch = NULL;
}

const wd_op_kind wd_op_http = {"http", wd_fetch_start, wd_fetch_cancel, NULL, fetch_free, NULL};
