/* redis.c - the Redis backend of the state store: its table of functions and its
** opening. The connection, the scripts and the lock are in redisconn.c; the operations
** in redisstate.c (breakers, ledger and leases, rate windows, sessions, the cache),
** redisrows.c (approvals, the kill switch, agent health, detectors' state) and
** redisaccount.c (audit keys, notifications, blocks). docs/scale-out.md names the keys. */
#include "redispriv.h"
#include "util.h"

/* wd_store_ask on Redis: each operation's asking form, by kind */
static int wd_rd_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    static int (*const ASK[])(wd_store *, wd_store_op *, wd_store_done, void *) = {
        [WD_SOP_LEASE_APPLY] = wd_rd_lease_ask,    [WD_SOP_SWEEP] = wd_rd_sweep_ask,
        [WD_SOP_RATE_TAKE] = wd_rd_rate_ask,       [WD_SOP_LEDGER_GET] = wd_rd_ledger_ask,
        [WD_SOP_BREAKER_STEP] = wd_rd_breaker_ask, [WD_SOP_CACHE_GET] = wd_rd_cache_ask,
        [WD_SOP_SESSION_GET] = wd_rd_session_ask,  [WD_SOP_APPROVAL_GET] = wd_rd_approval_ask,
        [WD_SOP_AUDIT_KEY] = wd_rd_audit_key_ask,  [WD_SOP_CACHE_PUT] = wd_rd_cache_put_ask,
        [WD_SOP_BLOCK_GET] = wd_rd_block_ask,
    };
    if (op->kind < 0 || op->kind >= (int)(sizeof ASK / sizeof ASK[0]) || !ASK[op->kind])
        return 1;
    return ASK[op->kind](s, op, fn, ud);
}

static const wd_store_backend REDIS = {
    .name = "redis",
    .close = wd_rd_close,
    .error = wd_rd_error,
    .now = wd_rd_now,
    .keepalive = wd_rd_keepalive,
    .watch = wd_rd_watch,
    .begin = wd_rd_begin,
    .commit = wd_rd_commit,
    .rollback = wd_rd_rollback,
    .breaker_get = wd_rd_breaker_get,
    .breaker_put = wd_rd_breaker_put,
    .breaker_list = wd_rd_breaker_list,
    .breaker_step = wd_rd_breaker_step,
    .lease_apply = wd_rd_lease_apply,
    .ledger_get = wd_rd_ledger_get,
    .ledger_list = wd_rd_ledger_list,
    .sweep = wd_rd_sweep,
    .rate_take = wd_rd_rate_take,
    .session_get = wd_rd_session_get,
    .session_put = wd_rd_session_put,
    .cache_get = wd_rd_cache_get,
    .cache_put = wd_rd_cache_put,
    .approval_insert = wd_rd_approval_insert,
    .approval_get = wd_rd_approval_get,
    .approval_update = wd_rd_approval_update,
    .approval_sweep = wd_rd_approval_sweep,
    .approval_list = wd_rd_approval_list,
    .kill_set = wd_rd_kill_set,
    .kill_clear = wd_rd_kill_clear,
    .kill_list = wd_rd_kill_list,
    .kill_read = wd_rd_kill_read,
    .kill_read_async = wd_rd_kill_read_async,
    .ask = wd_rd_ask,
    .health_note = wd_rd_health_note,
    .detect_get = wd_rd_detect_get,
    .detect_put = wd_rd_detect_put,
    .detect_adopt = wd_rd_detect_adopt,
    .audit_key = wd_rd_audit_key,
    .audit_key_get = wd_rd_audit_key_get,
    .audit_erase = wd_rd_audit_erase,
    .notify_add = wd_rd_notify_add,
    .notify_claim = wd_rd_notify_claim,
    .notify_settle = wd_rd_notify_settle,
    .notify_list = wd_rd_notify_list,
    .block_set = wd_rd_block_set,
    .block_get = wd_rd_block_get,
};

wd_store *wd_redis_open(const char *locator, char *err, size_t errlen)
{
    wd_redis *r = wd_rd_connect(locator, err, errlen);
    if (!r)
        return NULL;
    r->base.be = &REDIS;
    wd_rd_sweep(&r->base); /* as SQLite's open: leases of hosts that fell silent since (an error: later) */
    return &r->base;
}
