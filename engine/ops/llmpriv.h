/* llmpriv.h - the LLM call in flight, shared by llm.c (its course) and llmfeed.c (its
** cost, and a stream's pieces) */
#ifndef WD_LLMPRIV_H
#define WD_LLMPRIV_H

#include "engine.h"
#include "llmstream.h"
#include "provider.h"
#include "schema.h"

/* the LLM call in flight: a run makes it on its first call (r->call) */
struct wd_llm_state {
    int active;
    int mock;              /* played from the scenario, not over HTTP */
    const wd_model *model; /* in r->pol, or model_copy */
    wd_model model_copy;   /* a mock model sent to a --llm URL speaks openai */
    char *alias;
    json_t *call;
    wd_llm_request hreq;
    wd_http_req *http;
    char breaker[200];
    int admitted, probe;
    int retries;
    int mock_pos;       /* next scenario entry: every attempt plays one */
    char cache_key[65]; /* hex SHA-256 of what the answer depends on; "" not cacheable */
    int cached;         /* the answer came from the cache */
    double saved_usd;   /* what that answer cost when it was bought */
    /* a streamed call (docs/lua-api.md, ctx:llm stream) */
    int stream;
    wd_llm_stream *ls;    /* this attempt's parser */
    char stream_err[300]; /* why this attempt's stream was unusable */
    long long counted;    /* output tokens counted from this attempt's pieces */
    double in_est;        /* the input, estimated in tokens */
    int limited, cut;     /* the reservation is all that was left; the stream passed it */
    double room;          /* with limited: the most the call may cost */
    int limit_which;      /* the budget that set room (wd_budget_reserve_upto) */
    char limit_msg[300];
    size_t texted; /* bytes of the call's text given to the run's listener */
    int broke;     /* the stream failed after sending tokens: they are paid for (stream_paid) */
    /* structured output (ctx:llm response_format) */
    wd_schema *format; /* the answer must fit it (taken from r->req) */
    json_t *convo;     /* the call as first sent, for a corrective ask */
    int fixes_left;    /* corrective asks left (defaults.structured_retries) */
    json_t *output;    /* the answer's text parsed, once it fits */
};

/* The most output this call may produce: its max_tokens, or the model's
** max_output_tokens, which an HTTP call is then sent as max_tokens so the bound holds. */
long long wd_llm_bound_output(wd_run *r);
/* the input in tokens, estimated from its size */
double wd_llm_input_estimate(const wd_run *r);
/* the most the call can cost with out tokens of output */
double wd_llm_worst_case(const wd_run *r, long long out);
/* a streamed answer's piece (wd_llm_delta_fn; ud the run) */
int wd_llm_feed_delta(void *ud, wd_delta_kind kind, const char *p, size_t len);
/* a streamed body's bytes (wd_http_opts.on_data; ud the run) */
int wd_llm_feed_data(void *ud, const char *p, size_t len);

#endif
