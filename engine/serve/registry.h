/* registry.h - the runs a server knows (warden serve): what each is doing, its result
** once it ended, and its audit records as written, for GET /v1/runs/{id} and its event
** stream. Thread-safe: runs are submitted and end on the worker threads, records arrive
** from every worker's audit flushes, and any worker answers for any run. Finished runs
** are kept (results and records) until `keep` newer ones have finished. */
#ifndef WD_REGISTRY_H
#define WD_REGISTRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct wd_registry wd_registry;

/* caller frees with wd_registry_free. keep: finished runs kept; max_events: records kept
** per run (the oldest go first, counted as dropped) */
wd_registry *wd_registry_new(size_t keep, size_t max_events);
void wd_registry_free(wd_registry *g); /* accepts NULL */
/* what is kept (serve.* of the policy, applied at start and on every reload): finished
** runs at most keep, and kept_bytes in all (results and records; the oldest go first);
** records per run at most max_events and events_bytes (the oldest go first); a result
** kept at most result_bytes (wd_registry_result_max: the caller cuts it) */
void wd_registry_limits(wd_registry *g, size_t keep, size_t max_events, size_t events_bytes, size_t kept_bytes,
                        size_t result_bytes);
size_t wd_registry_result_max(wd_registry *g);

/* a run about to be submitted (status "queued"). 0, -1 out of memory */
int wd_registry_add(wd_registry *g, const char *run_id, const char *agent, const char *user, const char *session);
/* one audit line (without newline) of run_id; a record of no known run is dropped, but
** a violation of any run joins the recent violations */
void wd_registry_event(wd_registry *g, const char *run_id, const char *event, const char *line, size_t len);
/* the run ended with status and its result object as JSON text (takes ownership; NULL:
** none could be made) */
void wd_registry_finish(wd_registry *g, const char *run_id, const char *status, char *text);

/* {run_id, agent, user_id, session_id, status, created_at, finished_at?, result?};
** caller decrefs; NULL: unknown (or evicted). *owner (may be NULL) gets the user, to
** decide who may see it */
json_t *wd_registry_get(wd_registry *g, const char *run_id, char owner[160]);
/* The records of run_id from number `from` on, each appended to out as one server-sent
** event ("id: N\nevent: E\ndata: LINE\n\n"). Returns the next cursor, or -1 unknown run.
** *ended: the run ended and its run_finished record has been given (or it ended over
** 2 s ago: a log that failed writes none) */
long wd_registry_events(wd_registry *g, const char *run_id, long from, wd_buf *out, int *ended);
/* the runs, newest first, at most limit: user NULL every user's; live_only: not ended */
json_t *wd_registry_list(wd_registry *g, const char *user, int live_only, size_t limit);
/* the last violations (authorization_denied, validation_failed, guardrail_violation,
** rate_limited, budget_exceeded, approval_rejected, kill_switch, detector_verdict), newest
** first, as parsed records; caller decrefs */
json_t *wd_registry_violations(wd_registry *g);
/* runs queued or running */
long wd_registry_live(wd_registry *g);

#endif
