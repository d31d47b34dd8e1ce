/* report.c - the cost report (see report.h) */
#include "reader.h"
#include "report.h"
#include "audit.h"
#include "budget.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIMPLE_OUTPUT_TOKENS   100 /* an answer this short is a "simple call" */
#define HIGH_BURN_USD_PER_HOUR 1.0
#define LOW_SUCCESS            0.8
/* what success_rate is, in the report's JSON and its text */
#define SUCCESS_RATE_IS "runs that ended with success, of the runs that ended in the period"

/* group[name] += {cost_usd, calls} */
static void add_to(json_t *group, const char *name, double cost)
{
    json_t *g = json_object_get(group, name ? name : "?");
    if (!g) {
        g = json_pack("{s:f,s:i}", "cost_usd", 0.0, "calls", 0);
        json_object_set_new(group, name ? name : "?", g);
    }
    json_object_set_new(g, "cost_usd", json_real(json_real_value(json_object_get(g, "cost_usd")) + cost));
    json_object_set_new(g, "calls", json_integer(json_integer_value(json_object_get(g, "calls")) + 1));
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static const wd_model *model_named(const wd_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_models; i++)
        if (!strcmp(p->models[i].name, name) || !strcmp(p->models[i].alias, name))
            return &p->models[i];
    return NULL;
}

/* per model: simple calls (short answers), their tokens and cost */
typedef struct simple_t {
    char name[160];
    long calls, simple;
    double in, out, cost;
    struct simple_t *next;
} simple_t;

static simple_t *simple_of(simple_t **list, const char *name)
{
    for (simple_t *s = *list; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    simple_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    wd_strlcpy(s->name, name, sizeof s->name);
    s->next = *list;
    *list = s;
    return s;
}

static void recommend(json_t *recs, const wd_policy *p, simple_t *models, double total, double failed_runs_cost,
                      double success_rate, long runs, double burn, double projected)
{
    /* the cheapest model the policy offers, by the price of a short call */
    const wd_model *cheap = NULL;
    for (size_t i = 0; i < p->n_models; i++) {
        const wd_model *m = &p->models[i];
        if (!cheap || m->input_usd_per_1k + m->output_usd_per_1k < cheap->input_usd_per_1k + cheap->output_usd_per_1k)
            cheap = m;
    }
    char msg[600];
    for (simple_t *s = models; s && cheap; s = s->next) {
        const wd_model *m = model_named(p, s->name);
        if (!s->simple || !m || m == cheap || s->cost <= 0)
            continue;
        double there = wd_model_cost(cheap, s->in, s->out);
        if (there >= s->cost)
            continue;
        snprintf(msg, sizeof msg,
                 "Use a cheaper model for simple calls: %ld of %ld calls to %s answered in at most %d tokens and cost "
                 "$%.4f; on %s (%s) they would have cost $%.4f.",
                 s->simple, s->calls, s->name, SIMPLE_OUTPUT_TOKENS, s->cost, cheap->alias, cheap->name, there);
        json_array_append_new(recs, json_string(msg));
    }
    if (runs > 0 && success_rate < LOW_SUCCESS && failed_runs_cost > 0) {
        snprintf(msg, sizeof msg,
                 "Success rate is %.0f%%: $%.4f of $%.4f went to runs that did not succeed. Improve error handling "
                 "to reduce waste.",
                 success_rate * 100, failed_runs_cost, total);
        json_array_append_new(recs, json_string(msg));
    }
    if (burn > HIGH_BURN_USD_PER_HOUR) {
        snprintf(msg, sizeof msg,
                 "High burn rate: $%.2f/hour ($%.0f/month projected). Consider the response cache (policy key cache) "
                 "or cheaper models.",
                 burn, projected);
        json_array_append_new(recs, json_string(msg));
    }
    if (!json_array_size(recs))
        json_array_append_new(recs, json_string(total > 0 ? "Cost usage looks optimal."
                                                          : "No spend recorded yet: nothing to recommend."));
}

json_t *wd_report_budgets(wd_store *st, const wd_policy *p, int64_t now)
{
    json_t *out = json_array();
    wd_ledger_row *rows = NULL;
    size_t n = 0;
    if (!st || wd_store_ledger_list(st, &rows, &n) < 0)
        return out;
    wd_ledger_key now_keys[WD_BUDGET_KEYS];
    wd_budget_keys(p, "?", now, now_keys); /* the current day and month */
    for (size_t i = 0; i < n; i++) {
        const wd_ledger_row *r = &rows[i];
        if (strcmp(r->period, now_keys[0].period) && strcmp(r->period, now_keys[1].period))
            continue; /* past periods: their spend is history, not budget use */
        wd_ledger_key k[WD_BUDGET_KEYS];
        const char *user = !strncmp(r->scope, "user:", 5) ? r->scope + 5 : NULL;
        wd_budget_keys(p, user ? user : "?", now, k);
        int64_t limit = 0;
        for (int j = 0; j < WD_BUDGET_KEYS; j++)
            if (!strcmp(k[j].scope, r->scope) && !strcmp(k[j].period, r->period))
                limit = k[j].limit;
        double spent = (double)r->spent / WD_NUSD_PER_USD, lim = (double)limit / WD_NUSD_PER_USD;
        json_t *b = json_pack("{s:s,s:s,s:f,s:f}", "scope", r->scope, "period", r->period, "spent_usd", spent,
                              "reserved_usd", (double)r->reserved / WD_NUSD_PER_USD);
        json_object_set_new(b, "limit_usd", limit > 0 ? json_real(lim) : json_null());
        json_object_set_new(b, "used_pct", limit > 0 ? json_real(100.0 * spent / lim) : json_null());
        json_array_append_new(out, b);
    }
    free(rows);
    return out;
}

/* the audit log's readable records in [since, until) (-1 unbounded), one at a time, over
** every file it was rotated into (reader.h); unreadable lines are counted in bad */
typedef struct log_reader {
    wd_strlist files;
    size_t next; /* the file opened after f */
    FILE *f;
    char *line;
    size_t cap;
    int64_t since, until;
    long bad;
} log_reader;

/* the files of every log, one log after the other (a report adds up; order is not its
** business): 0, or -1 with err when one cannot be opened */
static int reader_open(log_reader *lr, const char *const *logs, size_t nlogs, int64_t since, int64_t until, char *err,
                       size_t n)
{
    memset(lr, 0, sizeof *lr);
    lr->since = since;
    lr->until = until;
    for (size_t i = 0; i < nlogs; i++) {
        wd_strlist one = {0};
        if (wd_audit_files(logs[i], &one) <= 0 || strcmp(one.v[one.n - 1], logs[i])) {
            wd_errf(err, n, "cannot open the audit log %s: %s", logs[i], strerror(errno ? errno : ENOENT));
            wd_audit_files_free(&one);
            wd_audit_files_free(&lr->files);
            return -1;
        }
        char **v = realloc(lr->files.v, (lr->files.n + one.n) * sizeof *v);
        if (!v) {
            wd_errf(err, n, "out of memory");
            wd_audit_files_free(&one);
            wd_audit_files_free(&lr->files);
            return -1;
        }
        lr->files.v = v;
        memcpy(v + lr->files.n, one.v, one.n * sizeof *v);
        lr->files.n += one.n;
        free(one.v); /* its strings now lr's */
    }
    while (!lr->f && lr->next < lr->files.n)
        lr->f = fopen(lr->files.v[lr->next++], "r");
    if (!lr->f) {
        wd_errf(err, n, "cannot open the audit log %s: %s", nlogs ? logs[0] : "(none)",
                strerror(errno ? errno : ENOENT));
        wd_audit_files_free(&lr->files);
    }
    return lr->f ? 0 : -1;
}

/* the logs' names, as a report shows them: "a.jsonl" or "a.jsonl, b.jsonl"; caller frees */
static char *log_names(const char *const *logs, size_t nlogs)
{
    wd_buf b = {0};
    for (size_t i = 0; i < nlogs; i++)
        wd_buf_addf(&b, "%s%s", i ? ", " : "", logs[i]);
    return b.p ? b.p : wd_strdup("");
}

/* caller decrefs: the next record (its event name in *ev, its time in *t), NULL at the end */
static json_t *reader_next(log_reader *lr, const char **ev, int64_t *t)
{
    ssize_t len;
    while (lr->f) {
        if ((len = getline(&lr->line, &lr->cap, lr->f)) <= 0) { /* the next file of the chain */
            fclose(lr->f);
            lr->f = NULL;
            while (!lr->f && lr->next < lr->files.n)
                lr->f = fopen(lr->files.v[lr->next++], "r");
            continue;
        }
        json_t *r = json_loadb(lr->line, (size_t)len, JSON_ALLOW_NUL, NULL);
        *ev = json_string_value(json_object_get(r, "event"));
        const char *ts = json_string_value(json_object_get(r, "timestamp"));
        *t = ts ? wd_parse_time(ts) : -1;
        if (!json_is_object(r) || !*ev || *t < 0) {
            json_decref(r);
            lr->bad++;
            continue;
        }
        if ((lr->since >= 0 && *t < lr->since) || (lr->until >= 0 && *t >= lr->until)) {
            json_decref(r);
            continue;
        }
        return r;
    }
    return NULL;
}

static void reader_close(log_reader *lr)
{
    free(lr->line);
    if (lr->f)
        fclose(lr->f);
    wd_audit_files_free(&lr->files);
}

/* the report's window, when it has one */
static void set_window(json_t *rep, int64_t since, int64_t until)
{
    char a[40];
    if (since >= 0) {
        wd_rfc3339_ms(since, a, sizeof a);
        json_object_set_new(rep, "since", json_string(a));
    }
    if (until >= 0) {
        wd_rfc3339_ms(until, a, sizeof a);
        json_object_set_new(rep, "until", json_string(a));
    }
}

/* what a cost report adds up, record by record */
typedef struct {
    json_t *by_user, *by_agent, *by_model, *by_tool;
    simple_t *models;
    double total, llm_cost, tool_cost, saved, last24, failed_runs_cost;
    long calls, ok_calls, llm_calls, tool_calls, hits, runs, ok_runs;
    int64_t first, last, day_ago, now;
} cost_tally;

/* one record of the log (its event ev, at t) into c */
static void count(cost_tally *c, json_t *r, const char *ev, int64_t t)
{
    int success = json_is_true(json_object_get(r, "success"));
    double cost = num(r, "cost_usd");
    if (!strcmp(ev, "run_finished")) {
        c->runs++;
        c->ok_runs += success;
        if (!success)
            c->failed_runs_cost += cost;
    } else if (!strcmp(ev, "llm_call") || !strcmp(ev, "tool_call")) {
        int llm = ev[0] == 'l';
        c->calls++;
        c->ok_calls += success;
        c->total += cost;
        if (t >= c->day_ago && t <= c->now)
            c->last24 += cost;
        if (c->first < 0 || t < c->first)
            c->first = t;
        if (t > c->last)
            c->last = t;
        add_to(c->by_user, json_string_value(json_object_get(r, "user_id")), cost);
        add_to(c->by_agent, json_string_value(json_object_get(r, "agent")), cost);
        if (llm) {
            c->llm_calls++;
            c->llm_cost += cost;
            const char *model = json_string_value(json_object_get(r, "model"));
            add_to(c->by_model, model, cost);
            if (json_is_true(json_object_get(r, "cache_hit"))) {
                c->hits++;
                c->saved += num(r, "saved_usd");
            }
            simple_t *s = success && model ? simple_of(&c->models, model) : NULL;
            if (s) {
                s->calls++;
                if (num(r, "output_tokens") <= SIMPLE_OUTPUT_TOKENS) {
                    s->simple++;
                    s->in += num(r, "input_tokens");
                    s->out += num(r, "output_tokens");
                    s->cost += cost;
                }
            }
        } else {
            c->tool_calls++;
            c->tool_cost += cost;
            add_to(c->by_tool, json_string_value(json_object_get(r, "tool_name")), cost);
        }
    }
}

/* the report of what c added up (recommendations included); takes c's tables */
static json_t *render_cost(cost_tally *c, const char *audit_names, wd_store *st, const wd_policy *p, int64_t since,
                           int64_t until, long bad_lines)
{
    /* one success rate, of runs: the recommendations and the text speak of the same one */
    double run_rate = c->runs ? (double)c->ok_runs / (double)c->runs : 1.0;
    double burn = c->last24 / 24.0, projected = burn * 24 * 30;
    json_t *recs = json_array();
    recommend(recs, p, c->models, c->total, c->failed_runs_cost, run_rate, c->runs, burn, projected);
    for (simple_t *s = c->models, *nx; s; s = nx) {
        nx = s->next;
        free(s);
    }
    char a[40], b[40];
    json_t *rep = json_object();
    json_object_set_new(rep, "audit_log", json_string(audit_names));
    set_window(rep, since, until);
    if (c->first >= 0) {
        wd_rfc3339_ms(c->first, a, sizeof a);
        wd_rfc3339_ms(c->last, b, sizeof b);
        json_object_set_new(rep, "first_call", json_string(a));
        json_object_set_new(rep, "last_call", json_string(b));
    }
    json_object_set_new(
        rep, "totals",
        json_pack("{s:f,s:f,s:f,s:i,s:i,s:i,s:i,s:f,s:f,s:i,s:i,s:f}", "cost_usd", c->total, "llm_cost_usd",
                  c->llm_cost, "tool_cost_usd", c->tool_cost, "calls", (json_int_t)c->calls, "llm_calls",
                  (json_int_t)c->llm_calls, "tool_calls", (json_int_t)c->tool_calls, "successful_calls",
                  (json_int_t)c->ok_calls, "success_rate", run_rate, "cost_per_successful_call_usd",
                  c->ok_calls ? c->total / (double)c->ok_calls : 0.0, "runs", (json_int_t)c->runs, "successful_runs",
                  (json_int_t)c->ok_runs, "spent_on_unsuccessful_runs_usd", c->failed_runs_cost));
    json_object_set_new(json_object_get(rep, "totals"), "success_rate_is", json_string(SUCCESS_RATE_IS));
    json_object_set_new(rep, "cache", json_pack("{s:i,s:f}", "hits", (json_int_t)c->hits, "saved_usd", c->saved));
    json_object_set_new(
        rep, "burn",
        json_pack("{s:f,s:f,s:f}", "last_24h_usd", c->last24, "hourly_usd", burn, "projected_month_usd", projected));
    json_object_set_new(rep, "by_user", c->by_user);
    json_object_set_new(rep, "by_agent", c->by_agent);
    json_object_set_new(rep, "by_model", c->by_model);
    json_object_set_new(rep, "by_tool", c->by_tool);
    json_object_set_new(rep, "budgets", wd_report_budgets(st, p, c->now));
    json_object_set_new(rep, "recommendations", recs);
    if (bad_lines)
        json_object_set_new(rep, "unreadable_lines", json_integer(bad_lines));
    return rep;
}

json_t *wd_report_cost(const char *const *logs, size_t nlogs, wd_store *st, const wd_policy *p, int64_t since,
                       int64_t until, int64_t now, char *err, size_t n)
{
    log_reader lr;
    if (reader_open(&lr, logs, nlogs, since, until, err, n) < 0)
        return NULL;
    cost_tally c = {json_object(),
                    json_object(),
                    json_object(),
                    json_object(),
                    .first = -1,
                    .last = -1,
                    .day_ago = now - 24LL * 3600000,
                    .now = now};
    json_t *r;
    const char *ev;
    int64_t t;
    while ((r = reader_next(&lr, &ev, &t))) {
        count(&c, r, ev, t);
        json_decref(r);
    }
    long bad_lines = lr.bad;
    reader_close(&lr);
    char *names = log_names(logs, nlogs);
    json_t *rep = render_cost(&c, names, st, p, since, until, bad_lines);
    free(names);
    return rep;
}

static void group_text(wd_buf *b, const char *title, const json_t *g)
{
    if (!json_object_size(g))
        return;
    wd_buf_addf(b, "%s\n", title);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)g, k, v) wd_buf_addf(b, "  %-28s $%.6f  %lld call%s\n", k, num(v, "cost_usd"),
                                                       (long long)json_integer_value(json_object_get(v, "calls")),
                                                       json_integer_value(json_object_get(v, "calls")) == 1 ? "" : "s");
}

char *wd_report_cost_text(const json_t *rep)
{
    wd_buf b = {0};
    const json_t *t = json_object_get(rep, "totals");
    wd_buf_addf(&b, "cost report from %s", json_string_value(json_object_get(rep, "audit_log")));
    if (json_object_get(rep, "since"))
        wd_buf_addf(&b, " since %s", json_string_value(json_object_get(rep, "since")));
    if (json_object_get(rep, "until"))
        wd_buf_addf(&b, " until %s", json_string_value(json_object_get(rep, "until")));
    wd_buf_addf(&b, "\ntotal      $%.6f in %lld calls (LLM $%.6f in %lld, tools $%.6f in %lld)\n", num(t, "cost_usd"),
                (long long)num(t, "calls"), num(t, "llm_cost_usd"), (long long)num(t, "llm_calls"),
                num(t, "tool_cost_usd"), (long long)num(t, "tool_calls"));
    char per[40];
    wd_buf_addf(&b,
                "success    %.1f%% (%lld of %lld runs: %s)\n           %lld of %lld calls succeeded, %s per "
                "successful call\n",
                100 * num(t, "success_rate"), (long long)num(t, "successful_runs"), (long long)num(t, "runs"),
                SUCCESS_RATE_IS, (long long)num(t, "successful_calls"), (long long)num(t, "calls"),
                wd_fmt_usd(num(t, "cost_per_successful_call_usd"), per, sizeof per));
    const json_t *c = json_object_get(rep, "cache"), *bu = json_object_get(rep, "burn");
    wd_buf_addf(&b, "cache      %lld hit%s saved $%.6f\n", (long long)num(c, "hits"), num(c, "hits") == 1 ? "" : "s",
                num(c, "saved_usd"));
    wd_buf_addf(&b, "burn       $%.6f/hour over the last 24 hours, $%.2f/month projected\n", num(bu, "hourly_usd"),
                num(bu, "projected_month_usd"));
    group_text(&b, "by user", json_object_get(rep, "by_user"));
    group_text(&b, "by agent", json_object_get(rep, "by_agent"));
    group_text(&b, "by model", json_object_get(rep, "by_model"));
    group_text(&b, "by tool", json_object_get(rep, "by_tool"));
    const json_t *bs = json_object_get(rep, "budgets");
    if (json_array_size(bs))
        wd_buf_addf(&b, "budgets\n");
    size_t i;
    const json_t *x;
    json_array_foreach((json_t *)bs, i, x)
    {
        const json_t *lim = json_object_get(x, "limit_usd");
        wd_buf_addf(&b, "  %-20s %-18s $%.6f", json_string_value(json_object_get(x, "scope")),
                    json_string_value(json_object_get(x, "period")), num(x, "spent_usd"));
        char l[40];
        if (json_is_number(lim))
            wd_buf_addf(&b, " of %s (%.1f%%)", wd_fmt_usd(json_number_value(lim), l, sizeof l), num(x, "used_pct"));
        else
            wd_buf_addf(&b, " (no limit)");
        if (num(x, "reserved_usd") > 0)
            wd_buf_addf(&b, ", $%.6f held by calls in flight", num(x, "reserved_usd"));
        wd_buf_addf(&b, "\n");
    }
    wd_buf_addf(&b, "recommendations\n");
    json_array_foreach(json_object_get(rep, "recommendations"), i, x)
        wd_buf_addf(&b, "  %zu. %s\n", i + 1, json_string_value(x));
    return b.p;
}

/* ---- the compliance report ------------------------------------------------------- */

/* obj[key] += by */
static void bump(json_t *obj, const char *key, json_int_t by)
{
    key = key ? key : "?";
    json_object_set_new(obj, key, json_integer(json_integer_value(json_object_get(obj, key)) + by));
}

/* decision times: {count, total_ms, max_ms} under key */
static void time_to(json_t *times, const char *key, const json_t *wait)
{
    if (!json_is_integer(wait))
        return;
    json_int_t w = json_integer_value(wait);
    json_t *g = json_object_get(times, key);
    if (!g) {
        g = json_pack("{s:I,s:I,s:I}", "count", (json_int_t)0, "total_ms", (json_int_t)0, "max_ms", (json_int_t)0);
        json_object_set_new(times, key, g);
    }
    bump(g, "count", 1);
    bump(g, "total_ms", w);
    if (w > json_integer_value(json_object_get(g, "max_ms")))
        json_object_set_new(g, "max_ms", json_integer(w));
}

/* the approvals' times to a decision, with their means, and what triggered them (takes
** times and triggers) */
static void decision_times(json_t *appr, json_t *times, json_t *triggers)
{
    const char *k;
    json_t *g;
    json_object_foreach(times, k, g)
    {
        json_int_t c = json_integer_value(json_object_get(g, "count"));
        json_object_set_new(g, "mean_ms", json_integer(c ? json_integer_value(json_object_get(g, "total_ms")) / c : 0));
    }
    json_object_set_new(appr, "time_to_decision", times);
    json_object_set_new(appr, "by_trigger", triggers);
}

/* each log on its own chain: 0 every one intact, 1 one broken, -1 one unreadable; the
** reports one after the other in vr */
static int verify_all(const char *const *logs, size_t nlogs, wd_buf *vr, long *chained)
{
    int v = 0;
    for (size_t i = 0; i < nlogs; i++) {
        long c = 0;
        if (vr->len)
            wd_buf_addf(vr, "; ");
        int one = wd_audit_verify(logs[i], vr, &c);
        *chained += c;
        v = one < 0 || v < 0 ? -1 : one > v ? one : v;
    }
    return v;
}

json_t *wd_report_compliance(const char *const *logs, size_t nlogs, int64_t since, int64_t until, char *err, size_t n)
{
    log_reader lr;
    if (reader_open(&lr, logs, nlogs, since, until, err, n) < 0)
        return NULL;
    json_t *events = json_object(), *sev = json_object(), *vtype = json_object(), *appr = json_object(),
           *times = json_object(), *unauth = json_object(), *sens = json_object(), *kills = json_object(),
           *triggers = json_object();
    long records = 0, violations = 0, unauthorized = 0, sens_records = 0, sens_values = 0;
    static const char *const APPR[][2] = {{"approval_requested", "requested"}, {"approval_granted", "granted"},
                                          {"approval_rejected", "rejected"},   {"approval_expired", "expired"},
                                          {"approval_escalated", "escalated"}, {NULL, NULL}};
    for (int i = 0; APPR[i][0]; i++)
        json_object_set_new(appr, APPR[i][1], json_integer(0));
    json_t *r;
    const char *ev;
    int64_t t;
    while ((r = reader_next(&lr, &ev, &t))) {
        records++;
        bump(events, ev, 1);
        const char *user = json_string_value(json_object_get(r, "user_id"));
        if (!strcmp(ev, "guardrail_violation")) {
            violations++;
            const char *sv = json_string_value(json_object_get(r, "severity"));
            bump(sev, sv ? sv : "unrated", 1);
            bump(vtype, json_string_value(json_object_get(r, "violation_type")), 1);
        } else if (!strcmp(ev, "authorization_denied")) {
            unauthorized++;
            bump(unauth, user ? user : "(none)", 1);
        } else if (!strcmp(ev, "kill_switch")) {
            bump(kills, json_string_value(json_object_get(r, "action")), 1);
        }
        for (int i = 0; APPR[i][0]; i++)
            if (!strcmp(ev, APPR[i][0])) {
                bump(appr, APPR[i][1], 1);
                if (i >= 1 && i <= 3)
                    time_to(times, APPR[i][1], json_object_get(r, "wait_ms"));
                if (i == 0)
                    bump(triggers, json_string_value(json_object_get(r, "trigger")), 1);
            }
        const json_t *sd = json_object_get(r, "sensitive_data");
        if (json_is_integer(sd) && json_integer_value(sd) > 0) {
            sens_records++;
            sens_values += (long)json_integer_value(sd);
            bump(sens, ev, 1);
        }
        json_decref(r);
    }
    long bad_lines = lr.bad;
    reader_close(&lr);
    decision_times(appr, times, triggers);
    wd_buf vr = {0};
    long chained = 0;
    int v = verify_all(logs, nlogs, &vr, &chained);
    char *names = log_names(logs, nlogs);
    json_t *rep = json_pack(
        "{s:s,s:I,s:I,s:o,s:{s:I,s:s,s:o,s:o},s:o,s:{s:I,s:o},s:{s:I,s:I,s:o},s:o,s:{s:b,s:s,s:I,s:s}}", "audit_log",
        names, "records", (json_int_t)records, "unreadable_lines", (json_int_t)bad_lines, "events", events,
        "violations", "total", (json_int_t)violations, "counts",
        "guardrail_violation records; unauthorized attempts (authorization_denied) are counted apart, "
        "under unauthorized",
        "by_severity", sev, "by_type", vtype, "approvals", appr, "unauthorized", "total", (json_int_t)unauthorized,
        "by_user", unauth, "sensitive_data", "records", (json_int_t)sens_records, "values_redacted",
        (json_int_t)sens_values, "by_event", sens, "kill_switch", kills, "chain", "intact", v == 0, "status",
        v == 0   ? "intact"
        : v == 1 ? "tampered"
                 : "unreadable",
        "records_checked", (json_int_t)chained, "report", vr.p ? vr.p : "");
    wd_buf_free(&vr);
    free(names);
    if (rep)
        set_window(rep, since, until);
    if (!rep)
        wd_errf(err, n, "out of memory");
    return rep;
}

static void counts_text(wd_buf *b, const char *title, const json_t *g)
{
    wd_buf_addf(b, "%s", title);
    if (!json_object_size(g))
        wd_buf_addf(b, " none");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)g, k, v) wd_buf_addf(b, " %s %lld,", k, (long long)json_integer_value(v));
    if (json_object_size(g))
        b->p[--b->len] = '\0'; /* the last comma */
    wd_buf_addf(b, "\n");
}

char *wd_report_compliance_text(const json_t *rep)
{
    wd_buf b = {0};
    wd_buf_addf(&b, "compliance report from %s", json_string_value(json_object_get(rep, "audit_log")));
    if (json_object_get(rep, "since"))
        wd_buf_addf(&b, " since %s", json_string_value(json_object_get(rep, "since")));
    if (json_object_get(rep, "until"))
        wd_buf_addf(&b, " until %s", json_string_value(json_object_get(rep, "until")));
    wd_buf_addf(&b, "\nrecords        %lld", (long long)num(rep, "records"));
    if (num(rep, "unreadable_lines") > 0)
        wd_buf_addf(&b, " (%lld unreadable lines)", (long long)num(rep, "unreadable_lines"));
    wd_buf_addf(&b, "\n");
    counts_text(&b, "events        ", json_object_get(rep, "events"));
    const json_t *v = json_object_get(rep, "violations"), *u = json_object_get(rep, "unauthorized");
    wd_buf_addf(&b,
                "violations     %lld guardrail violations (unauthorized attempts are not among them: %lld, below)\n",
                (long long)num(v, "total"), (long long)num(u, "total"));
    counts_text(&b, "  by severity ", json_object_get(v, "by_severity"));
    counts_text(&b, "  by type     ", json_object_get(v, "by_type"));
    const json_t *a = json_object_get(rep, "approvals");
    wd_buf_addf(&b, "approvals      %lld requested, %lld granted, %lld rejected, %lld expired, %lld escalated\n",
                (long long)num(a, "requested"), (long long)num(a, "granted"), (long long)num(a, "rejected"),
                (long long)num(a, "expired"), (long long)num(a, "escalated"));
    const char *k;
    const json_t *g;
    json_object_foreach(json_object_get(a, "time_to_decision"), k, g)
        wd_buf_addf(&b, "  %-9s after %.1f s on average, %.1f s at most (%lld)\n", k, num(g, "mean_ms") / 1000,
                    num(g, "max_ms") / 1000, (long long)num(g, "count"));
    counts_text(&b, "  by trigger  ", json_object_get(a, "by_trigger"));
    wd_buf_addf(&b, "unauthorized   %lld attempts refused by authorization (authorization_denied)\n",
                (long long)num(u, "total"));
    counts_text(&b, "  by user     ", json_object_get(u, "by_user"));
    const json_t *s = json_object_get(rep, "sensitive_data");
    wd_buf_addf(&b, "sensitive data %lld records flagged, %lld values redacted\n", (long long)num(s, "records"),
                (long long)num(s, "values_redacted"));
    counts_text(&b, "kill switch   ", json_object_get(rep, "kill_switch"));
    const json_t *c = json_object_get(rep, "chain");
    wd_buf_addf(&b, "audit chain    %s (%lld records checked)%s%s\n", json_string_value(json_object_get(c, "status")),
                (long long)num(c, "records_checked"), json_is_true(json_object_get(c, "intact")) ? "" : ": ",
                json_is_true(json_object_get(c, "intact")) ? "" : json_string_value(json_object_get(c, "report")));
    return b.p;
}

/* ---- failures (docs/safety.md, Failure scenarios) ---------------------------------------- */

/* the failure mode an audit record stands for, and whether the engine stopped it before
** harm (prevented) or it happened (occurred); NULL when the record is no incident */
static const char *incident_of(const json_t *r, const char *ev, int *prevented, const char **source)
{
    const char *reason = json_string_value(json_object_get(r, "reason"));
    *prevented = 1;
    *source = ev;
    if (!strcmp(ev, "detector_verdict")) {
        *prevented = json_is_true(json_object_get(r, "prevented"));
        *source = "detector";
        const char *m = json_string_value(json_object_get(r, "failure_mode"));
        return m ? m : "unclassified";
    }
    if (!strcmp(ev, "guardrail_violation") || !strcmp(ev, "authorization_denied"))
        return "security_violation";
    if (!strcmp(ev, "validation_failed"))
        return "tool_misuse";
    if (!strcmp(ev, "budget_exceeded"))
        return "resource_exhaustion";
    if (!strcmp(ev, "breaker_opened"))
        return "cascade_failure";
    if (!strcmp(ev, "run_finished") && reason) {
        *source = "run_finished";
        if (!strcmp(reason, "max_iterations"))
            return "infinite_loop"; /* stopped by the iteration cap, late but stopped */
        if (!strcmp(reason, "timeout"))
            return "resource_exhaustion";
        if (!strcmp(reason, "failed")) {
            *prevented = 0;
            return "run_error";
        }
    }
    return NULL;
}

static void tally(json_t *group, const char *key, int prevented)
{
    json_t *g = json_object_get(group, key);
    if (!g) {
        g = json_pack("{s:I,s:I,s:I}", "incidents", (json_int_t)0, "prevented", (json_int_t)0, "occurred",
                      (json_int_t)0);
        json_object_set_new(group, key, g);
    }
    bump(g, "incidents", 1);
    bump(g, prevented ? "prevented" : "occurred", 1);
}

json_t *wd_report_failures(const char *const *logs, size_t nlogs, int64_t since, int64_t until, char *err, size_t n)
{
    log_reader lr;
    if (reader_open(&lr, logs, nlogs, since, until, err, n) < 0)
        return NULL;
    json_t *modes = json_object(), *agents = json_object(), *sources = json_object(), *det_errors = json_object();
    long runs = 0, total = 0, prevented = 0;
    json_t *r;
    const char *ev;
    int64_t t;
    while ((r = reader_next(&lr, &ev, &t))) {
        if (!strcmp(ev, "run_finished"))
            runs++;
        if (!strcmp(ev, "detector_error"))
            bump(det_errors, json_string_value(json_object_get(r, "detector")), 1);
        int prev;
        const char *source;
        const char *mode = incident_of(r, ev, &prev, &source);
        if (mode) {
            const char *agent = json_string_value(json_object_get(r, "agent"));
            total++;
            prevented += prev;
            tally(modes, mode, prev);
            tally(agents, agent && *agent ? agent : "(none)", prev);
            bump(sources, source, 1);
        }
        json_decref(r);
    }
    long bad_lines = lr.bad;
    reader_close(&lr);
    const char *top = NULL, *k;
    json_int_t best = 0;
    json_t *g;
    json_object_foreach(modes, k, g)
    {
        json_int_t c = json_integer_value(json_object_get(g, "incidents"));
        if (c > best || (c == best && top && strcmp(k, top) < 0)) {
            best = c;
            top = k;
        }
    }
    char *names = log_names(logs, nlogs);
    json_t *rep =
        json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:s?,s:o,s:o,s:o,s:o}", "audit_log", names, "runs", (json_int_t)runs,
                  "unreadable_lines", (json_int_t)bad_lines, "total_incidents", (json_int_t)total, "prevented",
                  (json_int_t)prevented, "occurred", (json_int_t)(total - prevented), "prevention_rate",
                  total ? (double)prevented / (double)total : 0.0, "most_common_mode", top, "by_failure_mode", modes,
                  "by_agent", agents, "by_source", sources, "detector_errors", det_errors);
    free(names);
    if (rep)
        set_window(rep, since, until);
    if (rep && !top)
        json_object_set_new(rep, "most_common_mode", json_null());
    if (!rep)
        wd_errf(err, n, "out of memory");
    return rep;
}

static void incidents_text(wd_buf *b, const char *title, const json_t *group)
{
    wd_buf_addf(b, "%s\n", title);
    if (!json_object_size(group))
        wd_buf_addf(b, "  none\n");
    const char *k;
    const json_t *g;
    json_object_foreach((json_t *)group, k, g)
        wd_buf_addf(b, "  %-22s %5lld incidents: %lld prevented, %lld occurred\n", k, (long long)num(g, "incidents"),
                    (long long)num(g, "prevented"), (long long)num(g, "occurred"));
}

char *wd_report_failures_text(const json_t *rep)
{
    wd_buf b = {0};
    wd_buf_addf(&b, "failure report from %s", json_string_value(json_object_get(rep, "audit_log")));
    if (json_object_get(rep, "since"))
        wd_buf_addf(&b, " since %s", json_string_value(json_object_get(rep, "since")));
    if (json_object_get(rep, "until"))
        wd_buf_addf(&b, " until %s", json_string_value(json_object_get(rep, "until")));
    wd_buf_addf(&b, "\nruns             %lld\n", (long long)num(rep, "runs"));
    wd_buf_addf(&b, "incidents        %lld: %lld prevented, %lld occurred (prevention rate %.1f%%)\n",
                (long long)num(rep, "total_incidents"), (long long)num(rep, "prevented"),
                (long long)num(rep, "occurred"), num(rep, "prevention_rate") * 100);
    const char *top = json_string_value(json_object_get(rep, "most_common_mode"));
    wd_buf_addf(&b, "most common mode %s\n", top ? top : "none");
    incidents_text(&b, "by failure mode", json_object_get(rep, "by_failure_mode"));
    incidents_text(&b, "by agent", json_object_get(rep, "by_agent"));
    counts_text(&b, "detector errors ", json_object_get(rep, "detector_errors"));
    return b.p;
}
