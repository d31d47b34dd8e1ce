/* budget.h - money and rate for a run (docs/safety.md): the per-run cost limit in
** memory, and the user's daily and monthly budgets (by tier) and the global monthly one
** as reservations in the store's ledger, so concurrent runs and several processes never
** spend past a budget. Rate limits are sliding one-hour windows in the store. */
#ifndef WD_BUDGET_H
#define WD_BUDGET_H

#include "store.h"
#include "policy.h"
#include "ledger.h"
#include <jansson.h>

typedef struct wd_run wd_run;

#define WD_BUDGET_KEYS 3
/* a reservation's answer when the store was asked: the caller's again(r) is called on the
** loop when it answered, and the caller asks again then */
#define WD_BUDGET_WAIT 2

/* an engine's leases on the ledger: ledger.h */
/* a reservation held by a run until its call ends */
typedef struct wd_budget_hold {
    int n;          /* 0: nothing held */
    int64_t amount; /* nano-dollars, on each lease */
    wd_lease *lease[WD_BUDGET_KEYS];
} wd_budget_hold;

/* where a streamed call's reservation goes on after a wait (budget.c) */
typedef struct wd_budget_upto {
    int stage, known, which;
    double room;
    char said[400];
} wd_budget_upto;

/* the ledger keys of a user at now_ms: its day and month (limits from its tier) and
** the global month; returns how many */
int wd_budget_keys(const wd_policy *p, const char *user, int64_t now_ms, wd_ledger_key *keys);
/* a run's cost limit: its user's per_run_usd, or less for a sub-run (what its parent had
** left) */
double wd_budget_run_limit(const wd_run *r, const wd_policy *p);
/* the run limit of a user: its tier's per_run_usd, 1.00 without a tier */
double wd_budget_per_run(const wd_policy *p, const char *user);
/* "user bob's daily budget" / "the global monthly budget", into out */
void wd_budget_name(const wd_ledger_key *k, char *out, size_t n);
/* USD to the ledger's nano-dollars, rounded up: a reservation never falls short */
int64_t wd_budget_nusd(double usd);

/* Reserves usd for one call against the run's limit and every budget. 1 reserved (h
** holds it), 0 refused: msg says which budget and what is left, and the refusal is
** audited as budget_exceeded (what names the call: "llm" or the tool). A store that
** cannot be reached refuses too (money is never spent unaccounted). args: a tool's,
** for the audit record, or NULL. WD_BUDGET_WAIT: the call's leases must grow and the
** store was asked; again(r) is called on the loop, which reserves again (the run's end
** drops the wait). */
int wd_budget_reserve(wd_run *r, double usd, const char *what, const json_t *args, wd_budget_hold *h, char *msg,
                      size_t n, void (*again)(wd_run *r));
/* A streamed call's reservation: its whole worst case cost when that fits, else all that
** is left (the least of the run's limit and every budget) when at least least fits; *got
** is what is held, and msg then names the budget that set it (*which: its index in the
** run's keys, -1 the run's limit). 1 held, 0 refused as
** wd_budget_reserve refuses (audited). The caller cuts the stream where it would cost
** more than *got. */
int wd_budget_reserve_upto(wd_run *r, double cost, double least, const char *what, wd_budget_hold *h, double *got,
                           int *which, char *msg, size_t n, void (*again)(wd_run *r));
/* a budget_exceeded record for a call cut short at the budget which (msg says where) */
void wd_budget_audit_exceeded(wd_run *r, const char *what, int which, double cost, const char *msg);
/* the call ended: its real cost replaces the reservation (0 releases it), to be written
** at the next flush; audits the per-run budget_warning when the run's spend reaches
** warn_ratio of its limit. Accepts an empty hold. */
void wd_budget_settle(wd_run *r, wd_budget_hold *h, double actual_usd);
/* What each of the run's budgets (its user's day and month, the global month) has
** left in USD, less what calls in flight hold; -1 for no limit. 0, or -1 when the store
** cannot be read (msg). For ctx:budget(), not the hot path: it reads the store. */
int wd_budget_left(wd_run *r, double left[WD_BUDGET_KEYS], char *msg, size_t n);
/* Run start: refuses a user whose budget is already spent (msg). 1 may start, 0 not,
** WD_BUDGET_WAIT: the store was asked, again(r) comes with its answer. */
int wd_budget_can_start(wd_run *r, char *msg, size_t n, void (*again)(wd_run *r));

/* Sliding-window limit of limit per hour on key: 1 admitted, 0 refused (msg names the
** limit and when to retry, *retry_ms), -1 store error (msg). limit <= 0: no limit.
** With again, the store is asked without waiting: WD_BUDGET_WAIT, and again(r) is
** called on the loop, which takes again (the same call gets the answer). */
int wd_rate_take(wd_run *r, const char *key, long long limit, const char *what, int64_t *retry_ms, char *msg, size_t n,
                 void (*again)(wd_run *r));

#endif
