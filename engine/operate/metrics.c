/* metrics.c - counters and histograms keyed by name and label text, in one hash table
** under a mutex; rendered sorted, with HELP and TYPE from one table of families. */
#include "metrics.h"
#include "approval.h"
#include "breaker.h"
#include "report.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 512
/* latency buckets in seconds: a 50 ms model and a 5 us check both land somewhere useful */
static const double LE[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define NLE (sizeof LE / sizeof LE[0])

typedef struct series {
    struct series *next;
    char *family; /* e.g. warden_runs_total */
    char *labels; /* e.g. agent="a",status="completed" (may be "") */
    int hist;
    double value; /* a counter's value, a histogram's sum */
    unsigned long long count, b[NLE];
} series;

struct wd_metrics {
    pthread_mutex_t mu;
    series *tab[NBUCKETS];
    size_t n;
};

static const struct family {
    const char *name, *type, *help;
} FAMILIES[] = {
    {"warden_runs_total", "counter", "Runs ended, by agent and status."},
    {"warden_run_duration_seconds", "histogram", "Run wall time, by agent."},
    {"warden_llm_calls_total", "counter", "LLM calls, by model and outcome (ok, error, cached)."},
    {"warden_llm_latency_seconds", "histogram", "LLM call latency (retries included), by model."},
    {"warden_llm_tokens_total", "counter", "Tokens, by model and kind (input, output)."},
    {"warden_llm_cost_usd_total", "counter", "LLM spend in USD, by user and model."},
    {"warden_tool_calls_total", "counter",
     "Tool calls, by tool and outcome (ok, error, circuit_open, or the refusal's event)."},
    {"warden_tool_latency_seconds", "histogram", "Tool call latency (handler and retries), by tool."},
    {"warden_tool_cost_usd_total", "counter", "Tool spend in USD, by user and tool."},
    {"warden_violations_total", "counter", "Refusals and guardrail hits, by event and user."},
    {"warden_approvals_total", "counter", "Approval events, by event."},
    {"warden_detector_verdicts_total", "counter", "Detector verdicts, by detector and verdict."},
    {"warden_breaker_transitions_total", "counter", "Breaker state changes, by breaker and new state."},
    {"warden_http_requests_total", "counter", "API responses, by route and status code."},
    {"warden_notifications_total", "counter",
     "Webhook delivery attempts, by event and outcome (delivered, failed, dead)."},
    {"warden_auth_blocks_total", "counter", "Addresses and keys blocked after failed authentications."},
    {"warden_policy_reloads_total", "counter", "Policy and script changes applied."},
    {"warden_policy_reload_failures_total", "counter", "Policy and script changes rejected."},
    {"warden_policy_generation", "gauge", "Policy loads since the server started (1: the first)."},
    {"warden_runs_active", "gauge", "Runs queued or running."},
    {"warden_runs_running", "gauge", "Runs admitted and running."},
    {"warden_runs_queued", "gauge", "Runs waiting for room (serve.max_runs, serve.memory_mb)."},
    {"warden_sandbox_memory_reserved_mb", "gauge", "Sandbox memory the running runs reserved (serve.memory_mb)."},
    {"warden_breaker_state", "gauge", "Breaker state: 0 closed, 1 open, 2 half-open."},
    {"warden_breaker_failures", "gauge", "Consecutive failures counted by a breaker."},
    {"warden_budget_spent_usd", "gauge", "Spend in the current period, by scope and period."},
    {"warden_budget_limit_usd", "gauge", "The limit of a budget, by scope and period."},
    {"warden_budget_used_ratio", "gauge", "Spend over limit, by scope and period."},
    {"warden_approvals_pending", "gauge", "Approval requests waiting for a person."},
    {NULL, NULL, NULL},
};

wd_metrics *wd_metrics_new(void)
{
    wd_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void wd_metrics_free(wd_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        while (m->tab[i]) {
            series *s = m->tab[i];
            m->tab[i] = s->next;
            free(s->family);
            free(s->labels);
            free(s);
        }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static unsigned hash2(const char *a, const char *b)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h % NBUCKETS;
}

/* with mu held: the series, made on first use; NULL out of memory */
static series *get(wd_metrics *m, const char *family, const char *labels, int hist)
{
    unsigned h = hash2(family, labels);
    for (series *s = m->tab[h]; s; s = s->next)
        if (!strcmp(s->family, family) && !strcmp(s->labels, labels))
            return s;
    series *s = calloc(1, sizeof *s);
    if (!s || !(s->family = wd_strdup(family)) || !(s->labels = wd_strdup(labels))) {
        if (s)
            free(s->family);
        free(s);
        return NULL;
    }
    s->hist = hist;
    s->next = m->tab[h];
    m->tab[h] = s;
    m->n++;
    return s;
}

/* labels text from pairs (name, value, ..., NULL) into out, values escaped as the format
** wants (backslash, quote, newline); a NULL value reads "". On the stack: every audited
** record comes through here. A text too long for out is cut at a character, still quoted */
#define LABELS_MAX 512
static void labels(char *out, const char *const *kv)
{
    size_t n = 0, cap = LABELS_MAX - 8; /* room for the closing quote and NUL */
    for (int i = 0; kv[i] && n < cap; i += 2) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s=\"", i ? "," : "", kv[i]);
        if (n >= cap)
            n = cap;
        for (const char *v = kv[i + 1]; v && *v && n + 2 < cap; v++) {
            if (*v == '\\' || *v == '"' || *v == '\n')
                out[n++] = '\\';
            out[n++] = *v == '\n' ? 'n' : *v;
        }
        out[n++] = '"';
    }
    out[n] = '\0';
}

static void add(wd_metrics *m, const char *family, double v, const char *const *kv)
{
    char l[LABELS_MAX];
    labels(l, kv);
    pthread_mutex_lock(&m->mu);
    series *s = get(m, family, l, 0);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->mu);
}

static void observe(wd_metrics *m, const char *family, double seconds, const char *const *kv)
{
    char l[LABELS_MAX];
    labels(l, kv);
    pthread_mutex_lock(&m->mu);
    series *s = get(m, family, l, 1);
    if (s) {
        s->value += seconds;
        s->count++;
        for (size_t i = 0; i < NLE; i++)
            if (seconds <= LE[i])
                s->b[i]++;
    }
    pthread_mutex_unlock(&m->mu);
}

static const char *str(const json_t *rec, const char *k)
{
    const char *v = json_string_value(json_object_get(rec, k));
    return v ? v : "";
}

static double num(const json_t *rec, const char *k) { return json_number_value(json_object_get(rec, k)); }

static int is_refusal(const char *ev)
{
    return !strcmp(ev, "authorization_denied") || !strcmp(ev, "validation_failed") ||
           !strcmp(ev, "guardrail_violation") || !strcmp(ev, "rate_limited") || !strcmp(ev, "budget_exceeded");
}

void wd_metrics_record(wd_metrics *m, const json_t *rec)
{
    const char *ev = str(rec, "event"), *user = str(rec, "user_id");
    int ok = json_is_true(json_object_get(rec, "success"));
    if (!strcmp(ev, "run_finished")) {
        add(m, "warden_runs_total", 1,
            (const char *[]){"agent", str(rec, "agent"), "status", str(rec, "reason"), NULL});
        observe(m, "warden_run_duration_seconds", num(rec, "latency_ms") / 1000,
                (const char *[]){"agent", str(rec, "agent"), NULL});
    } else if (!strcmp(ev, "llm_call")) {
        const char *model = str(rec, "model");
        int cached = json_is_true(json_object_get(rec, "cached"));
        add(m, "warden_llm_calls_total", 1,
            (const char *[]){"model", model, "outcome",
                             cached ? "cached"
                             : ok   ? "ok"
                                    : "error",
                             NULL});
        observe(m, "warden_llm_latency_seconds", num(rec, "latency_ms") / 1000, (const char *[]){"model", model, NULL});
        add(m, "warden_llm_tokens_total", num(rec, "input_tokens"),
            (const char *[]){"model", model, "kind", "input", NULL});
        add(m, "warden_llm_tokens_total", num(rec, "output_tokens"),
            (const char *[]){"model", model, "kind", "output", NULL});
        add(m, "warden_llm_cost_usd_total", num(rec, "cost_usd"), (const char *[]){"user", user, "model", model, NULL});
    } else if (!strcmp(ev, "tool_call")) {
        const char *tool = str(rec, "tool_name");
        const char *outcome = ok ? "ok" : !strcmp(str(rec, "reason"), "circuit_open") ? "circuit_open" : "error";
        add(m, "warden_tool_calls_total", 1, (const char *[]){"tool", tool, "outcome", outcome, NULL});
        if (json_object_get(rec, "latency_ms"))
            observe(m, "warden_tool_latency_seconds", num(rec, "latency_ms") / 1000,
                    (const char *[]){"tool", tool, NULL});
        add(m, "warden_tool_cost_usd_total", num(rec, "cost_usd"), (const char *[]){"user", user, "tool", tool, NULL});
    } else if (is_refusal(ev)) {
        add(m, "warden_violations_total", 1, (const char *[]){"event", ev, "user", user, NULL});
        /* a name the policy does not declare came from a script or a model: never a label */
        const char *tool =
            json_is_true(json_object_get(rec, "tool_undeclared")) ? "(undeclared)" : str(rec, "tool_name");
        if (*tool)
            add(m, "warden_tool_calls_total", 1, (const char *[]){"tool", tool, "outcome", ev, NULL});
    } else if (!strncmp(ev, "approval_", 9)) {
        add(m, "warden_approvals_total", 1, (const char *[]){"event", ev, NULL});
    } else if (!strcmp(ev, "detector_verdict")) {
        add(m, "warden_detector_verdicts_total", 1,
            (const char *[]){"detector", str(rec, "detector"), "verdict", str(rec, "verdict"), NULL});
    } else if (!strncmp(ev, "breaker_", 8)) {
        add(m, "warden_breaker_transitions_total", 1,
            (const char *[]){"breaker", str(rec, "breaker"), "state", str(rec, "circuit_breaker_state"), NULL});
    } else if (!strcmp(ev, "notification")) {
        const char *outcome = ok ? "delivered" : json_is_true(json_object_get(rec, "given_up")) ? "dead" : "failed";
        add(m, "warden_notifications_total", 1,
            (const char *[]){"event", str(rec, "notify_event"), "outcome", outcome, NULL});
    } else if (!strcmp(ev, "auth_blocked")) {
        add(m, "warden_auth_blocks_total", 1, (const char *[]){NULL});
    }
}

void wd_metrics_http(wd_metrics *m, const char *route, int status)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    add(m, "warden_http_requests_total", 1, (const char *[]){"route", route, "code", code, NULL});
}

void wd_metrics_reload(wd_metrics *m, int ok)
{
    add(m, ok ? "warden_policy_reloads_total" : "warden_policy_reload_failures_total", 1, (const char *[]){NULL});
}

/* with mu held: sums of a cost family by one of its two labels into obj[value] */
static void sum_by(wd_metrics *m, const char *family, const char *label, json_t *obj)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=\"", label);
    for (int i = 0; i < NBUCKETS; i++)
        for (series *s = m->tab[i]; s; s = s->next) {
            if (strcmp(s->family, family))
                continue;
            const char *v = strstr(s->labels, pat);
            if (!v)
                continue;
            v += strlen(pat);
            const char *e = strchr(v, '"');
            char key[200];
            snprintf(key, sizeof key, "%.*s", (int)(e ? e - v : 0), v);
            json_object_set_new(obj, key, json_real(json_number_value(json_object_get(obj, key)) + s->value));
        }
}

json_t *wd_metrics_costs(wd_metrics *m)
{
    json_t *u = json_object(), *mo = json_object(), *t = json_object();
    pthread_mutex_lock(&m->mu);
    sum_by(m, "warden_llm_cost_usd_total", "user", u);
    sum_by(m, "warden_tool_cost_usd_total", "user", u);
    sum_by(m, "warden_llm_cost_usd_total", "model", mo);
    sum_by(m, "warden_tool_cost_usd_total", "tool", t);
    pthread_mutex_unlock(&m->mu);
    return json_pack("{s:o,s:o,s:o}", "by_user", u, "by_model", mo, "by_tool", t);
}

static int by_labels(const void *a, const void *b)
{
    return strcmp((*(series *const *)a)->labels, (*(series *const *)b)->labels);
}

/* a number as the format wants it: integers without a fraction, reals to 12 digits */
static void value(wd_buf *b, double v)
{
    if (v < 1e15 && v > -1e15 && v == (double)(long long)v) /* in range before the cast */
        wd_buf_addf(b, "%lld\n", (long long)v);
    else
        wd_buf_addf(b, "%.12g\n", v);
}

static void line(wd_buf *b, const char *name, const char *labels_text, const char *extra, double v)
{
    wd_buf_addf(b, "%s", name);
    if (*labels_text || extra)
        wd_buf_addf(b, "{%s%s%s}", labels_text, *labels_text && extra ? "," : "", extra ? extra : "");
    wd_buf_add(b, " ", 1);
    value(b, v);
}

static void gauge(wd_buf *out, const char *family, double v, const char *const *kv)
{
    char l[LABELS_MAX];
    labels(l, kv);
    line(out, family, l, NULL, v);
}

/* the index of a family in FAMILIES (every name asked for is there) */
static int fam(const char *name)
{
    int i = 0;
    while (FAMILIES[i].name && strcmp(FAMILIES[i].name, name))
        i++;
    return i;
}

/* the families read now, as gauges, into per-family buffers (g[i] for FAMILIES[i]) */
static void scrape(wd_buf *g, wd_store *st, const wd_policy *p, const wd_metrics_now *sn)
{
    long live = sn->live, generation = sn->generation;
    int64_t now = wd_wall_ms();
    gauge(&g[fam("warden_policy_generation")], "warden_policy_generation", (double)generation, (const char *[]){NULL});
    gauge(&g[fam("warden_runs_active")], "warden_runs_active", (double)live, (const char *[]){NULL});
    gauge(&g[fam("warden_runs_running")], "warden_runs_running", (double)sn->running, (const char *[]){NULL});
    gauge(&g[fam("warden_runs_queued")], "warden_runs_queued", (double)sn->queued, (const char *[]){NULL});
    gauge(&g[fam("warden_sandbox_memory_reserved_mb")], "warden_sandbox_memory_reserved_mb", (double)sn->reserved_mb,
          (const char *[]){NULL});
    int ib = fam("warden_breaker_state"), ibf = fam("warden_breaker_failures"), isp = fam("warden_budget_spent_usd"),
        ilim = fam("warden_budget_limit_usd"), irat = fam("warden_budget_used_ratio"),
        iap = fam("warden_approvals_pending");
    if (!st)
        return;
    wd_breaker_row *rows = NULL;
    size_t n = 0;
    if (wd_store_breaker_list(st, &rows, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            gauge(&g[ib], "warden_breaker_state", rows[i].state, (const char *[]){"breaker", rows[i].name, NULL});
            gauge(&g[ibf], "warden_breaker_failures", (double)rows[i].failures,
                  (const char *[]){"breaker", rows[i].name, NULL});
        }
        free(rows);
    }
    json_t *bs = p ? wd_report_budgets(st, p, now) : NULL;
    size_t i;
    json_t *b;
    json_array_foreach(bs, i, b)
    {
        const char *kv[] = {"scope", json_string_value(json_object_get(b, "scope")), "period",
                            json_string_value(json_object_get(b, "period")), NULL};
        gauge(&g[isp], "warden_budget_spent_usd", json_number_value(json_object_get(b, "spent_usd")), kv);
        if (json_is_number(json_object_get(b, "limit_usd"))) {
            gauge(&g[ilim], "warden_budget_limit_usd", json_number_value(json_object_get(b, "limit_usd")), kv);
            gauge(&g[irat], "warden_budget_used_ratio", json_number_value(json_object_get(b, "used_pct")) / 100, kv);
        }
    }
    json_decref(bs);
    json_t *ap = NULL;
    if (wd_store_approval_sweep(st, wd_store_now(st)) >= 0 && wd_store_approval_list(st, 0, &ap) == 0)
        gauge(&g[iap], "warden_approvals_pending", (double)json_array_size(ap), (const char *[]){NULL});
    json_decref(ap);
}

int wd_metrics_render(wd_metrics *m, wd_buf *out, wd_store *st, const wd_policy *p, const wd_metrics_now *now)
{
    size_t nf = 0;
    while (FAMILIES[nf].name)
        nf++;
    wd_buf *g = calloc(nf, sizeof *g);
    if (!g)
        return -1;
    scrape(g, st, p, now); /* store reads outside the lock */
    pthread_mutex_lock(&m->mu);
    series **v = malloc((m->n ? m->n : 1) * sizeof *v);
    for (size_t f = 0; v && f < nf; f++) {
        const struct family *fam = &FAMILIES[f];
        size_t n = 0;
        for (int i = 0; i < NBUCKETS; i++)
            for (series *s = m->tab[i]; s; s = s->next)
                if (!strcmp(s->family, fam->name))
                    v[n++] = s;
        if (!n && !g[f].len)
            continue;
        wd_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
        qsort(v, n, sizeof *v, by_labels);
        for (size_t k = 0; k < n; k++) {
            series *s = v[k];
            if (!s->hist) {
                line(out, fam->name, s->labels, NULL, s->value);
                continue;
            }
            char name[128], le[40];
            snprintf(name, sizeof name, "%.*s_bucket", (int)(strlen(fam->name)), fam->name);
            for (size_t i = 0; i < NLE; i++) {
                snprintf(le, sizeof le, "le=\"%g\"", LE[i]);
                line(out, name, s->labels, le, (double)s->b[i]);
            }
            line(out, name, s->labels, "le=\"+Inf\"", (double)s->count);
            snprintf(name, sizeof name, "%s_sum", fam->name);
            line(out, name, s->labels, NULL, s->value);
            snprintf(name, sizeof name, "%s_count", fam->name);
            line(out, name, s->labels, NULL, (double)s->count);
        }
        if (g[f].len)
            wd_buf_add(out, g[f].p, g[f].len);
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t f = 0; f < nf; f++)
        wd_buf_free(&g[f]);
    free(g);
    int rc = v ? 0 : -1;
    free(v);
    return rc;
}
