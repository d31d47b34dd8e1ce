/* oaichat.c - warden serve as OpenAI's API for clients written against it (docs/openai.md):
** POST /v1/chat/completions runs the agent the request names as its model, as the key's
** user, with the request's earlier messages as the run's conversation (wd_run_opts.history)
** and its last user message as the query, and answers with a chat.completion when the run
** ends; GET /v1/models lists the agents. Errors take OpenAI's shape (apicall.c, c->oai). */
#include "oaichat.h"
#include "mcplist.h"
#include "oaistream.h"
#include "schema.h"

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
        if (!type || (strcmp(type, "text") && strcmp(type, "input_text") && strcmp(type, "output_text")) || !t) {
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
static int read_messages(wd_call *c, const char *field, json_t *msgs, json_t **history, char **query)
{
    size_t n = json_array_size(msgs);
    if (!json_is_array(msgs) || !n || n > MAX_MESSAGES) {
        wd_call_error(c, 400, "%s: a list of 1 to %d messages is required", field, MAX_MESSAGES);
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
            wd_call_error(c, 400, "%s[%zu] %s", field, i, why);
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
    json_t *rf = json_object_get(o, "response_format"), *so = json_object_get(o, "stream_options");
    json_t *iu = json_object_get(so, "include_usage");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    const char *bad =
        stream && !json_is_boolean(stream) ? "stream must be true or false"
        : so && (!json_is_object(so) || (iu && !json_is_boolean(iu)))
            ? "stream_options must be {\"include_usage\": true or false}"
        : n && json_integer_value(n) != 1 ? "n: warden answers with one choice"
        : json_array_size(tools)          ? "tools: the agent's tools are warden's own, set by its script and "
                                            "the policy"
        : rf && (!rft || (strcmp(rft, "text") && strcmp(rft, "json_schema") && strcmp(rft, "json_object")))
            ? "response_format: type must be text, json_schema or json_object"
            : NULL;
    if (bad)
        wd_call_error(c, 400, "%s", bad);
    return bad ? -1 : 0;
}

typedef struct {
    struct evhttp_request *req; /* NULL: the client went away */
    char model[160];
    int responses; /* answered as a Responses API response, not a chat.completion */
    int stream;    /* answered as events while the run goes (oaistream.h) */
    wd_oai_stream st;
    wd_engine *e; /* the worker's, which runs it */
    char run_id[37];
} chat;

/* The client went away. A stream's run is ended (killed): nobody reads what it would
** spend. The run's end may come at once and free ch. */
static void on_chat_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    chat *ch = arg;
    ch->req = ch->st.req = NULL;
    if (ch->stream)
        wd_engine_cancel(ch->e, ch->run_id, "the client closed the stream");
}

/* a piece of the model's answer, to a streaming client */
static void on_chat_text(wd_waiter *w, const char *text, size_t len)
{
    chat *ch = w->ud;
    if (ch->req)
        wd_oai_stream_text(&ch->st, text, len);
}

/* the run's end, as OpenAI's answer: a chat.completion, or the error its status means */
static void on_chat_end(wd_waiter *w, const json_t *res)
{
    chat *ch = w->ud;
    if (ch->req)
        evhttp_connection_set_closecb(evhttp_request_get_connection(ch->req), NULL, NULL);
    if (ch->req && !(ch->stream && wd_oai_stream_end(&ch->st, res))) {
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
        if (st && !strcmp(st, "completed") && ch->responses) {
            c.route = "/v1/responses";
            wd_call_json(&c, 200, wd_oai_response_object(w->run_id, ch->model, "completed", text ? text : "", in, out));
        } else if (st && !strcmp(st, "completed")) {
            char id[64];
            snprintf(id, sizeof id, "chatcmpl-%s", w->run_id);
            wd_call_json(&c, 200,
                         json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s,s:n},s:s,s:n}],s:{s:I,s:I,s:I}}", "id", id,
                                   "object", "chat.completion", "created", (json_int_t)time(NULL), "model", ch->model,
                                   "choices", "index", 0, "message", "role", "assistant", "content", text ? text : "",
                                   "refusal", "finish_reason", "stop", "logprobs", "usage", "prompt_tokens", in,
                                   "completion_tokens", out, "total_tokens", in + out));
        } else {
            int code = !st                                ? 500
                       : !strcmp(st, "budget_exceeded")   ? 429
                       : !strcmp(st, "rate_limited")      ? 429
                       : !strcmp(st, "unauthorized")      ? 403
                       : !strcmp(st, "killed")            ? 503
                       : !strcmp(st, "store_unavailable") ? 503
                       : !strcmp(st, "timeout")           ? 504
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
    wd_oai_stream_clear(&ch->st);
    free(ch);
}

/* the agent's run for c, answered when it ends (responses: in the Responses API's shape);
** takes path */
static void start_run(wd_call *c, char *path, const char *model, json_t *history, const char *query, int responses,
                      json_t *o, char *schema)
{
    const char *session = evhttp_find_header(evhttp_request_get_input_headers(c->req), "x-warden-session");
    if (session && (!*session || strlen(session) > 128)) {
        free(path);
        free(schema);
        wd_call_error(c, 400, "x-warden-session: 1 to 128 characters");
        return;
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
        free(schema);
        return;
    }
    w->history = htext;
    w->output_schema = schema; /* taken */
    ch->req = c->req;
    ch->responses = responses;
    wd_strlcpy(ch->model, model, sizeof ch->model);
    ch->e = c->f->e;
    wd_strlcpy(ch->run_id, w->run_id, sizeof ch->run_id);
    if ((ch->stream = json_is_true(json_object_get(o, "stream")))) {
        w->on_text = on_chat_text;
        ch->st = (wd_oai_stream){.f = c->f, .req = c->req, .responses = responses, .created = (long long)time(NULL)};
        ch->st.include_usage = json_is_true(json_object_get(json_object_get(o, "stream_options"), "include_usage"));
        wd_strlcpy(ch->st.run_id, w->run_id, sizeof ch->st.run_id);
        wd_strlcpy(ch->st.model, model, sizeof ch->st.model);
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_chat_gone, ch);
    wd_api_go(c, w); /* may end at once: on_chat_end answers */
}

/* ** A client's structured output: response_format {type: json_schema, json_schema:
** {schema}} (the Responses API's text.format {type: json_schema, schema}), or
** json_object; the schema, checked by warden's validator, becomes the run's
** output_schema (text into *out, caller frees; NULL for none). 0, or -1 answered 400 */
static int output_schema(wd_call *c, json_t *f, const char *field, char **out)
{
    *out = NULL;
    const char *type = json_string_value(json_object_get(f, "type"));
    if (!f || !type || !strcmp(type, "text"))
        return 0;
    json_t *inner = json_object_get(f, "json_schema"), *schema = json_object_get(inner ? inner : f, "schema");
    json_t *own = !strcmp(type, "json_object") ? json_pack("{s:s}", "type", "object") : json_incref(schema);
    char err[300];
    wd_schema *check = json_is_object(own) ? wd_schema_compile(own, err, sizeof err) : NULL;
    if (!check) {
        wd_call_error(c, 400, "%s%s: %s", field, inner ? ".json_schema.schema" : ".schema",
                      json_is_object(own) ? err : "a JSON Schema object is required");
        json_decref(own);
        return -1;
    }
    wd_schema_free(check);
    *out = json_dumps(own, JSON_COMPACT);
    json_decref(own);
    return 0;
}

/* the agent the request names as its model: its path (caller frees), or NULL answered */
static char *model_path(wd_call *c, const char *model)
{
    if (!model) {
        wd_call_error(c, 400, "model: the name of an agent is required (GET /v1/models lists them)");
        return NULL;
    }
    char *path = wd_api_agent_path(c->f->srv, model);
    if (!path)
        wd_call_error(c, 404, "The model '%s' does not exist: no agent of that name (GET /v1/models lists them)",
                      model);
    return path;
}

void wd_oai_chat(wd_call *c)
{
    json_t *o = wd_call_body(c), *history = NULL;
    char *query = NULL, *path = NULL;
    if (!o)
        return;
    const char *model;
    if (!wd_call_keys(c, o, KEYS, "model, messages and OpenAI's optional fields") ||
        wd_call_opt_string(c, o, "model", &model) < 0 || read_options(c, o) < 0 || !(path = model_path(c, model)))
        goto done;
    char *schema = NULL;
    if (output_schema(c, json_object_get(o, "response_format"), "response_format", &schema) < 0 ||
        read_messages(c, "messages", json_object_get(o, "messages"), &history, &query) < 0) {
        free(path);
        free(schema);
        goto done;
    }
    start_run(c, path, model, history, query, 0, o, schema);
done:
    free(query);
    json_decref(history);
    json_decref(o);
}

static const char *const RESPONSE_KEYS[] = {"model",
                                            "input",
                                            "instructions",
                                            "stream",
                                            "temperature",
                                            "top_p",
                                            "max_output_tokens",
                                            "metadata",
                                            "store",
                                            "user",
                                            "tools",
                                            "tool_choice",
                                            "parallel_tool_calls",
                                            "text",
                                            "reasoning",
                                            "truncation",
                                            "include",
                                            "service_tier",
                                            "previous_response_id",
                                            NULL};

/* the Responses API's input (text, or a list of messages) as chat messages (a new
** array), or NULL answered 400 naming the item */
static json_t *input_messages(wd_call *c, json_t *o)
{
    json_t *input = json_object_get(o, "input");
    json_t *msgs = json_array();
    if (json_is_string(input)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", input));
        return msgs;
    }
    if (!json_is_array(input)) {
        wd_call_error(c, 400, "input: text, or a list of messages, is required");
        goto fail;
    }
    size_t i;
    json_t *m;
    json_array_foreach(input, i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        if (type && strcmp(type, "message")) {
            wd_call_error(c, 400, "input[%zu] is a %.40s: warden takes messages (the agent's tools are warden's own)",
                          i, type);
            goto fail;
        }
        json_array_append_new(msgs, json_pack("{s:O?,s:O?}", "role", json_object_get(m, "role"), "content",
                                              json_object_get(m, "content")));
    }
    return msgs;
fail:
    json_decref(msgs);
    return NULL;
}

void wd_oai_responses(wd_call *c)
{
    json_t *o = wd_call_body(c), *history = NULL, *msgs = NULL;
    char *query = NULL, *path = NULL;
    if (!o)
        return;
    const char *model;
    json_t *fmt = json_object_get(json_object_get(o, "text"), "format");
    const char *ft = json_string_value(json_object_get(fmt, "type"));
    json_t *instr = json_object_get(o, "instructions");
    const char *bad = instr && !json_is_string(instr) ? "instructions must be text"
                      : json_object_get(o, "stream") && !json_is_boolean(json_object_get(o, "stream"))
                          ? "stream must be true or false"
                      : json_array_size(json_object_get(o, "tools"))
                          ? "tools: the agent's tools are warden's own, set by its script and the policy"
                      : fmt && (!ft || (strcmp(ft, "text") && strcmp(ft, "json_schema") && strcmp(ft, "json_object")))
                          ? "text.format: type must be text, json_schema or json_object"
                      : json_object_get(o, "previous_response_id")
                          ? "previous_response_id: warden keeps no responses; send the conversation as input"
                          : NULL;
    if (!wd_call_keys(c, o, RESPONSE_KEYS, "model, input and the Responses API's optional fields") ||
        wd_call_opt_string(c, o, "model", &model) < 0)
        goto done;
    if (bad) {
        wd_call_error(c, 400, "%s", bad);
        goto done;
    }
    if (!(path = model_path(c, model)))
        goto done;
    char *schema = NULL;
    if (output_schema(c, fmt, "text.format", &schema) < 0 || !(msgs = input_messages(c, o)) ||
        read_messages(c, "input", msgs, &history, &query) < 0) {
        free(path);
        free(schema);
        goto done;
    }
    if (json_is_string(instr)) /* the client's instructions, after the agent's prompt */
        json_array_insert_new(history, 0, json_pack("{s:s,s:O}", "role", "system", "content", instr));
    start_run(c, path, model, history, query, 1, o, schema);
done:
    free(query);
    json_decref(history);
    json_decref(msgs);
    json_decref(o);
}
