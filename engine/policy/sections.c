/* sections.c - each section of a policy (defaults, serve, tiers, users, models, tools,
** approvals, autonomy, detectors, audit, ...) read and checked into the snapshot */
#include "schema.h"
#include "yread.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "rx.h"

static int role_index(const wd_policy *p, const char *name)
{
    for (size_t i = 0; i < p->roles.n; i++)
        if (!strcmp(p->roles.v[i], name))
            return (int)i;
    return -1;
}

static const char *const TOP_KEYS[] = {"version", "defaults", "roles",     "users",     "tiers",       "budget",
                                       "models",  "tools",    "approvals", "detectors", "kill_switch", "audit",
                                       "store",   "cache",    "autonomy",  "hitl",      "serve",       "notify",
                                       "mcp",     "sessions", NULL};
static const char *const DEFAULT_KEYS[] = {"max_iterations",
                                           "max_tool_calls_per_answer",
                                           "structured_retries",
                                           "max_tool_calls",
                                           "max_audit_bytes",
                                           "max_audit_records",
                                           "max_audit_field_bytes",
                                           "timeouts",
                                           "retry",
                                           "breaker",
                                           "sandbox",
                                           "exec",
                                           NULL};
static const char *const SERVE_KEYS[] = {
    "memory_mb", "max_runs",  "max_queued", "max_runs_per_user", "max_queued_per_user", "queue_wait_ms",
    "result_kb", "events_kb", "kept_mb",    "keep_runs",         "auth_failures",       NULL};
static const char *const AUTHFAIL_KEYS[] = {"max", "window", "block_for", NULL};
static const char *const EXEC_KEYS[] = {"cpu_s", "memory_mb", "procs", "file_mb", "output_kb", NULL};
static const char *const HITL_KEYS[] = {"confidence_below", "cost_above_usd", "consecutive_errors", NULL};
static const char *const TIMEOUT_KEYS[] = {"llm_connect_ms", "llm_read_ms", "tool_ms", "run_ms", NULL};
static const char *const RETRY_KEYS[] = {"max_retries", "base_ms", "max_ms", "jitter_ms", NULL};
static const char *const BREAKER_KEYS[] = {"failure_threshold", "open_ms", "half_open_probes", NULL};
static const char *const SANDBOX_KEYS[] = {"memory_mb", "instructions_per_call", NULL};
static const char *const USER_KEYS[] = {"role", "tier", "api_key_sha256", "os_user", "scope", NULL};
static const char *const TIER_KEYS[] = {"per_run_usd", "daily_usd", "monthly_usd", "requests_per_hour", NULL};
static const char *const BUDGET_KEYS[] = {"global_monthly_usd", "warn_ratio", NULL};
static const char *const MODEL_KEYS[] = {
    "provider", "name", "base_url", "api_key_env", "input_usd_per_1k", "output_usd_per_1k", "max_output_tokens", NULL};
static const char *const TOOL_KEYS[] = {"permission",
                                        "risk",
                                        "category",
                                        "timeout_ms",
                                        "cost_usd",
                                        "rate_limit_per_hour",
                                        "requires_approval",
                                        "allowed_resources",
                                        "writable_resources",
                                        "forbidden_patterns",
                                        "path_arguments",
                                        "allowed_hosts",
                                        "schema",
                                        NULL};
static const char *const APPROVAL_KEYS[] = {"expiry", "escalate_at", "routes", "min_risk", "trust_cli_identity", NULL};
static const char *const EXPIRY_KEYS[] = {"low", "normal", "high", "critical", NULL};
static const char *const KILL_KEYS[] = {"consecutive_errors", NULL};
static const char *const STORE_KEYS[] = {"backend",      "path",       "url",   "prefix",
                                         "password_env", "timeout_ms", "lease", NULL};
static const char *const CACHE_KEYS[] = {"enabled", "ttl", "any_temperature", NULL};
static const char *const SESSION_KEYS[] = {"max_messages", "max_tokens", "ttl", NULL};
const char *const WD_RISKS[] = {"safe", "low", "medium", "high", "critical", NULL};
#define RISKS WD_RISKS
static const char *const PROVIDERS[] = {"openai", "anthropic", "mock", NULL};

static void load_defaults(wd_yread *c, const wd_ynode *d)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, d, "defaults", DEFAULT_KEYS) < 0)
        return;
    long long mi = p->max_iterations;
    wd_yread_int(c, d, "max_iterations", "defaults", &mi, 1, 1000);
    p->max_iterations = (int)mi;
    wd_yread_int(c, d, "max_tool_calls_per_answer", "defaults", &p->max_tool_calls_per_answer, 1, 10000);
    wd_yread_int(c, d, "structured_retries", "defaults", &p->structured_retries, 0, 5);
    wd_yread_int(c, d, "max_tool_calls", "defaults", &p->max_tool_calls, 1, 1000000);
    wd_yread_int(c, d, "max_audit_bytes", "defaults", &p->max_audit_bytes, 65536, 1LL << 34);
    wd_yread_int(c, d, "max_audit_records", "defaults", &p->max_audit_records, 100, 100000000);
    wd_yread_int(c, d, "max_audit_field_bytes", "defaults", &p->max_audit_field_bytes, 1024, 16LL << 20);
    if (p->max_audit_field_bytes > p->max_audit_bytes / 4)
        wd_yread_err(c, d,
                     "defaults.max_audit_field_bytes (%lld) must be at most a quarter of defaults.max_audit_bytes "
                     "(%lld): one record may not take a run's whole log",
                     p->max_audit_field_bytes, p->max_audit_bytes);
    const wd_ynode *n;
    if ((n = wd_ydoc_get(d, "timeouts")) && wd_yread_map(c, n, "defaults.timeouts", TIMEOUT_KEYS) == 0) {
        wd_yread_dur(c, n, "llm_connect_ms", "defaults.timeouts", &p->llm_connect_ms, 1, 600000);
        wd_yread_dur(c, n, "llm_read_ms", "defaults.timeouts", &p->llm_read_ms, 1, 3600000);
        wd_yread_dur(c, n, "tool_ms", "defaults.timeouts", &p->tool_ms, 1, 3600000);
        wd_yread_dur(c, n, "run_ms", "defaults.timeouts", &p->run_ms, 1, 86400000);
    }
    if ((n = wd_ydoc_get(d, "retry")) && wd_yread_map(c, n, "defaults.retry", RETRY_KEYS) == 0) {
        wd_yread_int(c, n, "max_retries", "defaults.retry", &p->max_retries, 0, 10);
        wd_yread_dur(c, n, "base_ms", "defaults.retry", &p->retry_base_ms, 0, 600000);
        wd_yread_dur(c, n, "max_ms", "defaults.retry", &p->retry_max_ms, 0, 3600000);
        wd_yread_dur(c, n, "jitter_ms", "defaults.retry", &p->retry_jitter_ms, 0, 60000);
    }
    if ((n = wd_ydoc_get(d, "breaker")) && wd_yread_map(c, n, "defaults.breaker", BREAKER_KEYS) == 0) {
        wd_yread_int(c, n, "failure_threshold", "defaults.breaker", &p->breaker_failure_threshold, 1, 1000);
        wd_yread_dur(c, n, "open_ms", "defaults.breaker", &p->breaker_open_ms, 1, 86400000);
        wd_yread_int(c, n, "half_open_probes", "defaults.breaker", &p->breaker_half_open_probes, 1, 100);
    }
    if ((n = wd_ydoc_get(d, "sandbox")) && wd_yread_map(c, n, "defaults.sandbox", SANDBOX_KEYS) == 0) {
        wd_yread_int(c, n, "memory_mb", "defaults.sandbox", &p->memory_mb, 1, 16384);
        wd_yread_int(c, n, "instructions_per_call", "defaults.sandbox", &p->instructions_per_call, 1000,
                     1000000000000LL);
    }
    if ((n = wd_ydoc_get(d, "exec")) && wd_yread_map(c, n, "defaults.exec", EXEC_KEYS) == 0) {
        wd_yread_int(c, n, "cpu_s", "defaults.exec", &p->exec_cpu_s, 1, 86400);
        wd_yread_int(c, n, "memory_mb", "defaults.exec", &p->exec_memory_mb, 16, 65536);
        wd_yread_int(c, n, "procs", "defaults.exec", &p->exec_procs, 1, 100000);
        wd_yread_int(c, n, "file_mb", "defaults.exec", &p->exec_file_mb, 0, 1048576);
        wd_yread_int(c, n, "output_kb", "defaults.exec", &p->exec_output_kb, 1, 65536);
    }
}

/* ** store: SQLite (path) or Redis (url, prefix, password_env, timeout_ms, lease). A
** Redis store becomes one locator string, redis://host:port/db?prefix=..&..., which is
** what --store takes too: the store opens from one string either way. */
static int plain_chars(const char *v, const char *extra)
{
    for (; *v; v++)
        if (!(*v >= 'a' && *v <= 'z') && !(*v >= 'A' && *v <= 'Z') && !(*v >= '0' && *v <= '9') && !strchr(extra, *v))
            return 0;
    return 1;
}

static void load_store(wd_yread *c, const wd_ynode *n, wd_policy *p)
{
    char *backend = NULL, *url = NULL, *prefix = NULL, *penv = NULL;
    long long timeout = 250, lease = 15000;
    wd_yread_str(c, n, "backend", "store", &backend);
    wd_yread_str(c, n, "url", "store", &url);
    wd_yread_str(c, n, "prefix", "store", &prefix);
    wd_yread_str(c, n, "password_env", "store", &penv);
    wd_yread_int(c, n, "timeout_ms", "store", &timeout, 1, 60000);
    wd_yread_dur(c, n, "lease", "store", &lease, 1000, 86400000);
    int redis = backend && !strcmp(backend, "redis");
    if (backend && !redis && strcmp(backend, "sqlite"))
        wd_yread_err(c, wd_ydoc_get(n, "backend"), "store.backend must be sqlite or redis, not '%s'", backend);
    if (!redis) {
        const char *only[] = {"url", "prefix", "password_env", "timeout_ms", "lease"};
        for (size_t i = 0; i < sizeof only / sizeof *only; i++)
            if (wd_ydoc_get(n, only[i]))
                wd_yread_err(c, wd_ydoc_get(n, only[i]), "store.%s is for backend: redis", only[i]);
        wd_yread_str(c, n, "path", "store", &p->store_path);
        goto out;
    }
    if (wd_ydoc_get(n, "path"))
        wd_yread_err(c, wd_ydoc_get(n, "path"), "store.path is for backend: sqlite; a Redis store takes url");
    if (!url)
        url = wd_strdup("redis://127.0.0.1:6379/0");
    int tcp = !strncmp(url, "redis://", 8) && url[8] && url[8] != '/', unix_ = !strncmp(url, "redis+unix:///", 14);
    if ((!tcp && !unix_) || strchr(url, '?') || strchr(url, '@') || strchr(url, '&'))
        wd_yread_err(c, wd_ydoc_get(n, "url"),
                     "store.url must be redis://HOST:PORT/DB or redis+unix:///PATH, without a password (name "
                     "its variable in password_env) or a query");
    if (prefix && (!*prefix || strlen(prefix) > 64 || !plain_chars(prefix, ":_.-")))
        wd_yread_err(c, wd_ydoc_get(n, "prefix"), "store.prefix: 1 to 64 letters, digits and : _ . -");
    if (penv && (!*penv || strlen(penv) > 100 || !plain_chars(penv, "_")))
        wd_yread_err(c, wd_ydoc_get(n, "password_env"), "store.password_env: an environment variable's name");
    wd_buf b = {0};
    wd_buf_addf(&b, "%s%sprefix=%s&timeout_ms=%lld&lease_ms=%lld", url ? url : "", "?",
                prefix ? prefix : "warden:", timeout, lease);
    if (penv)
        wd_buf_addf(&b, "&password_env=%s", penv);
    if (b.p) {
        free(p->store_path);
        p->store_path = b.p;
    }
out:
    free(backend);
    free(url);
    free(prefix);
    free(penv);
}

static void load_serve(wd_yread *c, const wd_ynode *s)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, s, "serve", SERVE_KEYS) < 0)
        return;
    wd_yread_int(c, s, "memory_mb", "serve", &p->serve_memory_mb, 16, 1LL << 24);
    wd_yread_int(c, s, "max_runs", "serve", &p->serve_max_runs, 1, 1000000);
    wd_yread_int(c, s, "max_queued", "serve", &p->serve_max_queued, 0, 1000000);
    wd_yread_int(c, s, "max_runs_per_user", "serve", &p->serve_max_runs_user, 1, 1000000);
    wd_yread_int(c, s, "max_queued_per_user", "serve", &p->serve_max_queued_user, 0, 1000000);
    wd_yread_dur(c, s, "queue_wait_ms", "serve", &p->serve_queue_wait_ms, 1, 86400000);
    wd_yread_int(c, s, "result_kb", "serve", &p->serve_result_kb, 1, 1LL << 20);
    wd_yread_int(c, s, "events_kb", "serve", &p->serve_events_kb, 1, 1LL << 20);
    wd_yread_int(c, s, "kept_mb", "serve", &p->serve_kept_mb, 1, 1LL << 20);
    wd_yread_int(c, s, "keep_runs", "serve", &p->serve_keep_runs, 1, 10000000);
    const wd_ynode *af = wd_ydoc_get(s, "auth_failures");
    if (af && wd_yread_map(c, af, "serve.auth_failures", AUTHFAIL_KEYS) == 0) {
        wd_yread_int(c, af, "max", "serve.auth_failures", &p->serve_authfail_max, 1, 100000000);
        wd_yread_dur(c, af, "window", "serve.auth_failures", &p->serve_authfail_window_ms, 1000, 366LL * 86400000);
        wd_yread_dur(c, af, "block_for", "serve.auth_failures", &p->serve_authfail_block_ms, 1000, 366LL * 86400000);
    }
    if (p->memory_mb > p->serve_memory_mb)
        wd_yread_err(c, s,
                     "serve.memory_mb (%lld) is less than one run's defaults.sandbox.memory_mb (%lld): no run could "
                     "start",
                     p->serve_memory_mb, p->memory_mb);
}

static void load_tiers(wd_yread *c, const wd_ynode *t)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, t, "tiers", NULL) < 0)
        return;
    p->tiers = calloc(t->n / 2 + 1, sizeof *p->tiers);
    if (!p->tiers)
        return;
    for (size_t i = 0; i + 1 < t->n; i += 2) {
        const wd_ynode *v = t->kids[i + 1];
        char where[160];
        snprintf(where, sizeof where, "tiers.%s", t->kids[i]->str);
        wd_tier *tr = &p->tiers[p->n_tiers++];
        tr->name = wd_strdup(t->kids[i]->str);
        tr->per_run_usd = 1.0;
        tr->daily_usd = tr->monthly_usd = 0;
        if (wd_yread_map(c, v, where, TIER_KEYS) < 0)
            continue;
        wd_yread_num(c, v, "per_run_usd", where, &tr->per_run_usd, 0, 1e9);
        wd_yread_num(c, v, "daily_usd", where, &tr->daily_usd, 0, 1e9);
        wd_yread_num(c, v, "monthly_usd", where, &tr->monthly_usd, 0, 1e12);
        wd_yread_int(c, v, "requests_per_hour", where, &tr->requests_per_hour, 0, 1000000000);
    }
}

/* budgets and rate limits are kept in the store under the name: a longer one could
** not be told from another sharing its first bytes */
#define MAX_NAME 128

static void check_name(wd_yread *c, const wd_ynode *k, const char *what)
{
    if (strlen(k->str) > MAX_NAME)
        wd_yread_err(c, k, "%s.%.40s...: a name is at most %d bytes (this one has %zu)", what, k->str, MAX_NAME,
                     strlen(k->str));
}

static void load_users(wd_yread *c, const wd_ynode *u)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, u, "users", NULL) < 0)
        return;
    p->users = calloc(u->n / 2 + 1, sizeof *p->users);
    if (!p->users)
        return;
    for (size_t i = 0; i + 1 < u->n; i += 2) {
        const wd_ynode *v = u->kids[i + 1];
        char where[160];
        snprintf(where, sizeof where, "users.%s", u->kids[i]->str);
        wd_user *us = &p->users[p->n_users++];
        check_name(c, u->kids[i], "users");
        us->name = wd_strdup(u->kids[i]->str);
        us->role = -1;
        us->tier = -1;
        if (wd_yread_map(c, v, where, USER_KEYS) < 0)
            continue;
        const wd_ynode *r = wd_ydoc_get(v, "role");
        if (!r) {
            wd_yread_err(c, v, "%s has no role; add role: one of the roles list", where);
        } else if (r->kind != WD_Y_SCALAR || (us->role = role_index(p, r->str)) < 0) {
            wd_yread_err(c, r, "%s.role '%s' is not in roles; use one of the roles list", where,
                         r->kind == WD_Y_SCALAR ? r->str : "?");
        }
        const wd_ynode *t = wd_ydoc_get(v, "tier");
        if (t) {
            for (size_t k = 0; t->kind == WD_Y_SCALAR && k < p->n_tiers; k++)
                if (!strcmp(p->tiers[k].name, t->str))
                    us->tier = (int)k;
            if (us->tier < 0)
                wd_yread_err(c, t, "%s.tier '%s' is not defined under tiers", where,
                             t->kind == WD_Y_SCALAR ? t->str : "?");
        }
        const wd_ynode *k = wd_ydoc_get(v, "api_key_sha256");
        if (k) {
            size_t l = k->kind == WD_Y_SCALAR ? k->len : 0;
            int hex = l == 64;
            for (size_t j = 0; hex && j < l; j++)
                hex = strchr("0123456789abcdef", k->str[j]) != NULL;
            if (!hex)
                wd_yread_err(c, k, "%s.api_key_sha256 must be 64 lowercase hex digits (sha256sum of the key)", where);
            else
                us->api_key_sha256 = wd_strdup(k->str);
        }
        const wd_ynode *o = wd_ydoc_get(v, "os_user");
        if (o) {
            if (o->kind != WD_Y_SCALAR || !o->len || o->len > 64)
                wd_yread_err(c, o, "%s.os_user must be a login name (the user running `warden approvals`)", where);
            else
                us->os_user = wd_strdup(o->str);
        }
        const wd_ynode *sc = wd_ydoc_get(v, "scope");
        if (sc) {
            if (sc->kind == WD_Y_SCALAR && !strcmp(sc->str, "metrics"))
                us->metrics_only = 1;
            else if (!(sc->kind == WD_Y_SCALAR && !strcmp(sc->str, "all")))
                wd_yread_err(c, sc, "%s.scope must be all (the default) or metrics (its key reads /metrics only)",
                             where);
        }
    }
}

static void load_models(wd_yread *c, const wd_ynode *m)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, m, "models", NULL) < 0)
        return;
    p->models = calloc(m->n / 2 + 1, sizeof *p->models);
    if (!p->models)
        return;
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const wd_ynode *v = m->kids[i + 1];
        char where[160];
        snprintf(where, sizeof where, "models.%s", m->kids[i]->str);
        wd_model *md = &p->models[p->n_models++];
        md->alias = wd_strdup(m->kids[i]->str);
        if (wd_yread_map(c, v, where, MODEL_KEYS) < 0)
            continue;
        wd_yread_str(c, v, "provider", where, &md->provider);
        wd_yread_str(c, v, "name", where, &md->name);
        wd_yread_str(c, v, "base_url", where, &md->base_url);
        wd_yread_str(c, v, "api_key_env", where, &md->api_key_env);
        wd_yread_num(c, v, "input_usd_per_1k", where, &md->input_usd_per_1k, 0, 1000);
        wd_yread_num(c, v, "output_usd_per_1k", where, &md->output_usd_per_1k, 0, 1000);
        md->max_output_tokens = 4096;
        wd_yread_int(c, v, "max_output_tokens", where, &md->max_output_tokens, 1, 10000000);
        if (!md->provider)
            wd_yread_err(c, v, "%s has no provider; add provider: openai (or anthropic, mock)", where);
        else if (!wd_yread_in_list(md->provider, PROVIDERS))
            wd_yread_err(c, wd_ydoc_get(v, "provider"), "%s.provider '%s' is unknown; use openai, anthropic or mock",
                         where, md->provider);
        if (!md->name)
            md->name = wd_strdup(md->alias);
    }
}

/* a rule's schema: a JSON Schema every call's arguments must also fit, beside the tool's
** own (an MCP server's inputSchema, a script's parameters): the policy narrows it */
static void load_narrowing(wd_yread *c, const wd_ynode *sn, const char *where, wd_tool_policy *tp)
{
    if (!sn)
        return;
    if (sn->kind != WD_Y_MAP) {
        wd_yread_err(c, sn, "%s.schema must be a JSON Schema object, e.g. {properties: {path: {pattern: ...}}}", where);
        return;
    }
    char err[400];
    json_t *j = wd_ydoc_to_json(sn);
    tp->schema = j ? wd_schema_compile(j, err, sizeof err) : NULL;
    if (tp->schema)
        tp->schema_json = j;
    else {
        wd_yread_err(c, sn, "%s.schema: %s", where, j ? err : "out of memory");
        json_decref(j);
    }
}

static void load_tools(wd_yread *c, const wd_ynode *t)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, t, "tools", NULL) < 0)
        return;
    p->tools = calloc(t->n / 2 + 1, sizeof *p->tools);
    if (!p->tools)
        return;
    for (size_t i = 0; i + 1 < t->n; i += 2) {
        const wd_ynode *v = t->kids[i + 1];
        char where[160], sub[200];
        snprintf(where, sizeof where, "tools.%s", t->kids[i]->str);
        wd_tool_policy *tp = &p->tools[p->n_tools++];
        check_name(c, t->kids[i], "tools");
        tp->name = wd_strdup(t->kids[i]->str);
        tp->pattern = strchr(t->kids[i]->str, '*') != NULL;
        if (tp->pattern && strspn(t->kids[i]->str, "*") == strlen(t->kids[i]->str))
            wd_yread_err(c, t->kids[i], "tools.%s: a pattern must name some characters besides '*' (like files__*)",
                         t->kids[i]->str);
        tp->permission = -1;
        tp->timeout_ms = -1; /* inherit defaults.timeouts.tool_ms */
        if (wd_yread_map(c, v, where, TOOL_KEYS) < 0)
            continue;
        const wd_ynode *pm = wd_ydoc_get(v, "permission");
        if (!pm)
            wd_yread_err(c, v, "%s has no permission; add permission: one of the roles list", where);
        else if (pm->kind != WD_Y_SCALAR || (tp->permission = role_index(p, pm->str)) < 0)
            wd_yread_err(c, pm, "%s.permission '%s' is not in roles; use one of the roles list", where,
                         pm->kind == WD_Y_SCALAR ? pm->str : "?");
        wd_yread_str(c, v, "risk", where, &tp->risk);
        if (!tp->risk)
            tp->risk = wd_strdup("low");
        else if (!wd_yread_in_list(tp->risk, RISKS))
            wd_yread_err(c, wd_ydoc_get(v, "risk"), "%s.risk '%s'; use safe, low, medium, high or critical", where,
                         tp->risk);
        wd_yread_str(c, v, "category", where, &tp->category);
        if (!tp->category)
            tp->category = wd_strdup("read");
        wd_yread_dur(c, v, "timeout_ms", where, &tp->timeout_ms, 1, 3600000);
        wd_yread_num(c, v, "cost_usd", where, &tp->cost_usd, 0, 1e6);
        wd_yread_int(c, v, "rate_limit_per_hour", where, &tp->rate_limit_per_hour, 0, 1000000000);
        wd_yread_bool(c, v, "requires_approval", where, &tp->requires_approval);
        snprintf(sub, sizeof sub, "%s.allowed_resources", where);
        wd_yread_strlist(c, wd_ydoc_get(v, "allowed_resources"), sub, &tp->allowed_resources);
        snprintf(sub, sizeof sub, "%s.writable_resources", where);
        wd_yread_strlist(c, wd_ydoc_get(v, "writable_resources"), sub, &tp->writable_resources);
        snprintf(sub, sizeof sub, "%s.path_arguments", where);
        wd_yread_strlist(c, wd_ydoc_get(v, "path_arguments"), sub, &tp->path_arguments);
        snprintf(sub, sizeof sub, "%s.allowed_hosts", where);
        wd_yread_strlist(c, wd_ydoc_get(v, "allowed_hosts"), sub, &tp->allowed_hosts);
        snprintf(sub, sizeof sub, "%s.forbidden_patterns", where);
        wd_yread_rxlist(c, wd_ydoc_get(v, "forbidden_patterns"), sub, &tp->forbidden);
        load_narrowing(c, wd_ydoc_get(v, "schema"), where, tp);
    }
}

static void load_approvals(wd_yread *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, a, "approvals", APPROVAL_KEYS) < 0)
        return;
    const wd_ynode *e = wd_ydoc_get(a, "expiry");
    if (e && wd_yread_map(c, e, "approvals.expiry", EXPIRY_KEYS) == 0)
        for (int i = 0; EXPIRY_KEYS[i]; i++)
            wd_yread_dur(c, e, EXPIRY_KEYS[i], "approvals.expiry", &p->expiry_ms[i], 1000, 30LL * 86400000);
    wd_yread_num(c, a, "escalate_at", "approvals", &p->escalate_at, 0, 1);
    wd_yread_bool(c, a, "trust_cli_identity", "approvals", &p->approval_trust_cli);
    const wd_ynode *mr = wd_ydoc_get(a, "min_risk");
    if (mr) {
        if (mr->kind == WD_Y_SCALAR && !strcmp(mr->str, "none"))
            p->approval_min_risk = 5;
        else if (mr->kind == WD_Y_SCALAR && wd_yread_in_list(mr->str, RISKS))
            p->approval_min_risk = wd_policy_risk_rank(mr->str);
        else
            wd_yread_err(c, mr, "approvals.min_risk must be safe, low, medium, high, critical or none");
    }
    const wd_ynode *r = wd_ydoc_get(a, "routes");
    if (r && wd_yread_map(c, r, "approvals.routes", RISKS) == 0) {
        for (size_t i = 0; i + 1 < r->n; i += 2)
            if (r->kids[i + 1]->kind != WD_Y_SEQ)
                wd_yread_err(c, r->kids[i + 1], "approvals.routes.%s must be a list of approver names",
                             r->kids[i]->str);
        json_decref(p->routes);
        p->routes = wd_ydoc_to_json(r);
    }
}

/* autonomy: {category: level}, levels 0 (never) .. 5 (execute) */
static void load_autonomy(wd_yread *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, a, "autonomy", NULL) < 0)
        return;
    for (size_t i = 0; i + 1 < a->n; i += 2) {
        long long lv;
        if (wd_ydoc_int(a->kids[i + 1], &lv) < 0 || lv < 0 || lv > 5)
            wd_yread_err(c, a->kids[i + 1],
                         "autonomy.%s must be a level from 0 to 5 (0 never, 1 senior approval, 2 approval, "
                         "3 execute and notify, 4-5 execute)",
                         a->kids[i]->str);
    }
    json_decref(p->autonomy);
    p->autonomy = wd_ydoc_to_json(a);
}

int wd_policy_risk_rank(const char *risk)
{
    for (int i = 0; i < 5; i++)
        if (risk && !strcmp(risk, RISKS[i]))
            return i;
    return 2;
}

int wd_policy_autonomy(const wd_policy *p, const char *category)
{
    json_t *v = category ? json_object_get(p->autonomy, category) : NULL;
    return json_is_integer(v) ? (int)json_integer_value(v) : 5;
}

/* the built-in detectors' settings (lua/warden/detectors/); any detector also takes
** verdict, enforce and risk, read by the engine. A user's detector takes any keys. */
static const char *const DETECTOR_KEYS[][9] = {
    {"loop", "identical_calls", "alternating", "no_progress_window", NULL},
    {"grounding", "threshold", "strict_numbers", "min_overlap", "min_claim_words", "require_sources", NULL},
    {"misuse", "placeholders", "failures", NULL},
    {"exhaustion", "ratio", NULL},
    {"selection_bias", "min_samples", "window", "alpha", "options", NULL},
    {"confirmation_bias", "max_confirming", "min_evidence", NULL},
    {NULL},
};

static void load_detectors(wd_yread *c, const wd_ynode *d)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, d, "detectors", NULL) < 0)
        return;
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const wd_ynode *v = d->kids[i + 1];
        const char *name = d->kids[i]->str;
        char where[160];
        snprintf(where, sizeof where, "detectors.%s", name);
        const char *keys[16] = {"verdict", "enforce", "risk", "share_state", NULL};
        for (int b = 0; DETECTOR_KEYS[b][0]; b++)
            if (!strcmp(DETECTOR_KEYS[b][0], name))
                for (int k = 1; DETECTOR_KEYS[b][k]; k++)
                    keys[3 + k] = DETECTOR_KEYS[b][k];
        int builtin = keys[4] != NULL;
        if (wd_yread_map(c, v, where, builtin ? keys : NULL) < 0)
            continue;
        const wd_ynode *vd = wd_ydoc_get(v, "verdict");
        if (vd && (vd->kind != WD_Y_SCALAR ||
                   (strcmp(vd->str, "halt") && strcmp(vd->str, "warn") && strcmp(vd->str, "escalate"))))
            wd_yread_err(c, vd, "%s.verdict must be halt, warn or escalate", where);
        const wd_ynode *en = wd_ydoc_get(v, "enforce");
        if (en && (en->kind != WD_Y_SCALAR || (strcmp(en->str, "true") && strcmp(en->str, "false"))))
            wd_yread_err(c, en, "%s.enforce must be true (the detector watches every agent) or false", where);
        const wd_ynode *sh = wd_ydoc_get(v, "share_state");
        if (sh && (sh->kind != WD_Y_SCALAR || (strcmp(sh->str, "true") && strcmp(sh->str, "false"))))
            wd_yread_err(c, sh, "%s.share_state must be true (every agent's %s shares one ctx.store) or false", where,
                         name);
        const wd_ynode *rk = wd_ydoc_get(v, "risk");
        if (rk && (rk->kind != WD_Y_SCALAR || !wd_yread_in_list(rk->str, RISKS)))
            wd_yread_err(c, rk, "%s.risk must be one of safe, low, medium, high, critical (it routes escalations)",
                         where);
    }
    json_decref(p->detectors);
    p->detectors = wd_ydoc_to_json(d);
}

/* fills c->p from the document; problems go to c->errs */
wd_policy *wd_policy_build(wd_yread *c, const wd_ynode *root)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, root, "the policy", TOP_KEYS) < 0)
        return NULL;
    const wd_ynode *n;
    if ((n = wd_ydoc_get(root, "version"))) {
        long long v;
        if (wd_ydoc_int(n, &v) < 0 || v != 1)
            wd_yread_err(c, n, "version must be 1");
    }
    if ((n = wd_ydoc_get(root, "roles"))) {
        int loaded = wd_yread_strlist(c, n, "roles", &p->roles) == 0;
        for (size_t i = 0; loaded && i < p->roles.n; i++)
            for (size_t j = i + 1; j < p->roles.n; j++)
                if (p->roles.v[i] && p->roles.v[j] && !strcmp(p->roles.v[i], p->roles.v[j]))
                    wd_yread_err(c, n, "roles: '%s' is listed twice", p->roles.v[i]);
    } else {
        const char *def[] = {"read", "write", "admin"};
        p->roles.v = calloc(3, sizeof(char *));
        for (int i = 0; p->roles.v && i < 3; i++)
            p->roles.v[p->roles.n++] = wd_strdup(def[i]);
    }
    if ((n = wd_ydoc_get(root, "defaults")))
        load_defaults(c, n);
    if ((n = wd_ydoc_get(root, "tiers")))
        load_tiers(c, n);
    if ((n = wd_ydoc_get(root, "users")))
        load_users(c, n);
    if ((n = wd_ydoc_get(root, "budget")) && wd_yread_map(c, n, "budget", BUDGET_KEYS) == 0) {
        wd_yread_num(c, n, "global_monthly_usd", "budget", &p->global_monthly_usd, 0, 1e12);
        wd_yread_num(c, n, "warn_ratio", "budget", &p->warn_ratio, 0, 1);
    }
    if ((n = wd_ydoc_get(root, "models")))
        load_models(c, n);
    if ((n = wd_ydoc_get(root, "tools")))
        load_tools(c, n);
    if ((n = wd_ydoc_get(root, "approvals")))
        load_approvals(c, n);
    if ((n = wd_ydoc_get(root, "detectors")))
        load_detectors(c, n);
    if ((n = wd_ydoc_get(root, "kill_switch")) && wd_yread_map(c, n, "kill_switch", KILL_KEYS) == 0)
        wd_yread_int(c, n, "consecutive_errors", "kill_switch", &p->kill_consecutive_errors, 0, 1000000);
    if ((n = wd_ydoc_get(root, "autonomy")))
        load_autonomy(c, n);
    if ((n = wd_ydoc_get(root, "hitl")) && wd_yread_map(c, n, "hitl", HITL_KEYS) == 0) {
        wd_yread_num(c, n, "confidence_below", "hitl", &p->hitl_confidence_below, 0, 1);
        wd_yread_num(c, n, "cost_above_usd", "hitl", &p->hitl_cost_above_usd, 0, 1e9);
        wd_yread_int(c, n, "consecutive_errors", "hitl", &p->hitl_consecutive_errors, 0, 1000000);
    }
    if ((n = wd_ydoc_get(root, "audit")))
        wd_policy_load_audit(c, n);
    if ((n = wd_ydoc_get(root, "notify")))
        wd_policy_load_notify(c, n);
    if ((n = wd_ydoc_get(root, "mcp")))
        wd_policy_load_mcp(c, n);
    if ((n = wd_ydoc_get(root, "store")) && wd_yread_map(c, n, "store", STORE_KEYS) == 0)
        load_store(c, n, p);
    if ((n = wd_ydoc_get(root, "cache")) && wd_yread_map(c, n, "cache", CACHE_KEYS) == 0) {
        wd_yread_bool(c, n, "enabled", "cache", &p->cache_enabled);
        wd_yread_dur(c, n, "ttl", "cache", &p->cache_ttl_ms, 1000, 366LL * 86400000);
        wd_yread_bool(c, n, "any_temperature", "cache", &p->cache_any_temperature);
    }
    if ((n = wd_ydoc_get(root, "sessions")) && wd_yread_map(c, n, "sessions", SESSION_KEYS) == 0) {
        wd_yread_int(c, n, "max_messages", "sessions", &p->session_max_messages, 2, 10000);
        wd_yread_int(c, n, "max_tokens", "sessions", &p->session_max_tokens, 100, 10000000);
        wd_yread_dur(c, n, "ttl", "sessions", &p->session_ttl_ms, 1000, 366LL * 86400000);
    }
    if ((n = wd_ydoc_get(root, "serve")))
        load_serve(c, n);
    else if (p->memory_mb > p->serve_memory_mb)
        p->serve_memory_mb = p->memory_mb; /* a machine smaller than one run: one at a time */
    wd_policy_compile_redactions(c, root);
    for (size_t i = 0; i < p->n_tools; i++)
        if (p->tools[i].timeout_ms < 0)
            p->tools[i].timeout_ms = p->tool_ms;
    return p;
}
