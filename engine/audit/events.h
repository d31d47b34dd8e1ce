/* events.h - every event the audit log holds (docs/safety.md, Audit schema): a record's
** "event" is one of these names, given by its constant, so that no writer can make up
** one the documentation does not list (spec/audit_events_spec.lua compares the two). */
#ifndef WD_EVENTS_H
#define WD_EVENTS_H

#include <jansson.h>

typedef enum {
    WD_AE_NONE = -1, /* no record (the caller writes its own) */
    WD_AE_RUN_STARTED,
    WD_AE_LLM_CALL,
    WD_AE_TOOL_CALLS_REFUSED,
    WD_AE_TOOL_CALL,
    WD_AE_HTTP_REQUEST,
    WD_AE_EXEC,
    WD_AE_AUTHORIZATION_DENIED,
    WD_AE_VALIDATION_FAILED,
    WD_AE_GUARDRAIL_VIOLATION,
    WD_AE_RATE_LIMITED,
    WD_AE_BUDGET_WARNING,
    WD_AE_BUDGET_EXCEEDED,
    WD_AE_APPROVAL_REQUESTED,
    WD_AE_APPROVAL_ESCALATED,
    WD_AE_APPROVAL_GRANTED,
    WD_AE_APPROVAL_REJECTED,
    WD_AE_APPROVAL_EXPIRED,
    WD_AE_HUMAN_NOTIFIED,
    WD_AE_KILL_SWITCH,
    WD_AE_DETECTOR_VERDICT,
    WD_AE_DETECTOR_ERROR,
    WD_AE_BREAKER_OPENED,
    WD_AE_BREAKER_HALF_OPEN,
    WD_AE_BREAKER_CLOSED,
    WD_AE_AGENT_LOG,
    WD_AE_AUDIT_RECOVERED,
    WD_AE_RUN_FINISHED,
    WD_AE_SERVER_STARTED,
    WD_AE_SERVER_STOPPED,
    WD_AE_POLICY_RELOADED,
    WD_AE_POLICY_REJECTED,
    WD_AE_PERSONAL_DATA_ERASED,
    WD_AE_AUDIT_ROTATED,
    WD_AE_AUDIT_RETENTION,
    WD_AE_NOTIFICATION,
    WD_AE_AUTH_BLOCKED,
    WD_AE_STORE_UNAVAILABLE,
    WD_AE_COUNT
} wd_audit_event;

/* the event's name as records carry it; "" for WD_AE_NONE or a value out of range */
const char *wd_event_name(wd_audit_event e);

/* ** Each event's fields, defined once (events.c): the members every record has (the
** chain's, the run's ids, success, and the marks redaction and bounding add) and the
** event's own. A writer that sets a member its event does not declare is caught where
** every record passes (wd_audit_append) when WARDEN_CHECK_RECORDS is set, as the test
** suite sets it: "1" aborts naming the record and the member, a path appends one line
** "event member" per stray member to that file. spec/audit_events_spec.lua holds the
** table and docs/safety.md's together. */

/* the first member of rec its event does not declare (an unknown event: "event"), or
** NULL when every member is declared; borrowed from rec */
const char *wd_event_stray(const json_t *rec);
/* the event's own fields, NULL-terminated (WD_AE_COUNT: the members every record has) */
const char *const *wd_event_fields(wd_audit_event e);

#endif
