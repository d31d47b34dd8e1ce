/* fuzz_policy_gen.c - the policy loader, structure-aware: the input's bytes choose a
** policy from its grammar (the keys it knows, names that refer to one another, values
** of every type, near and past each range), written as YAML in block or flow style.
** Most generated policies reach deep into the loader's checks, where a byte-level
** mutator rarely gets past the first unknown key. */
#include "fuzz.h"
#include "policy.h"
#include "util.h"

#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n;
    wd_buf out;
} gen;

static unsigned next(gen *g)
{
    if (!g->n)
        return 0;
    g->n--;
    return *g->p++;
}

static const char *pick(gen *g, const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    return v[next(g) % n];
}

static const char *const NAMES[] = {"alice", "bob",     "free",   "premium",     "read", "write",
                                    "admin", "default", "search", "run_command", "loop", "x",
                                    "",      "a b",     "é",      "__proto__",   NULL};
static const char *const SCALARS[] = {
    "0",        "1",      "-1",        "5",     "1000",     "100000000",     "1e18",        "99999999999999999999",
    "0.5",      "-0.0",   "1e-9",      "nan",   ".inf",     "0x10",          "true",        "false",
    "null",     "~",      "90s",       "15m",   "4h",       "1ms",           "-5s",         "0s",
    "36500d",   "read",   "write",     "admin", "high",     "critical",      "none",        "batch",
    "always",   "openai", "anthropic", "mock",  "'quoted'", "\"a\\0b\"",     "\"\\u00e9\"", "'\\.env$'",
    "'(a+)+$'", "'['",    "&a 1",      "*a",    "!!str 5",  "!!binary aGk=", "|\n    text", ">-\n    folded",
    "",         NULL};

static void value(gen *g, int depth, int indent);

static void pad(gen *g, int indent)
{
    for (int i = 0; i < indent; i++)
        wd_buf_add(&g->out, " ", 1);
}

static void flow(gen *g, int depth)
{
    unsigned k = next(g) % 4;
    if (k == 0 || depth > 4) {
        wd_buf_adds(&g->out, pick(g, SCALARS));
    } else if (k == 1) {
        wd_buf_adds(&g->out, "[");
        for (unsigned i = 0, n = next(g) % 4; i < n; i++) {
            wd_buf_adds(&g->out, i ? ", " : "");
            flow(g, depth + 1);
        }
        wd_buf_adds(&g->out, "]");
    } else {
        wd_buf_adds(&g->out, "{");
        for (unsigned i = 0, n = next(g) % 4; i < n; i++) {
            wd_buf_addf(&g->out, "%s%s: ", i ? ", " : "", pick(g, NAMES));
            flow(g, depth + 1);
        }
        wd_buf_adds(&g->out, "}");
    }
}

/* a mapping of known keys (keys NULL: names) at indent */
static void block(gen *g, const char *const *keys, int depth, int indent)
{
    for (unsigned i = 0, n = 1 + next(g) % 5; i < n; i++) {
        pad(g, indent);
        wd_buf_addf(&g->out, "%s:", keys ? pick(g, keys) : pick(g, NAMES));
        value(g, depth + 1, indent + 2);
    }
}

static const char *const SUBKEYS[] = {"max_iterations",
                                      "max_tool_calls_per_answer",
                                      "structured_retries",
                                      "timeouts",
                                      "retry",
                                      "breaker",
                                      "sandbox",
                                      "exec",
                                      "llm_connect_ms",
                                      "llm_read_ms",
                                      "tool_ms",
                                      "run_ms",
                                      "max_retries",
                                      "base_ms",
                                      "max_ms",
                                      "jitter_ms",
                                      "failure_threshold",
                                      "open_ms",
                                      "half_open_probes",
                                      "memory_mb",
                                      "instructions_per_call",
                                      "role",
                                      "tier",
                                      "api_key_sha256",
                                      "os_user",
                                      "per_run_usd",
                                      "daily_usd",
                                      "monthly_usd",
                                      "requests_per_hour",
                                      "global_monthly_usd",
                                      "warn_ratio",
                                      "provider",
                                      "name",
                                      "base_url",
                                      "api_key_env",
                                      "input_usd_per_1k",
                                      "output_usd_per_1k",
                                      "max_output_tokens",
                                      "permission",
                                      "risk",
                                      "category",
                                      "timeout_ms",
                                      "cost_usd",
                                      "rate_limit_per_hour",
                                      "requires_approval",
                                      "allowed_resources",
                                      "writable_resources",
                                      "forbidden_patterns",
                                      "allowed_hosts",
                                      "path_arguments",
                                      "schema",
                                      "servers",
                                      "command",
                                      "network",
                                      "expiry",
                                      "escalate_at",
                                      "routes",
                                      "min_risk",
                                      "trust_cli_identity",
                                      "low",
                                      "normal",
                                      "high",
                                      "critical",
                                      "consecutive_errors",
                                      "path",
                                      "fsync",
                                      "redact_keys",
                                      "redact_patterns",
                                      "enabled",
                                      "ttl",
                                      "max_messages",
                                      "max_tokens",
                                      "verdict",
                                      "enforce",
                                      NULL};

static void value(gen *g, int depth, int indent)
{
    unsigned k = next(g) % 6;
    if (depth > 6 || k <= 1) {
        wd_buf_adds(&g->out, " ");
        wd_buf_adds(&g->out, pick(g, SCALARS));
        wd_buf_adds(&g->out, "\n");
    } else if (k == 2) {
        wd_buf_adds(&g->out, " ");
        flow(g, depth);
        wd_buf_adds(&g->out, "\n");
    } else if (k == 3) {
        wd_buf_adds(&g->out, "\n");
        for (unsigned i = 0, n = 1 + next(g) % 3; i < n; i++) {
            pad(g, indent);
            wd_buf_adds(&g->out, "-");
            value(g, depth + 1, indent + 2);
        }
    } else {
        wd_buf_adds(&g->out, "\n");
        block(g, k == 4 ? SUBKEYS : NULL, depth, indent);
    }
}

static const char *const TOP[] = {"version",  "defaults",  "roles",     "users",       "tiers", "budget", "models",
                                  "tools",    "approvals", "detectors", "kill_switch", "audit", "store",  "cache",
                                  "autonomy", "hitl",      "mcp",       "sessions",    "unknown_key", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gen g = {data, size, {0}};
    wd_buf_adds(&g.out, next(&g) % 2 ? "version: 1\nroles: [read, write, admin]\n" : "");
    while (g.n) {
        wd_buf_addf(&g.out, "%s:", pick(&g, TOP));
        value(&g, 0, 2);
    }
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load_text(g.out.p ? g.out.p : "", g.out.len, "gen.yaml", &pe);
    FUZZ_ASSERT(p || pe.n, "no policy and no error for:\n%s", g.out.p ? g.out.p : "");
    wd_policy_unref(p);
    wd_perrors_free(&pe);
    wd_buf_free(&g.out);
    return 0;
}
