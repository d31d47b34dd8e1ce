/* sqlite.c - the SQLite backend of the state store: its table of functions and its
** opening. The connection, the schema and the clock are in sqlconn.c; the operations
** in sqlstate.c (breakers, ledger, rate, cache), sqlrows.c (approvals), sqlkills.c
** (kill switch, agent health, detectors' state) and sqlaccount.c (audit keys,
** notifications, blocks). */
#include "sqlpriv.h"
#include "util.h"

/* a process's liveness is its pid (owner.c): nothing to say */
static int wd_sq_keepalive(wd_store *s)
{
    (void)s;
    return 0;
}

/* every process polls the one file: no notices to give */
static int wd_sq_watch(wd_store *s, struct event_base *base, wd_store_notice fn, void *ud)
{
    (void)s;
    (void)base;
    (void)fn;
    (void)ud;
    return 0;
}

/* the rules run in breaker.c, on a row read and written in one transaction */
static int wd_sq_breaker_step(wd_store *s, const char *name, wd_breaker_step *st)
{
    (void)s;
    (void)name;
    (void)st;
    return 0;
}

/* a read of the local file waits microseconds: the caller reads it at once */
/* every operation is answered at once, waiting (wd_store_ask calls the plain form) */
static int wd_sq_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    (void)s;
    (void)op;
    (void)fn;
    (void)ud;
    return 1;
}

static int wd_sq_kill_read_async(wd_store *s, wd_store_kills_fn fn, void *ud)
{
    (void)s;
    (void)fn;
    (void)ud;
    return 1;
}

static const wd_store_backend SQLITE = {
    .name = "sqlite",
    .close = wd_sq_close,
    .error = wd_sq_error,
    .now = wd_sq_now,
    .keepalive = wd_sq_keepalive,
    .watch = wd_sq_watch,
    .begin = wd_sq_begin,
    .commit = wd_sq_commit,
    .rollback = wd_sq_rollback,
    .breaker_get = wd_sq_breaker_get,
    .breaker_put = wd_sq_breaker_put,
    .breaker_list = wd_sq_breaker_list,
    .breaker_step = wd_sq_breaker_step,
    .lease_apply = wd_sq_lease_apply,
    .ledger_get = wd_sq_ledger_get,
    .ledger_list = wd_sq_ledger_list,
    .sweep = wd_sq_sweep,
    .rate_take = wd_sq_rate_take,
    .session_get = wd_sq_session_get,
    .session_put = wd_sq_session_put,
    .cache_get = wd_sq_cache_get,
    .cache_put = wd_sq_cache_put,
    .approval_insert = wd_sq_approval_insert,
    .approval_get = wd_sq_approval_get,
    .approval_update = wd_sq_approval_update,
    .approval_sweep = wd_sq_approval_sweep,
    .approval_list = wd_sq_approval_list,
    .kill_set = wd_sq_kill_set,
    .kill_clear = wd_sq_kill_clear,
    .kill_list = wd_sq_kill_list,
    .kill_read = wd_sq_kill_read,
    .kill_read_async = wd_sq_kill_read_async,
    .ask = wd_sq_ask,
    .health_note = wd_sq_health_note,
    .detect_get = wd_sq_detect_get,
    .detect_put = wd_sq_detect_put,
    .detect_adopt = wd_sq_detect_adopt,
    .audit_key = wd_sq_audit_key,
    .audit_key_get = wd_sq_audit_key_get,
    .audit_erase = wd_sq_audit_erase,
    .notify_add = wd_sq_notify_add,
    .notify_claim = wd_sq_notify_claim,
    .notify_settle = wd_sq_notify_settle,
    .notify_list = wd_sq_notify_list,
    .block_set = wd_sq_block_set,
    .block_get = wd_sq_block_get,
};

wd_store *wd_sqlite_open(const char *path, char *err, size_t errlen)
{
    wd_sqlite *s = wd_sq_connect(path, err, errlen);
    if (!s)
        return NULL;
    s->base.be = &SQLITE;
    if (wd_sq_sweep(&s->base) < 0) { /* leases of processes that died since the store was last used */
        wd_errf(err, errlen, "state store %s: %s", path, wd_sq_error(&s->base));
        wd_sq_close(&s->base);
        return NULL;
    }
    return &s->base;
}
