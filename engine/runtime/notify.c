/* notify.c - notifications queued in the store and delivered to webhooks from the loop */
#include "notify.h"
#include "engine.h"
#include "redact.h"
#include "retry.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT 8
#define POLL_MS      500   /* how often the store is asked for what came due */
#define MAX_ANSWER   65536 /* of a webhook's answer: read and dropped */
#define LEASE_EXTRA  10000 /* a claimed row is another process's again this long after its timeout */

typedef struct delivery {
    wd_notifier *n;
    wd_http_req *req;
    json_t *row;
    struct delivery *next;
} delivery;

struct wd_notifier {
    wd_engine *e;
    struct event *tick;
    int inflight;
    int draining; /* the engine ends: the loop stops when the last answer is in */
    delivery *list;
};

int wd_notify_enqueue(const wd_policy *p, wd_store *s, const char *event, const char *summary, const json_t *data)
{
    int n = 0;
    for (size_t i = 0; i < p->n_webhooks; i++) {
        const wd_webhook *h = &p->webhooks[i];
        if (!wd_webhook_wants(h, event))
            continue;
        char id[37], ts[40];
        wd_uuid(id);
        wd_rfc3339_ms(wd_wall_ms(), ts, sizeof ts);
        json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:O?}", "id", id, "event", event, "time", ts, "summary",
                                 summary ? summary : event, "data", data);
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(body);
        wd_notify_row row = {id, event, h->url, h->secret_env, text, h->timeout_ms};
        int rc = text ? wd_store_notify_add(s, &row, wd_store_now(s)) : -1;
        free(text);
        if (rc < 0)
            return -1;
        n++;
    }
    return n;
}

/* ---- delivery ------------------------------------------------------------------- */

static void arm(wd_notifier *n, long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(n->tick, &tv);
}

static const char *row_str(const json_t *row, const char *k)
{
    const char *s = json_string_value(json_object_get(row, k));
    return s ? s : "";
}

/* the webhook's address as the log keeps it: scheme, host and port only (a path often
** holds the receiver's secret: Slack's and Teams' hooks do) */
static void url_origin(const char *url, char *out, size_t n)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t len = strcspn(h, "/?#");
    snprintf(out, n, "%.*s%.*s/...", (int)(h - url), url, (int)len, h);
}

/* an attempt's outcome: settled in the store, audited */
static void settle(wd_notifier *n, const json_t *row, long status, const char *error, long long latency,
                   long long retry_after_ms)
{
    wd_engine *e = n->e;
    const wd_policy *p = e->policy;
    wd_store *s = e->store;
    int64_t now = wd_store_now(s);
    int ok = !error && status >= 200 && status < 300;
    long long attempts = json_integer_value(json_object_get(row, "attempts")) + 1;
    int dead = !ok && attempts >= p->notify_max_attempts;
    /* the runs' backoff (retry.h), a tenth of the base as jitter, the receiver's
    ** Retry-After within retry_max_ms */
    wd_retry_cfg rc = {p->notify_max_attempts, p->notify_base_ms, p->notify_max_ms, p->notify_base_ms / 10};
    int64_t next = ok || dead ? 0 : now + wd_retry_delay_ms(&rc, (int)attempts - 1, retry_after_ms, wd_retry_random());
    char why[300];
    if (!ok && !error)
        snprintf(why, sizeof why, "the webhook answered HTTP %ld", status);
    const char *err = ok ? NULL : error ? error : why;
    wd_store_notify_settle(s, row_str(row, "id"),
                           ok     ? "delivered"
                           : dead ? "dead"
                                  : "pending",
                           (int)attempts, next, err, now);
    char origin[300];
    url_origin(row_str(row, "url"), origin, sizeof origin);
    json_t *rec =
        json_pack("{s:s,s:b,s:s,s:s,s:s,s:I,s:I,s:I}", "event", wd_event_name(WD_AE_NOTIFICATION), "success", ok,
                  "notification_id", row_str(row, "id"), "notify_event", row_str(row, "event"), "url", origin,
                  "attempt", (json_int_t)attempts, "status", (json_int_t)status, "latency_ms", (json_int_t)latency);
    if (!rec)
        return;
    if (err)
        json_object_set_new(rec, "error", json_string(err));
    if (next)
        json_object_set_new(rec, "next_attempt_ms", json_integer(next - now));
    if (dead) {
        json_object_set_new(rec, "given_up", json_true());
        json_object_set_new(rec, "reason", json_string("notify.max_attempts reached: kept as a dead letter"));
    }
    json_incref(rec);
    wd_redact_append(p, e->audit, rec);
    if (e->on_record) /* the server's metrics: warden_notifications_total */
        e->on_record(e->on_record_ud, rec);
    json_decref(rec);
}

static void unlink_delivery(wd_notifier *n, delivery *d)
{
    for (delivery **pp = &n->list; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    n->inflight--;
    json_decref(d->row);
    free(d);
    if (n->draining && !n->inflight)
        event_base_loopbreak(n->e->base);
}

static void on_answer(const wd_http_resp *resp, void *ud)
{
    delivery *d = ud;
    wd_notifier *n = d->n;
    d->req = NULL; /* freed by the client after this call */
    settle(n, d->row, resp->fail == WD_HTTP_OK ? resp->status : 0, resp->fail == WD_HTTP_OK ? NULL : resp->error,
           resp->latency_ms, resp->retry_after_ms);
    unlink_delivery(n, d);
}

/* the signature header of body at ts, "" when the webhook names no secret; -1 when it
** names one the environment lacks */
static int sign(const json_t *row, const char *ts, const char *body, char *out, size_t n)
{
    const char *env = row_str(row, "secret_env");
    out[0] = '\0';
    if (!*env)
        return 0;
    const char *secret = getenv(env);
    if (!secret || !*secret)
        return -1;
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof mac + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, n, "X-Warden-Signature: sha256=%s", hex);
    return 0;
}

/* one claimed row sent (takes row) */
static void start(wd_notifier *n, json_t *row)
{
    char ts[32], sig[160], ev[160], id[80], err[300];
    snprintf(ts, sizeof ts, "%lld", (long long)(wd_wall_ms() / 1000));
    const char *body = row_str(row, "body");
    if (sign(row, ts, body, sig, sizeof sig) < 0) {
        snprintf(err, sizeof err, "secret_env %s is not set in warden's environment: not sent unsigned",
                 row_str(row, "secret_env"));
        settle(n, row, 0, err, 0, -1);
        json_decref(row);
        return;
    }
    char tsh[64];
    snprintf(ev, sizeof ev, "X-Warden-Event: %s", row_str(row, "event"));
    snprintf(id, sizeof id, "X-Warden-Delivery: %s", row_str(row, "id"));
    snprintf(tsh, sizeof tsh, "X-Warden-Timestamp: %s", ts);
    const char *headers[] = {"Content-Type: application/json", "User-Agent: warden/" WARDEN_VERSION, ev, id, tsh, sig};
    long long t = json_integer_value(json_object_get(row, "timeout_ms"));
    wd_http_opts o = {"POST", row_str(row, "url"), headers, sig[0] ? 6 : 5, body, strlen(body), t, t, MAX_ANSWER, NULL,
                      0};
    delivery *d = calloc(1, sizeof *d);
    if (!d) {
        json_decref(row);
        return;
    }
    d->n = n;
    d->row = row;
    d->next = n->list;
    n->list = d;
    n->inflight++;
    d->req = wd_http_start(n->e->http, &o, on_answer, d, err, sizeof err);
    if (!d->req) {
        settle(n, row, 0, err, 0, -1);
        unlink_delivery(n, d);
    }
}

/* what is due, claimed and sent */
static void deliver_due(wd_notifier *n)
{
    json_t *rows = NULL;
    int room = MAX_INFLIGHT - n->inflight;
    long long lease = 0;
    for (size_t i = 0; i < n->e->policy->n_webhooks; i++)
        if (n->e->policy->webhooks[i].timeout_ms > lease)
            lease = n->e->policy->webhooks[i].timeout_ms;
    if (room <= 0 ||
        wd_store_notify_claim(n->e->store, wd_store_now(n->e->store), lease + LEASE_EXTRA, room, &rows) < 0)
        return;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) start(n, json_incref(row));
    json_decref(rows);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_notifier *n = arg;
    deliver_due(n);
    arm(n, POLL_MS);
}

wd_notifier *wd_notifier_new(wd_engine *e)
{
    wd_notifier *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->e = e;
    n->tick = evtimer_new(e->base, on_tick, n);
    if (!n->tick) {
        free(n);
        return NULL;
    }
    if (e->policy->n_webhooks)
        arm(n, 0);
    return n;
}

void wd_notifier_free(wd_notifier *n, long long ms)
{
    if (!n)
        return;
    event_del(n->tick);
    if (n->e->policy->n_webhooks) {
        deliver_due(n); /* what this process queued last goes out before it ends */
        if (n->inflight) {
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            n->draining = 1;
            event_base_loopexit(n->e->base, &tv);
            event_base_dispatch(n->e->base);
        }
    }
    while (n->list) {
        delivery *d = n->list;
        wd_http_cancel(d->req);
        unlink_delivery(n, d);
    }
    event_free(n->tick);
    free(n);
}

void wd_notifier_wake(wd_notifier *n)
{
    if (n && n->e->policy->n_webhooks)
        arm(n, 0);
}

void wd_notify(wd_engine *e, const char *event, const char *summary, const json_t *data)
{
    if (!wd_policy_notifies(e->policy, event))
        return;
    if (wd_notify_enqueue(e->policy, e->store, event, summary, data) > 0 && e->notifier)
        arm(e->notifier, 0); /* the tick comes now rather than at its poll */
}

/* ** Which records call for a notification. A run refused by authorization tells nobody
** at first; the same user's third refusal within the hour does, and the tenth and the
** hundredth (counted in the store, whichever process saw them). */
static const char *event_for(wd_engine *e, const json_t *rec, const char *ev)
{
    static const char *const SAME[] = {"approval_requested",
                                       "approval_escalated",
                                       "breaker_opened",
                                       "budget_warning",
                                       "budget_exceeded",
                                       "auth_blocked",
                                       NULL};
    for (int i = 0; SAME[i]; i++)
        if (!strcmp(ev, SAME[i]))
            return SAME[i];
    if (!strcmp(ev, "kill_switch")) {
        const char *action = json_string_value(json_object_get(rec, "action"));
        return action && !strcmp(action, "kill") ? "kill_switch" : NULL;
    }
    if (!strcmp(ev, "detector_verdict")) {
        const char *v = json_string_value(json_object_get(rec, "verdict"));
        return !v ? NULL : !strcmp(v, "halt") ? "detector_halt" : !strcmp(v, "escalate") ? "detector_escalate" : NULL;
    }
    if (strcmp(ev, "authorization_denied") || !wd_policy_notifies(e->policy, "unauthorized"))
        return NULL;
    const char *who = json_string_value(json_object_get(rec, "user_id"));
    if (!who)
        who = json_string_value(json_object_get(rec, "remote_addr"));
    char key[300];
    snprintf(key, sizeof key, "notify:unauthorized:%s", who ? who : "?");
    long long count = 0;
    int64_t retry;
    /* counted up to the last threshold only: past it nothing more is kept of this user's hour */
    if (wd_store_rate_take(e->store, key, 100, 3600000, wd_store_now(e->store), &count, &retry) <= 0)
        return NULL;
    return count == 2 || count == 9 || count == 99 ? "unauthorized" : NULL;
}

void wd_notify_record(wd_engine *e, const json_t *rec)
{
    if (!e->policy->n_webhooks)
        return;
    const char *ev = json_string_value(json_object_get(rec, "event"));
    const char *what = ev ? event_for(e, rec, ev) : NULL;
    if (!what)
        return;
    const char *reason = json_string_value(json_object_get(rec, "reason"));
    wd_notify(e, what, reason ? reason : what, rec);
}

void wd_engine_notify(wd_engine *e, const json_t *rec) { wd_notify_record(e, rec); }
