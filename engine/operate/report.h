/* report.h - `warden report cost`, `compliance` and `failures`. Cost: what was spent, from the audit log (so its figures
** are the log's), and how much of each budget is used, from the store's ledger. */
#ifndef WD_REPORT_H
#define WD_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include "policy.h"
#include "store.h"

/* The report as JSON (caller frees) over the records with since <= timestamp < until
** (-1: unbounded); now places the burn rate's last 24 hours and the budgets' periods.
** st may be NULL (no budget section). NULL with err when the log cannot be read. */
json_t *wd_report_cost(const char *const *logs, size_t nlogs, wd_store *st, const wd_policy *p, int64_t since, int64_t until,
                       int64_t now, char *err, size_t n);
/* budget use of the current day and month from the store's ledger: [{scope, period,
** spent_usd, reserved_usd, limit_usd, used_pct}]; caller decrefs */
json_t *wd_report_budgets(wd_store *st, const wd_policy *p, int64_t now);
/* the report as text for a terminal; caller frees */
char *wd_report_cost_text(const json_t *rep);

/* `warden report compliance`: events by type, guardrail violations by severity and type,
** approvals with their time to decision, unauthorized attempts by user, records that
** held sensitive data, kill switch use (records with since <= timestamp < until; -1
** unbounded), and the whole chain's integrity. Caller frees; NULL with err. */
json_t *wd_report_compliance(const char *const *logs, size_t nlogs, int64_t since, int64_t until, char *err, size_t n);
/* the report as text for a terminal; caller frees */
char *wd_report_compliance_text(const json_t *rep);

/* `warden report failures`: incidents by failure mode and by agent, prevented (the engine
** stopped it: a halt or an escalation, a refusal, a cap) or occurred (a warning, a failed
** run), the prevention rate and the most common mode; detector errors apart. Records with
** since <= timestamp < until (-1 unbounded). Caller frees; NULL with err. */
json_t *wd_report_failures(const char *const *logs, size_t nlogs, int64_t since, int64_t until, char *err, size_t n);
/* the report as text for a terminal; caller frees */
char *wd_report_failures_text(const json_t *rep);

#endif
