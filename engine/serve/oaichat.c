/* oaichat.c - warden serve as OpenAI's API for clients written against it (docs/openai.md):
** POST /v1/chat/completions runs the agent the request names as its model, as the key's
** user, with the request's earlier messages as the run's conversation (wd_run_opts.history)
** and its last user message as the query, and answers with a chat.completion when the run
** ends; GET /v1/models lists the agents. Errors take OpenAI's shape (apicall.c, c->oai). */
#include "oaichat.h"
#include "mcplist.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MESSAGES 1000

/* what a request may say beside model and messages: taken and left alone, or checked */
static const char *const KEYS[] = {"model",
                                   "messages",
                                   "stream",
                                   "stream_options",
                                   "temperature",
                                   "top_p",
                                   "max_tokens",
                                   "max_completion_tokens",
                                   "n",
                                   "user",
                                   "metadata",
                                   "store",
                                   "seed",
                                   "presence_penalty",
                                   "frequency_penalty",
                                   "logprobs",
                                   "tools",
                                   "tool_choice",
                                   "parallel_tool_calls",
                                   "response_format",
                                   "service_tier",
                                   "reasoning_effort",
                                   NULL};

void wd_oai_models(wd_call *c)
{
    char err[300];
    json_t *names = wd_mcplist_agents(c->f, err, sizeof err);
    if (!names) {
        wd_call_error(c, 503, "%s", err);
        return;
    }
    json_t *data = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) json_array_append_new(
        data, json_pack("{s:O,s:s,s:i,s:s}", "id", n, "object", "model", "created", 0, "owned_by", "warden"));
    json_decref(names);
    wd_call_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

/* a message's text: a string, or the text parts of a list joined by newlines; NULL when
** it holds anything else (caller frees) */
static char *text_of(json_t *content)
{
    if (json_is_string(content))
        return wd_strdup(json_string_value(content));
    if (!json_is_array(content))
        return NULL;
    wd_buf b = {0};
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *t = json_string_value(json_object_get(part, "text"));
        if (!type || strcmp(type, "text") || !t) {
            wd_buf_free(&b);
            return NULL;
        }
        wd_buf_addf(&b, "%s%s", i ? "\n" : "", t);
    }
    if (!b.p)
        wd_buf_add(&b, "", 0);
    return b.p;
}

/* the messages as the run's history and query (the last one, a user's); 0, or -1 after
** answering 400 naming the message */
static int read_messages(wd_call *c, json_t *msgs, json_t **history, char **query)
{
    size_t n = json_array_size(msgs);
    if (!json_is_array(msgs) || !n || n > MAX_MESSAGES) {
        wd_call_error(c, 400, "messages: a list of 1 to %d messages is required", MAX_MESSAGES);
        return -1;
    }
    *history = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        char *text = text_of(json_object_get(m, "content"));
        int last = i == n - 1;
        if (role && !strcmp(role, "developer"))
            role = "system";
        const char *why = !role ? "has no role"
                          : strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")
                              ? "has a role warden does not take (system, developer, user, assistant): the agent's "
                                "tools are warden's own"
                          : !text                            ? "content must be text (a string, or text parts)"
                          : json_object_get(m, "tool_calls") ? "has tool_calls: the agent's tools are warden's own"
                          : last && strcmp(role, "user")     ? "is the last, and must be the user's"
                                                             : NULL;
        if (why) {
            free(text);
            wd_call_error(c, 400, "messages[%zu] %s", i, why);
            json_decref(*history);
            *history = NULL; /* the caller frees what it was given, and this is gone */
            return -1;
        }
        if (last)
            *query = text;
        else {
            json_array_append_new(*history, json_pack("{s:s,s:s}", "role", role, "content", text));
            free(text);
        }
    }
    return 0;
}

/* the request's other fields, where warden cannot honour them; 0, or -1 answered */
static int read_options(wd_call *c, json_t *o)
{
    json_t *stream = json_object_get(o, "stream"), *n = json_object_get(o, "n"), *tools = json_object_get(o, "tools");
    json_t *rf = json_object_get(o, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    const char *bad = json_is_true(stream)              ? "stream: streaming is not served yet; ask without stream"
                      : n && json_integer_value(n) != 1 ? "n: warden answers with one choice"
                      : json_array_size(tools) ? "tools: the agent's tools are warden's own, set by its script and "
                                                 "the policy"
                      : rf && (!rft || strcmp(rft, "text")) ? "response_format: only {\"type\": \"text\"} is served yet"
                                                            : NULL;
    if (bad)
        wd_call_error(c, 400, "%s", bad);
    return bad ? -1 : 0;
}

typedef struct {
    struct evhttp_request *req; /* NULL: the client went away */
    char model[160];
} chat;

static void on_chat_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((chat *)arg)->req = NULL;
}

/* the run's end, as OpenAI's answer: a chat.completion, or the error its status means */
static void on_chat_end(wd_waiter *w, const json_t *res)
{
    chat *ch = w->ud;
    if (ch->req) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(ch->req), NULL, NULL);
        wd_call c = {.f = w->f, .req = ch->req, .route = "/v1/chat/completions", .oai = 1};
        struct evkeyvalq *h = evhttp_request_get_output_headers(ch->req);
        char cost[64];
        snprintf(cost, sizeof cost, "%.6f", json_number_value(json_object_get(res, "cost_usd")));
        evhttp_add_header(h, "x-warden-run-id", w->run_id);
        evhttp_add_header(h, "x-warden-cost-usd", cost);
        const char *st = json_string_value(json_object_get(res, "status"));
        const char *text = json_string_value(json_object_get(res, "result"));
        const char *err1 = json_string_value(json_array_get(json_object_get(res, "errors"), 0));
        json_t *usage = json_object_get(res, "usage");
        json_int_t in = json_integer_value(json_object_get(usage, "input_tokens"));
        json_int_t out = json_integer_value(json_object_get(usage, "output_tokens"));
        long long retry = json_integer_value(json_object_get(res, "retry_after_ms"));
        if (st && !strcmp(st, "completed")) {
            char id[64];
            snprintf(id, sizeof id, "chatcmpl-%s", w->run_id);
            wd_call_json(&c, 200,
                         json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s,s:n},s:s,s:n}],s:{s:I,s:I,s:I}}", "id", id,
                                   "object", "chat.completion", "created", (json_int_t)time(NULL), "model", ch->model,
                                   "choices", "index", 0, "message", "role", "assistant", "content", text ? text : "",
                                   "refusal", "finish_reason", "stop", "logprobs", "usage", "prompt_tokens", in,
                                   "completion_tokens", out, "total_tokens", in + out));
        } else {
            int code = !st                              ? 500
                       : !strcmp(st, "budget_exceeded") ? 429
                       : !strcmp(st, "rate_limited")    ? 429
                       : !strcmp(st, "unauthorized")    ? 403
                       : !strcmp(st, "killed")          ? 503
                       : !strcmp(st, "timeout")         ? 504
                                                        : 500;
            if (code == 429) {
                char ra[24];
                snprintf(ra, sizeof ra, "%lld", retry > 0 ? (retry + 999) / 1000 : 60);
                evhttp_add_header(h, "Retry-After", ra);
            }
            wd_call_error(&c, code, "the run %s ended %s: %s", w->run_id, st ? st : "?",
                          err1   ? err1
                          : text ? text
                                 : "");
        }
    }
    free(ch);
}

void wd_oai_chat(wd_call *c)
{
    json_t *o = wd_call_body(c), *history = NULL;
    char *query = NULL;
    if (!o)
        return;
    const char *model;
    if (!wd_call_keys(c, o, KEYS, "model, messages and OpenAI's optional fields") ||
        wd_call_opt_string(c, o, "model", &model) < 0 || read_options(c, o) < 0)
        goto done;
    if (!model) {
        wd_call_error(c, 400, "model: the name of an agent is required (GET /v1/models lists them)");
        goto done;
    }
    char *path = wd_api_agent_path(c->f->srv, model);
    if (!path) {
        wd_call_error(c, 404, "The model '%s' does not exist: no agent of that name (GET /v1/models lists them)",
                      model);
        goto done;
    }
    if (read_messages(c, json_object_get(o, "messages"), &history, &query) < 0) {
        free(path);
        goto done;
    }
    const char *session = evhttp_find_header(evhttp_request_get_input_headers(c->req), "x-warden-session");
    if (session && (!*session || strlen(session) > 128)) {
        free(path);
        wd_call_error(c, 400, "x-warden-session: 1 to 128 characters");
        goto done;
    }
    chat *ch = calloc(1, sizeof *ch);
    char *htext = json_array_size(history) ? json_dumps(history, JSON_COMPACT) : NULL;
    wd_waiter *w = ch ? wd_api_run(c, path, query, session, NULL, model, on_chat_end, ch) : NULL;
    if (!w) { /* answered (429, 503), or out of memory */
        if (!ch) {
            free(path);
            wd_call_error(c, 503, "out of memory");
        }
        free(ch);
        free(htext);
        goto done;
    }
    w->history = htext;
    ch->req = c->req;
    wd_strlcpy(ch->model, model, sizeof ch->model);
    evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_chat_gone, ch);
    wd_api_go(c, w); /* may end at once: on_chat_end answers */
done:
    free(query);
    json_decref(history);
    json_decref(o);
}
