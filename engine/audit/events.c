/* events.c - the names of the audit log's events (events.h) */
#include "events.h"

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
};

const char *wd_event_name(wd_audit_event e) { return e >= 0 && e < WD_AE_COUNT ? NAMES[e] : ""; }
