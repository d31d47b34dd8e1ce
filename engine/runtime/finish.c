/* finish.c - the end of a run: what it waits on cancelled (each kind of operation in the
** engine's hooks), its reservations settled, run_finished audited, and its result handed
** out once its records are in the file. */
#include "engine.h"
#include "schema.h"
#include "session.h"
#include "ask.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_free(wd_run *r)
{
    if (!r)
        return;
    free(r->limit_msg);
    free(r->traceback);
    sodium_memzero(&r->seal, sizeof r->seal);
    if (r->op_timer)
        event_free(r->op_timer);
    if (r->run_timer)
        event_free(r->run_timer);
    const wd_engine_hooks *h = r->eng->hooks;
    for (int k = OP_NONE + 1; k < OP_COUNT; k++)
        if (h->ops[k] && h->ops[k]->free)
            h->ops[k]->free(r);
    wd_ledger_unwait(r->eng->ledger, &r->lwait);
    wd_run_unask(r);
    json_decref(r->tool_specs);
    wd_sandbox_free(r->sb);
    if (r->det)
        h->free_detect(r->det);
    json_decref(r->req.args);
    json_decref(r->req.call);
    wd_schema_free(r->req.format);
    json_decref(r->req.format_json);
    free(r->req.end_error);
    free(r->req.model);
    free(r->tool.name);
    json_decref(r->pending_llm);
    json_decref(r->tool_calls);
    json_decref(r->errors);
    free(r->session_id);
    free(r->user_id);
    free(r->agent_name);
    for (int i = 0; i < 4; i++)
        json_decref(r->j_ids[i]);
    free(r->agent_path);
    free(r->agent_dir);
    free(r->query);
    free(r->llm);
    free(r->default_model);
    free(r->result_text);
    free(r->start_error);
    free(r->agent_key);
    free(r->direct_tool);
    json_decref(r->history);
    json_decref(r->session_turns);
    json_decref(r->output_schema);
    wd_schema_free(r->output_check);
    json_decref(r->output);
    free(r->refuse);
    wd_policy_unref(r->pol);
    free(r);
}

static double round6(double v) { return (double)(long long)(v * 1e6 + 0.5) / 1e6; }

/*
** A run acts only once its run_started is in the file. Asked during a pass of the ready
** queue, the write waits for the end of the pass (end_of_pass), one for every run that
** started in it: what a run asks for in a pass leaves the loop only after it (an HTTP
** request goes out when curl next drives its socket, a handler runs in a later pass), and
** if the write fails, the runs that wait on it end failed before anything went out.
*/
int wd_run_may_act(wd_run *r, char *msg, size_t n)
{
    wd_engine *e = r->eng;
    wd_audit *a = e->audit;
    if (!wd_audit_failed(a) && wd_audit_durable_mark(a) >= r->start_mark)
        return 0;
    if (!wd_audit_failed(a) && e->in_ready) {
        e->unwritten_starts = 1;
        return 0;
    }
    if (wd_audit_durable(a, r->start_mark) == 0)
        return 0;
    snprintf(msg, n, "audit log unavailable: refusing to act (%s)", wd_audit_error(a));
    return -1;
}

/* the runs that acted in this pass of the ready queue before their run_started was
** written: one write for them all, or they end failed */
void wd_run_end_of_pass(wd_engine *e)
{
    if (!e->unwritten_starts)
        return;
    e->unwritten_starts = 0;
    if (wd_audit_durable(e->audit, wd_audit_appended(e->audit)) == 0)
        return;
    char msg[400];
    snprintf(msg, sizeof msg, "audit log unavailable: refusing to act (%s)", wd_audit_error(e->audit));
    long long written = wd_audit_durable_mark(e->audit);
    for (wd_run *r = e->live, *next; r; r = next) {
        next = r->live_next;
        if (r->pol && r->start_mark > written)
            wd_run_end(r, WD_ST_FAILED, msg);
    }
}

/* A result waits for its run's records to reach the file: every result of one loop pass
** goes out after one flush (on_deliver), and if that flush fails, the results say so. */
typedef struct ending {
    json_t *res;
    wd_run_done_fn done;
    void *ud;
    struct ending *next;
} ending;

/* res: the result object, made failed (the run did what it did, but its log is not whole) */
static void audit_lost(json_t *res, const char *why)
{
    json_object_set_new(res, "status", json_string("failed"));
    json_object_set_new(res, "success", json_false());
    json_object_set_new(res, "result", json_string(wd_status_message(WD_ST_FAILED)));
    json_t *errs = json_object_get(res, "errors");
    if (json_is_array(errs))
        json_array_append_new(errs, json_string(why));
}

static void deliver_endings(wd_engine *e)
{
    if (!e->endings)
        return;
    char why[400] = "";
    wd_audit_durable(e->audit, wd_audit_appended(e->audit));
    if (wd_audit_failed(e->audit))
        snprintf(why, sizeof why, "audit log unavailable: the run's records were not written (%s)",
                 wd_audit_error(e->audit));
    ending *x = e->endings;
    e->endings = e->endings_tail = NULL;
    while (x) {
        ending *next = x->next;
        if (why[0])
            audit_lost(x->res, why);
        if (x->done)
            x->done(x->res, x->ud);
        json_decref(x->res);
        free(x);
        e->active--;
        x = next;
    }
}

void wd_run_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver_endings(arg);
}

/* the result object the caller is given (warden.h, wd_run_done_fn) */
static json_t *result_object(const wd_run *r, wd_status st, const char *text, int64_t ms)
{
    json_t *res = json_object();
    json_object_set_new(res, "run_id", json_string(r->run_id));
    json_object_set_new(res, "session_id", json_string(r->session_id));
    json_object_set_new(res, "agent", r->agent_name ? json_string(r->agent_name) : json_null());
    json_object_set_new(res, "user_id", r->user_id ? json_string(r->user_id) : json_null());
    json_object_set_new(res, "status", json_string(wd_status_name(st)));
    json_object_set_new(res, "success", json_boolean(st == WD_ST_COMPLETED));
    json_object_set_new(res, "result", json_string(text));
    json_object_set_new(res, "cost_usd", json_real(round6(r->cost)));
    json_object_set_new(res, "steps_taken", json_integer(r->steps));
    json_object_set_new(
        res, "usage",
        json_pack("{s:I,s:I}", "input_tokens", (json_int_t)r->tokens_in, "output_tokens", (json_int_t)r->tokens_out));
    if (r->output && st == WD_ST_COMPLETED)
        json_object_set(res, "output", r->output);
    json_object_set_new(res, "tool_calls", json_incref(r->tool_calls));
    if (r->tool_calls_omitted)
        json_object_set_new(res, "tool_calls_omitted", json_integer(r->tool_calls_omitted));
    json_object_set_new(res, "errors", json_incref(r->errors));
    json_object_set_new(res, "execution_time_ms", json_integer(ms));
    if (st == WD_ST_RATE_LIMITED && r->retry_after_ms > 0)
        json_object_set_new(res, "retry_after_ms", json_integer(r->retry_after_ms));
    return res;
}

/* the result waits for its run's records to reach the file (wd_run_deliver); with no
** room to wait, it goes out now; takes res */
static void hand_out(wd_engine *e, wd_run *r, json_t *res)
{
    ending *x = malloc(sizeof *x);
    if (x) {
        *x = (ending){res, r->done, r->done_ud, NULL};
        if (e->endings_tail)
            e->endings_tail->next = x;
        else
            e->endings = x;
        e->endings_tail = x;
        if (e->deliver_ev)
            event_active(e->deliver_ev, 0, 0);
    } else { /* no room to wait: it goes out now */
        if (r->done)
            r->done(res, r->done_ud);
        json_decref(res);
        e->active--;
    }
}

/* A completed run's answer held to its output_schema: parsed (white space around it
** allowed) and validated into r->output; 0, or -1 with the validator's error */
static int output_fits(wd_run *r, char *why, size_t n)
{
    json_error_t je;
    const char *t = r->result_text ? r->result_text : "";
    json_t *v = json_loads(t, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    char err[300];
    if (!v) {
        snprintf(why, n, "output_schema: the final answer is not JSON (%s, at character %d)", je.text, je.position);
        return -1;
    }
    if (wd_schema_validate(r->output_check, v, err, sizeof err) < 0) {
        snprintf(why, n, "output_schema: the final answer does not fit: %s", err);
        json_decref(v);
        return -1;
    }
    r->output = v;
    return 0;
}

void wd_run_end(wd_run *r, wd_status st, const char *error)
{
    if (r->finishing)
        return;
    r->finishing = 1;
    wd_engine *e = r->eng;
    char unfit[400];
    if (st == WD_ST_COMPLETED && r->output_check && output_fits(r, unfit, sizeof unfit) < 0) {
        st = WD_ST_FAILED;
        error = unfit;
    }
    if (st == WD_ST_COMPLETED)
        wd_session_save(r);
    if (!r->pol) /* ended before its first turn (a kill, the engine stopping) */
        e->unstarted--;
    wd_ready_remove(r);
    if (r->op_timer)
        event_del(r->op_timer);
    if (r->run_timer)
        event_del(r->run_timer);
    const wd_engine_hooks *h = e->hooks;
    const char *why = error && *error ? error : wd_status_message(st);
    wd_ledger_unwait(e->ledger, &r->lwait); /* a question of its own to the store: dropped */
    wd_run_unask(r);
    r->upto.stage = 0;
    for (int k = OP_NONE + 1; k < OP_COUNT; k++)
        if (h->ops[k] && h->ops[k]->cancel)
            h->ops[k]->cancel(r, why);
    wd_budget_settle(r, &r->tool_hold, 0); /* a call cut short: its reservation goes back */
    wd_budget_settle(r, &r->llm_hold, 0);
    r->status = st;
    h->finish(r, wd_status_name(st), error);
    wd_kills_note_end(r, st);
    size_t ne = json_array_size(r->errors);
    const char *last = ne ? json_string_value(json_array_get(r->errors, ne - 1)) : NULL;
    if (error && *error && !(last && !strcmp(last, error))) /* an LLM failure the agent passed on */
        json_array_append_new(r->errors, json_string(error));
    const char *text = st == WD_ST_COMPLETED && r->result_text ? r->result_text : wd_status_message(st);
    int64_t ms = (wd_now_ns() - r->t0_ns) / 1000000;

    json_t *res = result_object(r, st, text, ms);

    json_t *ev = wd_run_event(r, WD_AE_RUN_FINISHED, st == WD_ST_COMPLETED);
    if (ev) {
        json_object_set_new(ev, "reason", json_string(wd_status_name(st)));
        json_object_set_new(ev, "agent_step", json_integer(r->steps));
        json_object_set_new(ev, "cost_usd", json_real(round6(r->cost)));
        json_object_set_new(ev, "latency_ms", json_integer(ms));
        if (error && *error)
            json_object_set_new(ev, "error", json_string(error));
        /* what the user was given: the agent's answer, or what the status says */
        json_object_set_new(ev, st == WD_ST_COMPLETED && r->result_text ? "final_answer" : "result", json_string(text));
        if (r->traceback) /* the agent's error, where it happened: for the log only */
            json_object_set_new(ev, "traceback", json_string(r->traceback));
        wd_run_audit(r, ev);
    }
    hand_out(e, r, res);
    if (r->live_prev)
        r->live_prev->live_next = r->live_next;
    else if (e->live == r)
        e->live = r->live_next;
    if (r->live_next)
        r->live_next->live_prev = r->live_prev;
    run_free(r);
}
