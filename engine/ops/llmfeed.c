/* llmfeed.c - what an LLM call may cost, and a streamed answer's pieces as they arrive:
** counted, cut at the budget, passed on to the run's listener (llmpriv.h) */
#include "llmpriv.h"

#include <string.h>

/* The most output this call may produce: its max_tokens, or the model's
** max_output_tokens, which an HTTP call is then sent as max_tokens so the bound holds. */
long long wd_llm_bound_output(wd_run *r)
{
    const wd_model *m = r->call->model;
    long long out = r->req.max_tokens > 0 ? r->req.max_tokens : m ? m->max_output_tokens : 0;
    if (out > 0 && r->call->call && !r->call->mock && !json_object_get(r->call->call, "max_tokens"))
        json_object_set_new(r->call->call, "max_tokens", json_integer(out));
    return out;
}

/* The most this call can cost: its input, estimated from the size of its text at three
** bytes a token (English runs near four; code and other scripts fewer) and four tokens
** a message, at the input price; and out tokens at the output price. */
double wd_llm_input_estimate(const wd_run *r)
{
    return (double)((r->req.input_bytes + 2) / 3) + 4.0 * r->req.nmessages;
}

double wd_llm_worst_case(const wd_run *r, long long out)
{
    return wd_model_cost(r->call->model, wd_llm_input_estimate(r), (double)out);
}

/* ** A piece of a streamed answer. Output is counted as it arrives: a piece is one token,
** or one per four bytes when longer (a provider's own count comes only at the end, if
** at all). A call whose reservation is all its budget had left is cut before the piece
** that would cost more: the piece is not given, the stream stops, the run ends. */
int wd_llm_feed_delta(void *ud, wd_delta_kind kind, const char *p, size_t len)
{
    wd_run *r = ud;
    wd_llm_state *c = r->call;
    long long t = len > 4 ? (long long)(len + 3) / 4 : 1;
    if (c->limited) {
        long long in, out;
        wd_llm_stream_usage(c->ls, &in, &out, NULL);
        if (wd_model_cost(c->model, in >= 0 ? (double)in : c->in_est, (double)(c->counted + t)) > c->room) {
            c->cut = 1;
            return 1;
        }
    }
    c->counted += t;
    if (kind == WD_DELTA_TEXT && !c->format) { /* a structured answer is told once it fits */
        c->texted += len;
        wd_run_text(r, p, len);
    }
    return 0;
}

int wd_llm_feed_data(void *ud, const char *p, size_t len)
{
    wd_run *r = ud;
    return wd_llm_stream_feed(r->call->ls, p, len, r->call->stream_err, sizeof r->call->stream_err);
}
