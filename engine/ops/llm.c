/* llm.c - a ctx:llm call on the loop (see llm.h). Each attempt is played from the mock
** scenario or sent over HTTP; an attempt's outcome goes through one function that
** retries transient failures after a loop timer and, at the end, updates the breaker,
** audits the call and resumes the agent. */
#include "llm.h"
#include "ask.h"
#include "llmpriv.h"
#include "jsonlua.h"
#include "llmanswer.h"
#include "llmstream.h"
#include "budget.h"
#include "settle.h"
#include "mock.h"
#include "provider.h"
#include "canon.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLM_MAX_BODY (8u << 20)

typedef struct outcome {
    int ok;
    json_t *answer; /* normalized, when ok */
    char msg[600];
    int transient, timeout;
    int breaker_failure; /* says the endpoint is unwell (not a 4xx of ours) */
    long long retry_after_ms;
} outcome;

static void attempt(wd_run *r);

static const char *model_name(wd_run *r)
{
    return r->call->model ? r->call->model->name : (r->call->alias ? r->call->alias : "default");
}

/* the server every model is sent to (--llm URL), or NULL */
static const char *llm_url(const wd_run *r)
{
    if (r->llm && (!strncmp(r->llm, "http://", 7) || !strncmp(r->llm, "https://", 8)))
        return r->llm;
    return NULL;
}

static void call_clear(wd_run *r)
{
    json_decref(r->call->call);
    r->call->call = NULL;
    wd_provider_request_free(&r->call->hreq);
    free(r->call->alias);
    r->call->alias = NULL;
    r->call->active = 0;
    r->call->admitted = 0;
    r->call->probe = 0;
    r->call->breaker[0] = '\0';
    r->call->cache_key[0] = '\0';
    r->call->cached = 0;
    r->call->saved_usd = 0;
    wd_llm_stream_free(r->call->ls);
    r->call->ls = NULL;
    r->call->stream = r->call->limited = r->call->cut = 0;
    r->call->counted = 0;
    r->call->texted = 0;
    r->call->broke = 0;
    r->call->stream_err[0] = r->call->limit_msg[0] = '\0';
    wd_schema_free(r->call->format);
    r->call->format = NULL;
    json_decref(r->call->convo);
    r->call->convo = NULL;
    json_decref(r->call->output);
    r->call->output = NULL;
    r->call->fixes_left = 0;
}

static json_t *llm_event(wd_run *r, int success, long long latency);

/* ** What a stream that ended short sent is paid for: its input (the provider's count, or
** the estimate) and the output counted so far go into its call's record ev, with their
** cost and the text so far, and into the run's tokens. The cost. */
static double stream_paid(wd_run *r, json_t *ev)
{
    wd_llm_state *c = r->call;
    long long in, out;
    wd_llm_stream_usage(c->ls, &in, &out, NULL);
    double in_tokens = in >= 0 ? (double)in : c->in_est;
    double cost = wd_model_cost(c->model, in_tokens, (double)c->counted);
    json_object_set_new(ev, "input_tokens", json_integer((json_int_t)in_tokens));
    json_object_set_new(ev, "output_tokens", json_integer(c->counted));
    json_object_set_new(ev, "cost_usd", json_real(cost));
    json_object_set_new(ev, "message_count", json_integer(r->req.nmessages));
    size_t tl;
    const char *text = wd_llm_stream_text(c->ls, &tl);
    json_t *partial = text ? json_pack("{s:s%}", "content", text, tl) : NULL;
    if (partial)
        wd_llm_answer_trace(r, ev, partial, NULL);
    json_decref(partial);
    r->tokens_in += (long long)in_tokens;
    r->tokens_out += c->counted;
    return cost;
}

/* abandons the call in flight (the run ends): no resume, the probe slot freed. A stream
** cut short this way still paid for what it sent: that is spent and audited. */
static void llm_cancel(wd_run *r, const char *why)
{
    wd_llm_state *c = r->call;
    if (!c || !c->active)
        return;
    wd_http_cancel(c->http);
    c->http = NULL;
    if (c->admitted && c->probe)
        wd_breakers_release(r->eng->breakers, c->breaker);
    double cost = 0;
    if (c->stream && c->ls && c->counted) {
        json_t *ev = llm_event(r, 0, (wd_now_ns() - r->req.t0) / 1000000);
        json_object_set_new(ev, "error", json_string(why ? why : "the run ended"));
        cost = stream_paid(r, ev);
        r->cost += cost;
        wd_run_audit(r, ev);
    }
    wd_budget_settle(r, &r->llm_hold, cost);
    call_clear(r);
}

static json_t *llm_event(wd_run *r, int success, long long latency)
{
    json_t *ev = wd_run_event(r, WD_AE_LLM_CALL, success);
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "model", json_string(model_name(r)));
    json_object_set_new(ev, "latency_ms", json_integer(latency));
    json_object_set_new(ev, "retry_count", json_integer(r->call->retries));
    if (r->call->breaker[0]) /* none when the call failed before it had an endpoint */
        json_object_set_new(ev, "circuit_breaker_state",
                            json_string(wd_breaker_state_name(wd_breakers_state(r->eng->breakers, r->call->breaker))));
    return ev;
}

/* the call failed for good: audited, (nil, msg) to the agent */
static void fail(wd_run *r, const char *msg, int timeout, const char *reason, int breaker_ok)
{
    long long latency = (wd_now_ns() - r->req.t0) / 1000000;
    json_t *ev = llm_event(r, 0, latency);
    json_object_set_new(ev, "error", json_string(msg));
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    json_array_append_new(r->errors, json_string(msg));
    r->last_fail_timeout = timeout;
    double cost = r->call->broke ? stream_paid(r, ev) : 0; /* a stream that broke off: what it sent */
    wd_settle st = {.record = ev,
                    .cost = cost,
                    .hold = &r->llm_hold, /* no answer: nothing spent but what a stream sent */
                    .breaker = r->call->breaker,
                    .admitted = &r->call->admitted,
                    .probe = r->call->probe,
                    .ok = breaker_ok,
                    .state_in_record = 1,
                    .breaker_first = 1,
                    .model = model_name(r),
                    .observe = r->det ? json_pack("{s:s,s:s,s:b,s:s}", "type", "llm_call", "model", model_name(r),
                                                  "success", 0, "error", msg)
                                      : NULL,
                    .co = r->waiting,
                    .fail = msg,
                    .clear = call_clear};
    wd_run_settle(r, &st);
}

/* what the settle pushes for an answer: the tool calls capped (their refusal audited
** after the call), the detectors told, the answer as the agent reads it */
typedef struct answer {
    json_t *a, *all;
    long long in, out;
    double cost;
} answer;

static int push_delivered(wd_run *r, lua_State *co, void *ud)
{
    answer *an = ud;
    json_t *calls = wd_llm_answer_cap(r, an->all);
    if (r->det) {
        json_t *de =
            json_pack("{s:s,s:s,s:b,s:I,s:I,s:f}", "type", "llm_call", "model", model_name(r), "success", 1,
                      "input_tokens", (json_int_t)an->in, "output_tokens", (json_int_t)an->out, "cost_usd", an->cost);
        json_t *content = json_object_get(an->a, "content");
        if (de && json_is_string(content))
            json_object_set(de, "content", content);
        if (de && json_is_array(calls))
            json_object_set(de, "tool_calls", calls);
        wd_run_observe(r, de);
    }
    wd_llm_answer_push(r, co, an->a, an->all, calls, an->in, an->out, an->cost, model_name(r));
    if (r->call->output) { /* a structured answer, parsed */
        wd_json_push(co, r->call->output);
        lua_setfield(co, -2, "output");
    }
    json_decref(calls);
    return 1;
}

static void send_call(wd_run *r);
static void looked_up(wd_run *r);
static void admit_call(wd_run *r);

/* ** An answer that does not fit its schema, with corrective asks left: it is paid and
** audited like any (llm_call, reason "schema", its error), then the model is shown it
** and what is wrong and asked again, the same step of the run. */
static void correct(wd_run *r, json_t *a, const answer *an, const char *err)
{
    wd_llm_state *c = r->call;
    char msg[600];
    snprintf(msg, sizeof msg, "structured output: the answer does not fit its JSON Schema: %s; asked again", err);
    json_t *ev = llm_event(r, 0, (wd_now_ns() - r->req.t0) / 1000000);
    json_object_set_new(ev, "error", json_string(msg));
    json_object_set_new(ev, "reason", json_string("schema"));
    json_object_set_new(ev, "input_tokens", json_integer(an->in));
    json_object_set_new(ev, "output_tokens", json_integer(an->out));
    json_object_set_new(ev, "cost_usd", json_real(an->cost));
    json_object_set_new(ev, "message_count", json_integer(r->req.nmessages));
    wd_llm_answer_trace(r, ev, a, NULL);
    wd_settle st = {.record = ev,
                    .cost = an->cost,
                    .hold = &r->llm_hold,
                    .breaker = c->breaker,
                    .admitted = &c->admitted,
                    .probe = c->probe,
                    .ok = 1,
                    .state_in_record = 1,
                    .breaker_first = 1,
                    .model = model_name(r)};
    wd_run_settle(r, &st); /* no coroutine: nothing resumed */
    c->fixes_left--;
    r->req.input_bytes += wd_llm_answer_correction(c->convo, a, err);
    r->req.nmessages += 2;
    wd_provider_request_free(&c->hreq);
    json_decref(c->call);
    c->call = json_incref(c->convo);
    c->retries = 0;
    c->cached = 0;
    c->cache_key[0] = '\0';
    r->req.t0 = wd_now_ns();
    send_call(r);
}

static void deliver(wd_run *r, json_t *a)
{
    const wd_model *m = r->call->model;
    long long latency = (wd_now_ns() - r->req.t0) / 1000000;
    json_t *usage = json_object_get(a, "usage");
    answer an = {a, json_object_get(a, "tool_calls"), json_integer_value(json_object_get(usage, "input_tokens")),
                 json_integer_value(json_object_get(usage, "output_tokens")), 0};
    an.cost = r->call->cached ? 0 : wd_model_cost(m, (double)an.in, (double)an.out);
    r->tokens_in += an.in;
    r->tokens_out += an.out;
    char bad[400] = "", why[600] = ""; /* an answer that does not fit its schema */
    if (r->call->format && !json_array_size(an.all) &&
        wd_llm_answer_fits(r->call->format, a, &r->call->output, bad, sizeof bad) < 0) {
        if (r->call->fixes_left > 0) {
            correct(r, a, &an, bad);
            return;
        }
        snprintf(why, sizeof why, "structured output: the answer does not fit its JSON Schema: %s", bad);
        json_array_append_new(r->errors, json_string(why));
    }
    if (!why[0] && !r->call->cached && r->call->cache_key[0]) {
        char *text = wd_json_compact_text(a);
        wd_store_op op = {.kind = WD_SOP_CACHE_PUT,
                          .key = r->call->cache_key,
                          .value = text,
                          .cost_nusd = wd_budget_nusd(an.cost),
                          .now_ms = wd_store_now(r->eng->store),
                          .window_ms = r->pol->cache_ttl_ms};
        if (text) /* kept without waiting; one that fails is a miss later */
            wd_store_tell(r->eng->store, &op);
        free(text);
    }
    r->last_fail_timeout = 0;
    json_t *content = json_object_get(a, "content");
    if (!why[0] && !r->call->texted && json_string_length(content)) /* not streamed: its text whole */
        wd_run_text(r, json_string_value(content), json_string_length(content));
    json_t *ev = llm_event(r, !why[0], latency);
    if (why[0]) {
        json_object_set_new(ev, "error", json_string(why));
        json_object_set_new(ev, "reason", json_string("schema"));
    }
    json_object_set_new(ev, "input_tokens", json_integer(an.in));
    json_object_set_new(ev, "output_tokens", json_integer(an.out));
    json_object_set_new(ev, "cost_usd", json_real(an.cost));
    json_object_set_new(ev, "message_count", json_integer(r->req.nmessages));
    json_object_set_new(ev, "tool_calls_requested", json_integer((json_int_t)json_array_size(an.all)));
    wd_llm_answer_trace(r, ev, a, an.all);
    if (r->call->cached) {
        json_object_set_new(ev, "cache_hit", json_true());
        json_object_set_new(ev, "saved_usd", json_real(r->call->saved_usd));
    }
    wd_settle st = {.record = ev,
                    .cost = an.cost,
                    .hold = &r->llm_hold,
                    .breaker = r->call->breaker,
                    .admitted = &r->call->admitted,
                    .probe = r->call->probe,
                    .ok = 1,
                    .state_in_record = 1,
                    .breaker_first = 1,
                    .model = model_name(r),
                    .co = r->waiting,
                    .fail = why[0] ? why : NULL,
                    .push = push_delivered,
                    .ud = &an,
                    .clear = call_clear};
    wd_run_settle(r, &st);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt(arg);
}

/* every attempt ends here */
static void settle(wd_run *r, outcome *o)
{
    char reason[80];
    if (o->ok && wd_llm_answer_check(o->answer, o->msg, sizeof o->msg) < 0) {
        /* a broken endpoint, and the provider may still bill: the reservation is spent */
        o->ok = 0;
        o->transient = 0;
        o->breaker_failure = 1;
        json_decref(o->answer);
        o->answer = NULL;
        double est = (double)r->llm_hold.amount / WD_NUSD_PER_USD;
        r->cost += est;
        wd_budget_settle(r, &r->llm_hold, est);
    }
    if (!o->ok && o->transient &&
        wd_run_retry_arm(r, r->call->retries, o->retry_after_ms, on_retry_timer, reason, sizeof reason) >= 0) {
        json_t *ev = llm_event(r, 0, (wd_now_ns() - r->req.t0) / 1000000);
        json_object_set_new(ev, "error", json_string(o->msg));
        json_object_set_new(ev, "reason", json_string(reason));
        wd_run_audit(r, ev);
        r->call->retries++;
        return;
    }
    if (o->ok)
        deliver(r, o->answer);
    else
        fail(r, o->msg, o->timeout, o->transient ? "transient" : NULL, !o->breaker_failure);
    json_decref(o->answer);
}

/* ---- the mock ---------------------------------------------------------------- */

static void on_mock_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    json_t *entry = r->pending_llm;
    r->pending_llm = NULL;
    outcome o = {0};
    o.retry_after_ms = -1;
    if (!entry) {
        snprintf(o.msg, sizeof o.msg, "LLM read timed out after %lld ms", r->pol->llm_read_ms);
        o.transient = o.timeout = o.breaker_failure = 1;
        settle(r, &o);
        return;
    }
    json_t *err = json_object_get(entry, "error");
    if (err) {
        json_t *st = json_object_get(err, "status");
        json_t *em = json_object_get(err, "message");
        long long status = json_is_integer(st) ? json_integer_value(st) : 0;
        snprintf(o.msg, sizeof o.msg, "LLM provider error%s%lld%s%s", status ? ": HTTP " : "", status,
                 json_is_string(em) ? ": " : "", json_is_string(em) ? json_string_value(em) : "");
        if (!status)
            snprintf(o.msg, sizeof o.msg, "LLM provider error%s%s", json_is_string(em) ? ": " : "",
                     json_is_string(em) ? json_string_value(em) : "");
        o.transient = o.breaker_failure = wd_retry_transient_status((long)status);
        json_t *ra = json_object_get(err, "retry_after_ms");
        if (json_is_integer(ra))
            o.retry_after_ms = json_integer_value(ra);
        json_decref(entry);
        settle(r, &o);
        return;
    }
    o.ok = 1;
    o.answer = entry; /* the scenario's entry has the normalized shape */
    settle(r, &o);
}

static void mock_attempt(wd_run *r)
{
    wd_engine *e = r->eng;
    json_t *entry = wd_mock_entry(e->mock, r->call->mock_pos++);
    json_t *delay = json_object_get(entry, "delay_ms");
    long long d = json_is_integer(delay) ? json_integer_value(delay) : 0;
    long long read_ms = r->pol->llm_read_ms;
    json_decref(r->pending_llm);
    r->pending_llm = d > read_ms ? NULL : json_incref(entry);
    if (d > read_ms)
        d = read_ms;
    /* even an immediate answer arrives through the loop */
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    event_assign(r->op_timer, e->base, -1, 0, on_mock_timer, r);
    evtimer_add(r->op_timer, &tv);
}

/* ---- HTTP ---------------------------------------------------------------------- */

/* an HTTP failure, or an answer that is not 2xx, into o: 1 when it is neither (a 2xx body to read) */
static int http_outcome(wd_run *r, const wd_http_resp *resp, outcome *o)
{
    const wd_model *m = r->call->model;
    o->retry_after_ms = resp->retry_after_ms;
    if (resp->fail != WD_HTTP_OK) {
        snprintf(o->msg, sizeof o->msg, "LLM %s: %s", m->name, resp->error ? resp->error : "request failed");
        o->transient = wd_retry_transient(resp);
        o->timeout = resp->fail == WD_HTTP_CONNECT_TIMEOUT || resp->fail == WD_HTTP_READ_TIMEOUT;
        o->breaker_failure = resp->fail != WD_HTTP_INVALID;
        return 0;
    }
    if (resp->status < 200 || resp->status > 299) {
        char why[240];
        wd_provider_error_text(resp->body, resp->len, why, sizeof why);
        snprintf(o->msg, sizeof o->msg, "LLM %s: HTTP %ld from %s%s%s", m->name, resp->status, m->provider,
                 why[0] ? ": " : "", why);
        o->transient = o->breaker_failure = wd_retry_transient(resp);
        return 0;
    }
    return 1;
}

static void on_http(const wd_http_resp *resp, void *ud)
{
    wd_run *r = ud;
    r->call->http = NULL;
    const wd_model *m = r->call->model;
    outcome o = {0};
    if (http_outcome(r, resp, &o)) {
        char err[300];
        o.answer = wd_provider_parse(m->provider, resp->body, resp->len, err, sizeof err);
        if (o.answer)
            o.ok = 1;
        else {
            snprintf(o.msg, sizeof o.msg, "LLM %s: unusable answer from %s: %s", m->name, m->provider, err);
            o.breaker_failure = 1;
        }
    }
    wd_provider_scrub(m, o.msg);
    settle(r, &o);
}

/* ---- streams ---------------------------------------------------------------------- */

/* the stream passed what the budget had left: what was sent is paid for, audited with
** the cut, and the run ends budget_exceeded */
static void budget_cut(wd_run *r)
{
    wd_llm_state *c = r->call;
    char msg[700];
    snprintf(msg, sizeof msg, "budget: the streamed answer was cut at %lld output tokens: %s", c->counted,
             c->limit_msg);
    json_t *ev = llm_event(r, 0, (wd_now_ns() - r->req.t0) / 1000000);
    json_object_set_new(ev, "error", json_string(msg));
    json_object_set_new(ev, "reason", json_string("budget"));
    double cost = stream_paid(r, ev);
    int which = c->limit_which;
    wd_settle st = {.record = ev,
                    .cost = cost,
                    .hold = &r->llm_hold,
                    .breaker = c->breaker,
                    .admitted = &c->admitted,
                    .probe = c->probe,
                    .ok = 1, /* the endpoint answered well */
                    .state_in_record = 1,
                    .breaker_first = 1,
                    .model = model_name(r),
                    .clear = call_clear};
    wd_run_settle(r, &st);
    wd_budget_audit_exceeded(r, "llm", which, cost, msg);
    wd_run_end(r, WD_ST_BUDGET_EXCEEDED, msg);
}

static void on_stream_end(const wd_http_resp *resp, void *ud)
{
    wd_run *r = ud;
    wd_llm_state *c = r->call;
    c->http = NULL;
    const wd_model *m = c->model;
    long long in, out;
    int raw;
    wd_llm_stream_usage(c->ls, &in, &out, &raw);
    double in_tokens = in >= 0 ? (double)in : c->in_est;
    if (c->cut) {
        budget_cut(r);
        return;
    }
    outcome o = {0};
    char err[300];
    if (c->stream_err[0]) {
        snprintf(o.msg, sizeof o.msg, "LLM %s: unusable stream from %s: %s", m->name, m->provider, c->stream_err);
        o.breaker_failure = 1;
        o.retry_after_ms = -1;
    } else if (http_outcome(r, resp, &o)) {
        if (!(o.answer = wd_llm_stream_finish(c->ls, err, sizeof err))) {
            snprintf(o.msg, sizeof o.msg, "LLM %s: unusable answer from %s: %s", m->name, m->provider, err);
            o.breaker_failure = 1;
        } else { /* the provider's counts when it gave them; else warden's */
            o.ok = 1;
            json_object_set_new(o.answer, "usage",
                                json_pack("{s:I,s:I}", "input_tokens",
                                          (json_int_t)(in >= 0 ? in
                                                       : raw   ? 0
                                                               : (long long)in_tokens),
                                          "output_tokens",
                                          (json_int_t)(out >= 0 ? out
                                                       : raw    ? 0
                                                                : c->counted)));
        }
    }
    if (!o.ok && c->counted) { /* tokens came: no retry (the client has them), and they are paid for */
        o.transient = 0;
        c->broke = 1;
    }
    wd_provider_scrub(m, o.msg);
    settle(r, &o);
}

static void http_attempt(wd_run *r)
{
    const wd_model *m = r->call->model;
    char err[300];
    if (!r->call->hreq.url) {
        int rc = wd_provider_request(m, llm_url(r), r->call->call, &r->call->hreq, err, sizeof err);
        /* retries resend the text: the tree goes now, while it is still in the cache
        ** (freed at the answer, 50 ms and a thousand runs later, it cost a miss per node) */
        json_decref(r->call->call);
        r->call->call = NULL;
        if (rc < 0) {
            outcome o = {0};
            wd_strlcpy(o.msg, err, sizeof o.msg);
            o.retry_after_ms = -1;
            settle(r, &o); /* our side is wrong: not the endpoint's failure */
            return;
        }
    }
    wd_http_opts ho = {0};
    ho.url = r->call->hreq.url;
    ho.method = "POST";
    ho.headers = (const char *const *)r->call->hreq.headers;
    ho.nheaders = r->call->hreq.nheaders;
    ho.body = r->call->hreq.body;
    ho.body_len = r->call->hreq.body_len;
    ho.connect_ms = r->pol->llm_connect_ms;
    ho.read_ms = r->pol->llm_read_ms;
    ho.max_body = LLM_MAX_BODY;
    wd_http_done_fn done = on_http;
    if (r->call->stream) { /* a parser per attempt; llm_read_ms is the wait for each piece */
        wd_llm_stream_free(r->call->ls);
        r->call->counted = 0;
        r->call->stream_err[0] = '\0';
        if (!(r->call->ls = wd_llm_stream_new(m->provider, LLM_MAX_BODY, wd_llm_feed_delta, r))) {
            outcome o = {.retry_after_ms = -1};
            snprintf(o.msg, sizeof o.msg, "LLM %s: out of memory", m->name);
            settle(r, &o);
            return;
        }
        ho.on_data = wd_llm_feed_data;
        ho.idle_ms = r->pol->llm_read_ms;
        done = on_stream_end;
    }
    r->call->http = wd_http_start(r->eng->http, &ho, done, r, err, sizeof err);
    if (!r->call->http) {
        outcome o = {0};
        snprintf(o.msg, sizeof o.msg, "LLM %s: %s", m->name, err);
        o.retry_after_ms = -1;
        settle(r, &o);
    }
}

static void attempt(wd_run *r)
{
    if (r->call->mock)
        mock_attempt(r);
    else
        http_attempt(r);
}

/* ---- budget and cache ------------------------------------------------------------- */

/* the call's worst case reserved; a streamed call that does not fit takes what is left,
** to be cut where it runs out (llmstream). 1 held, 0 refused (msg), WD_BUDGET_WAIT: the
** store was asked, and send_call comes again with its answer */
static int reserve(wd_run *r, char *msg, size_t n)
{
    wd_llm_state *c = r->call;
    double want = wd_llm_worst_case(r, wd_llm_bound_output(r)), got;
    c->in_est = wd_llm_input_estimate(r);
    c->limited = 0; /* a corrective ask reserves anew */
    if (!c->stream)
        return wd_budget_reserve(r, want, "llm", NULL, &r->llm_hold, msg, n, send_call);
    int rc = wd_budget_reserve_upto(r, want, wd_llm_worst_case(r, 1), "llm", &r->llm_hold, &got, &c->limit_which, msg,
                                    n, send_call);
    if (rc != 1)
        return rc;
    if (got < want) {
        c->limited = 1;
        c->room = got;
        wd_strlcpy(c->limit_msg, msg, sizeof c->limit_msg);
    }
    return 1;
}

/* Answers from the response cache when the policy enables it and the call is
** deterministic (temperature 0, unless cache.any_temperature): 1 answered (the agent
** resumes with it, nothing spent), 0 go on (r->call->cache_key set when the answer is to
** be kept), 2 the store was asked (looked_up comes with its answer). The key covers the
** model, its endpoint and what the call sends. */
static int cache_lookup(wd_run *r)
{
    const wd_policy *p = r->pol;
    if (!p->cache_enabled || !r->call->call || (r->req.temperature != 0 && !p->cache_any_temperature))
        return 0;
    wd_buf b = {0};
    int rc = wd_buf_addf(&b, "%s\n%s\n", model_name(r), r->call->breaker);
    static const char *const PARTS[] = {"messages", "tools", "temperature", "max_tokens", "response_format", NULL};
    for (int i = 0; PARTS[i] && rc == 0; i++) {
        json_t *v = json_object_get(r->call->call, PARTS[i]);
        rc = wd_buf_addf(&b, "%s=", PARTS[i]);
        if (rc == 0 && v)
            rc = wd_json_canon(v, &b);
        if (rc == 0)
            rc = wd_buf_add(&b, "\n", 1);
    }
    if (rc < 0) {
        wd_buf_free(&b);
        return 0;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)b.p, b.len);
    wd_buf_free(&b);
    sodium_bin2hex(r->call->cache_key, sizeof r->call->cache_key, h, sizeof h);
    wd_store_op op = {.kind = WD_SOP_CACHE_GET, .key = r->call->cache_key, .now_ms = wd_store_now(r->eng->store)};
    int got;
    if (wd_run_ask(r, &op, looked_up, &got) == 2)
        return 2;
    char *text = op.text;
    int64_t cost = op.cost_nusd;
    if (got != 1) { /* a miss, or a store that failed: the cache fails open */
        free(text);
        return 0;
    }
    json_t *a = json_loads(text, JSON_ALLOW_NUL, NULL);
    free(text);
    if (!json_is_object(a)) { /* unreadable: asked again, and kept anew */
        json_decref(a);
        return 0;
    }
    r->call->cached = 1;
    r->call->saved_usd = (double)cost / WD_NUSD_PER_USD;
    deliver(r, a);
    json_decref(a);
    return 1;
}

/* ---- start ----------------------------------------------------------------------- */

void wd_llm_start(wd_run *r)
{
    wd_engine *e = r->eng;
    const char *alias = r->req.model ? r->req.model : "default";
    if (!r->call && !(r->call = calloc(1, sizeof *r->call))) {
        wd_run_end(r, WD_ST_FAILED, "out of memory");
        return;
    }
    call_clear(r);
    r->call->active = 1;
    r->call->alias = wd_strdup(alias);
    r->call->call = r->req.call;
    r->req.call = NULL;
    r->call->retries = 0;
    r->call->model = wd_policy_model(r->pol, alias);
    r->call->mock = r->llm && !strncmp(r->llm, "mock:", 5);
    char msg[400];
    if (r->call->mock) {
        const char *path = r->llm + 5;
        if (!e->mock_path || strcmp(e->mock_path, path)) {
            wd_mock *m = wd_mock_load(path, msg, sizeof msg);
            if (!m) {
                fail(r, msg, 0, NULL, 0);
                return;
            }
            wd_mock_free(e->mock);
            free(e->mock_path);
            e->mock = m;
            e->mock_path = wd_strdup(path);
        }
        snprintf(r->call->breaker, sizeof r->call->breaker, "llm:mock");
    } else {
        if (!r->call->model) {
            snprintf(msg, sizeof msg, "model '%s' is not in the policy's models", alias);
            fail(r, msg, 0, NULL, 0);
            return;
        }
        const char *url = llm_url(r);
        if (r->llm && !url) {
            snprintf(msg, sizeof msg, "--llm '%.200s' is neither mock:FILE nor an http(s) URL", r->llm);
            fail(r, msg, 0, NULL, 0);
            return;
        }
        if (!strcmp(r->call->model->provider, "mock") && url) {
            r->call->model_copy = *r->call->model;
            r->call->model_copy.provider = "openai";
            r->call->model = &r->call->model_copy;
        }
        if (!strcmp(r->call->model->provider, "mock")) {
            snprintf(msg, sizeof msg, "model '%s' has provider mock, which plays a scenario: run with --llm mock:FILE",
                     alias);
            fail(r, msg, 0, NULL, 0);
            return;
        }
        wd_provider_endpoint(r->call->model, url, r->call->breaker, sizeof r->call->breaker);
    }
    /* the worst case this call can cost, reserved against the run's limit and every
    ** budget: a call that does not fit ends the run */
    r->call->stream = !r->call->mock && (r->req.stream > 0 || (r->req.stream < 0 && r->on_text));
    if (r->call->stream && r->call->call)
        json_object_set_new(r->call->call, "stream", json_true());
    if ((r->call->format = r->req.format)) { /* the conversation kept for a corrective ask */
        r->req.format = NULL;
        r->call->convo = json_incref(r->call->call);
        r->call->fixes_left = (int)r->pol->structured_retries;
    }
    send_call(r);
}

/* the call admitted (its worst case reserved, its breaker asked) and sent, or answered
** from the cache */
static void send_call(wd_run *r)
{
    char msg[400];
    int held = reserve(r, msg, sizeof msg);
    if (held == WD_BUDGET_WAIT)
        return;
    if (!held) {
        call_clear(r);
        wd_run_end(r, r->store_down ? WD_ST_STORE_UNAVAILABLE : WD_ST_BUDGET_EXCEEDED, msg);
        return;
    }
    looked_up(r);
}

/* the call's worst case held: answered from the cache, or on to its breaker */
static void looked_up(wd_run *r)
{
    if (!cache_lookup(r))
        admit_call(r);
}

/* the call's breaker admits it (a probe, maybe), and it is sent */
static void admit_call(wd_run *r)
{
    char msg[400];
    wd_breaker_cfg bc = wd_run_breaker_cfg(r);
    wd_breaker_change ch;
    int probe;
    int admit = wd_run_breaker_admit(r, r->call->breaker, &bc, &probe, msg, sizeof msg, &ch, admit_call);
    if (admit == 2)
        return;
    if (admit < 0) {
        wd_run_store_down(r, "breaker", NULL, msg);
        fail(r, msg, 0, "store_unavailable", 0);
        return;
    }
    if (!admit) {
        wd_run_audit_breaker(r, r->call->breaker, &ch, NULL, model_name(r));
        fail(r, msg, 0, "circuit_open", 0);
        return;
    }
    wd_run_audit_breaker(r, r->call->breaker, &ch, NULL, model_name(r));
    r->call->admitted = 1;
    r->call->probe = probe;
    attempt(r);
}

static void llm_free(wd_run *r)
{
    if (!r->call)
        return;
    llm_cancel(r, NULL);
    call_clear(r);
    free(r->call);
    r->call = NULL;
}

const wd_op_kind wd_op_llm = {"llm", wd_llm_start, llm_cancel, NULL, llm_free, NULL};
