/* sqlpriv.h - inside the SQLite backend (sqlconn.c, sqlstate.c, sqlrows.c, sqlite.c):
** the handle, its statements kept prepared, and the operations the backend's table
** (sqlite.c) lists */
#ifndef WD_SQLPRIV_H
#define WD_SQLPRIV_H

#include "backend.h"
#include <sqlite3.h>

/* statements prepared once per handle, at first use, each beside the code that runs it */
enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_BR_GET,
    Q_BR_PUT,
    Q_BR_LIST,
    Q_SP_GET,
    Q_SP_APPLY,
    Q_SP_WARN,
    Q_SP_RELEASE_OWNER,
    Q_SP_LIST,
    Q_LEASE_INS,
    Q_LEASE_UPD,
    Q_LEASE_DEL,
    Q_LEASE_OWNERS,
    Q_LEASE_DEL_OWNER,
    Q_RATE_DEL,
    Q_RATE_CNT,
    Q_RATE_INS,
    Q_CACHE_GET,
    Q_CACHE_PUT,
    Q_CACHE_GC,
    Q_AKEY_USER,
    Q_BLOCK_GET,
    Q_NOTIFY_DUE,
    Q_SESSION_GET,
    Q_SESSION_PUT,
    Q_COUNT
};

typedef struct wd_sqlite {
    wd_store base;
    sqlite3 *db;
    int in_txn;        /* holds the process's write mutex */
    int64_t clock_off; /* the store's clock less wd_boot_ms (wd_store_now) */
    sqlite3_stmt *q[Q_COUNT];
} wd_sqlite;

#define SQ(s) ((wd_sqlite *)(s))

/* ---- sqlconn.c: the connection ---- */
/* caller frees with wd_sq_close; NULL with err */
wd_sqlite *wd_sq_connect(const char *path, char *err, size_t errlen);
void wd_sq_close(wd_store *s);
const char *wd_sq_error(const wd_store *s);
int64_t wd_sq_now(const wd_store *s);
int wd_sq_begin(wd_store *s);
int wd_sq_commit(wd_store *s);
void wd_sq_rollback(wd_store *s);
/* the statement in slot which, prepared from sql the first time; NULL on error */
sqlite3_stmt *wd_sq_cached(wd_sqlite *s, int which, const char *sql);
/* a one-off statement, caller finalizes; NULL on error */
sqlite3_stmt *wd_sq_prepare(wd_sqlite *s, const char *sql);
/* a cached statement reset and its bindings cleared */
void wd_sq_done(sqlite3_stmt *st);
/* a column's text, "" for NULL, copied into out */
void wd_sq_copy_col(sqlite3_stmt *st, int col, char *out, size_t n);

/* ---- sqlstate.c: breakers, ledger and leases, rate windows, the response cache ---- */
int wd_sq_breaker_get(wd_store *s, const char *name, wd_breaker_row *row);
int wd_sq_breaker_put(wd_store *s, const wd_breaker_row *row);
int wd_sq_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n);
int wd_sq_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which);
int wd_sq_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows);
int wd_sq_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n);
int wd_sq_sweep(wd_store *s);
int wd_sq_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms, long long *count,
                    int64_t *retry_ms);
int wd_sq_session_get(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages);
int wd_sq_session_put(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                      int64_t expires_ms);
int wd_sq_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd);
int wd_sq_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                    int64_t ttl_ms);

/* ---- sqlrows.c: approvals ---- */
int wd_sq_approval_insert(wd_store *s, const char *id, const json_t *req);
int wd_sq_approval_get(wd_store *s, const char *id, wd_approval_state *st);
int wd_sq_approval_update(wd_store *s, const char *id, const wd_approval_change *c);
int wd_sq_approval_sweep(wd_store *s, int64_t now_ms);
int wd_sq_approval_list(wd_store *s, int all, json_t **out);

/* ---- sqlkills.c: the kill switch, agent health, detectors' state ---- */
int wd_sq_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms);
int wd_sq_kill_clear(wd_store *s, const char *agent, int all);
int wd_sq_kill_list(wd_store *s, json_t **out);
int wd_sq_kill_read(wd_store *s, json_t **killed, json_t **failing);
int wd_sq_health_note(wd_store *s, const char *agent, int failed, long long *count);
int wd_sq_detect_get(wd_store *s, const wd_store_scope *sc, const char *key, char **text);
int wd_sq_detect_put(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms);
void wd_sq_detect_adopt(wd_store *s, const wd_store_scope *sc);

/* ---- sqlaccount.c: audit keys, notifications, blocks ---- */
int wd_sq_audit_key(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32]);
int wd_sq_audit_key_get(wd_store *s, const char *id, unsigned char key[32]);
int wd_sq_audit_erase(wd_store *s, const char *user, int64_t now_ms);
int wd_sq_notify_add(wd_store *s, const wd_notify_row *n, int64_t now_ms);
int wd_sq_notify_claim(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out);
int wd_sq_notify_settle(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                        const char *error, int64_t now_ms);
int wd_sq_notify_list(wd_store *s, int all, json_t **out);
int wd_sq_block_set(wd_store *s, const char *key, int64_t until_ms, const char *reason);
int wd_sq_block_get(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms);

#endif
