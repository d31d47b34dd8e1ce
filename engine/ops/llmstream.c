/* llmstream.c - a streamed LLM answer parsed as it arrives (see llmstream.h) */
#include "llmstream.h"
#include "provider.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CALLS 1024 /* tool calls one streamed answer may assemble (indexes 0..1023) */

typedef struct slot {
    char *id;
    wd_buf name, args;
    int used;
} slot;

struct wd_llm_stream {
    int anthropic;
    int mode; /* 0 not known yet, 1 events, 2 one JSON document (the server did not stream) */
    size_t max_bytes, fed;
    wd_llm_delta_fn fn;
    void *ud;
    wd_buf line, data; /* the line being read; the event's data lines */
    int has_data;
    long events;
    wd_buf text;
    int has_text;
    slot *calls;
    size_t ncalls;
    int done; /* the provider said the answer is whole */
    long long in, out;
    wd_buf raw;
};

wd_llm_stream *wd_llm_stream_new(const char *provider, size_t max_bytes, wd_llm_delta_fn fn, void *ud)
{
    wd_llm_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->anthropic = provider && !strcmp(provider, "anthropic");
    s->max_bytes = max_bytes;
    s->fn = fn;
    s->ud = ud;
    s->in = s->out = -1;
    return s;
}

void wd_llm_stream_free(wd_llm_stream *s)
{
    if (!s)
        return;
    wd_buf_free(&s->line);
    wd_buf_free(&s->data);
    wd_buf_free(&s->text);
    wd_buf_free(&s->raw);
    for (size_t i = 0; i < s->ncalls; i++) {
        free(s->calls[i].id);
        wd_buf_free(&s->calls[i].name);
        wd_buf_free(&s->calls[i].args);
    }
    free(s->calls);
    free(s);
}

/* the slot of tool call i, made on first use; NULL past MAX_CALLS or out of memory */
static slot *slot_at(wd_llm_stream *s, json_int_t i)
{
    if (i < 0 || i >= MAX_CALLS)
        return NULL;
    if ((size_t)i >= s->ncalls) {
        slot *n = realloc(s->calls, ((size_t)i + 1) * sizeof *n);
        if (!n)
            return NULL;
        memset(n + s->ncalls, 0, ((size_t)i + 1 - s->ncalls) * sizeof *n);
        s->calls = n;
        s->ncalls = (size_t)i + 1;
    }
    s->calls[i].used = 1;
    return &s->calls[i];
}

/* a piece told to the callback, then kept: 0, 1 stopped, -1 out of memory */
static int piece(wd_llm_stream *s, wd_delta_kind kind, wd_buf *into, const json_t *v)
{
    if (!json_is_string(v) || !json_string_length(v))
        return 0;
    if (s->fn && s->fn(s->ud, kind, json_string_value(v), json_string_length(v)))
        return 1;
    if (kind == WD_DELTA_TEXT)
        s->has_text = 1;
    return wd_buf_add(into, json_string_value(v), json_string_length(v));
}

/* a count as told: a negative one is kept as -2 (-1 means untold), a huge one capped,
** for the engine's range check to refuse */
static void set_tokens(long long *at, const json_t *v)
{
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v);
    else
        return;
    *at = d < 0 ? -2 : d > 1e18 ? (long long)1e18 : (long long)d;
}

static int openai_calls(wd_llm_stream *s, json_t *calls, char *err, size_t errlen)
{
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_t *ix = json_object_get(c, "index");
        slot *t = slot_at(s, json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)i);
        if (!t) {
            wd_errf(err, errlen, "event %ld: tool_calls[%zu].index is not a number from 0 to %d", s->events, i,
                    MAX_CALLS - 1);
            return -1;
        }
        json_t *id = json_object_get(c, "id"), *f = json_object_get(c, "function");
        if (json_is_string(id) && json_string_length(id)) {
            free(t->id);
            t->id = wd_strdup(json_string_value(id));
        }
        int rc = piece(s, WD_DELTA_TOOL, &t->name, json_object_get(f, "name"));
        if (rc == 0)
            rc = piece(s, WD_DELTA_TOOL, &t->args, json_object_get(f, "arguments"));
        if (rc)
            return rc;
    }
    return 0;
}

static int openai_event(wd_llm_stream *s, json_t *ev, char *err, size_t errlen)
{
    json_t *usage = json_object_get(ev, "usage");
    if (json_is_object(usage)) {
        set_tokens(&s->in, json_object_get(usage, "prompt_tokens"));
        set_tokens(&s->out, json_object_get(usage, "completion_tokens"));
    }
    json_t *choice = json_array_get(json_object_get(ev, "choices"), 0);
    json_t *delta = json_object_get(choice, "delta");
    json_t *content = json_object_get(delta, "content");
    if (content && !json_is_string(content) && !json_is_null(content)) {
        wd_errf(err, errlen, "event %ld: choices[0].delta.content is not text", s->events);
        return -1;
    }
    int rc = piece(s, WD_DELTA_TEXT, &s->text, content);
    if (rc == 0 && json_is_array(json_object_get(delta, "tool_calls")))
        rc = openai_calls(s, json_object_get(delta, "tool_calls"), err, errlen);
    if (rc == 0 && json_is_string(json_object_get(choice, "finish_reason")))
        s->done = 1; /* [DONE], and the usage chunk asked for, may still follow */
    return rc;
}

static int anthropic_event(wd_llm_stream *s, json_t *ev, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (!type)
        return 0;
    if (!strcmp(type, "message_start")) {
        json_t *u = json_object_get(json_object_get(ev, "message"), "usage");
        set_tokens(&s->in, json_object_get(u, "input_tokens"));
        set_tokens(&s->out, json_object_get(u, "output_tokens"));
    } else if (!strcmp(type, "message_delta")) {
        json_t *u = json_object_get(ev, "usage");
        set_tokens(&s->out, json_object_get(u, "output_tokens"));
        if (json_object_get(u, "input_tokens"))
            set_tokens(&s->in, json_object_get(u, "input_tokens"));
    } else if (!strcmp(type, "message_stop")) {
        s->done = 1;
    } else if (!strcmp(type, "content_block_start") || !strcmp(type, "content_block_delta")) {
        json_t *ix = json_object_get(ev, "index");
        int start = type[14] == 's';
        json_t *b = json_object_get(ev, start ? "content_block" : "delta");
        const char *bt = json_string_value(json_object_get(b, "type"));
        if (!bt)
            return 0;
        if (!strcmp(bt, "text") || !strcmp(bt, "text_delta"))
            return piece(s, WD_DELTA_TEXT, &s->text, json_object_get(b, "text"));
        if (strcmp(bt, "tool_use") && strcmp(bt, "input_json_delta"))
            return 0; /* thinking and other blocks are not the answer */
        slot *t = json_is_integer(ix) ? slot_at(s, json_integer_value(ix)) : NULL;
        if (!t) {
            wd_errf(err, errlen, "event %ld: %s.index is not a number from 0 to %d", s->events, type, MAX_CALLS - 1);
            return -1;
        }
        if (!start)
            return piece(s, WD_DELTA_TOOL, &t->args, json_object_get(b, "partial_json"));
        json_t *id = json_object_get(b, "id");
        if (json_is_string(id)) {
            free(t->id);
            t->id = wd_strdup(json_string_value(id));
        }
        return piece(s, WD_DELTA_TOOL, &t->name, json_object_get(b, "name"));
    }
    return 0;
}

/* one event's data: 0, 1 stopped, -1 err */
static int dispatch(wd_llm_stream *s, char *err, size_t errlen)
{
    s->events++;
    const char *d = s->data.p ? s->data.p : "";
    if (!strcmp(d, "[DONE]")) {
        s->done = 1;
        return 0;
    }
    json_error_t je;
    json_t *ev = json_loadb(d, s->data.len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(ev)) {
        json_decref(ev);
        wd_errf(err, errlen, "event %ld of the stream is not a JSON object (%.100s)", s->events, je.text);
        return -1;
    }
    json_t *e = json_object_get(ev, "error");
    if (e || (json_is_string(json_object_get(ev, "type")) &&
              !strcmp(json_string_value(json_object_get(ev, "type")), "error"))) {
        json_t *m = json_object_get(e, "message");
        wd_errf(err, errlen, "the stream reported an error: %.300s",
                json_is_string(m) ? json_string_value(m) : "(no message)");
        json_decref(ev);
        return -1;
    }
    int rc = s->anthropic ? anthropic_event(s, ev, err, errlen) : openai_event(s, ev, err, errlen);
    json_decref(ev);
    return rc;
}

/* one line of the event stream (without its end); 0, 1 stopped, -1 err */
static int stream_line(wd_llm_stream *s, const char *l, size_t n, char *err, size_t errlen)
{
    if (n && l[n - 1] == '\r')
        n--;
    if (!n) {
        if (!s->has_data)
            return 0;
        int rc = dispatch(s, err, errlen);
        s->data.len = 0;
        if (s->data.p)
            s->data.p[0] = '\0';
        s->has_data = 0;
        return rc;
    }
    if (n < 5 || memcmp(l, "data:", 5))
        return 0; /* event:, id:, retry: and comments say nothing the data does not */
    const char *v = l + 5;
    if (v < l + n && *v == ' ')
        v++;
    if ((s->has_data && wd_buf_add(&s->data, "\n", 1) < 0) || wd_buf_add(&s->data, v, (size_t)(l + n - v)) < 0) {
        wd_errf(err, errlen, "out of memory");
        return -1;
    }
    s->has_data = 1;
    return 0;
}

int wd_llm_stream_feed(wd_llm_stream *s, const char *p, size_t n, char *err, size_t errlen)
{
    s->fed += n;
    if (s->fed > s->max_bytes) {
        wd_errf(err, errlen, "the streamed answer passed %zu bytes", s->max_bytes);
        return -1;
    }
    if (!s->mode) { /* the first byte that is not white space says what the server sends */
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
            i++;
        if (i < n)
            s->mode = p[i] == '{' ? 2 : 1;
    }
    if (s->mode == 2) {
        if (wd_buf_add(&s->raw, p, n) < 0) {
            wd_errf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (wd_buf_add(&s->line, p, k) < 0) {
            wd_errf(err, errlen, "out of memory");
            return -1;
        }
        if (!nl)
            return 0;
        int rc = stream_line(s, s->line.p ? s->line.p : "", s->line.len, err, errlen);
        s->line.len = 0;
        if (rc)
            return rc;
        p = nl + 1;
    }
    return 0;
}

static json_t *assembled(wd_llm_stream *s, char *err, size_t errlen)
{
    json_t *calls = json_array();
    for (size_t i = 0; i < s->ncalls; i++) {
        slot *t = &s->calls[i];
        if (!t->used)
            continue;
        if (!t->name.len) {
            json_decref(calls);
            wd_errf(err, errlen, "the streamed tool call %zu has no name", i);
            return NULL;
        }
        json_t *c = json_pack("{s:o,s:s%,s:s%}", "id", t->id ? json_string(t->id) : json_sprintf("call_%zu", i + 1),
                              "name", t->name.p, t->name.len, "arguments", t->args.len ? t->args.p : "{}",
                              t->args.len ? t->args.len : 2);
        if (!c) {
            json_decref(calls);
            wd_errf(err, errlen, "the streamed tool call %zu is not valid UTF-8", i);
            return NULL;
        }
        json_array_append_new(calls, c);
    }
    json_t *a = json_pack("{s:o}", "tool_calls", calls);
    if (s->has_text) {
        json_t *t = json_stringn(s->text.p, s->text.len);
        if (!t) {
            json_decref(a);
            wd_errf(err, errlen, "the streamed text is not valid UTF-8");
            return NULL;
        }
        json_object_set_new(a, "content", t);
    }
    if (!s->has_text && !json_array_size(calls)) {
        json_decref(a);
        wd_errf(err, errlen, "the answer has neither text nor tool calls");
        return NULL;
    }
    return a;
}

json_t *wd_llm_stream_finish(wd_llm_stream *s, char *err, size_t errlen)
{
    if (s->mode == 2) { /* one document: the server did not stream */
        json_t *a =
            wd_provider_parse(s->anthropic ? "anthropic" : "openai", s->raw.p ? s->raw.p : "", s->raw.len, err, errlen);
        json_t *u = json_object_get(a, "usage");
        if (u) {
            set_tokens(&s->in, json_object_get(u, "input_tokens"));
            set_tokens(&s->out, json_object_get(u, "output_tokens"));
            json_object_del(a, "usage");
        }
        return a;
    }
    if (s->line.len) { /* a last line without its end */
        int rc = stream_line(s, s->line.p, s->line.len, err, errlen);
        s->line.len = 0;
        if (rc < 0)
            return NULL;
    }
    if (s->has_data && dispatch(s, err, errlen) < 0)
        return NULL;
    s->has_data = 0;
    if (!s->done) {
        wd_errf(err, errlen, "the stream ended before the answer did (after %ld events)", s->events);
        return NULL;
    }
    return assembled(s, err, errlen);
}

const char *wd_llm_stream_text(const wd_llm_stream *s, size_t *len)
{
    *len = s->text.len;
    return s->has_text ? s->text.p : NULL;
}

void wd_llm_stream_usage(const wd_llm_stream *s, long long *in, long long *out, int *raw)
{
    *in = s->in;
    *out = s->out;
    if (raw)
        *raw = s->mode == 2;
}
