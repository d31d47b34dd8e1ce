/* redispriv.h - inside the Redis backend (redis*.c; redis.c holds its table): the
** handle, the scripts it runs and the operations the backend's table lists.
** docs/scale-out.md names every key. */
#ifndef WD_REDISPRIV_H
#define WD_REDISPRIV_H

#include "backend.h"
#include <hiredis/hiredis.h>

/* every operation is one server-side script, loaded once per connection and called by
** its SHA; the slots of their SHAs */
enum {
    RS_LOCK,
    RS_UNLOCK,
    RS_BR_GET,
    RS_BR_PUT,
    RS_BR_LIST,
    RS_BR_STEP,
    RS_LEASE,
    RS_LEDGER_GET,
    RS_LEDGER_LIST,
    RS_SWEEP,
    RS_RATE,
    RS_SESSION_GET,
    RS_SESSION_PUT,
    RS_CACHE_GET,
    RS_CACHE_PUT,
    RS_AP_INSERT,
    RS_AP_GET,
    RS_AP_UPDATE,
    RS_AP_SWEEP,
    RS_AP_LIST,
    RS_KILL_SET,
    RS_KILL_CLEAR,
    RS_KILL_LIST,
    RS_KILL_READ,
    RS_HEALTH,
    RS_DETECT_GET,
    RS_DETECT_PUT,
    RS_AKEY,
    RS_AKEY_GET,
    RS_AKEY_ERASE,
    RS_NOTIFY_ADD,
    RS_NOTIFY_CLAIM,
    RS_NOTIFY_SETTLE,
    RS_NOTIFY_LIST,
    RS_BLOCK_SET,
    RS_BLOCK_GET,
    RS_ALIVE,
    RS_COUNT
};

typedef struct wd_rd_sub wd_rd_sub;   /* redissub.c */
typedef struct wd_rd_cmdq wd_rd_cmdq; /* redisasync.c */

/* where the server is and how to speak to it: fixed once the locator is read */
typedef struct wd_rd_target {
    char host[256], sock[256]; /* a TCP address, or a Unix socket's path */
    int port, db;
    char password_env[128];
    int timeout_ms;
} wd_rd_target;

typedef struct wd_rd_dialer wd_rd_dialer; /* redisdial.c */

typedef struct wd_redis {
    wd_store base;
    redisContext *c;
    wd_rd_target t;
    char prefix[72];
    int64_t lease_ms;  /* how long a host's leases outlive its last word */
    char owner[200];   /* this process, as its leases name it: host, boot, pid */
    int64_t clock_off; /* Redis's TIME less wd_boot_ms, at the last connection */
    int64_t retry_ns;  /* while down: when to try connecting again */
    int backoff_ms;    /* the next wait after a failed connection */
    int64_t alive_ns;  /* when this process last said it is alive */
    int in_txn;        /* holds the store's lock (wd_store_begin) */
    char token[33];    /* the lock's value while held */
    char sha[RS_COUNT][41];
    char err[400];
    wd_rd_sub *sub;       /* the notices' subscription, while an engine watches */
    wd_rd_dialer *dialer; /* a connection being made off the loop (redisdial.c) */
    wd_rd_cmdq *cmdq;     /* the asynchronous commands' connection, while an engine watches */
} wd_redis;

#define RD(s) ((wd_redis *)(s))

/* ---- redisconn.c: the connection, the scripts, the lock; redisargs.c: arguments ---- */

/* the arguments of one script call: ARGV[1] is always the key prefix. Strings are
** borrowed; numbers are kept by the args until wd_rd_done. */
typedef struct wd_rd_args {
    int n, cap, oom;
    const char **v;
    size_t *len;
    char **num; /* per argument: the number's text it owns, or NULL */
} wd_rd_args;

/* caller frees with wd_rd_close; NULL with err (a locator redis://host:port/db?...) */
wd_redis *wd_rd_connect(const char *locator, char *err, size_t errlen);
void wd_rd_close(wd_store *s);
const char *wd_rd_error(const wd_store *s);
int64_t wd_rd_now(const wd_store *s);
int wd_rd_begin(wd_store *s);
int wd_rd_commit(wd_store *s);
void wd_rd_rollback(wd_store *s);
int wd_rd_keepalive(wd_store *s);
void wd_rd_init(wd_rd_args *a, const wd_redis *r);
void wd_rd_s(wd_rd_args *a, const char *str); /* NULL: "" */
void wd_rd_b(wd_rd_args *a, const void *p, size_t n);
void wd_rd_i(wd_rd_args *a, long long v);
void wd_rd_done(wd_rd_args *a); /* frees what the args own */
/* runs script slot (its text: lua) with a's arguments, and frees what a owns: the
** reply (caller frees with freeReplyObject), or NULL with wd_rd_error set (unreachable,
** timed out, the script failed). Reconnects with backoff; loads the script again when
** Redis lost it. */
redisReply *wd_rd_run(wd_redis *r, int slot, const char *lua, wd_rd_args *a);
/* reads a script's reply into op: what the operation returns (-1: error set) */
typedef int (*wd_rd_read_fn)(wd_redis *r, const redisReply *x, wd_store_op *op);
/* the plain form of an operation: script slot run with a's arguments (freed), its reply
** read by read; read's answer, or -1 */
int wd_rd_call(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_read_fn read, wd_store_op *op);
/* reply element i as an integer (0 when absent or not a number) */
long long wd_rd_int(const redisReply *x, size_t i);
/* element i's text copied into out ("" when absent) */
void wd_rd_copy(const redisReply *x, size_t i, char *out, size_t n);
/* a reply holding JSON text: parsed (caller decrefs), an empty object read as []; NULL
** when it is not JSON */
json_t *wd_rd_json(const redisReply *x);

/* ---- redisdial.c: connecting, at once or on a thread of its own ---- */

/* a connection to t, set up (AUTH, SELECT, the server's TIME for *clock_off): the
** context (caller frees with redisFree), or NULL with err */
redisContext *wd_rd_dial(const wd_rd_target *t, int64_t *clock_off, char *err, size_t n);
/* the same on a thread of its own: NULL when no thread could start */
wd_rd_dialer *wd_rd_dial_start(const wd_rd_target *t);
/* 1 done (*c the context or NULL, err why; d freed), 0 still connecting */
int wd_rd_dial_take(wd_rd_dialer *d, redisContext **c, int64_t *clock_off, char *err, size_t n);
/* the handle goes: the thread frees what it makes. Accepts NULL */
void wd_rd_dial_abandon(wd_rd_dialer *d);

/* ---- redisasync.c: operations answered on the engine's loop ---- */

/* the answer (x: the reply, borrowed for the call; NULL: none, wd_rd_error says why) */
typedef void (*wd_rd_reply_fn)(void *ud, redisReply *x);
/* the command connection on base's loop: 0 or -1 */
int wd_rd_cmdq_start(wd_redis *r, struct event_base *base);
/* gone; each request in flight is answered NULL first. Accepts none */
void wd_rd_cmdq_stop(wd_redis *r);
/* script slot sent without waiting, a's arguments copied (and freed): 0 sent (fn is
** called once, on the loop), -1 not now (no connection yet: the caller waits instead) */
int wd_rd_async_run(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_reply_fn fn, void *ud);
/* the asking form (wd_store_ask): the same script asked on the loop, its reply read by
** read, then fn(ud, read's answer or -1). 0 asked, 1 no loop watches (ask the plain
** form), -1 not connected now (error set; a's arguments are freed in every case) */
int wd_rd_ask_script(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_read_fn read, wd_store_op *op,
                     wd_store_done fn, void *ud);

/* ---- redissub.c: notices from other hosts, on the engine's loop ---- */
int wd_rd_watch(wd_store *s, struct event_base *base, wd_store_notice fn, void *ud);
void wd_rd_unwatch(wd_store *s);

/* ---- redisstate.c ---- */
int wd_rd_breaker_get(wd_store *s, const char *name, wd_breaker_row *row);
int wd_rd_breaker_put(wd_store *s, const wd_breaker_row *row);
int wd_rd_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n);
int wd_rd_breaker_step(wd_store *s, const char *name, wd_breaker_step *st);
int wd_rd_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which);
int wd_rd_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows);
int wd_rd_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n);
int wd_rd_sweep(wd_store *s);
int wd_rd_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms, long long *count,
                    int64_t *retry_ms);
int wd_rd_session_get(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages);
int wd_rd_session_put(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                      int64_t expires_ms);
int wd_rd_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd);
int wd_rd_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                    int64_t ttl_ms);

/* the asking forms (wd_store_ask) of the operations that have one: as wd_rd_ask_script answers */
int wd_rd_lease_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_sweep_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_rate_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_ledger_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_session_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_cache_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_cache_put_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
int wd_rd_breaker_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);   /* redisbreaker.c */
int wd_rd_approval_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);  /* redisrows.c */
int wd_rd_audit_key_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud); /* redisaccount.c */
int wd_rd_block_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);     /* redisaccount.c */

/* ---- redisrows.c: approvals, the kill switch, agent health, detectors' state ---- */
int wd_rd_approval_insert(wd_store *s, const char *id, const json_t *req);
int wd_rd_approval_get(wd_store *s, const char *id, wd_approval_state *st);
int wd_rd_approval_update(wd_store *s, const char *id, const wd_approval_change *c);
int wd_rd_approval_sweep(wd_store *s, int64_t now_ms);
int wd_rd_approval_list(wd_store *s, int all, json_t **out);
int wd_rd_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms);
int wd_rd_kill_clear(wd_store *s, const char *agent, int all);
int wd_rd_kill_list(wd_store *s, json_t **out);
int wd_rd_kill_read(wd_store *s, json_t **killed, json_t **failing);
int wd_rd_kill_read_async(wd_store *s, wd_store_kills_fn fn, void *ud);
int wd_rd_health_note(wd_store *s, const char *agent, int failed, long long *count);
int wd_rd_detect_get(wd_store *s, const wd_store_scope *sc, const char *key, char **text);
int wd_rd_detect_put(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms);
void wd_rd_detect_adopt(wd_store *s, const wd_store_scope *sc);

/* ---- redisaccount.c: audit keys, notifications, blocks ---- */
int wd_rd_audit_key(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32]);
int wd_rd_audit_key_get(wd_store *s, const char *id, unsigned char key[32]);
int wd_rd_audit_erase(wd_store *s, const char *user, int64_t now_ms);
int wd_rd_notify_add(wd_store *s, const wd_notify_row *n, int64_t now_ms);
int wd_rd_notify_claim(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out);
int wd_rd_notify_settle(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                        const char *error, int64_t now_ms);
int wd_rd_notify_list(wd_store *s, int all, json_t **out);
int wd_rd_block_set(wd_store *s, const char *key, int64_t until_ms, const char *reason);
int wd_rd_block_get(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms);

#endif
