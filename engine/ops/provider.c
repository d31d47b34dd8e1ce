/* provider.c - OpenAI Chat Completions and Anthropic Messages, both ways */
#include "provider.h"
#include "canon.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_VERSION    "2023-06-01"
#define ANTHROPIC_MAX_TOKENS 1024

static const char *default_base(const char *provider)
{
    return !strcmp(provider, "anthropic") ? "https://api.anthropic.com/v1" : "https://api.openai.com/v1";
}

static const char *base_of(const wd_model *m, const char *base_url)
{
    if (base_url && *base_url)
        return base_url;
    return m->base_url && *m->base_url ? m->base_url : default_base(m->provider);
}

void wd_provider_endpoint(const wd_model *m, const char *base_url, char *out, size_t n)
{
    snprintf(out, n, "llm:%s", base_of(m, base_url));
}

/* content as text: a string stays, anything else is its JSON */
static json_t *text_of(json_t *v)
{
    if (json_is_string(v))
        return json_incref(v);
    if (!v || json_is_null(v))
        return json_string("");
    char *s = wd_json_compact_text(v);
    json_t *t = json_string(s ? s : "");
    free(s);
    return t;
}

/* arguments as an object (Anthropic): text that is not a JSON object becomes {} */
static json_t *args_object(json_t *a)
{
    if (json_is_object(a))
        return json_incref(a);
    if (json_is_string(a)) {
        json_t *o = json_loads(json_string_value(a), JSON_ALLOW_NUL, NULL);
        if (json_is_object(o))
            return o;
        json_decref(o);
    }
    return json_object();
}

/* a literal, its length counted by the compiler */
#define LIT(b, s) wd_buf_add((b), (s), sizeof(s) - 1)

static int put_str(wd_buf *b, const char *s) { return wd_json_put_string(b, s, strlen(s)); }

/* v (a string, or null/absent for `absent`, or any value as its compact text) as a
** JSON string */
static int put_as_text(wd_buf *b, const json_t *v, const char *absent)
{
    if (json_is_string(v))
        return wd_json_put_string(b, json_string_value(v), json_string_length(v));
    if (!v || (absent && json_is_null(v)))
        return put_str(b, absent ? absent : "");
    char *t = wd_json_compact_text(v);
    int rc = t ? put_str(b, t) : -1;
    free(t);
    return rc;
}

/* v, or null when absent */
static int put_or_null(wd_buf *b, const json_t *v) { return v ? wd_json_compact(v, b) : LIT(b, "null"); }

/* the call's settings after its messages and tools: temperature, max_tokens,
** response_format, stream (with its usage at the end) */
static int openai_options(const json_t *call, wd_buf *b)
{
    int rc = 0;
    json_t *temp = json_object_get(call, "temperature");
    if (json_is_number(temp)) {
        rc |= LIT(b, ",\"temperature\":");
        rc |= wd_json_compact(temp, b);
    }
    json_t *mt = json_object_get(call, "max_tokens");
    if (json_is_integer(mt)) {
        rc |= LIT(b, ",\"max_tokens\":");
        rc |= wd_json_compact(mt, b);
    }
    json_t *rf = json_object_get(call, "response_format");
    if (rf) {
        rc |= LIT(b, ",\"response_format\":");
        rc |= wd_json_compact(rf, b);
    }
    if (json_is_true(json_object_get(call, "stream"))) /* with its usage at the end */
        rc |= LIT(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    return rc;
}

/* The OpenAI body, written straight from the call (no second tree): model, messages
** (an assistant turn with tool calls gets them as {id, type, function{name,
** arguments as text}}; other turns' content as text; a tool turn its tool_call_id),
** tools as functions, then temperature and max_tokens when given. */
static int openai_text(const wd_model *m, const json_t *call, wd_buf *b)
{
    int rc = LIT(b, "{\"model\":");
    rc |= put_str(b, m->name);
    rc |= LIT(b, ",\"messages\":[");
    const json_t *in = json_object_get(call, "messages"), *msg;
    size_t i;
    json_array_foreach((json_t *)in, i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        if (i)
            rc |= LIT(b, ",");
        rc |= LIT(b, "{\"role\":");
        rc |= put_str(b, role ? role : "user");
        json_t *calls = json_object_get(msg, "tool_calls");
        if (role && !strcmp(role, "assistant") && json_array_size(calls)) {
            json_t *content = json_object_get(msg, "content"), *c;
            rc |= LIT(b, ",\"content\":");
            rc |= json_is_string(content) ? wd_json_compact(content, b) : LIT(b, "null");
            rc |= LIT(b, ",\"tool_calls\":[");
            size_t j;
            json_array_foreach(calls, j, c)
            {
                if (j)
                    rc |= LIT(b, ",");
                rc |= LIT(b, "{\"id\":");
                rc |= put_or_null(b, json_object_get(c, "id"));
                rc |= LIT(b, ",\"type\":\"function\",\"function\":{\"name\":");
                rc |= put_or_null(b, json_object_get(c, "name"));
                rc |= LIT(b, ",\"arguments\":");
                json_t *args = json_object_get(c, "arguments");
                rc |= args ? put_as_text(b, args, NULL) : put_str(b, "{}");
                rc |= LIT(b, "}}");
            }
            rc |= LIT(b, "]");
        } else {
            rc |= LIT(b, ",\"content\":");
            rc |= put_as_text(b, json_object_get(msg, "content"), "");
            if (role && !strcmp(role, "tool")) {
                json_t *id = json_object_get(msg, "tool_call_id");
                rc |= LIT(b, ",\"tool_call_id\":");
                rc |= put_as_text(b, json_is_string(id) ? id : NULL, "");
            }
        }
        rc |= LIT(b, "}");
    }
    rc |= LIT(b, "]");
    json_t *tools = json_object_get(call, "tools"), *t;
    if (json_array_size(tools)) {
        rc |= LIT(b, ",\"tools\":[");
        json_array_foreach(tools, i, t)
        {
            json_t *params = json_object_get(t, "parameters");
            if (i)
                rc |= LIT(b, ",");
            rc |= LIT(b, "{\"type\":\"function\",\"function\":{\"name\":");
            rc |= put_or_null(b, json_object_get(t, "name"));
            rc |= LIT(b, ",\"description\":");
            rc |= put_or_null(b, json_object_get(t, "description"));
            rc |= LIT(b, ",\"parameters\":");
            rc |= params ? wd_json_compact(params, b) : LIT(b, "{\"type\":\"object\"}");
            rc |= LIT(b, "}}");
        }
        rc |= LIT(b, "]");
    }
    rc |= openai_options(call, b);
    rc |= LIT(b, "}");
    return rc ? -1 : 0;
}

/* appends blocks to the last message when it has the same role (Anthropic wants turns
** to alternate) */
static void anth_add(json_t *msgs, const char *role, json_t *blocks)
{
    size_t n = json_array_size(msgs);
    json_t *last = n ? json_array_get(msgs, n - 1) : NULL;
    if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
        json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return;
    }
    json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", role, "content", blocks));
}

static json_t *anthropic_body(const wd_model *m, const json_t *call)
{
    json_t *msgs = json_array(), *in = json_object_get(call, "messages");
    wd_buf system = {0};
    size_t i;
    json_t *msg;
    json_array_foreach(in, i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (role && !strcmp(role, "system")) {
            json_t *t = text_of(content);
            wd_buf_addf(&system, "%s%s", system.len ? "\n\n" : "", json_string_value(t));
            json_decref(t);
            continue;
        }
        json_t *blocks = json_array();
        if (role && !strcmp(role, "tool")) {
            json_t *id = json_object_get(msg, "tool_call_id");
            json_array_append_new(blocks, json_pack("{s:s,s:O?,s:o}", "type", "tool_result", "tool_use_id",
                                                    json_is_string(id) ? id : NULL, "content", text_of(content)));
            anth_add(msgs, "user", blocks);
            continue;
        }
        int assistant = role && !strcmp(role, "assistant");
        if (json_is_string(content) && json_string_length(content))
            json_array_append_new(blocks, json_pack("{s:s,s:O}", "type", "text", "text", content));
        else if (content && !json_is_null(content) && !json_is_string(content))
            json_array_append_new(blocks, json_pack("{s:s,s:o}", "type", "text", "text", text_of(content)));
        json_t *calls = json_object_get(msg, "tool_calls"), *c;
        size_t j;
        if (assistant)
            json_array_foreach(calls, j, c)
            {
                json_array_append_new(blocks, json_pack("{s:s,s:O?,s:O?,s:o}", "type", "tool_use", "id",
                                                        json_object_get(c, "id"), "name", json_object_get(c, "name"),
                                                        "input", args_object(json_object_get(c, "arguments"))));
            }
        if (!json_array_size(blocks))
            json_array_append_new(blocks, json_pack("{s:s,s:s}", "type", "text", "text", "(empty)"));
        anth_add(msgs, assistant ? "assistant" : "user", blocks);
    }
    json_t *schema =
        json_object_get(json_object_get(json_object_get(call, "response_format"), "json_schema"), "schema");
    if (schema) { /* the Messages API has no response_format: the model is told */
        char *st = json_dumps(schema, JSON_COMPACT);
        wd_buf_addf(&system, "%sAnswer with JSON only, no other text, fitting this JSON Schema: %s",
                    system.len ? "\n\n" : "", st ? st : "{}");
        free(st);
    }
    json_t *mt = json_object_get(call, "max_tokens");
    json_t *body = json_pack("{s:s,s:o,s:I}", "model", m->name, "messages", msgs, "max_tokens",
                             json_is_integer(mt) ? json_integer_value(mt) : (json_int_t)ANTHROPIC_MAX_TOKENS);
    if (system.len)
        json_object_set_new(body, "system", json_string(system.p));
    wd_buf_free(&system);
    json_t *tools = json_object_get(call, "tools"), *t;
    if (json_array_size(tools)) {
        json_t *out = json_array();
        json_array_foreach(tools, i, t)
        {
            json_t *params = json_object_get(t, "parameters");
            json_array_append_new(out, json_pack("{s:O?,s:O?,s:O}", "name", json_object_get(t, "name"), "description",
                                                 json_object_get(t, "description"), "input_schema",
                                                 params ? params : json_pack("{s:s}", "type", "object")));
        }
        json_object_set_new(body, "tools", out);
    }
    json_t *temp = json_object_get(call, "temperature");
    if (json_is_number(temp))
        json_object_set(body, "temperature", temp);
    if (json_is_true(json_object_get(call, "stream")))
        json_object_set_new(body, "stream", json_true());
    return body;
}

void wd_provider_request_free(wd_llm_request *q)
{
    if (!q)
        return;
    free(q->url);
    free(q->body);
    for (size_t i = 0; i < q->nheaders; i++) {
        if (q->headers[i]) {
            explicit_bzero(q->headers[i], strlen(q->headers[i]));
            free(q->headers[i]);
        }
    }
    memset(q, 0, sizeof *q);
}

/* "Name: " and its value as one header line */
static int add_header(wd_llm_request *q, const char *name, const char *v)
{
    char *h = NULL;
    if (asprintf(&h, "%s%s", name, v) < 0)
        return -1;
    q->headers[q->nheaders++] = h;
    return 0;
}

int wd_provider_request(const wd_model *m, const char *base_url, const json_t *call, wd_llm_request *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    int anthropic = !strcmp(m->provider, "anthropic");
    if (strcmp(m->provider, "openai") && !anthropic) {
        wd_errf(err, errlen, "model '%s': provider '%s' does not speak HTTP", m->alias, m->provider);
        return -1;
    }
    const char *key = NULL;
    if (m->api_key_env && *m->api_key_env) {
        key = getenv(m->api_key_env);
        if (!key || !*key) {
            wd_errf(err, errlen, "model '%s': the environment variable %s (models.%s.api_key_env) is not set", m->alias,
                    m->api_key_env, m->alias);
            return -1;
        }
    }
    const char *base = base_of(m, base_url);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    if (asprintf(&out->url, "%.*s/%s", (int)bl, base, anthropic ? "messages" : "chat/completions") < 0)
        goto oom;
    wd_buf text = {0};
    if (anthropic) {
        json_t *body = anthropic_body(m, call);
        if (body && wd_json_compact(body, &text) < 0)
            wd_buf_free(&text);
        json_decref(body);
    } else if (openai_text(m, call, &text) < 0) {
        wd_buf_free(&text);
    }
    out->body = text.p;
    if (!out->body)
        goto oom;
    out->body_len = text.len;
    if (add_header(out, "Content-Type: ", "application/json") < 0)
        goto oom;
    if (anthropic) {
        if (add_header(out, "anthropic-version: ", ANTHROPIC_VERSION) < 0)
            goto oom;
        if (key && add_header(out, "x-api-key: ", key) < 0)
            goto oom;
    } else if (key && add_header(out, "Authorization: Bearer ", key) < 0) {
        goto oom;
    }
    return 0;
oom:
    wd_provider_request_free(out);
    wd_errf(err, errlen, "out of memory");
    return -1;
}

/* the normalized answer; token counts as the provider wrote them (0 when absent): the
** engine range-checks them for every provider and the mock alike */
static json_t *answer(json_t *content, json_t *calls, json_t *usage, const char *in_key, const char *out_key)
{
    json_t *in = json_object_get(usage, in_key), *out = json_object_get(usage, out_key);
    json_t *u = json_object();
    json_object_set_new(u, "input_tokens", in ? json_incref(in) : json_integer(0));
    json_object_set_new(u, "output_tokens", out ? json_incref(out) : json_integer(0));
    json_t *a = json_pack("{s:o,s:o}", "tool_calls", calls, "usage", u);
    if (a && content)
        json_object_set_new(a, "content", content);
    else
        json_decref(content);
    return a;
}

static json_t *parse_openai(json_t *root, char *err, size_t errlen)
{
    json_t *choices = json_object_get(root, "choices");
    json_t *msg = json_object_get(json_array_get(choices, 0), "message");
    if (!json_is_object(msg)) {
        wd_errf(err, errlen, "the answer has no choices[0].message");
        return NULL;
    }
    json_t *content = json_object_get(msg, "content");
    if (content && !json_is_string(content) && !json_is_null(content)) {
        wd_errf(err, errlen, "choices[0].message.content is not text");
        return NULL;
    }
    json_t *calls = json_array(), *c;
    size_t i;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, c)
    {
        json_t *f = json_object_get(c, "function");
        json_t *name = json_object_get(f, "name");
        if (!json_is_string(name)) {
            json_decref(calls);
            wd_errf(err, errlen, "choices[0].message.tool_calls[%zu] has no function name", i);
            return NULL;
        }
        json_t *id = json_object_get(c, "id");
        json_t *args = json_object_get(f, "arguments");
        json_array_append_new(calls,
                              json_pack("{s:o,s:O,s:o}", "id",
                                        json_is_string(id) ? json_incref(id) : json_sprintf("call_%zu", i + 1), "name",
                                        name, "arguments", args ? json_incref(args) : json_string("{}")));
    }
    json_t *usage = json_object_get(root, "usage");
    return answer(json_is_string(content) ? json_incref(content) : NULL, calls, usage, "prompt_tokens",
                  "completion_tokens");
}

static json_t *parse_anthropic(json_t *root, char *err, size_t errlen)
{
    json_t *blocks = json_object_get(root, "content");
    if (!json_is_array(blocks)) {
        wd_errf(err, errlen, "the answer has no content blocks");
        return NULL;
    }
    wd_buf text = {0};
    json_t *calls = json_array(), *b;
    size_t i;
    int has_text = 0;
    json_array_foreach(blocks, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type && !strcmp(type, "text") && json_is_string(json_object_get(b, "text"))) {
            wd_buf_adds(&text, json_string_value(json_object_get(b, "text")));
            has_text = 1;
        } else if (type && !strcmp(type, "tool_use")) {
            json_t *name = json_object_get(b, "name");
            if (!json_is_string(name)) {
                wd_buf_free(&text);
                json_decref(calls);
                wd_errf(err, errlen, "content[%zu] (tool_use) has no name", i);
                return NULL;
            }
            json_t *id = json_object_get(b, "id"), *input = json_object_get(b, "input");
            json_array_append_new(calls,
                                  json_pack("{s:o,s:O,s:o}", "id",
                                            json_is_string(id) ? json_incref(id) : json_sprintf("toolu_%zu", i + 1),
                                            "name", name, "arguments", input ? json_incref(input) : json_object()));
        }
    }
    json_t *usage = json_object_get(root, "usage");
    json_t *a =
        answer(has_text ? json_string(text.p ? text.p : "") : NULL, calls, usage, "input_tokens", "output_tokens");
    wd_buf_free(&text);
    return a;
}

json_t *wd_provider_parse(const char *provider, const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) {
        wd_errf(err, errlen, "the answer is not valid JSON (byte %d: %s)", je.position, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        wd_errf(err, errlen, "the answer is not a JSON object");
        return NULL;
    }
    json_t *a = !strcmp(provider, "anthropic") ? parse_anthropic(root, err, errlen) : parse_openai(root, err, errlen);
    json_decref(root);
    if (a && !json_is_string(json_object_get(a, "content")) && !json_array_size(json_object_get(a, "tool_calls"))) {
        json_decref(a);
        wd_errf(err, errlen, "the answer has neither text nor tool calls");
        return NULL;
    }
    return a;
}

void wd_provider_error_text(const char *body, size_t len, char *out, size_t n)
{
    out[0] = '\0';
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *e = json_object_get(root, "error");
    json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
    if (json_is_string(m))
        wd_strlcpy(out, json_string_value(m), n);
    json_decref(root);
    for (char *p = out; *p; p++) /* one line in messages and logs */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

void wd_provider_scrub(const wd_model *m, char *msg)
{
    const char *key = m && m->api_key_env ? getenv(m->api_key_env) : NULL;
    if (!key || strlen(key) < 4)
        return;
    size_t kl = strlen(key);
    char *p;
    while ((p = strstr(msg, key))) {
        static const char R[] = "[REDACTED]";
        size_t rl = sizeof R - 1, tail = strlen(p + kl);
        if (rl <= kl) {
            memcpy(p, R, rl);
            memmove(p + rl, p + kl, tail + 1);
        } else {
            memset(p, '*', kl); /* no room to grow in place */
        }
    }
}
