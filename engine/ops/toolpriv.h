/* toolpriv.h - what the files of a tool call share (not for the rest of the engine):
** pipeline.c checks a call, tools.c keeps the run's tools and its record of calls,
** approve.c decides what a person must do and waits for them, toolcall.c runs the
** handler and settles the call. */
#ifndef WD_TOOLPRIV_H
#define WD_TOOLPRIV_H

#include "pipeline.h"

/* what the agent said of a call: ctx:call_tool(name, args, {justification=, urgency=,
** confidence=}) */
typedef struct wd_call_opts {
    const char *justification; /* kept alive by the opts table while the call is checked */
    int urgency;               /* index into WD_URGENCIES, -1 not given */
    double confidence;         /* 0..1, -1 not given */
} wd_call_opts;

/* ** What a person must do about a call (docs/safety.md, Autonomy levels and human-in-the-loop triggers). The strictest of:
** the autonomy level of the tool's category (5-4 execute, 3 execute and notify, 2
** approval, 1 senior approval: two approvers, 0 never), requires_approval, a risk at or
** above approvals.min_risk, and the hitl triggers (stated confidence below
** hitl.confidence_below, estimated cost above hitl.cost_above_usd, hitl.consecutive_errors
** failed or refused calls in a row). */
enum { OV_EXECUTE, OV_NOTIFY, OV_APPROVE, OV_NEVER };

typedef struct wd_oversight {
    int action, needed, level;
    const char *triggers[6];
    int ntriggers;
} wd_oversight;

/* tools.c */
/* a call in the run's tool_calls and, for the detectors, a tool_result event. args is
** shared, not copied; result: the summary or why it failed; value: what the tool
** returned (NULL: it did not run) */
void wd_tool_record(wd_run *r, const char *name, json_t *args, const char *result, int ok, json_t *value, int ran);
char *wd_tool_summary(const char *s, int *truncated); /* caller frees; UTF-8 safe */
/* ev gets data_accessed and data_modified: what the call of r->tool.name (impl, args) touched */
void wd_tool_data_touched(wd_run *r, json_t *ev, int impl, const json_t *args);
/* a refusal record under event, not yet audited (caller owns it) */
json_t *wd_tool_refusal(wd_run *r, wd_audit_event event, const char *name, json_t *args, const char *msg);
/* a refusal: audited under event (WD_AE_NONE: by the caller), recorded, {error = msg} pushed
** on L; takes args; returns 1 (the results pushed) */
int wd_tool_refuse(wd_run *r, lua_State *L, wd_audit_event event, const char *name, json_t *args, const char *msg);
/* the same for a name the policy does not declare (marked tool_undeclared) */
int wd_tool_refuse_undeclared(wd_run *r, lua_State *L, const char *name, json_t *args, const char *msg);
int wd_tool_allows(const wd_run *r, const char *name); /* on the agent's list */
void wd_tool_free_all(wd_run *r);                      /* the run's loaded tools and list */

/* approve.c */
/* the call's options (argument 4 of ctx:call_tool on L): 0, or -1 with msg */
int wd_approve_opts(lua_State *L, wd_call_opts *o, const char *name, char *msg, size_t n);
void wd_approve_decide(const wd_run *r, const wd_policy *p, const wd_tool_policy *tp, const wd_call_opts *o,
                       wd_oversight *ov);
/* autonomy level 3: the call goes on, audited human_notified and told to a person */
void wd_approve_notify(wd_run *r, const wd_tool_policy *tp, const char *name, json_t *args);
/* Creates the request and audits it. -1 asked (the run yields with OP_APPROVAL; args
** taken), 1 refused (error table pushed; args freed). */
int wd_approve_ask(wd_run *r, lua_State *L, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
                   int64_t t0, const wd_call_opts *o, const wd_oversight *ov, char *msg, size_t n);

/* toolcall.c */
/* the tool's breaker: 1 admitted, 0 refused at once while open (audited, recorded; msg);
** with again, 2: the store was asked, again(r) is called on the loop, and the same call
** then answers */
int wd_toolcall_admit(wd_run *r, int idx, const char *name, json_t *args, char *msg, size_t msgn,
                      void (*again)(wd_run *r));
/* the call the loop starts after the yield; takes args */
void wd_toolcall_request(wd_run *r, wd_opkind kind, const wd_tool_policy *tp, const char *name, json_t *args, int idx,
                         int64_t t0);
void wd_toolcall_start(wd_run *r); /* the handler of r->req's tool, in a coroutine of its own */

#endif
