/* oaistream.c - the OpenAI facade's streamed answers (see oaistream.h) */
#include "oaistream.h"
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *wd_oai_response_object(const char *run_id, const char *model, const char *status, const char *text,
                               json_int_t in, json_int_t out)
{
    char id[64], mid[64];
    snprintf(id, sizeof id, "resp_%s", run_id);
    snprintf(mid, sizeof mid, "msg_%s", run_id);
    int whole = !strcmp(status, "completed");
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:[{s:s,s:s,s:[]}]}],s:{s:I,s:I,s:I},s:n,s:o}", "id", id,
                     "object", "response", "created_at", (json_int_t)time(NULL), "status", status, "model", model,
                     "output", "type", "message", "id", mid, "status", whole ? "completed" : "incomplete", "role",
                     "assistant", "content", "type", "output_text", "text", text, "annotations", "usage",
                     "input_tokens", in, "output_tokens", out, "total_tokens", in + out, "error", "incomplete_details",
                     whole ? json_null() : json_pack("{s:s}", "reason", "max_output_tokens"));
}

/* one event (takes ev): a chat chunk is data alone, a Responses event is named by its type
** and numbered */
static void send_event(wd_oai_stream *s, json_t *ev)
{
    if (!ev)
        return;
    if (s->req) {
        if (s->responses)
            json_object_set_new(ev, "sequence_number", json_integer(s->seq++));
        char *t = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
        struct evbuffer *eb = evbuffer_new();
        if (t && eb) {
            if (s->responses)
                evbuffer_add_printf(eb, "event: %s\n", json_string_value(json_object_get(ev, "type")));
            evbuffer_add_printf(eb, "data: %s\n\n", t);
            evhttp_send_reply_chunk(s->req, eb);
        }
        if (eb)
            evbuffer_free(eb);
        free(t);
    }
    json_decref(ev);
}

static json_t *chunk(wd_oai_stream *s, json_t *delta, const char *finish)
{
    char id[64];
    snprintf(id, sizeof id, "chatcmpl-%s", s->run_id);
    return json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s?,s:n}]}", "id", id, "object", "chat.completion.chunk", "created",
                     (json_int_t)s->created, "model", s->model, "choices", "index", 0, "delta", delta, "finish_reason",
                     finish, "logprobs");
}

static json_t *part(const char *text, size_t len)
{
    return json_pack("{s:s,s:s%,s:[]}", "type", "output_text", "text", text, len, "annotations");
}

/* the message item of a Responses stream, as it stands */
static json_t *item(wd_oai_stream *s, const char *status)
{
    char mid[64];
    snprintf(mid, sizeof mid, "msg_%s", s->run_id);
    json_t *content = json_array();
    if (strcmp(status, "in_progress"))
        json_array_append_new(content, part(s->sent.p ? s->sent.p : "", s->sent.len));
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", mid, "type", "message", "status", status, "role", "assistant",
                     "content", content);
}

/* the 200, the event stream's headers, and the opening events */
static void start(wd_oai_stream *s)
{
    if (s->started || !s->req)
        return;
    s->started = 1;
    struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "x-warden-run-id", s->run_id);
    wd_call_stream_start(s->req);
    wd_metrics_http(s->f->srv->met, s->responses ? "/v1/responses" : "/v1/chat/completions", 200);
    if (!s->responses) {
        send_event(s, chunk(s, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL));
        return;
    }
    json_t *r = wd_oai_response_object(s->run_id, s->model, "completed", "", 0, 0);
    json_object_set_new(r, "status", json_string("in_progress"));
    json_object_set_new(r, "output", json_array());
    json_object_set_new(r, "usage", json_null());
    send_event(s, json_pack("{s:s,s:O}", "type", "response.created", "response", r));
    send_event(s, json_pack("{s:s,s:o}", "type", "response.in_progress", "response", r));
    send_event(s, json_pack("{s:s,s:i,s:o}", "type", "response.output_item.added", "output_index", 0, "item",
                            item(s, "in_progress")));
    char mid[64];
    snprintf(mid, sizeof mid, "msg_%s", s->run_id);
    send_event(s, json_pack("{s:s,s:s,s:i,s:i,s:o}", "type", "response.content_part.added", "item_id", mid,
                            "output_index", 0, "content_index", 0, "part", part("", 0)));
}

void wd_oai_stream_text(wd_oai_stream *s, const char *text, size_t len)
{
    start(s);
    if (!s->req || !len)
        return;
    wd_buf_add(&s->sent, text, len);
    json_t *t = json_stringn(text, len);
    if (!t) /* not UTF-8 (a piece may split a character): the end sends the whole answer's rest */
        return;
    if (!s->responses) {
        send_event(s, chunk(s, json_pack("{s:o}", "content", t), NULL));
        return;
    }
    char mid[64];
    snprintf(mid, sizeof mid, "msg_%s", s->run_id);
    send_event(s, json_pack("{s:s,s:s,s:i,s:i,s:o,s:[]}", "type", "response.output_text.delta", "item_id", mid,
                            "output_index", 0, "content_index", 0, "delta", t, "logprobs"));
}

/* the Responses stream's closing events: the text, the part, the item, the response */
static void responses_end(wd_oai_stream *s, int cut, json_int_t in, json_int_t out)
{
    char mid[64];
    snprintf(mid, sizeof mid, "msg_%s", s->run_id);
    const char *text = s->sent.p ? s->sent.p : "";
    send_event(s, json_pack("{s:s,s:s,s:i,s:i,s:s%,s:[]}", "type", "response.output_text.done", "item_id", mid,
                            "output_index", 0, "content_index", 0, "text", text, s->sent.len, "logprobs"));
    send_event(s, json_pack("{s:s,s:s,s:i,s:i,s:o}", "type", "response.content_part.done", "item_id", mid,
                            "output_index", 0, "content_index", 0, "part", part(text, s->sent.len)));
    send_event(s, json_pack("{s:s,s:i,s:o}", "type", "response.output_item.done", "output_index", 0, "item",
                            item(s, cut ? "incomplete" : "completed")));
    json_t *r = wd_oai_response_object(s->run_id, s->model, cut ? "incomplete" : "completed", text, in, out);
    send_event(s, json_pack("{s:s,s:o}", "type", cut ? "response.incomplete" : "response.completed", "response", r));
}

/* a failure after the reply started: OpenAI's error object as the stream's last word */
static void fail_event(wd_oai_stream *s, const char *st, const char *msg)
{
    char text[700];
    snprintf(text, sizeof text, "the run %s ended %s: %s", s->run_id, st, msg);
    json_t *e = json_pack("{s:s,s:s,s:n,s:s}", "message", text, "type", "server_error", "param", "code", st);
    if (s->responses) {
        json_t *r = wd_oai_response_object(s->run_id, s->model, "completed", "", 0, 0);
        json_object_set_new(r, "status", json_string("failed"));
        json_object_set(r, "error", e);
        send_event(s, json_pack("{s:s,s:o}", "type", "response.failed", "response", r));
        json_decref(e);
    } else {
        send_event(s, json_pack("{s:o}", "error", e));
    }
}

int wd_oai_stream_end(wd_oai_stream *s, const json_t *res)
{
    const char *st = json_string_value(json_object_get(res, "status"));
    const char *text = json_string_value(json_object_get(res, "result"));
    int ok = st && !strcmp(st, "completed"), cut = st && !strcmp(st, "budget_exceeded") && s->started;
    if (!s->started && !ok)
        return 0;
    if (!s->req)
        return 1;
    start(s);
    size_t sent = s->sent.len, tl = text ? strlen(text) : 0;
    if (ok && tl > sent && (!sent || !memcmp(text, s->sent.p, sent))) /* the rest: all of it when none came */
        wd_oai_stream_text(s, text + sent, tl - sent);
    json_t *usage = json_object_get(res, "usage");
    json_int_t in = json_integer_value(json_object_get(usage, "input_tokens"));
    json_int_t out = json_integer_value(json_object_get(usage, "output_tokens"));
    if (!ok && !cut) {
        const char *err1 = json_string_value(json_array_get(json_object_get(res, "errors"), 0));
        fail_event(s, st ? st : "?", err1 ? err1 : "");
    } else if (s->responses) {
        responses_end(s, cut, in, out);
    } else {
        json_t *fin = chunk(s, json_object(), cut ? "length" : "stop");
        json_object_set_new(fin, "warden",
                            json_pack("{s:s,s:s,s:O?}", "run_id", s->run_id, "status", st, "cost_usd",
                                      json_object_get(res, "cost_usd")));
        send_event(s, fin);
        if (s->include_usage) {
            json_t *u = chunk(s, json_object(), NULL);
            json_object_set_new(u, "choices", json_array());
            json_object_set_new(
                u, "usage",
                json_pack("{s:I,s:I,s:I}", "prompt_tokens", in, "completion_tokens", out, "total_tokens", in + out));
            send_event(s, u);
        }
    }
    if (!s->responses) {
        struct evbuffer *eb = evbuffer_new();
        if (eb) {
            evbuffer_add_printf(eb, "data: [DONE]\n\n");
            evhttp_send_reply_chunk(s->req, eb);
            evbuffer_free(eb);
        }
    }
    evhttp_send_reply_end(s->req);
    return 1;
}

void wd_oai_stream_clear(wd_oai_stream *s)
{
    if (s)
        wd_buf_free(&s->sent);
}
