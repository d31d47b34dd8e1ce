/* backend.h - for the state store's backends only: the table of functions a backend
** fills (one member per wd_store_* operation of store.h, same arguments) and the head
** every backend's handle begins with. store.c dispatches; a backend never calls store.c,
** so a second backend (redis.c) plugs in beside sqlite.c without touching a caller. */
#ifndef WD_BACKEND_H
#define WD_BACKEND_H

#include "store.h"

typedef struct wd_store_backend {
    const char *name;
    void (*close)(wd_store *s);
    const char *(*error)(const wd_store *s);
    int64_t (*now)(const wd_store *s);
    int (*keepalive)(wd_store *s);
    int (*watch)(wd_store *s, struct event_base *base, wd_store_notice fn, void *ud);
    int (*begin)(wd_store *s);
    int (*commit)(wd_store *s);
    void (*rollback)(wd_store *s);
    int (*breaker_get)(wd_store *s, const char *name, wd_breaker_row *row);
    int (*breaker_put)(wd_store *s, const wd_breaker_row *row);
    int (*breaker_list)(wd_store *s, wd_breaker_row **rows, size_t *n);
    int (*breaker_step)(wd_store *s, const char *name, wd_breaker_step *st);
    int (*lease_apply)(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which);
    int (*ledger_get)(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows);
    int (*ledger_list)(wd_store *s, wd_ledger_row **rows, size_t *n);
    int (*sweep)(wd_store *s);
    int (*rate_take)(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms, long long *count,
                     int64_t *retry_ms);
    int (*session_get)(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages);
    int (*session_put)(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                       int64_t expires_ms);
    int (*cache_get)(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd);
    int (*cache_put)(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                     int64_t ttl_ms);
    int (*approval_insert)(wd_store *s, const char *id, const json_t *req);
    int (*approval_get)(wd_store *s, const char *id, wd_approval_state *st);
    int (*approval_update)(wd_store *s, const char *id, const wd_approval_change *c);
    int (*approval_sweep)(wd_store *s, int64_t now_ms);
    int (*approval_list)(wd_store *s, int all, json_t **out);
    int (*kill_set)(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms);
    int (*kill_clear)(wd_store *s, const char *agent, int all);
    int (*kill_list)(wd_store *s, json_t **out);
    int (*kill_read)(wd_store *s, json_t **killed, json_t **failing);
    int (*kill_read_async)(wd_store *s, wd_store_kills_fn fn, void *ud);
    /* wd_store_ask: 0 asked (fn later), 1 answer at once with the plain function, -1 cannot
    ** ask now (error set); NULL: always at once */
    int (*ask)(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud);
    int (*health_note)(wd_store *s, const char *agent, int failed, long long *count);
    int (*detect_get)(wd_store *s, const wd_store_scope *sc, const char *key, char **text);
    int (*detect_put)(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms);
    void (*detect_adopt)(wd_store *s, const wd_store_scope *sc);
    int (*audit_key)(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32]);
    int (*audit_key_get)(wd_store *s, const char *id, unsigned char key[32]);
    int (*audit_erase)(wd_store *s, const char *user, int64_t now_ms);
    int (*notify_add)(wd_store *s, const wd_notify_row *n, int64_t now_ms);
    int (*notify_claim)(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out);
    int (*notify_settle)(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                         const char *error, int64_t now_ms);
    int (*notify_list)(wd_store *s, int all, json_t **out);
    int (*block_set)(wd_store *s, const char *key, int64_t until_ms, const char *reason);
    int (*block_get)(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms);
} wd_store_backend;

/* the head of every backend's handle */
struct wd_store {
    const wd_store_backend *be;
    char *path;
};

/* sqlite.c: caller frees with wd_store_close; NULL with err */
wd_store *wd_sqlite_open(const char *path, char *err, size_t errlen);
/* redis.c: a locator redis://host:port/db?prefix=..&password_env=..&timeout_ms=..&lease_ms=..
** or redis+unix:///path?db=..; caller frees with wd_store_close; NULL with err (a bad
** locator: an unreachable server is not an error here, each operation fails until it
** answers) */
wd_store *wd_redis_open(const char *locator, char *err, size_t errlen);

#endif
