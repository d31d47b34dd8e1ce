/* events.c - the audit log's events: their names and each one's fields (events.h) */
#include "events.h"

#include <string.h>

static const char *const NAMES[WD_AE_COUNT] = {
    [WD_AE_RUN_STARTED] = "run_started",
    [WD_AE_LLM_CALL] = "llm_call",
    [WD_AE_TOOL_CALLS_REFUSED] = "tool_calls_refused",
    [WD_AE_TOOL_CALL] = "tool_call",
    [WD_AE_HTTP_REQUEST] = "http_request",
    [WD_AE_EXEC] = "exec",
    [WD_AE_AUTHORIZATION_DENIED] = "authorization_denied",
    [WD_AE_VALIDATION_FAILED] = "validation_failed",
    [WD_AE_GUARDRAIL_VIOLATION] = "guardrail_violation",
    [WD_AE_RATE_LIMITED] = "rate_limited",
    [WD_AE_BUDGET_WARNING] = "budget_warning",
    [WD_AE_BUDGET_EXCEEDED] = "budget_exceeded",
    [WD_AE_APPROVAL_REQUESTED] = "approval_requested",
    [WD_AE_APPROVAL_ESCALATED] = "approval_escalated",
    [WD_AE_APPROVAL_GRANTED] = "approval_granted",
    [WD_AE_APPROVAL_REJECTED] = "approval_rejected",
    [WD_AE_APPROVAL_EXPIRED] = "approval_expired",
    [WD_AE_HUMAN_NOTIFIED] = "human_notified",
    [WD_AE_KILL_SWITCH] = "kill_switch",
    [WD_AE_DETECTOR_VERDICT] = "detector_verdict",
    [WD_AE_DETECTOR_ERROR] = "detector_error",
    [WD_AE_BREAKER_OPENED] = "breaker_opened",
    [WD_AE_BREAKER_HALF_OPEN] = "breaker_half_open",
    [WD_AE_BREAKER_CLOSED] = "breaker_closed",
    [WD_AE_AGENT_LOG] = "agent_log",
    [WD_AE_AUDIT_RECOVERED] = "audit_recovered",
    [WD_AE_RUN_FINISHED] = "run_finished",
    [WD_AE_SERVER_STARTED] = "server_started",
    [WD_AE_SERVER_STOPPED] = "server_stopped",
    [WD_AE_POLICY_RELOADED] = "policy_reloaded",
    [WD_AE_POLICY_REJECTED] = "policy_rejected",
    [WD_AE_PERSONAL_DATA_ERASED] = "personal_data_erased",
    [WD_AE_AUDIT_ROTATED] = "audit_rotated",
    [WD_AE_AUDIT_RETENTION] = "audit_retention",
    [WD_AE_STORE_UNAVAILABLE] = "store_unavailable",
    [WD_AE_NOTIFICATION] = "notification",
    [WD_AE_AUTH_BLOCKED] = "auth_blocked",
};

const char *wd_event_name(wd_audit_event e) { return e >= 0 && e < WD_AE_COUNT ? NAMES[e] : ""; }

/* the members every record has: the chain's, the run's ids (null outside a run), and
** the marks redaction (sensitive_data) and bounding (truncated) add */
static const char *const COMMON[] = {"event",          "seq",       "timestamp",  "prev_hash", "hash",
                                     "success",        "run_id",    "session_id", "user_id",   "agent",
                                     "sensitive_data", "truncated", "sealed",     "host",      NULL};

#define FIELDS_OF(...) ((const char *const[]){__VA_ARGS__, NULL})

/* each event's own fields (docs/safety.md, Audit schema, lists them) */
static const char *const *const FIELDS[WD_AE_COUNT] = {
    [WD_AE_RUN_STARTED] =
        FIELDS_OF("agent_version", "error", "parent_run_id", "policy_generation", "policy_sha256", "query", "reason"),
    [WD_AE_LLM_CALL] =
        FIELDS_OF("agent_step", "cache_hit", "circuit_breaker_state", "cost_usd", "error", "input_tokens", "latency_ms",
                  "message_count", "model", "model_text", "model_text_bytes", "output_tokens", "reason", "retry_count",
                  "saved_usd", "tool_calls", "tool_calls_requested"),
    [WD_AE_TOOL_CALLS_REFUSED] = FIELDS_OF("agent_step", "reason", "tool_calls_refused", "tool_calls_requested"),
    [WD_AE_TOOL_CALL] = FIELDS_OF("agent_step", "circuit_breaker_state", "cost_usd", "data_accessed", "data_modified",
                                  "error", "latency_ms", "reason", "retry_count", "tool_args", "tool_name",
                                  "tool_result_summary", "tool_result_truncated", "traceback"),
    [WD_AE_HTTP_REQUEST] =
        FIELDS_OF("agent_step", "error", "latency_ms", "reason", "retry_count", "status", "tool_args", "tool_name"),
    [WD_AE_EXEC] = FIELDS_OF("agent_step", "error", "exit_code", "latency_ms", "signal", "timed_out", "tool_args",
                             "tool_name", "tool_result_truncated"),
    [WD_AE_AUTHORIZATION_DENIED] = FIELDS_OF("agent_step", "error", "http_method", "http_path", "reason", "remote_addr",
                                             "tool_args", "tool_name", "tool_undeclared", "unaudited_before"),
    [WD_AE_VALIDATION_FAILED] = FIELDS_OF("agent_step", "error", "reason", "tool_args", "tool_name"),
    [WD_AE_GUARDRAIL_VIOLATION] =
        FIELDS_OF("agent_step", "error", "reason", "severity", "tool_args", "tool_name", "violation_type"),
    [WD_AE_RATE_LIMITED] = FIELDS_OF("agent_step", "error", "http_method", "http_path", "reason", "retry_after_ms",
                                     "tool_args", "tool_name", "unaudited_before"),
    [WD_AE_BUDGET_WARNING] = FIELDS_OF("agent_step", "budget_period", "budget_scope", "cost_usd", "reason"),
    [WD_AE_BUDGET_EXCEEDED] =
        FIELDS_OF("agent_step", "budget_period", "budget_scope", "cost_usd", "reason", "tool_args", "tool_name"),
    [WD_AE_APPROVAL_REQUESTED] =
        FIELDS_OF("agent_step", "approval_id", "approvers", "autonomy_level", "confidence", "consecutive_errors",
                  "detector", "expires_ms", "justification", "needed", "reason", "risk", "tool_args", "tool_name",
                  "trigger", "triggers", "urgency"),
    [WD_AE_APPROVAL_ESCALATED] = FIELDS_OF("agent_step", "approval_id", "approvals_needed", "approved_by", "reason",
                                           "tool_name", "trigger", "wait_ms"),
    [WD_AE_APPROVAL_GRANTED] = FIELDS_OF("agent_step", "approval_id", "approvals_needed", "approved_by", "decided_by",
                                         "decided_via", "reason", "tool_name", "trigger", "wait_ms"),
    [WD_AE_APPROVAL_REJECTED] = FIELDS_OF("agent_step", "approval_id", "approvals_needed", "approved_by", "decided_by",
                                          "decided_via", "reason", "tool_name", "trigger", "wait_ms"),
    [WD_AE_APPROVAL_EXPIRED] = FIELDS_OF("agent_step", "approval_id", "approvals_needed", "approved_by", "decided_by",
                                         "decided_via", "reason", "tool_name", "trigger", "wait_ms"),
    [WD_AE_HUMAN_NOTIFIED] = FIELDS_OF("agent_step", "autonomy_level", "reason", "tool_args", "tool_name"),
    [WD_AE_KILL_SWITCH] = FIELDS_OF("action", "automatic", "reason"),
    [WD_AE_DETECTOR_VERDICT] = FIELDS_OF("agent_step", "details", "detector", "failure_mode", "on", "prevented",
                                         "reason", "tool_args", "tool_name", "verdict"),
    [WD_AE_DETECTOR_ERROR] = FIELDS_OF("agent_step", "detector", "error", "on", "reason"),
    [WD_AE_BREAKER_OPENED] = FIELDS_OF("breaker", "circuit_breaker_state", "model", "reason", "tool_name"),
    [WD_AE_BREAKER_HALF_OPEN] = FIELDS_OF("breaker", "circuit_breaker_state", "model", "reason", "tool_name"),
    [WD_AE_BREAKER_CLOSED] = FIELDS_OF("breaker", "circuit_breaker_state", "model", "reason", "tool_name"),
    [WD_AE_AGENT_LOG] = FIELDS_OF("agent_step", "fields"),
    [WD_AE_AUDIT_RECOVERED] = FIELDS_OF("reason", "torn_fragment"),
    [WD_AE_RUN_FINISHED] = FIELDS_OF("agent_step", "audit_dropped", "audit_records", "cost_usd", "error",
                                     "final_answer", "latency_ms", "reason", "result", "traceback"),
    [WD_AE_SERVER_STARTED] = FIELDS_OF("agents", "listen", "policy", "workers"),
    [WD_AE_SERVER_STOPPED] = FIELDS_OF("reason"),
    [WD_AE_POLICY_RELOADED] = FIELDS_OF("agents", "file", "generation", "reason", "script", "scripts"),
    [WD_AE_POLICY_REJECTED] = FIELDS_OF("errors", "file", "reason", "script"),
    [WD_AE_PERSONAL_DATA_ERASED] = FIELDS_OF("decided_by", "error", "keys_destroyed", "reason"),
    [WD_AE_AUDIT_ROTATED] = FIELDS_OF("previous_file", "reason"),
    [WD_AE_AUDIT_RETENTION] = FIELDS_OF("reason", "removed"),
    [WD_AE_NOTIFICATION] = FIELDS_OF("attempt", "error", "given_up", "latency_ms", "next_attempt_ms", "notification_id",
                                     "notify_event", "reason", "status", "url"),
    [WD_AE_AUTH_BLOCKED] =
        FIELDS_OF("blocked", "blocked_until", "failures", "http_method", "http_path", "reason", "remote_addr"),
    [WD_AE_STORE_UNAVAILABLE] = FIELDS_OF("agent_step", "operation", "reason", "store", "tool_name"),
};

const char *const *wd_event_fields(wd_audit_event e)
{
    static const char *const NONE[] = {NULL};
    if (e == WD_AE_COUNT)
        return COMMON;
    return e >= 0 && e < WD_AE_COUNT && FIELDS[e] ? FIELDS[e] : NONE;
}

static int listed(const char *const *l, const char *k)
{
    for (; *l; l++)
        if (**l == *k && !strcmp(*l, k))
            return 1;
    return 0;
}

const char *wd_event_stray(const json_t *rec)
{
    const char *name = json_string_value(json_object_get(rec, "event"));
    int e = 0;
    while (name && e < WD_AE_COUNT && strcmp(NAMES[e], name))
        e++;
    if (!name || e == WD_AE_COUNT)
        return "event";
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)rec, k, v)
    {
        (void)v;
        if (!listed(COMMON, k) && !listed(wd_event_fields(e), k))
            return k;
    }
    return NULL;
}
