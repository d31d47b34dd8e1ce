/* store.h - the state store: what every warden process sharing it agrees on. Breaker
** states, the spend ledger with the leases processes hold on it, rate windows, the
** response cache, approval requests, the kill switch and agent health, and detectors'
** own state. Callers use these functions and nothing else; each dispatches through
** the store's backend, a table of functions (backend.h). SQLite is the first backend
** (sqlite.c: one file in WAL mode, docs/architecture-decision.md); no SQL lives outside
** it. Each operation is one short transaction, so processes never see half a
** decision; wd_store_begin/commit group several (a breaker's read-modify-write). */
#ifndef WD_STORE_H
#define WD_STORE_H

#include <stdint.h>
#include <stddef.h>
#include <jansson.h>

typedef struct wd_store wd_store;

enum { WD_BR_CLOSED = 0, WD_BR_OPEN = 1, WD_BR_HALF_OPEN = 2 };

typedef struct wd_breaker_row {
    char name[160];
    int state;          /* WD_BR_* */
    long long failures; /* consecutive */
    int64_t opened_ms;  /* the store's clock: when it last opened */
    long long probes;   /* half-open calls in flight */
    int64_t probe_ms;   /* when the last probe was admitted */
    int64_t updated_ms;
} wd_breaker_row;

/* caller frees with wd_store_close; creates the file and its directory. NULL with err. */
wd_store *wd_store_open(const char *path, char *err, size_t errlen);
void wd_store_close(wd_store *s); /* accepts NULL */
/* 1 when path names a Redis server (redis://, redis+unix://) rather than a file */
int wd_store_is_redis(const char *path);
const char *wd_store_backend_name(const wd_store *s); /* "sqlite", "redis" */
/* Says this process is alive (Redis: refreshes its liveness key, at most four times per
** store.lease, and gives back the leases of hosts that fell silent); SQLite: nothing, a
** process's liveness is its pid. Called by the engine's flush timer. 0 or -1 */
int wd_store_keepalive(wd_store *s);
/* What another process changed, told at once: kind "kill" (name: the agent), "approval"
** (the request's id), "breaker" (its name), or "resync" (notices may have been missed:
** read everything again). Called on base's loop. */
typedef void (*wd_store_notice)(void *ud, const char *kind, const char *name);
/* Watches on base's loop (Redis: a subscription, docs/scale-out.md; SQLite: nothing, the
** engine's polls see every change). base NULL stops watching; it must stop before base
** is freed. 0 or -1 */
struct event_base;
int wd_store_watch(wd_store *s, struct event_base *base, wd_store_notice fn, void *ud);
const char *wd_store_path(const wd_store *s);
/* The store's clock in ms (store.c): wall time at this boot's anchor, advanced by the
** boot-time clock, so durations kept in the store mean the same to every process and
** never stretch or shrink when the wall clock is stepped. Shifted as wd_wall_ms is by
** the tests' clock. NULL: this process's monotonic clock. */
int64_t wd_store_now(const wd_store *s);
const char *wd_store_error(const wd_store *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK: 0 or -1 */
int wd_store_begin(wd_store *s);
int wd_store_commit(wd_store *s);
void wd_store_rollback(wd_store *s);

/* 1 found, 0 absent (row zeroed, name set, closed), -1 error */
int wd_store_breaker_get(wd_store *s, const char *name, wd_breaker_row *row);
int wd_store_breaker_put(wd_store *s, const wd_breaker_row *row);
/* every breaker, by name; caller frees *rows */
int wd_store_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n);

/* One move of a breaker's state machine (breaker.h) done by the store itself, whole: a
** call admitted or refused, an outcome, a probe's slot given back. */
enum { WD_BRS_ADMIT, WD_BRS_OUTCOME, WD_BRS_RELEASE };
typedef struct wd_breaker_step {
    int kind; /* WD_BRS_* */
    long long failure_threshold, open_ms, half_open_probes;
    int success, probe; /* an outcome's: how the call went, and whether it was a probe */
    int64_t now_ms;
    /* out */
    int admitted, probe_out; /* admit: 1 admitted (probe_out: as a half-open probe) */
    long long retry_in_ms;   /* admit refused: until when */
    int from;                /* the state before */
    wd_breaker_row row;      /* the row as the store holds it now */
} wd_breaker_step;
/* 1 done, 0 this backend has no such step (the caller runs the rules on a row read and
** written in a transaction: SQLite), -1 store error. Redis: one script. */
int wd_store_breaker_step(wd_store *s, const char *name, wd_breaker_step *st);

/* ---- the spend ledger. Amounts are integer nano-dollars (1e-9 USD): sums stay exact.
** A scope is who spends ("user:bob", "global") and a period which budget ("day:2026-11-21",
** "month:2026-11"); limit 0 means no limit (spend is still counted). ---- */

#define WD_NUSD_PER_USD 1000000000.0

typedef struct wd_ledger_key {
    char scope[160];
    char period[24];
    int64_t limit;   /* 0: none */
    int64_t warn_at; /* 0: no warning */
} wd_ledger_key;

typedef struct wd_ledger_row {
    char scope[160];
    char period[24];
    int64_t spent, reserved;
    int warned;
} wd_ledger_row;

/* One change to an engine's lease on a key: its pending spend joins `spent`, and the
** lease (a row of table `leases` owned by this process, released by a sweep if the
** process dies) goes from old to new, the difference joining `reserved`. */
/* ** An answer lost to a timeout leaves a change done or not, unknown. So that sending it
** again never counts it twice, a store that can lose answers (Redis) takes spend as
** totals: `total` is all the spend the lease `lease_id` (unique in its process) has
** ever sent, and the store adds what it has not yet seen of it; the lease's size is
** taken as the store holds it, not as `old` says. SQLite, whose answers are never
** lost, adds `pending` and moves the lease from `old`. */
typedef struct wd_lease_change {
    const wd_ledger_key *key;
    int64_t *row; /* in/out: the lease's row, 0 none */
    int64_t old, new_amount, pending;
    int64_t lease_id, total;
    int crossed;         /* out: spend reached warn_at for the first time in its period */
    int64_t spent;       /* out: the key's spend afterwards */
    wd_ledger_row state; /* out: for a refusal, the key's row before */
} wd_lease_change;

/* Applies every change in one transaction, or none: with check, a change that adds to
** the key's spent + reserved and takes them past its limit is refused. 1 applied, 0
** refused (*which: the first refused), -1 store error. */
int wd_store_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which);
/* the rows of these keys (absent ones zeroed): 0 or -1 */
int wd_store_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows);
/* every row, by scope and period; caller frees *rows */
int wd_store_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n);
/* Releases the leases of processes that are gone (killed mid-call): their amounts leave
** `reserved`. Returns how many processes, or -1. Run at open and before a refusal. */
int wd_store_sweep(wd_store *s);

/* ---- rate windows: sliding, one row per admitted request ---- */

/* 1 admitted (counted), 0 refused: *count requests in the last window_ms already,
** *retry_ms until the oldest leaves the window. -1 store error. */
int wd_store_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms,
                       long long *count, int64_t *retry_ms);

/* ---- the response cache ---- */

/* 1 hit (*answer: caller frees, *cost_nusd what the answer cost when it was bought),
** 0 miss, -1 error */
/* ---- sessions (docs/lua-api.md, Sessions): a conversation kept between runs ----
** get: 1 found and not expired (*owner, *messages: JSON text; caller frees both), 0 none,
** -1 error. put: the session's conversation replaced (made when new; an expired one is
** anyone's again), expiring at expires_ms; 0, or -1 error. */
int wd_store_session_get(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages);
int wd_store_session_put(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                         int64_t expires_ms);
int wd_store_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd);
int wd_store_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                       int64_t ttl_ms);

/* ---- approval requests (approval.h holds the rules; these are the rows) ---- */

/* the state of one request, as the waiting run reads it */
typedef struct wd_approval_state {
    char status[16];   /* pending approved rejected expired abandoned cancelled */
    int given, needed; /* approvals given, needed */
    int escalated;
    int64_t created_ms, expires_ms, escalate_ms, decided_ms;
    char decided_by[160]; /* the last approver, or who rejected */
    char decided_via[24]; /* how they proved it: api_key, os_user, cli_flag ("" unknown) */
    char reason[400];
    json_t *approved_by; /* the approvers so far */
    json_t *approvers;   /* who may decide ([] anyone the front end lets) */
} wd_approval_state;

/* one change to a request: NULL fields and decided_ms < 0 stay as they are */
typedef struct wd_approval_change {
    const char *status, *reason, *decided_by, *decided_via;
    const json_t *approved_by;
    int64_t decided_ms;
    int only_pending; /* change it only while it is pending */
} wd_approval_change;

/* inserts a pending request owned by this process (req: see wd_approval_create): 0, -1 */
int wd_store_approval_insert(wd_store *s, const char *id, const json_t *req);
/* 1 found (st filled), 0 absent, -1 error */
int wd_store_approval_get(wd_store *s, const char *id, wd_approval_state *st);
/* 1 a row changed, 0 none, -1 error; inside the caller's transaction when it has one */
int wd_store_approval_update(wd_store *s, const char *id, const wd_approval_change *c);
/* Settles what time and death decided: pending requests past expiry become expired,
** those past their escalation point are marked escalated, those whose process is gone
** abandoned. Rows changed, or -1. */
int wd_store_approval_sweep(wd_store *s, int64_t now_ms);
/* oldest first, pending only unless all; *out: caller decrefs. 0 or -1 */
int wd_store_approval_list(wd_store *s, int all, json_t **out);

/* ---- the kill switch and agent health (killswitch.h) ---- */

/* 1 set, 0 killed already, -1 error */
int wd_store_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic,
                      int64_t now_ms);
/* agent's row and failure count gone (all: every agent's); rows removed, or -1 */
int wd_store_kill_clear(wd_store *s, const char *agent, int all);
/* [{agent, by, reason, automatic, created_ms}] oldest first; *out: caller decrefs. 0, -1 */
int wd_store_kill_list(wd_store *s, json_t **out);
/* {agent: reason} killed, {agent: consecutive failures} failing; caller decrefs both. 0, -1 */
int wd_store_kill_read(wd_store *s, json_t **killed, json_t **failing);
/* the tables of wd_store_kill_read, read without waiting on the loop the store watches
** (wd_store_watch): fn(ud, 0, killed, failing; fn owns both) or fn(ud, -1, NULL, NULL),
** once, later. 0 asked; 1 this store cannot now (no such loop, not connected: read them
** with wd_store_kill_read). */
typedef void (*wd_store_kills_fn)(void *ud, int rc, json_t *killed, json_t *failing);
int wd_store_kill_read_async(wd_store *s, wd_store_kills_fn fn, void *ud);
/* one more consecutive failure of agent, or (!failed) none; *count: the count now. 0, -1 */
int wd_store_health_note(wd_store *s, const char *agent, int failed, long long *count);

/* ---- detectors' own state (ctx.store), by scope ---- */

typedef struct wd_store_scope {
    const char *agent, *user, *origin, *detector;
} wd_store_scope;

/* *text: the JSON text under key (caller frees; NULL none). 0 or -1 */
int wd_store_detect_get(wd_store *s, const wd_store_scope *sc, const char *key, char **text);
/* text NULL deletes; inside the caller's transaction. 0 or -1 */
int wd_store_detect_put(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms);
/* state kept by the detector's name alone, before scopes, copied into sc once */
void wd_store_detect_adopt(wd_store *s, const wd_store_scope *sc);

/* ---- accountability: the audit log's per-user keys, notifications, blocks ---- */

/* user's live key for the audit log's personal fields (made at first use): id (16 hex
** digits) and the 32 bytes. 0 or -1 */
int wd_store_audit_key(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32]);
/* the key of id: 1 found, 0 erased, 2 never made in this store, -1 store error */
int wd_store_audit_key_get(wd_store *s, const char *id, unsigned char key[32]);
/* every key of user destroyed (overwritten on disk, docs/safety.md, Compliance): the
** keys destroyed, or -1 */
int wd_store_audit_erase(wd_store *s, const char *user, int64_t now_ms);

/* a notification to deliver (notify.h) */
typedef struct wd_notify_row {
    const char *id, *event, *url, *secret_env, *body;
    int64_t timeout_ms;
} wd_notify_row;

/* queued as pending, due now (a row of the same id is left alone). 0 or -1 */
int wd_store_notify_add(wd_store *s, const wd_notify_row *n, int64_t now_ms);
/* up to max pending rows that are due, claimed for lease_ms (no other deliverer takes
** them meanwhile): *out [{id, event, url, secret_env, timeout_ms, body, status, attempts,
** next_ms, last_error, created_ms}], caller decrefs. 0 or -1 */
int wd_store_notify_claim(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out);
/* a delivery's outcome: status pending (tried again at next_ms), delivered (the row is
** removed) or dead (kept, the newest 10,000 dead letters). 0, -1 */
int wd_store_notify_settle(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                           const char *error, int64_t now_ms);
/* the dead letters (all: the pending ones too), oldest first, as notify_claim's; 0 or -1 */
int wd_store_notify_list(wd_store *s, int all, json_t **out);

/* key (an address, a key's hash) may not authenticate until until_ms (a later block
** already there stays). 0 or -1 */
int wd_store_block_set(wd_store *s, const char *key, int64_t until_ms, const char *reason);
/* 1 blocked (*until_ms: until when), 0 not, -1 store error */
int wd_store_block_get(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms);

/* ---- asking without waiting ----
** An operation asked on the loop the store watches (wd_store_watch). fn is called once
** with what the operation's plain function returns (-1: a store error, wd_store_error
** says which). Redis answers later, on the loop, through its asynchronous connection;
** SQLite, and a store no loop watches, answer at once, before wd_store_ask returns, so
** a caller asks last and does nothing after. The op, with what its pointers name, must
** live until fn; fn finds the outputs in it. */
enum {
    WD_SOP_LEASE_APPLY, /* c, n, check, now_ms -> which */
    WD_SOP_SWEEP,
    WD_SOP_RATE_TAKE,    /* key, limit, window_ms, now_ms -> count, retry_ms */
    WD_SOP_LEDGER_GET,   /* keys, n -> rows */
    WD_SOP_BREAKER_STEP, /* name, step */
    WD_SOP_CACHE_GET,    /* key, now_ms -> text (the answer), cost_nusd */
    WD_SOP_SESSION_GET,  /* key (the id), now_ms -> owner, text (the messages) */
    WD_SOP_APPROVAL_GET, /* key (the id) -> approval */
    WD_SOP_AUDIT_KEY,    /* key (the user), now_ms -> id, secret */
    WD_SOP_CACHE_PUT,    /* key, value (the answer), cost_nusd, now_ms, window_ms (the ttl) */
    WD_SOP_BLOCK_GET,    /* key, now_ms -> until_ms */
};
typedef struct wd_store_op {
    int kind; /* WD_SOP_* */
    wd_lease_change *c;
    int n, check, which;
    const int64_t *retire; /* lease_apply: ids of leases this process forgot (their totals go) */
    int nretire;
    int64_t now_ms, window_ms, retry_ms, cost_nusd, until_ms;
    long long limit, count;
    const char *key, *name, *value;
    const wd_ledger_key *keys;
    wd_ledger_row *rows;
    wd_breaker_step *step;
    char *text, *owner; /* out: caller frees both */
    struct wd_approval_state *approval;
    char id[17];
    unsigned char secret[32]; /* out: an audit key (the caller wipes it) */
} wd_store_op;
typedef void (*wd_store_done)(void *ud, int rc);
void wd_store_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
/* op asked, its answer not awaited (a write whose failure changes nothing for the caller:
** the cache's); op and what it names may go once this returns */
void wd_store_tell(wd_store *s, const wd_store_op *op);
/* what the operation's plain function returns, op's outputs filled (wd_store_ask's
** answer when it answers at once) */
int wd_store_do(wd_store *s, wd_store_op *op);

#endif
