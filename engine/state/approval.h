/* approval.h - human approval requests in the state store (docs/safety.md,
** Approvals). A tool call that needs a person's decision becomes a row of table
** `approvals`; the run that asked waits for it (pipeline.c), and any process decides it:
** `warden approvals approve|reject`, or the clock (expired), or the death of the asking
** process (abandoned). Whoever looks at a pending request settles what time and death
** have decided, so a request never stays pending past its expiry or its run. */
#ifndef WD_APPROVAL_H
#define WD_APPROVAL_H

#include "store.h"
#include <jansson.h>
#include <stdint.h>

/* urgency: low, normal, high, critical (the policy's approvals.expiry keys) */
extern const char *const WD_URGENCIES[4];

/* the rows (wd_approval_state; get, sweep, list): wd_store_approval_* in store.h */

/* drops st's lists; accepts a state never filled (zeroed) */
void wd_approval_state_clear(wd_approval_state *st);

/* Creates a pending request owned by this process from req: run_id, session_id,
** user_id, agent, tool, args (redacted), risk, urgency, justification, approvers (a
** list), needed, created_ms, expires_ms, escalate_ms. id: 36 characters + NUL, filled.
** 0 or -1 (wd_store_error). */
int wd_approval_create(wd_store *s, const json_t *req, char id[37]);
/* A person's decision on a pending request. approve: `by` joins the approvers (once
** each; one of the request's approvers when it names any), and the request is approved
** when enough have; reject: with reason. via: how `by` was established (kept with the
** decision, audited). 1 done (msg says what it did), 0 refused (msg says why: no such
** request, already decided, expired, not an approver), -1 error. */
int wd_approval_decide(wd_store *s, const char *id, int approve, const char *by, const char *via, const char *reason,
                       int64_t now_ms, char *msg, size_t n);
/* Ends a pending request without a decision (its run ended, or its clock ran out as the
** waiting run saw it): status expired or cancelled, with reason. 1 changed, 0 it was
** not pending any more, -1 error. */
int wd_approval_close(wd_store *s, const char *id, const char *status, const char *reason, int64_t now_ms);

#endif
