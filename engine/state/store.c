/* store.c - the state store's one door: each operation dispatched to the store's
** backend (backend.h). Only the path's kind picks a backend: a redis:// or
** redis+unix:// locator is a Redis server, anything else a SQLite file. */
#include "backend.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int wd_store_is_redis(const char *path)
{
    return path && (!strncmp(path, "redis://", 8) || !strncmp(path, "redis+unix://", 13));
}

wd_store *wd_store_open(const char *path, char *err, size_t errlen)
{
    return wd_store_is_redis(path) ? wd_redis_open(path, err, errlen) : wd_sqlite_open(path, err, errlen);
}

const char *wd_store_backend_name(const wd_store *s) { return s->be->name; }

int wd_store_keepalive(wd_store *s) { return s ? s->be->keepalive(s) : 0; }

int wd_store_watch(wd_store *s, struct event_base *base, wd_store_notice fn, void *ud)
{
    return s ? s->be->watch(s, base, fn, ud) : 0;
}

/* accepts NULL */
void wd_store_close(wd_store *s)
{
    if (s)
        s->be->close(s);
}

const char *wd_store_path(const wd_store *s) { return s->path; }
const char *wd_store_error(const wd_store *s) { return s->be->error(s); }

/* NULL: this process's monotonic clock, shifted as the store's would be */
int64_t wd_store_now(const wd_store *s)
{
    if (!s)
        return wd_now_ns() / 1000000 + wd_clock_shift();
    return s->be->now(s);
}

int wd_store_begin(wd_store *s) { return s->be->begin(s); }

int wd_store_commit(wd_store *s) { return s->be->commit(s); }

void wd_store_rollback(wd_store *s) { s->be->rollback(s); }

int wd_store_breaker_get(wd_store *s, const char *name, wd_breaker_row *row)
{
    return s->be->breaker_get(s, name, row);
}

int wd_store_breaker_put(wd_store *s, const wd_breaker_row *row) { return s->be->breaker_put(s, row); }

int wd_store_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n) { return s->be->breaker_list(s, rows, n); }

int wd_store_breaker_step(wd_store *s, const char *name, wd_breaker_step *st)
{
    return s->be->breaker_step(s, name, st);
}

int wd_store_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which)
{
    return s->be->lease_apply(s, c, n, check, now_ms, which);
}

int wd_store_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows)
{
    return s->be->ledger_get(s, k, n, rows);
}

int wd_store_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n) { return s->be->ledger_list(s, rows, n); }

int wd_store_sweep(wd_store *s) { return s->be->sweep(s); }

int wd_store_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms,
                       long long *count, int64_t *retry_ms)
{
    return s->be->rate_take(s, key, limit, window_ms, now_ms, count, retry_ms);
}

int wd_store_session_get(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages)
{
    return s->be->session_get(s, id, now_ms, owner, messages);
}

int wd_store_session_put(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                         int64_t expires_ms)
{
    return s->be->session_put(s, id, owner, messages, now_ms, expires_ms);
}

int wd_store_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd)
{
    return s->be->cache_get(s, key, now_ms, answer, cost_nusd);
}

int wd_store_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                       int64_t ttl_ms)
{
    return s->be->cache_put(s, key, answer, cost_nusd, now_ms, ttl_ms);
}

int wd_store_approval_insert(wd_store *s, const char *id, const json_t *req)
{
    return s->be->approval_insert(s, id, req);
}

int wd_store_approval_get(wd_store *s, const char *id, wd_approval_state *st) { return s->be->approval_get(s, id, st); }

int wd_store_approval_update(wd_store *s, const char *id, const wd_approval_change *c)
{
    return s->be->approval_update(s, id, c);
}

int wd_store_approval_sweep(wd_store *s, int64_t now_ms) { return s->be->approval_sweep(s, now_ms); }

int wd_store_approval_list(wd_store *s, int all, json_t **out) { return s->be->approval_list(s, all, out); }

int wd_store_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms)
{
    return s->be->kill_set(s, agent, by, reason, automatic, now_ms);
}

int wd_store_kill_clear(wd_store *s, const char *agent, int all) { return s->be->kill_clear(s, agent, all); }

int wd_store_kill_list(wd_store *s, json_t **out) { return s->be->kill_list(s, out); }

int wd_store_kill_read(wd_store *s, json_t **killed, json_t **failing) { return s->be->kill_read(s, killed, failing); }

int wd_store_kill_read_async(wd_store *s, wd_store_kills_fn fn, void *ud) { return s->be->kill_read_async(s, fn, ud); }

int wd_store_health_note(wd_store *s, const char *agent, int failed, long long *count)
{
    return s->be->health_note(s, agent, failed, count);
}

int wd_store_detect_get(wd_store *s, const wd_store_scope *sc, const char *key, char **text)
{
    return s->be->detect_get(s, sc, key, text);
}

int wd_store_detect_put(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms)
{
    return s->be->detect_put(s, sc, key, text, now_ms);
}

void wd_store_detect_adopt(wd_store *s, const wd_store_scope *sc) { s->be->detect_adopt(s, sc); }

int wd_store_audit_key(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32])
{
    return s->be->audit_key(s, user, now_ms, id, key);
}

int wd_store_audit_key_get(wd_store *s, const char *id, unsigned char key[32])
{
    return s->be->audit_key_get(s, id, key);
}

int wd_store_audit_erase(wd_store *s, const char *user, int64_t now_ms) { return s->be->audit_erase(s, user, now_ms); }

int wd_store_notify_add(wd_store *s, const wd_notify_row *n, int64_t now_ms) { return s->be->notify_add(s, n, now_ms); }

int wd_store_notify_claim(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out)
{
    return s->be->notify_claim(s, now_ms, lease_ms, max, out);
}

int wd_store_notify_settle(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                           const char *error, int64_t now_ms)
{
    return s->be->notify_settle(s, id, status, attempts, next_ms, error, now_ms);
}

int wd_store_notify_list(wd_store *s, int all, json_t **out) { return s->be->notify_list(s, all, out); }

int wd_store_block_set(wd_store *s, const char *key, int64_t until_ms, const char *reason)
{
    return s->be->block_set(s, key, until_ms, reason);
}

int wd_store_block_get(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms)
{
    return s->be->block_get(s, key, now_ms, until_ms);
}

int wd_store_do(wd_store *s, wd_store_op *op)
{
    switch (op->kind) {
    case WD_SOP_LEASE_APPLY: return s->be->lease_apply(s, op->c, op->n, op->check, op->now_ms, &op->which);
    case WD_SOP_SWEEP: return s->be->sweep(s);
    case WD_SOP_RATE_TAKE:
        return s->be->rate_take(s, op->key, op->limit, op->window_ms, op->now_ms, &op->count, &op->retry_ms);
    case WD_SOP_LEDGER_GET: return s->be->ledger_get(s, op->keys, op->n, op->rows);
    case WD_SOP_BREAKER_STEP: return s->be->breaker_step(s, op->name, op->step);
    case WD_SOP_CACHE_GET: return s->be->cache_get(s, op->key, op->now_ms, &op->text, &op->cost_nusd);
    case WD_SOP_SESSION_GET: return s->be->session_get(s, op->key, op->now_ms, &op->owner, &op->text);
    case WD_SOP_APPROVAL_GET: return s->be->approval_get(s, op->key, op->approval);
    case WD_SOP_AUDIT_KEY: return s->be->audit_key(s, op->key, op->now_ms, op->id, op->secret);
    case WD_SOP_BLOCK_GET: return s->be->block_get(s, op->key, op->now_ms, &op->until_ms);
    case WD_SOP_CACHE_PUT: return s->be->cache_put(s, op->key, op->value, op->cost_nusd, op->now_ms, op->window_ms);
    default: return -1;
    }
}

void wd_store_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    int rc = s->be->ask ? s->be->ask(s, op, fn, ud) : 1;
    if (rc == 0)
        return;
    fn(ud, rc < 0 ? -1 : wd_store_do(s, op));
}

/* the copy a told operation is asked with: what it names is copied too, and freed with
** it when the answer comes */
typedef struct told {
    wd_store_op op;
    char *key, *value;
} told;

static void told_done(void *ud, int rc)
{
    (void)rc;
    told *t = ud;
    free(t->key);
    free(t->value);
    free(t);
}

void wd_store_tell(wd_store *s, const wd_store_op *op)
{
    told *t = calloc(1, sizeof *t);
    if (!t)
        return;
    t->op = *op;
    t->op.key = t->key = op->key ? wd_strdup(op->key) : NULL;
    t->op.value = t->value = op->value ? wd_strdup(op->value) : NULL;
    if ((op->key && !t->key) || (op->value && !t->value) || op->keys || op->c || op->step || op->approval) {
        told_done(t, -1); /* only flat operations are told */
        return;
    }
    wd_store_ask(s, &t->op, told_done, t);
}
