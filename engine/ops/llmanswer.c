/* llmanswer.c - an LLM answer as the agent reads it and as the log records it (see
** llmanswer.h) */
#include "llmanswer.h"
#include "jsonlua.h"
#include "redact.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MODEL_TEXT_CHARS 4000        /* of an answer's text in its llm_call record; its length is kept whole */
#define MAX_TOKENS       100000000LL /* more in one call is no model's answer: a malformed one */

/* Range-checks the numbers of a normalized answer (any provider's, or the mock's) before
** they become money: token counts are whole numbers from 0 to MAX_TOKENS, made
** integers. 0, or -1 with msg naming the field and what it held. */
int wd_llm_answer_check(json_t *a, char *msg, size_t n)
{
    static const char *const keys[] = {"input_tokens", "output_tokens"};
    json_t *usage = json_object_get(a, "usage");
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(usage, keys[i]);
        if (!v)
            continue;
        double d = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : -1;
        if (d >= 0 && d <= (double)MAX_TOKENS && d == floor(d)) {
            json_object_set_new(usage, keys[i], json_integer((json_int_t)d));
            continue;
        }
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(msg, n, "malformed answer from the model: usage.%s is %.40s, not a token count from 0 to %lld",
                 keys[i], text ? text : "?", MAX_TOKENS);
        free(text);
        return -1;
    }
    json_t *calls = json_object_get(a, "tool_calls");
    if (calls && !json_is_array(calls)) {
        snprintf(msg, n, "malformed answer from the model: tool_calls is not a list");
        return -1;
    }
    return 0;
}

/* an answer asking for more tool calls than defaults.max_tool_calls_per_answer: the
** agent is given the first ones, the rest are refused and audited. The calls it keeps. */
json_t *wd_llm_answer_cap(wd_run *r, json_t *calls)
{
    size_t want = json_array_size(calls), max = (size_t)r->pol->max_tool_calls_per_answer;
    if (want <= max)
        return json_incref(calls);
    json_t *kept = json_array();
    for (size_t i = 0; i < max; i++)
        json_array_append(kept, json_array_get(calls, i));
    json_t *ev = wd_run_event(r, WD_AE_TOOL_CALLS_REFUSED, 0);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "tool_calls_requested", json_integer((json_int_t)want));
    json_object_set_new(ev, "tool_calls_refused", json_integer((json_int_t)(want - max)));
    char why[200];
    snprintf(why, sizeof why,
             "the answer asked for %zu tool calls; defaults.max_tool_calls_per_answer is %zu: "
             "the rest were refused",
             want, max);
    json_object_set_new(ev, "reason", json_string(why));
    wd_run_audit(r, ev);
    json_array_append_new(r->errors, json_string(why));
    return kept;
}

/* the answer as the agent reads it, pushed on co: {content, tool_calls (calls: at most
** the turn's cap, with ids and decoded arguments), usage, refused_tool_calls, cost_usd,
** model}; all: every call the model asked for */
void wd_llm_answer_push(wd_run *r, lua_State *co, json_t *a, json_t *all, json_t *calls, long long in, long long out,
                        double cost, const char *model)
{
    lua_createtable(co, 0, 5);
    json_t *content = json_object_get(a, "content");
    if (json_is_string(content)) {
        lua_pushlstring(co, json_string_value(content), json_string_length(content));
        lua_setfield(co, -2, "content");
    }
    lua_createtable(co, (int)json_array_size(calls), 0);
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        lua_createtable(co, 0, 3);
        json_t *id = json_object_get(c, "id");
        if (json_is_string(id))
            lua_pushlstring(co, json_string_value(id), json_string_length(id));
        else
            lua_pushfstring(co, "call_%d_%d", r->steps, (int)i + 1);
        lua_setfield(co, -2, "id");
        json_t *nm = json_object_get(c, "name");
        if (json_is_string(nm))
            lua_pushlstring(co, json_string_value(nm), json_string_length(nm));
        else
            lua_pushliteral(co, "");
        lua_setfield(co, -2, "name");
        json_t *args = json_object_get(c, "arguments");
        if (json_is_string(args)) {
            /* providers send arguments as JSON text; junk stays a string and fails validation */
            json_t *parsed = json_loadb(json_string_value(args), json_string_length(args), JSON_ALLOW_NUL, NULL);
            if (parsed) {
                wd_json_push(co, parsed);
                json_decref(parsed);
            } else {
                lua_pushlstring(co, json_string_value(args), json_string_length(args));
            }
        } else if (args) {
            wd_json_push(co, args);
        } else {
            lua_newtable(co);
        }
        lua_setfield(co, -2, "arguments");
        lua_rawseti(co, -2, (lua_Integer)i + 1);
    }
    lua_setfield(co, -2, "tool_calls");
    lua_createtable(co, 0, 2);
    lua_pushinteger(co, in);
    lua_setfield(co, -2, "input_tokens");
    lua_pushinteger(co, out);
    lua_setfield(co, -2, "output_tokens");
    lua_setfield(co, -2, "usage");
    if (json_array_size(all) > json_array_size(calls)) {
        lua_pushinteger(co, (lua_Integer)(json_array_size(all) - json_array_size(calls)));
        lua_setfield(co, -2, "refused_tool_calls");
    }
    lua_pushnumber(co, cost);
    lua_setfield(co, -2, "cost_usd");
    lua_pushstring(co, model);
    lua_setfield(co, -2, "model");
}

/* ** The reasoning trace (docs/safety.md, Audit schema): what the model said, redacted
** before it is cut (a secret across the cut is still found whole) and cut at
** MODEL_TEXT_CHARS characters with its full length kept, and the tool calls it asked
** for, as it asked (the record's redaction and bounds apply to them). */
void wd_llm_answer_trace(wd_run *r, json_t *ev, json_t *a, json_t *all)
{
    json_t *content = json_object_get(a, "content");
    if (json_is_string(content)) {
        int hits = 0, cut = 0;
        size_t len = json_string_length(content);
        char *red = wd_redact_string(r->pol, json_string_value(content), len, &hits);
        const char *text = red ? red : json_string_value(content);
        char *head = wd_utf8_head(text, red ? strlen(red) : len, MODEL_TEXT_CHARS, &cut);
        json_t *t = head ? json_stringn(head, strlen(head)) : NULL;
        json_object_set_new(ev, "model_text", t ? t : json_string("(not valid UTF-8)"));
        json_object_set_new(ev, "model_text_bytes", json_integer((json_int_t)len));
        if (hits)
            json_object_set_new(ev, "sensitive_data", json_integer(hits));
        free(head);
        free(red);
    }
    if (!json_array_size(all))
        return;
    json_t *calls = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(all, i, c)
    {
        json_t *args = json_object_get(c, "arguments"), *parsed = NULL;
        if (json_is_string(args))
            parsed = json_loadb(json_string_value(args), json_string_length(args), JSON_ALLOW_NUL, NULL);
        json_t *nm = json_object_get(c, "name");
        json_array_append_new(calls, json_pack("{s:O?,s:o?}", "name", json_is_string(nm) ? nm : NULL, "arguments",
                                               parsed ? parsed
                                               : args ? json_deep_copy(args)
                                                      : NULL));
    }
    json_object_set_new(ev, "tool_calls", calls);
}

int wd_llm_answer_fits(const wd_schema *s, json_t *a, json_t **out, char *err, size_t n)
{
    *out = NULL;
    json_t *content = json_object_get(a, "content");
    if (!json_is_string(content)) {
        snprintf(err, n, "the answer has no text");
        return -1;
    }
    const char *t = json_string_value(content);
    size_t len = json_string_length(content);
    while (len && (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t'))
        t++, len--;
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == '\t'))
        len--;
    if (len >= 6 && !strncmp(t, "```", 3) && !strncmp(t + len - 3, "```", 3)) { /* a fenced block */
        const char *nl = memchr(t, '\n', len - 3);
        if (nl) {
            len -= (size_t)(nl + 1 - t) + 3;
            t = nl + 1;
            while (len && (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == '\t'))
                len--;
        }
    }
    json_error_t je;
    json_t *v = json_loadb(t, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        snprintf(err, n, "the answer is not JSON (%s, at character %d)", je.text, je.position);
        return -1;
    }
    if (wd_schema_validate(s, v, err, n) < 0) {
        json_decref(v);
        return -1;
    }
    if (len != json_string_length(content)) /* the agent reads the JSON alone */
        json_object_set_new(a, "content", json_stringn(t, len));
    *out = v;
    return 0;
}

size_t wd_llm_answer_correction(json_t *call, json_t *a, const char *err)
{
    json_t *msgs = json_object_get(call, "messages");
    json_t *content = json_object_get(a, "content");
    char fix[700];
    snprintf(fix, sizeof fix,
             "Your answer does not fit the JSON Schema it must: %s. Answer again with JSON only, fitting the "
             "schema.",
             err);
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content",
                                          json_is_string(content) ? json_string_value(content) : ""));
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", fix));
    return json_string_length(content) + strlen(fix);
}
