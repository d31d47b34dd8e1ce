/* metrics.h - what a server counts, in Prometheus's text format (warden serve, GET
** /metrics). Counters and histograms come from the records runs audit (the same facts
** the log holds); breaker states, budget use and pending approvals are read from the
** state store when scraped. Thread-safe. */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <jansson.h>

#include "policy.h"
#include "store.h"
#include "util.h"

typedef struct wd_metrics wd_metrics;

/* caller frees with wd_metrics_free */
wd_metrics *wd_metrics_new(void);
void wd_metrics_free(wd_metrics *m); /* accepts NULL */

/* one audited record (borrowed): runs, LLM and tool calls, refusals, approvals, verdicts */
void wd_metrics_record(wd_metrics *m, const json_t *rec);
/* one HTTP response of the API, by route and status */
void wd_metrics_http(wd_metrics *m, const char *route, int status);
/* a policy or script change: applied or rejected */
void wd_metrics_reload(wd_metrics *m, int ok);

/* cost by user/model and user/tool as JSON {by_user, by_model, by_tool} (the dashboard) */
json_t *wd_metrics_costs(wd_metrics *m);
/* the server's own gauges, as the caller reads them now */
typedef struct wd_metrics_now {
    long live;             /* runs queued or running */
    long generation;       /* policy loads */
    long running, queued;  /* admission (admit.h) */
    long long reserved_mb; /* sandbox memory the running runs reserved */
} wd_metrics_now;

/* the exposition: every series, then the gauges read now from st (breakers, budgets of
** p, pending approvals) and now's. 0, -1 out of memory */
int wd_metrics_render(wd_metrics *m, wd_buf *out, wd_store *st, const wd_policy *p, const wd_metrics_now *now);

#endif
