/* policy.c - YAML policy into a validated, immutable snapshot.
** Every key is checked: type, range, unknown keys (with a suggestion), and references
** (a user's role and tier, a tool's permission). All problems are reported at once. */
#include "policy.h"
#include "util.h"
#include "ydoc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_POLICY_FILES 64

typedef struct {
    wd_perrors *errs;
    wd_policy *p;
    const char *fname;
} pctx;

static void perr(pctx *c, const wd_ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(pctx *c, const wd_ynode *n, const char *fmt, ...)
{
    wd_buf b = {0};
    va_list ap;
    wd_buf_addf(&b, "%s:%d:%d: ", n && n->file ? n->file : c->fname, n ? n->line : 1, n ? n->col : 1);
    va_start(ap, fmt);
    wd_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    if (!b.p)
        return;
    char **v = realloc(c->errs->v, (c->errs->n + 1) * sizeof *v);
    if (!v) {
        wd_buf_free(&b);
        return;
    }
    c->errs->v = v;
    v[c->errs->n++] = b.p;
}

void wd_perrors_free(wd_perrors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* report keys of map not in keys[]; 0 when the node is a map */
static int check_map(pctx *c, const wd_ynode *n, const char *where, const char *const *keys)
{
    if (!n || n->kind != WD_Y_MAP) {
        perr(c, n, "%s must be a mapping (key: value lines)", where);
        return -1;
    }
    for (size_t i = 0; i + 1 < n->n; i += 2) {
        const wd_ynode *k = n->kids[i];
        if (k->kind != WD_Y_SCALAR) {
            perr(c, k, "%s: keys must be plain names", where);
            continue;
        }
        for (size_t j = i + 2; j + 1 < n->n; j += 2)
            if (n->kids[j]->kind == WD_Y_SCALAR && !strcmp(n->kids[j]->str, k->str))
                perr(c, n->kids[j], "%s: key '%s' appears twice (first at line %d); keep one", where,
                     k->str, k->line);
        if (!keys)
            continue;
        int found = 0;
        const char *best = NULL;
        size_t bestd = 3;
        for (const char *const *kk = keys; *kk; kk++) {
            if (!strcmp(*kk, k->str)) {
                found = 1;
                break;
            }
            size_t d = edit_distance(*kk, k->str);
            if (d < bestd) {
                bestd = d;
                best = *kk;
            }
        }
        if (found)
            continue;
        if (best) {
            perr(c, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where, best);
        } else {
            wd_buf b = {0};
            for (const char *const *kk = keys; *kk; kk++)
                wd_buf_addf(&b, "%s%s", kk == keys ? "" : ", ", *kk);
            perr(c, k, "unknown key '%s' in %s; expected one of: %s", k->str, where, b.p ? b.p : "");
            wd_buf_free(&b);
        }
    }
    return 0;
}

long long wd_policy_duration(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0)) /* NaN too: no conversion to an integer below */
        return -1;
    double mul;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return -1;
    double ms = v * mul;
    if (!(ms <= 9.0e15))
        return -1;
    return (long long)ms;
}

static void get_int(pctx *c, const wd_ynode *m, const char *key, const char *where, long long *dst,
                    long long lo, long long hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    long long v;
    if (!n)
        return;
    if (wd_ydoc_int(n, &v) < 0) {
        perr(c, n, "%s.%s must be a whole number, e.g. %s: %lld", where, key, key, *dst);
        return;
    }
    if (v < lo || v > hi) {
        perr(c, n, "%s.%s is %lld; write a number from %lld to %lld", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

static void get_dur(pctx *c, const wd_ynode *m, const char *key, const char *where, long long *dst,
                    long long lo, long long hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    if (!n)
        return;
    long long v = n->kind == WD_Y_SCALAR ? wd_policy_duration(n->str) : -1;
    if (v < 0) {
        perr(c, n, "%s.%s must be a duration: milliseconds (5000) or a string like 90s, 15m, 4h",
             where, key);
        return;
    }
    if (v < lo || v > hi) {
        perr(c, n, "%s.%s is %lld ms; write a duration from %lld ms to %lld ms", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

static void get_num(pctx *c, const wd_ynode *m, const char *key, const char *where, double *dst,
                    double lo, double hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    double v;
    if (!n)
        return;
    if (wd_ydoc_number(n, &v) < 0) {
        perr(c, n, "%s.%s must be a number, e.g. %s: %g", where, key, key, *dst);
        return;
    }
    if (v < lo || v > hi) {
        perr(c, n, "%s.%s is %g; write a number from %g to %g", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

static void get_bool(pctx *c, const wd_ynode *m, const char *key, const char *where, int *dst)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    int v;
    if (!n)
        return;
    if (wd_ydoc_bool(n, &v) < 0) {
        perr(c, n, "%s.%s must be true or false", where, key);
        return;
    }
    *dst = v;
}

/* *dst is replaced (old value freed) */
static void get_str(pctx *c, const wd_ynode *m, const char *key, const char *where, char **dst)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    if (!n)
        return;
    if (n->kind != WD_Y_SCALAR || wd_ydoc_is_null(n)) {
        perr(c, n, "%s.%s must be a string", where, key);
        return;
    }
    free(*dst);
    *dst = wd_strdup(n->str);
}

static int strlist_from(pctx *c, const wd_ynode *n, const char *where, wd_strlist *out)
{
    if (!n)
        return 0;
    if (n->kind != WD_Y_SEQ) {
        perr(c, n, "%s must be a list, e.g. [a, b]", where);
        return -1;
    }
    out->v = calloc(n->n ? n->n : 1, sizeof *out->v);
    if (!out->v)
        return -1;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kids[i]->kind != WD_Y_SCALAR) {
            perr(c, n->kids[i], "%s[%zu] must be a string", where, i);
            continue;
        }
        if (!(out->v[out->n] = wd_strdup(n->kids[i]->str))) {
            perr(c, n->kids[i], "out of memory");
            return -1;
        }
        out->n++;
    }
    return 0;
}

static void strlist_free(wd_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static void rxlist_free(wd_rxlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        wd_rx_free(l->v[i]);
    free(l->v);
}

static void rxlist_from(pctx *c, const wd_ynode *n, const char *where, wd_rxlist *out)
{
    if (!n)
        return;
    if (n->kind != WD_Y_SEQ) {
        perr(c, n, "%s must be a list of patterns, e.g. ['\\.env$', 'secret']", where);
        return;
    }
    out->v = calloc(n->n ? n->n : 1, sizeof *out->v);
    if (!out->v)
        return;
    for (size_t i = 0; i < n->n; i++) {
        char e[200];
        if (n->kids[i]->kind != WD_Y_SCALAR) {
            perr(c, n->kids[i], "%s[%zu] must be a pattern string", where, i);
            continue;
        }
        wd_rx *rx = wd_rx_compile(n->kids[i]->str, WD_RX_CASELESS, e, sizeof e);
        if (!rx) {
            perr(c, n->kids[i], "%s[%zu]: %s; quote the pattern in single quotes so YAML keeps backslashes",
                 where, i, e);
            continue;
        }
        out->v[out->n++] = rx;
    }
}

static int role_index(const wd_policy *p, const char *name)
{
    for (size_t i = 0; i < p->roles.n; i++)
        if (!strcmp(p->roles.v[i], name))
            return (int)i;
    return -1;
}

static const char *const TOP_KEYS[] = {"version", "defaults", "roles", "users", "tiers", "budget",
                                       "models", "tools", "approvals", "detectors", "kill_switch",
                                       "audit", "store", "cache", "autonomy", "hitl", "serve", NULL};
static const char *const DEFAULT_KEYS[] = {"max_iterations", "max_tool_calls_per_answer", "max_tool_calls",
                                           "max_audit_bytes", "max_audit_records", "max_audit_field_bytes",
                                           "timeouts", "retry", "breaker", "sandbox", "exec", NULL};
static const char *const SERVE_KEYS[] = {"memory_mb", "max_runs", "max_queued", "max_runs_per_user",
                                         "max_queued_per_user", "queue_wait_ms", "result_kb", "events_kb",
                                         "kept_mb", "keep_runs", NULL};
static const char *const EXEC_KEYS[] = {"cpu_s", "memory_mb", "procs", "file_mb", "output_kb", NULL};
static const char *const HITL_KEYS[] = {"confidence_below", "cost_above_usd", "consecutive_errors", NULL};
static const char *const TIMEOUT_KEYS[] = {"llm_connect_ms", "llm_read_ms", "tool_ms", "run_ms", NULL};
static const char *const RETRY_KEYS[] = {"max_retries", "base_ms", "max_ms", "jitter_ms", NULL};
static const char *const BREAKER_KEYS[] = {"failure_threshold", "open_ms", "half_open_probes", NULL};
static const char *const SANDBOX_KEYS[] = {"memory_mb", "instructions_per_call", NULL};
static const char *const USER_KEYS[] = {"role", "tier", "api_key_sha256", "os_user", NULL};
static const char *const TIER_KEYS[] = {"per_run_usd", "daily_usd", "monthly_usd", "requests_per_hour", NULL};
static const char *const BUDGET_KEYS[] = {"global_monthly_usd", "warn_ratio", NULL};
static const char *const MODEL_KEYS[] = {"provider", "name", "base_url", "api_key_env",
                                         "input_usd_per_1k", "output_usd_per_1k", "max_output_tokens", NULL};
static const char *const TOOL_KEYS[] = {"permission", "risk", "category", "timeout_ms", "cost_usd",
                                        "rate_limit_per_hour", "requires_approval", "allowed_resources",
                                        "writable_resources", "forbidden_patterns", "allowed_hosts", NULL};
static const char *const APPROVAL_KEYS[] = {"expiry", "escalate_at", "routes", "min_risk", "trust_cli_identity", NULL};
static const char *const EXPIRY_KEYS[] = {"low", "normal", "high", "critical", NULL};
static const char *const KILL_KEYS[] = {"consecutive_errors", NULL};
static const char *const AUDIT_KEYS[] = {"path", "fsync", "redact_keys", "redact_patterns", NULL};
static const char *const STORE_KEYS[] = {"path", NULL};
static const char *const CACHE_KEYS[] = {"enabled", "ttl", "any_temperature", NULL};
const char *const WD_RISKS[] = {"safe", "low", "medium", "high", "critical", NULL};
#define RISKS WD_RISKS
static const char *const PROVIDERS[] = {"openai", "anthropic", "mock", NULL};

static int in_list(const char *s, const char *const *l)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return 1;
    return 0;
}

/* named redaction patterns users may list under audit.redact_patterns */
static const struct {
    const char *name, *rx;
} REDACT_NAMED[] = {
    {"credit_card", "\\b(?:\\d[ -]?){12,18}\\d\\b"},
    {"email", "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"},
    {"bearer_token", "\\bBearer\\s+[A-Za-z0-9._~+/=-]+"},
    {"api_key", "\\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"},
    {"ssn", "\\b\\d{3}-\\d{2}-\\d{4}\\b"},
    {NULL, NULL},
};

static void load_defaults(pctx *c, const wd_ynode *d)
{
    wd_policy *p = c->p;
    if (check_map(c, d, "defaults", DEFAULT_KEYS) < 0)
        return;
    long long mi = p->max_iterations;
    get_int(c, d, "max_iterations", "defaults", &mi, 1, 1000);
    p->max_iterations = (int)mi;
    get_int(c, d, "max_tool_calls_per_answer", "defaults", &p->max_tool_calls_per_answer, 1, 10000);
    get_int(c, d, "max_tool_calls", "defaults", &p->max_tool_calls, 1, 1000000);
    get_int(c, d, "max_audit_bytes", "defaults", &p->max_audit_bytes, 65536, 1LL << 34);
    get_int(c, d, "max_audit_records", "defaults", &p->max_audit_records, 100, 100000000);
    get_int(c, d, "max_audit_field_bytes", "defaults", &p->max_audit_field_bytes, 1024, 16LL << 20);
    if (p->max_audit_field_bytes > p->max_audit_bytes / 4)
        perr(c, d, "defaults.max_audit_field_bytes (%lld) must be at most a quarter of defaults.max_audit_bytes "
                   "(%lld): one record may not take a run's whole log", p->max_audit_field_bytes, p->max_audit_bytes);
    const wd_ynode *n;
    if ((n = wd_ydoc_get(d, "timeouts")) && check_map(c, n, "defaults.timeouts", TIMEOUT_KEYS) == 0) {
        get_dur(c, n, "llm_connect_ms", "defaults.timeouts", &p->llm_connect_ms, 1, 600000);
        get_dur(c, n, "llm_read_ms", "defaults.timeouts", &p->llm_read_ms, 1, 3600000);
        get_dur(c, n, "tool_ms", "defaults.timeouts", &p->tool_ms, 1, 3600000);
        get_dur(c, n, "run_ms", "defaults.timeouts", &p->run_ms, 1, 86400000);
    }
    if ((n = wd_ydoc_get(d, "retry")) && check_map(c, n, "defaults.retry", RETRY_KEYS) == 0) {
        get_int(c, n, "max_retries", "defaults.retry", &p->max_retries, 0, 10);
        get_dur(c, n, "base_ms", "defaults.retry", &p->retry_base_ms, 0, 600000);
        get_dur(c, n, "max_ms", "defaults.retry", &p->retry_max_ms, 0, 3600000);
        get_dur(c, n, "jitter_ms", "defaults.retry", &p->retry_jitter_ms, 0, 60000);
    }
    if ((n = wd_ydoc_get(d, "breaker")) && check_map(c, n, "defaults.breaker", BREAKER_KEYS) == 0) {
        get_int(c, n, "failure_threshold", "defaults.breaker", &p->breaker_failure_threshold, 1, 1000);
        get_dur(c, n, "open_ms", "defaults.breaker", &p->breaker_open_ms, 1, 86400000);
        get_int(c, n, "half_open_probes", "defaults.breaker", &p->breaker_half_open_probes, 1, 100);
    }
    if ((n = wd_ydoc_get(d, "sandbox")) && check_map(c, n, "defaults.sandbox", SANDBOX_KEYS) == 0) {
        get_int(c, n, "memory_mb", "defaults.sandbox", &p->memory_mb, 1, 16384);
        get_int(c, n, "instructions_per_call", "defaults.sandbox", &p->instructions_per_call, 1000,
                1000000000000LL);
    }
    if ((n = wd_ydoc_get(d, "exec")) && check_map(c, n, "defaults.exec", EXEC_KEYS) == 0) {
        get_int(c, n, "cpu_s", "defaults.exec", &p->exec_cpu_s, 1, 86400);
        get_int(c, n, "memory_mb", "defaults.exec", &p->exec_memory_mb, 16, 65536);
        get_int(c, n, "procs", "defaults.exec", &p->exec_procs, 1, 100000);
        get_int(c, n, "file_mb", "defaults.exec", &p->exec_file_mb, 0, 1048576);
        get_int(c, n, "output_kb", "defaults.exec", &p->exec_output_kb, 1, 65536);
    }
}

static void load_serve(pctx *c, const wd_ynode *s)
{
    wd_policy *p = c->p;
    if (check_map(c, s, "serve", SERVE_KEYS) < 0)
        return;
    get_int(c, s, "memory_mb", "serve", &p->serve_memory_mb, 16, 1LL << 24);
    get_int(c, s, "max_runs", "serve", &p->serve_max_runs, 1, 1000000);
    get_int(c, s, "max_queued", "serve", &p->serve_max_queued, 0, 1000000);
    get_int(c, s, "max_runs_per_user", "serve", &p->serve_max_runs_user, 1, 1000000);
    get_int(c, s, "max_queued_per_user", "serve", &p->serve_max_queued_user, 0, 1000000);
    get_dur(c, s, "queue_wait_ms", "serve", &p->serve_queue_wait_ms, 1, 86400000);
    get_int(c, s, "result_kb", "serve", &p->serve_result_kb, 1, 1LL << 20);
    get_int(c, s, "events_kb", "serve", &p->serve_events_kb, 1, 1LL << 20);
    get_int(c, s, "kept_mb", "serve", &p->serve_kept_mb, 1, 1LL << 20);
    get_int(c, s, "keep_runs", "serve", &p->serve_keep_runs, 1, 10000000);
    if (p->memory_mb > p->serve_memory_mb)
        perr(c, s, "serve.memory_mb (%lld) is less than one run's defaults.sandbox.memory_mb (%lld): no run could "
                   "start", p->serve_memory_mb, p->memory_mb);
}

/* half of what the machine (or the container's cgroup, if less) has, in MB */
static long long half_the_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    long long bytes = pages > 0 && psz > 0 ? (long long)pages * psz : 4LL << 30;
    char buf[64];
    int fd = open("/sys/fs/cgroup/memory.max", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        long long cg = strtoll(buf, NULL, 10);
        if (cg > 0 && cg < bytes)
            bytes = cg;
    }
    long long mb = bytes / 2 >> 20;
    return mb < 256 ? 256 : mb;
}

static void load_tiers(pctx *c, const wd_ynode *t)
{
    wd_policy *p = c->p;
    if (check_map(c, t, "tiers", NULL) < 0)
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
        if (check_map(c, v, where, TIER_KEYS) < 0)
            continue;
        get_num(c, v, "per_run_usd", where, &tr->per_run_usd, 0, 1e9);
        get_num(c, v, "daily_usd", where, &tr->daily_usd, 0, 1e9);
        get_num(c, v, "monthly_usd", where, &tr->monthly_usd, 0, 1e12);
        get_int(c, v, "requests_per_hour", where, &tr->requests_per_hour, 0, 1000000000);
    }
}

/* budgets and rate limits are kept in the store under the name: a longer one could
** not be told from another sharing its first bytes */
#define MAX_NAME 128

static void check_name(pctx *c, const wd_ynode *k, const char *what)
{
    if (strlen(k->str) > MAX_NAME)
        perr(c, k, "%s.%.40s...: a name is at most %d bytes (this one has %zu)", what, k->str, MAX_NAME,
             strlen(k->str));
}

static void load_users(pctx *c, const wd_ynode *u)
{
    wd_policy *p = c->p;
    if (check_map(c, u, "users", NULL) < 0)
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
        if (check_map(c, v, where, USER_KEYS) < 0)
            continue;
        const wd_ynode *r = wd_ydoc_get(v, "role");
        if (!r) {
            perr(c, v, "%s has no role; add role: one of the roles list", where);
        } else if (r->kind != WD_Y_SCALAR || (us->role = role_index(p, r->str)) < 0) {
            perr(c, r, "%s.role '%s' is not in roles; use one of the roles list", where,
                 r->kind == WD_Y_SCALAR ? r->str : "?");
        }
        const wd_ynode *t = wd_ydoc_get(v, "tier");
        if (t) {
            for (size_t k = 0; t->kind == WD_Y_SCALAR && k < p->n_tiers; k++)
                if (!strcmp(p->tiers[k].name, t->str))
                    us->tier = (int)k;
            if (us->tier < 0)
                perr(c, t, "%s.tier '%s' is not defined under tiers", where,
                     t->kind == WD_Y_SCALAR ? t->str : "?");
        }
        const wd_ynode *k = wd_ydoc_get(v, "api_key_sha256");
        if (k) {
            size_t l = k->kind == WD_Y_SCALAR ? k->len : 0;
            int hex = l == 64;
            for (size_t j = 0; hex && j < l; j++)
                hex = strchr("0123456789abcdef", k->str[j]) != NULL;
            if (!hex)
                perr(c, k, "%s.api_key_sha256 must be 64 lowercase hex digits (sha256sum of the key)", where);
            else
                us->api_key_sha256 = wd_strdup(k->str);
        }
        const wd_ynode *o = wd_ydoc_get(v, "os_user");
        if (o) {
            if (o->kind != WD_Y_SCALAR || !o->len || o->len > 64)
                perr(c, o, "%s.os_user must be a login name (the user running `warden approvals`)", where);
            else
                us->os_user = wd_strdup(o->str);
        }
    }
}

static void load_models(pctx *c, const wd_ynode *m)
{
    wd_policy *p = c->p;
    if (check_map(c, m, "models", NULL) < 0)
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
        if (check_map(c, v, where, MODEL_KEYS) < 0)
            continue;
        get_str(c, v, "provider", where, &md->provider);
        get_str(c, v, "name", where, &md->name);
        get_str(c, v, "base_url", where, &md->base_url);
        get_str(c, v, "api_key_env", where, &md->api_key_env);
        get_num(c, v, "input_usd_per_1k", where, &md->input_usd_per_1k, 0, 1000);
        get_num(c, v, "output_usd_per_1k", where, &md->output_usd_per_1k, 0, 1000);
        md->max_output_tokens = 4096;
        get_int(c, v, "max_output_tokens", where, &md->max_output_tokens, 1, 10000000);
        if (!md->provider)
            perr(c, v, "%s has no provider; add provider: openai (or anthropic, mock)", where);
        else if (!in_list(md->provider, PROVIDERS))
            perr(c, wd_ydoc_get(v, "provider"), "%s.provider '%s' is unknown; use openai, anthropic or mock",
                 where, md->provider);
        if (!md->name)
            md->name = wd_strdup(md->alias);
    }
}

static void load_tools(pctx *c, const wd_ynode *t)
{
    wd_policy *p = c->p;
    if (check_map(c, t, "tools", NULL) < 0)
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
        tp->permission = -1;
        tp->timeout_ms = -1; /* inherit defaults.timeouts.tool_ms */
        if (check_map(c, v, where, TOOL_KEYS) < 0)
            continue;
        const wd_ynode *pm = wd_ydoc_get(v, "permission");
        if (!pm)
            perr(c, v, "%s has no permission; add permission: one of the roles list", where);
        else if (pm->kind != WD_Y_SCALAR || (tp->permission = role_index(p, pm->str)) < 0)
            perr(c, pm, "%s.permission '%s' is not in roles; use one of the roles list", where,
                 pm->kind == WD_Y_SCALAR ? pm->str : "?");
        get_str(c, v, "risk", where, &tp->risk);
        if (!tp->risk)
            tp->risk = wd_strdup("low");
        else if (!in_list(tp->risk, RISKS))
            perr(c, wd_ydoc_get(v, "risk"), "%s.risk '%s'; use safe, low, medium, high or critical", where,
                 tp->risk);
        get_str(c, v, "category", where, &tp->category);
        if (!tp->category)
            tp->category = wd_strdup("read");
        get_dur(c, v, "timeout_ms", where, &tp->timeout_ms, 1, 3600000);
        get_num(c, v, "cost_usd", where, &tp->cost_usd, 0, 1e6);
        get_int(c, v, "rate_limit_per_hour", where, &tp->rate_limit_per_hour, 0, 1000000000);
        get_bool(c, v, "requires_approval", where, &tp->requires_approval);
        snprintf(sub, sizeof sub, "%s.allowed_resources", where);
        strlist_from(c, wd_ydoc_get(v, "allowed_resources"), sub, &tp->allowed_resources);
        snprintf(sub, sizeof sub, "%s.writable_resources", where);
        strlist_from(c, wd_ydoc_get(v, "writable_resources"), sub, &tp->writable_resources);
        snprintf(sub, sizeof sub, "%s.allowed_hosts", where);
        strlist_from(c, wd_ydoc_get(v, "allowed_hosts"), sub, &tp->allowed_hosts);
        snprintf(sub, sizeof sub, "%s.forbidden_patterns", where);
        rxlist_from(c, wd_ydoc_get(v, "forbidden_patterns"), sub, &tp->forbidden);
    }
}

static void load_approvals(pctx *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (check_map(c, a, "approvals", APPROVAL_KEYS) < 0)
        return;
    const wd_ynode *e = wd_ydoc_get(a, "expiry");
    if (e && check_map(c, e, "approvals.expiry", EXPIRY_KEYS) == 0)
        for (int i = 0; EXPIRY_KEYS[i]; i++)
            get_dur(c, e, EXPIRY_KEYS[i], "approvals.expiry", &p->expiry_ms[i], 1000, 30LL * 86400000);
    get_num(c, a, "escalate_at", "approvals", &p->escalate_at, 0, 1);
    get_bool(c, a, "trust_cli_identity", "approvals", &p->approval_trust_cli);
    const wd_ynode *mr = wd_ydoc_get(a, "min_risk");
    if (mr) {
        if (mr->kind == WD_Y_SCALAR && !strcmp(mr->str, "none"))
            p->approval_min_risk = 5;
        else if (mr->kind == WD_Y_SCALAR && in_list(mr->str, RISKS))
            p->approval_min_risk = wd_policy_risk_rank(mr->str);
        else
            perr(c, mr, "approvals.min_risk must be safe, low, medium, high, critical or none");
    }
    const wd_ynode *r = wd_ydoc_get(a, "routes");
    if (r && check_map(c, r, "approvals.routes", RISKS) == 0) {
        for (size_t i = 0; i + 1 < r->n; i += 2)
            if (r->kids[i + 1]->kind != WD_Y_SEQ)
                perr(c, r->kids[i + 1], "approvals.routes.%s must be a list of approver names",
                     r->kids[i]->str);
        json_decref(p->routes);
        p->routes = wd_ydoc_to_json(r);
    }
}

/* autonomy: {category: level}, levels 0 (never) .. 5 (execute) */
static void load_autonomy(pctx *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (check_map(c, a, "autonomy", NULL) < 0)
        return;
    for (size_t i = 0; i + 1 < a->n; i += 2) {
        long long lv;
        if (wd_ydoc_int(a->kids[i + 1], &lv) < 0 || lv < 0 || lv > 5)
            perr(c, a->kids[i + 1],
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

static void load_detectors(pctx *c, const wd_ynode *d)
{
    wd_policy *p = c->p;
    if (check_map(c, d, "detectors", NULL) < 0)
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
        if (check_map(c, v, where, builtin ? keys : NULL) < 0)
            continue;
        const wd_ynode *vd = wd_ydoc_get(v, "verdict");
        if (vd && (vd->kind != WD_Y_SCALAR || (strcmp(vd->str, "halt") && strcmp(vd->str, "warn") &&
                                              strcmp(vd->str, "escalate"))))
            perr(c, vd, "%s.verdict must be halt, warn or escalate", where);
        const wd_ynode *en = wd_ydoc_get(v, "enforce");
        if (en && (en->kind != WD_Y_SCALAR || (strcmp(en->str, "true") && strcmp(en->str, "false"))))
            perr(c, en, "%s.enforce must be true (the detector watches every agent) or false", where);
        const wd_ynode *sh = wd_ydoc_get(v, "share_state");
        if (sh && (sh->kind != WD_Y_SCALAR || (strcmp(sh->str, "true") && strcmp(sh->str, "false"))))
            perr(c, sh, "%s.share_state must be true (every agent's %s shares one ctx.store) or false", where, name);
        const wd_ynode *rk = wd_ydoc_get(v, "risk");
        if (rk && (rk->kind != WD_Y_SCALAR || !in_list(rk->str, RISKS)))
            perr(c, rk, "%s.risk must be one of safe, low, medium, high, critical (it routes escalations)", where);
    }
    json_decref(p->detectors);
    p->detectors = wd_ydoc_to_json(d);
}

static void load_audit(pctx *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (check_map(c, a, "audit", AUDIT_KEYS) < 0)
        return;
    get_str(c, a, "path", "audit", &p->audit_path);
    const wd_ynode *f = wd_ydoc_get(a, "fsync");
    if (f) {
        if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "always"))
            p->audit_fsync = WD_FSYNC_ALWAYS;
        else if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "batch"))
            p->audit_fsync = WD_FSYNC_BATCH;
        else if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "none"))
            p->audit_fsync = WD_FSYNC_NONE;
        else
            perr(c, f, "audit.fsync must be always, batch or none");
    }
    const wd_ynode *k = wd_ydoc_get(a, "redact_keys");
    if (k) {
        strlist_free(&p->redact_keys);
        memset(&p->redact_keys, 0, sizeof p->redact_keys);
        strlist_from(c, k, "audit.redact_keys", &p->redact_keys);
    }
    const wd_ynode *r = wd_ydoc_get(a, "redact_patterns");
    if (r) {
        strlist_free(&p->redact_pattern_names);
        memset(&p->redact_pattern_names, 0, sizeof p->redact_pattern_names);
        strlist_from(c, r, "audit.redact_patterns", &p->redact_pattern_names);
    }
}

static int compile_redactions(pctx *c, const wd_ynode *root)
{
    wd_policy *p = c->p;
    const wd_ynode *at = wd_ydoc_get(wd_ydoc_get(root, "audit"), "redact_patterns");
    p->redact_patterns.v = calloc(p->redact_pattern_names.n + 1, sizeof(wd_rx *));
    if (!p->redact_patterns.v)
        return -1;
    for (size_t i = 0; i < p->redact_pattern_names.n; i++) {
        const char *name = p->redact_pattern_names.v[i];
        const char *src = NULL;
        for (int j = 0; REDACT_NAMED[j].name; j++)
            if (!strcmp(REDACT_NAMED[j].name, name))
                src = REDACT_NAMED[j].rx;
        char e[200];
        int named = src != NULL;
        if (!src) {
            if (strncmp(name, "re:", 3)) {
                perr(c, at && i < at->n ? at->kids[i] : at,
                     "audit.redact_patterns: unknown '%s'; use credit_card, email, bearer_token, api_key, "
                     "ssn, or 're:<PCRE2 pattern>'",
                     name);
                continue;
            }
            src = name + 3;
        }
        wd_rx *rx = wd_rx_compile(src, named ? 0 : WD_RX_CASELESS, e, sizeof e);
        if (!rx) {
            perr(c, at && i < at->n ? at->kids[i] : at, "audit.redact_patterns '%s': %s", name, e);
            continue;
        }
        p->redact_patterns.v[p->redact_patterns.n++] = rx;
    }
    return 0;
}

/* caller unrefs: a policy holding every default of docs/policy.md */
static wd_policy *policy_new(void)
{
    wd_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    static unsigned long long next_gen;
    p->refs = 1;
    p->gen = __atomic_add_fetch(&next_gen, 1, __ATOMIC_RELAXED);
    p->max_iterations = 5;
    p->max_tool_calls_per_answer = 32;
    p->max_tool_calls = 1000;
    p->max_audit_bytes = 16LL << 20;
    p->max_audit_records = 10000;
    p->max_audit_field_bytes = 64LL << 10;
    p->serve_memory_mb = half_the_memory_mb();
    p->serve_max_runs = 256;
    p->serve_max_queued = 1024;
    p->serve_max_runs_user = 64;
    p->serve_max_queued_user = 256;
    p->serve_queue_wait_ms = 60000;
    p->serve_result_kb = 64;
    p->serve_events_kb = 1024;
    p->serve_kept_mb = 256;
    p->serve_keep_runs = 10000;
    p->llm_connect_ms = 3000;
    p->llm_read_ms = 30000;
    p->tool_ms = 5000;
    p->run_ms = 120000;
    p->max_retries = 3;
    p->retry_base_ms = 1000;
    p->retry_max_ms = 8000;
    p->retry_jitter_ms = 500;
    p->breaker_failure_threshold = 5;
    p->breaker_open_ms = 60000;
    p->breaker_half_open_probes = 1;
    p->memory_mb = 64;
    p->instructions_per_call = 100000000;
    p->expiry_ms[0] = 24LL * 3600000;
    p->expiry_ms[1] = 4LL * 3600000;
    p->expiry_ms[2] = 3600000;
    p->expiry_ms[3] = 15LL * 60000;
    p->escalate_at = 0.5;
    p->global_monthly_usd = 10000;
    p->warn_ratio = 0.8;
    p->kill_consecutive_errors = 5;
    p->approval_min_risk = 3; /* high and critical actions always wait for a person */
    p->hitl_confidence_below = -1;
    p->hitl_cost_above_usd = -1;
    p->exec_cpu_s = 10;
    p->exec_memory_mb = 256;
    p->exec_procs = 64;
    p->exec_file_mb = 16;
    p->exec_output_kb = 256;
    p->audit_path = wd_strdup("logs/agent_audit.jsonl");
    p->audit_fsync = WD_FSYNC_BATCH;
    p->store_path = wd_strdup("var/warden.db");
    p->cache_ttl_ms = 3600000;
    const char *keys[] = {"password", "api_key", "secret", "token", "authorization"};
    const char *pats[] = {"credit_card", "email", "bearer_token"};
    p->redact_keys.v = calloc(5, sizeof(char *));
    p->redact_pattern_names.v = calloc(3, sizeof(char *));
    if (!p->redact_keys.v || !p->redact_pattern_names.v) {
        wd_policy_unref(p);
        return NULL;
    }
    for (int i = 0; i < 5; i++)
        p->redact_keys.v[p->redact_keys.n++] = wd_strdup(keys[i]);
    for (int i = 0; i < 3; i++)
        p->redact_pattern_names.v[p->redact_pattern_names.n++] = wd_strdup(pats[i]);
    return p;
}

/* fills c->p from the document; problems go to c->errs */
static wd_policy *build(pctx *c, const wd_ynode *root)
{
    wd_policy *p = c->p;
    if (check_map(c, root, "the policy", TOP_KEYS) < 0)
        return NULL;
    const wd_ynode *n;
    if ((n = wd_ydoc_get(root, "version"))) {
        long long v;
        if (wd_ydoc_int(n, &v) < 0 || v != 1)
            perr(c, n, "version must be 1");
    }
    if ((n = wd_ydoc_get(root, "roles"))) {
        int loaded = strlist_from(c, n, "roles", &p->roles) == 0;
        for (size_t i = 0; loaded && i < p->roles.n; i++)
            for (size_t j = i + 1; j < p->roles.n; j++)
                if (p->roles.v[i] && p->roles.v[j] && !strcmp(p->roles.v[i], p->roles.v[j]))
                    perr(c, n, "roles: '%s' is listed twice", p->roles.v[i]);
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
    if ((n = wd_ydoc_get(root, "budget")) && check_map(c, n, "budget", BUDGET_KEYS) == 0) {
        get_num(c, n, "global_monthly_usd", "budget", &p->global_monthly_usd, 0, 1e12);
        get_num(c, n, "warn_ratio", "budget", &p->warn_ratio, 0, 1);
    }
    if ((n = wd_ydoc_get(root, "models")))
        load_models(c, n);
    if ((n = wd_ydoc_get(root, "tools")))
        load_tools(c, n);
    if ((n = wd_ydoc_get(root, "approvals")))
        load_approvals(c, n);
    if ((n = wd_ydoc_get(root, "detectors")))
        load_detectors(c, n);
    if ((n = wd_ydoc_get(root, "kill_switch")) && check_map(c, n, "kill_switch", KILL_KEYS) == 0)
        get_int(c, n, "consecutive_errors", "kill_switch", &p->kill_consecutive_errors, 0, 1000000);
    if ((n = wd_ydoc_get(root, "autonomy")))
        load_autonomy(c, n);
    if ((n = wd_ydoc_get(root, "hitl")) && check_map(c, n, "hitl", HITL_KEYS) == 0) {
        get_num(c, n, "confidence_below", "hitl", &p->hitl_confidence_below, 0, 1);
        get_num(c, n, "cost_above_usd", "hitl", &p->hitl_cost_above_usd, 0, 1e9);
        get_int(c, n, "consecutive_errors", "hitl", &p->hitl_consecutive_errors, 0, 1000000);
    }
    if ((n = wd_ydoc_get(root, "audit")))
        load_audit(c, n);
    if ((n = wd_ydoc_get(root, "store")) && check_map(c, n, "store", STORE_KEYS) == 0)
        get_str(c, n, "path", "store", &p->store_path);
    if ((n = wd_ydoc_get(root, "cache")) && check_map(c, n, "cache", CACHE_KEYS) == 0) {
        get_bool(c, n, "enabled", "cache", &p->cache_enabled);
        get_dur(c, n, "ttl", "cache", &p->cache_ttl_ms, 1000, 366LL * 86400000);
        get_bool(c, n, "any_temperature", "cache", &p->cache_any_temperature);
    }
    if ((n = wd_ydoc_get(root, "serve")))
        load_serve(c, n);
    else if (p->memory_mb > p->serve_memory_mb)
        p->serve_memory_mb = p->memory_mb; /* a machine smaller than one run: one at a time */
    compile_redactions(c, root);
    for (size_t i = 0; i < p->n_tools; i++)
        if (p->tools[i].timeout_ms < 0)
            p->tools[i].timeout_ms = p->tool_ms;
    return p;
}

static void set_file(wd_ynode *n, const char *f)
{
    n->file = f;
    for (size_t i = 0; i < n->n; i++)
        set_file(n->kids[i], f);
}

/* move b's entries into a, recursively for maps; takes ownership of b */
static int merge(wd_ynode *a, wd_ynode *b)
{
    for (size_t i = 0; i + 1 < b->n; i += 2) {
        wd_ynode *k = b->kids[i], *v = b->kids[i + 1];
        wd_ynode *cur = NULL;
        size_t at = 0;
        for (size_t j = 0; k->kind == WD_Y_SCALAR && j + 1 < a->n; j += 2)
            if (a->kids[j]->kind == WD_Y_SCALAR && !strcmp(a->kids[j]->str, k->str)) {
                cur = a->kids[j + 1];
                at = j + 1;
            }
        if (cur && cur->kind == WD_Y_MAP && v->kind == WD_Y_MAP) {
            b->kids[i + 1] = NULL;
            merge(cur, v);
            continue;
        }
        if (cur) {
            wd_ydoc_free(cur);
            a->kids[at] = v;
            b->kids[i + 1] = NULL;
            continue;
        }
        wd_ynode **kids = realloc(a->kids, (a->n + 2) * sizeof *kids);
        if (!kids) {
            wd_ydoc_free(b);
            return -1;
        }
        a->kids = kids;
        a->kids[a->n++] = k;
        a->kids[a->n++] = v;
        b->kids[i] = b->kids[i + 1] = NULL;
    }
    /* free what was not moved */
    for (size_t i = 0; i < b->n; i++)
        wd_ydoc_free(b->kids[i]);
    free(b->kids);
    free(b->str);
    free(b);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* caller unrefs; NULL when errs got anything */
static wd_policy *load_root(wd_ynode *root, const char *fname, wd_perrors *errs)
{
    pctx c = {errs, policy_new(), fname};
    if (!c.p) {
        perr(&c, NULL, "out of memory");
        return NULL;
    }
    c.p->path = wd_strdup(fname);
    const wd_ynode *nul = wd_ydoc_find_nul(root);
    if (nul)
        perr(&c, nul, "a NUL byte inside a value: policy values are text");
    else
        build(&c, root);
    if (errs->n) {
        wd_policy_unref(c.p);
        return NULL;
    }
    return c.p;
}

wd_policy *wd_policy_load_text(const char *text, size_t len, const char *fname, wd_perrors *errs)
{
    char e[300];
    pctx c = {errs, NULL, fname};
    wd_ynode *root = wd_ydoc_parse(text, len, e, sizeof e);
    if (!root) {
        perr(&c, NULL, "%s", e);
        /* the parser's message starts with line:col already; drop our 1:1 */
        char *m = errs->v[errs->n - 1];
        char *fix = NULL;
        if (asprintf(&fix, "%s:%s", fname, e) > 0) {
            free(m);
            errs->v[errs->n - 1] = fix;
        }
        return NULL;
    }
    set_file(root, fname);
    if ((root->kind == WD_Y_MAP && !root->n) || wd_ydoc_is_null(root)) {
        perr(&c, NULL, "the policy is empty; a policy holds at least `version: 1`");
        wd_ydoc_free(root);
        return NULL;
    }
    wd_policy *p = load_root(root, fname, errs);
    wd_ydoc_free(root);
    return p;
}

wd_policy *wd_policy_load(const char *path, wd_perrors *errs)
{
    struct stat st;
    pctx c = {errs, NULL, path};
    if (stat(path, &st) < 0) {
        perr(&c, NULL, "cannot read policy: %s", strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        size_t len;
        char *text = wd_read_file(path, WD_YDOC_MAX_BYTES, &len);
        if (!text) {
            perr(&c, NULL, "cannot read policy: %s", wd_read_error(errno, WD_YDOC_MAX_BYTES));
            return NULL;
        }
        wd_policy *p = wd_policy_load_text(text, len, path, errs);
        free(text);
        return p;
    }
    /* a directory: *.yaml and *.yml merged in name order */
    DIR *d = opendir(path);
    if (!d) {
        perr(&c, NULL, "cannot open policy directory: %s", strerror(errno));
        return NULL;
    }
    char *names[MAX_POLICY_FILES];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < MAX_POLICY_FILES) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if ((l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) || (l > 4 && !strcmp(de->d_name + l - 4, ".yml")))
            if (asprintf(&names[nn], "%s/%s", path, de->d_name) > 0)
                nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    wd_ynode *root = NULL;
    wd_policy *p = NULL;
    for (size_t i = 0; i < nn; i++) {
        char e[300];
        size_t len;
        char *text = wd_read_file(names[i], WD_YDOC_MAX_BYTES, &len);
        if (!text) {
            c.fname = names[i];
            perr(&c, NULL, "cannot read: %s", wd_read_error(errno, WD_YDOC_MAX_BYTES));
            continue;
        }
        wd_ynode *doc = wd_ydoc_parse(text, len, e, sizeof e);
        free(text);
        if (!doc) {
            c.fname = names[i];
            char *fix = NULL;
            if (asprintf(&fix, "%s:%s", names[i], e) > 0) {
                char **v = realloc(errs->v, (errs->n + 1) * sizeof *v);
                if (v) {
                    errs->v = v;
                    v[errs->n++] = fix;
                } else {
                    free(fix);
                }
            }
            continue;
        }
        set_file(doc, names[i]);
        int empty = (doc->kind == WD_Y_MAP && !doc->n) || wd_ydoc_is_null(doc);
        if (empty || doc->kind != WD_Y_MAP) {
            c.fname = names[i];
            perr(&c, empty ? NULL : doc,
                 empty ? "the file is empty; remove it or give it settings" : "a policy file must be a mapping");
            wd_ydoc_free(doc);
            continue;
        }
        if (!root)
            root = doc;
        else
            merge(root, doc);
    }
    if (!nn) {
        perr(&c, NULL, "no *.yaml files in the policy directory");
    } else if (root && !errs->n) {
        p = load_root(root, path, errs);
    }
    wd_ydoc_free(root);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    return p;
}

wd_policy *wd_policy_ref(wd_policy *p)
{
    if (p)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void wd_policy_unref(wd_policy *p)
{
    if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(p->path);
    strlist_free(&p->roles);
    for (size_t i = 0; i < p->n_users; i++) {
        free(p->users[i].name);
        free(p->users[i].api_key_sha256);
        free(p->users[i].os_user);
    }
    free(p->users);
    for (size_t i = 0; i < p->n_tiers; i++)
        free(p->tiers[i].name);
    free(p->tiers);
    for (size_t i = 0; i < p->n_models; i++) {
        wd_model *m = &p->models[i];
        free(m->alias);
        free(m->provider);
        free(m->name);
        free(m->base_url);
        free(m->api_key_env);
    }
    free(p->models);
    for (size_t i = 0; i < p->n_tools; i++) {
        wd_tool_policy *t = &p->tools[i];
        free(t->name);
        free(t->risk);
        free(t->category);
        strlist_free(&t->allowed_resources);
        strlist_free(&t->writable_resources);
        strlist_free(&t->allowed_hosts);
        rxlist_free(&t->forbidden);
    }
    free(p->tools);
    json_decref(p->routes);
    json_decref(p->detectors);
    json_decref(p->autonomy);
    free(p->audit_path);
    strlist_free(&p->redact_keys);
    rxlist_free(&p->redact_patterns);
    strlist_free(&p->redact_pattern_names);
    free(p->store_path);
    free(p);
}

const wd_user *wd_policy_user(const wd_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_users; i++)
        if (!strcmp(p->users[i].name, name))
            return &p->users[i];
    return NULL;
}

const wd_tool_policy *wd_policy_tool(const wd_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_tools; i++)
        if (!strcmp(p->tools[i].name, name))
            return &p->tools[i];
    return NULL;
}

const wd_model *wd_policy_model(const wd_policy *p, const char *alias)
{
    for (size_t i = 0; alias && i < p->n_models; i++)
        if (!strcmp(p->models[i].alias, alias))
            return &p->models[i];
    return NULL;
}

const wd_tier *wd_policy_tier_of(const wd_policy *p, const wd_user *u)
{
    if (!u || u->tier < 0 || (size_t)u->tier >= p->n_tiers)
        return NULL;
    return &p->tiers[u->tier];
}
