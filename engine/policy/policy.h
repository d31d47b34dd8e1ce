/* policy.h - the policy as an immutable, reference-counted snapshot (docs/policy.md).
** A reload builds a new snapshot and swaps the pointer; readers hold a reference for
** the length of one decision. An invalid file never yields a snapshot. */
#ifndef WD_POLICY_H
#define WD_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rx.h"

typedef struct wd_rxlist {
    wd_rx **v;
    size_t n;
} wd_rxlist;

typedef struct wd_strlist {
    char **v;
    size_t n;
} wd_strlist;

typedef struct wd_tier {
    char *name;
    double per_run_usd, daily_usd, monthly_usd;
    long long requests_per_hour;
} wd_tier;

typedef struct wd_user {
    char *name;
    int role; /* index into roles */
    int tier; /* index into tiers, -1 none */
    char *api_key_sha256;
    char *os_user;    /* the login that proves this user at the command line, or NULL */
    int metrics_only; /* scope: metrics: its key may read warden serve's /metrics and nothing else */
} wd_user;

typedef struct wd_model {
    char *alias, *provider, *name, *base_url, *api_key_env;
    double input_usd_per_1k, output_usd_per_1k;
    long long max_output_tokens; /* sent as max_tokens when a call gives none: the worst case */
} wd_model;

/* what in input and out output tokens cost at m's prices, in USD; 0 without a model */
double wd_model_cost(const wd_model *m, double in, double out);

typedef struct wd_tool_policy {
    char *name;     /* a tool's name, or a pattern: '*' stands for any run of characters */
    int pattern;    /* name holds a '*': the rule of every tool it matches that has none of its own */
    int permission; /* index into roles */
    char *risk;     /* safe, low, medium, high, critical */
    char *category;
    long long timeout_ms;
    double cost_usd;
    long long rate_limit_per_hour;
    int requires_approval;
    wd_strlist allowed_resources;
    wd_strlist writable_resources; /* bound read-write into ctx:exec's sandbox */
    wd_strlist path_arguments;     /* an MCP tool's arguments that are paths (format: path in its schema) */
    wd_strlist allowed_hosts;
    wd_rxlist forbidden;
    struct wd_schema *schema; /* schema: what the policy adds to the tool's own schema; NULL none */
    json_t *schema_json;      /* its source, which the compiled schema reads */
} wd_tool_policy;

enum { WD_FSYNC_NONE, WD_FSYNC_BATCH, WD_FSYNC_ALWAYS };

/* mcp.servers.NAME (docs/mcp.md): an MCP server over stdio whose tools are NAME__TOOL */
typedef struct wd_mcp_server {
    char *name;
    char **argv;       /* command, NULL-terminated */
    char **env_names;  /* env: n_env names, each with a value or a variable to take it from */
    char **env_values; /* the value, or NULL when from_env */
    char **env_from;   /* the variable of warden's environment, or NULL */
    size_t n_env;
    char *cwd;                         /* NULL: warden's */
    long long timeout_ms;              /* its start, the handshake and the listing of its tools: default 10 s */
    int sandboxed;                     /* sandbox: run under bubblewrap (runtime/jail.h) */
    wd_strlist sandbox_ro, sandbox_rw; /* bound read-only, read-write */
    int sandbox_net;                   /* sandbox.network: the host's network */
    char *url;                         /* over Streamable HTTP instead of a command */
    char **header_names, **header_values, **header_from; /* headers: like env */
    size_t n_headers;
} wd_mcp_server;

/* notify.webhooks[i] */
typedef struct wd_webhook {
    char *url, *secret_env;
    wd_strlist events; /* names of WD_NOTIFY_EVENTS, or "*" */
    long long timeout_ms;
} wd_webhook;

/* what a webhook may be told of: approval_requested ... auth_blocked, NULL */
extern const char *const WD_NOTIFY_EVENTS[];

typedef struct wd_policy {
    int refs;               /* atomic */
    unsigned long long gen; /* unique to this load: what caches derived from it compare */
    long long generation;   /* 1, or the serving process's count of loads (run_started names it) */
    char sha256[65];        /* of the policy's text (a directory's: each file's name and text) */
    char *path;
    int max_iterations;
    long long max_tool_calls_per_answer;          /* an answer asking for more: the rest are refused */
    long long structured_retries;                 /* corrective asks of an answer that does not fit its schema */
    long long max_tool_calls;                     /* per run: the next one ends it (max_iterations) */
    long long max_audit_bytes, max_audit_records; /* per run: what it may write to the log */
    long long max_audit_field_bytes;              /* one field of one record; longer is cut, its length kept */
    /* warden serve (docs/serve.md, Limits): the sandboxes' memory in all, runs in flight and
    ** waiting (in all, per user), how long one waits, what finished runs keep in memory */
    long long serve_memory_mb, serve_max_runs, serve_max_queued, serve_max_runs_user, serve_max_queued_user;
    long long serve_queue_wait_ms, serve_result_kb, serve_events_kb, serve_kept_mb, serve_keep_runs;
    long long llm_connect_ms, llm_read_ms, tool_ms, run_ms;
    long long max_retries, retry_base_ms, retry_max_ms, retry_jitter_ms;
    long long breaker_failure_threshold, breaker_open_ms, breaker_half_open_probes;
    long long memory_mb, instructions_per_call;
    wd_strlist roles;
    wd_user *users;
    size_t n_users;
    wd_tier *tiers;
    size_t n_tiers;
    double global_monthly_usd, warn_ratio;
    wd_model *models;
    size_t n_models;
    wd_tool_policy *tools;
    size_t n_tools;
    long long expiry_ms[4]; /* low normal high critical */
    double escalate_at;
    json_t *routes;    /* {risk: [approver, ...]} */
    json_t *detectors; /* {name: {config}} */
    long long kill_consecutive_errors;
    int approval_trust_cli; /* approvals.trust_cli_identity: a bare --by is believed (development) */
    int approval_min_risk;  /* risk rank (0 safe .. 4 critical) from which a tool needs approval; 5 never */
    json_t *autonomy;       /* {category: level 0..5}; a category not listed is level 5 */
    double hitl_confidence_below, hitl_cost_above_usd;                              /* < 0: off */
    long long hitl_consecutive_errors;                                              /* 0: off */
    long long exec_cpu_s, exec_memory_mb, exec_procs, exec_file_mb, exec_output_kb; /* ctx:exec's rlimits */
    char *audit_path;
    int audit_fsync;
    wd_strlist redact_keys;
    wd_rxlist redact_patterns;
    wd_strlist redact_pattern_names;
    long long audit_rotate_bytes, audit_rotate_ms; /* 0: never */
    long long audit_keep_files, audit_keep_ms;     /* rotated files kept; 0: all, forever */
    int audit_archive;                             /* removed files are kept compressed (.gz) */
    wd_strlist personal_fields;                    /* sealed under the user's key (seal.h) */
    wd_webhook *webhooks;
    size_t n_webhooks;
    wd_mcp_server *mcp_servers;
    size_t n_mcp_servers;
    long long notify_max_attempts, notify_base_ms, notify_max_ms;
    long long serve_authfail_max, serve_authfail_window_ms, serve_authfail_block_ms;
    char *store_path;
    int cache_enabled, cache_any_temperature; /* the response cache (temperature 0 only unless any) */
    long long cache_ttl_ms;
    /* sessions: a conversation kept between runs, its oldest turns dropped past these */
    long long session_max_messages, session_max_tokens, session_ttl_ms;
} wd_policy;

typedef struct wd_perrors {
    char **v;
    size_t n;
} wd_perrors;

/* 1 when webhook h is told of event (a WD_NOTIFY_EVENTS name) */
int wd_webhook_wants(const wd_webhook *h, const char *event);
/* 1 when a webhook of p is told of event */
int wd_policy_notifies(const wd_policy *p, const char *event);
/* p's webhooks freed (reloading replaces them) */
void wd_policy_webhooks_free(wd_policy *p);

/* Load a file, or a directory of *.yaml / *.yml merged in name order.
** Returns a snapshot with one reference, or NULL with every problem in errs. */
wd_policy *wd_policy_load(const char *path, wd_perrors *errs);
/* same, from text already in memory; fname is used in messages */
wd_policy *wd_policy_load_text(const char *text, size_t len, const char *fname, wd_perrors *errs);
void wd_perrors_free(wd_perrors *e);

wd_policy *wd_policy_ref(wd_policy *p);
void wd_policy_unref(wd_policy *p); /* accepts NULL */

const wd_user *wd_policy_user(const wd_policy *p, const char *name);
const wd_tool_policy *wd_policy_tool(const wd_policy *p, const char *name);
/* the MCP server of that name, or NULL */
const wd_mcp_server *wd_policy_mcp_server(const wd_policy *p, const char *name, size_t len);
const wd_model *wd_policy_model(const wd_policy *p, const char *alias);
/* 0 safe, 1 low, 2 medium, 3 high, 4 critical; 2 for anything else */
extern const char *const WD_RISKS[]; /* safe low medium high critical, NULL */
int wd_policy_risk_rank(const char *risk);
/* the autonomy level 0..5 of a tool category (5 when the policy does not list it) */
int wd_policy_autonomy(const wd_policy *p, const char *category);
const wd_tier *wd_policy_tier_of(const wd_policy *p, const wd_user *u);
/* "12s", "15m", "4h", "2d" or digits (ms); -1 on error */
long long wd_policy_duration(const char *s);

#endif
