/* mcpsession.c - the MCP handshake and the tools of a server (mcpsession.h) */
#include "mcpsession.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const wd_mcp_versions[] = {"2025-06-18", "2025-03-26", "2024-11-05", NULL};

#define MAX_PAGES 100
#define MAX_TOOLS 10000

typedef struct {
    wd_mcp *m;
    long long timeout_ms;
    wd_mcp_ready_fn fn;
    void *ud;
    json_t *init, *tools;
    int pages;
} session;

static void done(session *s, const char *error)
{
    s->fn(s->ud, error ? NULL : s->init, error ? NULL : s->tools, error);
    json_decref(s->init);
    json_decref(s->tools);
    free(s);
}

static void on_page(void *ud, json_t *result, const char *error);

static int ask_page(session *s, const char *cursor)
{
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    return wd_mcp_request(s->m, "tools/list", params, s->timeout_ms, on_page, s) < 0 ? -1 : 0;
}

static void on_page(void *ud, json_t *result, const char *error)
{
    session *s = ud;
    char why[700];
    if (error) {
        snprintf(why, sizeof why, "tools/list: %s", error);
        {
            done(s, why);
            return;
        }
    }
    json_t *list = json_object_get(result, "tools");
    if (!json_is_array(list)) {
        done(s, "tools/list: the answer holds no tools array");
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        if (!json_is_object(t) || !json_is_string(json_object_get(t, "name"))) {
            done(s, "tools/list: a tool without a name");
            return;
        }
        if (json_array_size(s->tools) >= MAX_TOOLS) {
            done(s, "tools/list: more than 10000 tools");
            return;
        }
        json_array_append(s->tools, t);
    }
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next && *next) {
        if (++s->pages >= MAX_PAGES) {
            done(s, "tools/list: more than 100 pages");
            return;
        }
        if (ask_page(s, next) < 0) {
            done(s, "tools/list: the server has ended");
            return;
        }
        return;
    }
    done(s, NULL);
}

static void on_init(void *ud, json_t *result, const char *error)
{
    session *s = ud;
    char why[700];
    if (error) {
        snprintf(why, sizeof why, "initialize: %s", error);
        done(s, why);
        return;
    }
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    int known = 0;
    for (int i = 0; v && wd_mcp_versions[i]; i++)
        known |= !strcmp(v, wd_mcp_versions[i]);
    if (!known) {
        snprintf(why, sizeof why, "initialize: the server speaks protocol %.60s, warden %s, %s or %s",
                 v ? v : "(none given)", wd_mcp_versions[0], wd_mcp_versions[1], wd_mcp_versions[2]);
        done(s, why);
        return;
    }
    s->init = json_incref(result);
    wd_mcp_agreed(s->m, v);
    if (wd_mcp_notify(s->m, "notifications/initialized", NULL) < 0) {
        done(s, "initialize: the server has ended");
        return;
    }
    wd_mcp_listen(s->m); /* over HTTP, what it says unasked comes on its own stream */
    if (ask_page(s, NULL) < 0)
        done(s, "initialize: the server has ended");
}

static session *new_session(wd_mcp *m, long long timeout_ms, wd_mcp_ready_fn fn, void *ud)
{
    session *s = calloc(1, sizeof *s);
    if (s)
        *s = (session){m, timeout_ms, fn, ud, NULL, json_array(), 0};
    return s;
}

int wd_mcp_session_start(wd_mcp *m, long long timeout_ms, wd_mcp_ready_fn fn, void *ud)
{
    session *s = new_session(m, timeout_ms, fn, ud);
    if (!s)
        return -1;
    json_t *params = json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", wd_mcp_versions[0], "capabilities",
                               "clientInfo", "name", "warden", "version", "1");
    if (wd_mcp_request(m, "initialize", params, timeout_ms, on_init, s) < 0) {
        json_decref(s->tools);
        free(s);
        return -1;
    }
    return 0;
}

int wd_mcp_session_tools(wd_mcp *m, long long timeout_ms, wd_mcp_ready_fn fn, void *ud)
{
    session *s = new_session(m, timeout_ms, fn, ud);
    if (!s)
        return -1;
    if (ask_page(s, NULL) < 0) {
        json_decref(s->tools);
        free(s);
        return -1;
    }
    return 0;
}
