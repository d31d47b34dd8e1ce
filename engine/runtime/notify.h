/* notify.h - people are told of what matters (docs/safety.md, Monitoring and alerts):
** notify.webhooks get a signed JSON POST for the events they list.
**
** A notification is queued in the state store first (wd_store_notify_add), so none is
** lost when a process ends; any process's engine delivers what is due, from its loop,
** over libcurl: a run never waits for a webhook. A delivery that fails is tried again
** with backoff up to notify.max_attempts, then kept as a dead letter (`warden notify
** list`). Every attempt is audited (event notification). The body is
** {id, event, time, summary, data}; the headers carry X-Warden-Event, X-Warden-Delivery
** (the id), X-Warden-Timestamp (Unix seconds) and, when the webhook names a secret_env,
** X-Warden-Signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP "." BODY)). */
#ifndef WD_NOTIFY_H
#define WD_NOTIFY_H

#include <jansson.h>
#include "policy.h"
#include "store.h"

typedef struct wd_engine wd_engine;
typedef struct wd_notifier wd_notifier;

/* queues event (a WD_NOTIFY_EVENTS name) for every webhook of p that lists it; data is
** borrowed. The notifications queued, or -1 when the store failed. For any process:
** an engine's loop delivers them. */
int wd_notify_enqueue(const wd_policy *p, wd_store *s, const char *event, const char *summary, const json_t *data);

/* the engine's deliverer, started by wd_engine_new (NULL when no policy can notify) */
wd_notifier *wd_notifier_new(wd_engine *e);
/* what is in flight is given up to ms to finish (the rows stay claimed, then due again
** for another process), then freed; accepts NULL */
void wd_notifier_free(wd_notifier *n, long long ms);
/* the deliverer looks at the store now (a policy with webhooks came); accepts NULL */
void wd_notifier_wake(wd_notifier *n);
/* an audit record, as written: the notification it calls for, if any, queued and the
** deliverer woken (approval requested and escalated, breaker opened, budget warning and
** exceeded, kill switch, a detector's halt or escalation, repeated refusals) */
void wd_notify_record(wd_engine *e, const json_t *rec);
/* event queued from the engine: the deliverer woken */
void wd_notify(wd_engine *e, const char *event, const char *summary, const json_t *data);

#endif
