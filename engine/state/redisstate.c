/* redisstate.c - the Redis backend's breakers, spend ledger and leases, rate windows,
** sessions and response cache (store.h says what each operation promises). Each is one
** script, run whole by Redis: no other host's command comes between its reads and its
** writes. Amounts travel as decimal text; Redis's Lua compares them as doubles, exact
** to the nano-dollar below 2^53 (9 million dollars). */
#include "redispriv.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ---- breakers: hash br:NAME, the set breakers ---- */

static const char BR_GET_LUA[] =
    "local v = redis.call('HMGET', ARGV[1] .. 'br:' .. ARGV[2], 'state', 'failures', 'opened_ms', 'probes',\n"
    "  'probe_ms', 'updated_ms')\n"
    "if not v[1] then return {0} end\n"
    "return {1, v[1], v[2] or '0', v[3] or '0', v[4] or '0', v[5] or '0', v[6] or '0'}\n";

static void row_from(const redisReply *x, size_t at, wd_breaker_row *row)
{
    row->state = (int)wd_rd_int(x, at);
    row->failures = wd_rd_int(x, at + 1);
    row->opened_ms = wd_rd_int(x, at + 2);
    row->probes = wd_rd_int(x, at + 3);
    row->probe_ms = wd_rd_int(x, at + 4);
    row->updated_ms = wd_rd_int(x, at + 5);
}

int wd_rd_breaker_get(wd_store *s, const char *name, wd_breaker_row *row)
{
    memset(row, 0, sizeof *row);
    wd_strlcpy(row->name, name, sizeof row->name);
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, name);
    redisReply *x = wd_rd_run(RD(s), RS_BR_GET, BR_GET_LUA, &a);
    if (!x)
        return -1;
    int found = wd_rd_int(x, 0) == 1;
    if (found)
        row_from(x, 1, row);
    freeReplyObject(x);
    return found;
}

/* a change of state is told to every host (redissub.c) */
static const char BR_PUT_LUA[] =
    "local k = ARGV[1] .. 'br:' .. ARGV[2]\n"
    "local was = redis.call('HGET', k, 'state') or '0'\n"
    "redis.call('HSET', k, 'state', ARGV[3], 'failures', ARGV[4], 'opened_ms', ARGV[5],\n"
    "  'probes', ARGV[6], 'probe_ms', ARGV[7], 'updated_ms', ARGV[8])\n"
    "redis.call('SADD', ARGV[1] .. 'breakers', ARGV[2])\n"
    "if was ~= ARGV[3] then redis.call('PUBLISH', ARGV[1] .. 'events', 'breaker ' .. ARGV[2]) end\n"
    "return 1\n";

int wd_rd_breaker_put(wd_store *s, const wd_breaker_row *row)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, row->name);
    wd_rd_i(&a, row->state);
    wd_rd_i(&a, row->failures);
    wd_rd_i(&a, row->opened_ms);
    wd_rd_i(&a, row->probes);
    wd_rd_i(&a, row->probe_ms);
    wd_rd_i(&a, row->updated_ms);
    redisReply *x = wd_rd_run(RD(s), RS_BR_PUT, BR_PUT_LUA, &a);
    freeReplyObject(x);
    return x ? 0 : -1;
}

static const char BR_LIST_LUA[] =
    "local out = {}\n"
    "for _, n in ipairs(redis.call('SORT', ARGV[1] .. 'breakers', 'ALPHA')) do\n"
    "  local v = redis.call('HMGET', ARGV[1] .. 'br:' .. n, 'state', 'failures', 'opened_ms', 'probes', 'probe_ms',\n"
    "    'updated_ms')\n"
    "  if v[1] then\n"
    "    out[#out + 1] = n\n"
    "    for i = 1, 6 do out[#out + 1] = v[i] or '0' end\n"
    "  end\n"
    "end\n"
    "return out\n";

int wd_rd_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    redisReply *x = wd_rd_run(RD(s), RS_BR_LIST, BR_LIST_LUA, &a);
    if (!x)
        return -1;
    size_t k = x->type == REDIS_REPLY_ARRAY ? x->elements / 7 : 0;
    *rows = k ? calloc(k, sizeof **rows) : NULL;
    for (size_t i = 0; *rows && i < k; i++) {
        wd_rd_copy(x, 7 * i, (*rows)[i].name, sizeof(*rows)[i].name);
        row_from(x, 7 * i + 1, &(*rows)[i]);
    }
    *n = *rows ? k : 0;
    freeReplyObject(x);
    return k && !*rows ? -1 : 0;
}

/* ---- the ledger: hash spend:SCOPE\x1fPERIOD {scope, period, spent, reserved, warned,
** updated_ms}, the set spends; a process's leases: hash lease:OWNER {spend key: "AMOUNT
** KEY"}, what each of its leases has paid: hash paid:OWNER {lease id: total}, the set
** owners, and its liveness alive:OWNER (expiring after store.lease) ----
** Every change is idempotent: a lease is set to its new size from the size Redis holds,
** and spend is added as what a lease's total has that Redis has not yet counted, so a
** change sent again after its answer was lost counts nothing twice (store.h). */

static const char LEASE_LUA[] =
    "local P, owner, now, check, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[6])\n"
    "local lk, pk = P .. 'lease:' .. owner, P .. 'paid:' .. owner\n"
    "local function S(x) return string.format('%.0f', x) end\n"
    "-- an amount that is none (a key someone filled by hand) fails the check closed\n"
    "local function amount(x, k)\n"
    "  local n = tonumber(x or '0')\n"
    "  if not n or n ~= n or n < 0 or n > 9e18 then\n"
    "    error('the spend row ' .. k .. ' holds ' .. tostring(x) .. ', not an amount')\n"
    "  end\n"
    "  return n\n"
    "end\n"
    "local st = {}\n"
    "for i = 1, n do\n"
    "  local b = 6 + (i - 1) * 7\n"
    "  local k = P .. 'spend:' .. ARGV[b + 1] .. '\\31' .. ARGV[b + 2]\n"
    "  local v = redis.call('HMGET', k, 'spent', 'reserved', 'warned')\n"
    "  local spent, reserved = amount(v[1], k), amount(v[2], k)\n"
    "  local limit, new, total = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])\n"
    "  -- the lease's size as Redis holds it (none: a sweep gave it back, or it never was)\n"
    "  local old = tonumber(string.match(redis.call('HGET', lk, k) or '', '^(%d+) ') or '0')\n"
    "  local add = total - tonumber(redis.call('HGET', pk, ARGV[b + 5]) or '0')\n"
    "  if add < 0 then add = 0 end\n"
    "  st[i] = {k, reserved, v[3] == '1', old, add}\n"
    "  if check and add + new > old and limit > 0 and spent + add + reserved + new - old > limit then\n"
    "    return {0, i - 1, S(spent), S(reserved), v[3] == '1' and 1 or 0, S(old)}\n"
    "  end\n"
    "end\n"
    "redis.call('SET', P .. 'alive:' .. owner, now, 'PX', ARGV[5])\n"
    "local out = {1, 0}\n"
    "for i = 1, n do\n"
    "  local b = 6 + (i - 1) * 7\n"
    "  local k, old, add = st[i][1], st[i][4], st[i][5]\n"
    "  local warn, new = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 6])\n"
    "  local spent = redis.call('HINCRBY', k, 'spent', S(add))\n"
    "  if add > 0 then redis.call('HSET', pk, ARGV[b + 5], ARGV[b + 7]) end\n"
    "  local res = st[i][2] + new - old\n"
    "  if res < 0 then res = 0 end\n"
    "  redis.call('HSET', k, 'reserved', S(res), 'scope', ARGV[b + 1], 'period', ARGV[b + 2], 'updated_ms', now)\n"
    "  redis.call('SADD', P .. 'spends', k)\n"
    "  local crossed = 0\n"
    "  if warn > 0 and spent >= warn and not st[i][3] then\n"
    "    redis.call('HSET', k, 'warned', 1)\n"
    "    crossed = 1\n"
    "  end\n"
    "  if new > 0 then\n"
    "    redis.call('HSET', lk, k, ARGV[b + 6] .. ' ' .. k)\n"
    "  else\n"
    "    redis.call('HDEL', lk, k)\n"
    "  end\n"
    "  redis.call('SADD', P .. 'owners', owner)\n"
    "  out[#out + 1] = new > 0 and 1 or 0\n"
    "  out[#out + 1] = crossed\n"
    "  out[#out + 1] = spent\n"
    "end\n"
    "-- the totals of leases this process forgot, all counted\n"
    "local r = 7 + n * 7\n"
    "for j = r + 1, r + tonumber(ARGV[r] or '0') do redis.call('HDEL', pk, ARGV[j]) end\n"
    "return out\n";

static void lease_args(wd_redis *r, wd_rd_args *a, const wd_store_op *op)
{
    wd_rd_init(a, r);
    wd_rd_s(a, r->owner);
    wd_rd_i(a, op->now_ms);
    wd_rd_i(a, op->check != 0);
    wd_rd_i(a, r->lease_ms);
    wd_rd_i(a, op->n);
    for (int i = 0; i < op->n; i++) {
        const wd_lease_change *c = &op->c[i];
        wd_rd_s(a, c->key->scope);
        wd_rd_s(a, c->key->period);
        wd_rd_i(a, c->key->limit);
        wd_rd_i(a, c->key->warn_at);
        wd_rd_i(a, c->lease_id);
        wd_rd_i(a, c->new_amount);
        wd_rd_i(a, c->total);
    }
    wd_rd_i(a, op->nretire);
    for (int i = 0; i < op->nretire; i++)
        wd_rd_i(a, op->retire[i]);
}

static int lease_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    wd_lease_change *c = op->c;
    int n = op->n;
    op->which = -1;
    if (wd_rd_int(x, 0) == 0) {
        int w = (int)wd_rd_int(x, 1);
        if (w < 0 || w >= n)
            return -1;
        op->which = w;
        wd_ledger_row *row = &c[w].state;
        memset(row, 0, sizeof *row);
        wd_strlcpy(row->scope, c[w].key->scope, sizeof row->scope);
        wd_strlcpy(row->period, c[w].key->period, sizeof row->period);
        row->spent = wd_rd_int(x, 2);
        row->reserved = wd_rd_int(x, 3);
        row->warned = (int)wd_rd_int(x, 4);
        c[w].old = wd_rd_int(x, 5); /* the lease's size as Redis holds it */
        return 0;
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 + 3 * (size_t)n) {
        snprintf(r->err, sizeof r->err, "redis: the lease script answered %zu values for %d changes",
                 x->type == REDIS_REPLY_ARRAY ? x->elements : 0, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        *c[i].row = wd_rd_int(x, 2 + 3 * i);
        c[i].crossed = (int)wd_rd_int(x, 3 + 3 * i);
        c[i].spent = wd_rd_int(x, 4 + 3 * i);
    }
    return 1;
}

int wd_rd_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which)
{
    wd_store_op op = {.kind = WD_SOP_LEASE_APPLY, .c = c, .n = n, .check = check, .now_ms = now_ms, .which = -1};
    wd_rd_args a;
    lease_args(RD(s), &a, &op);
    int rc = wd_rd_call(RD(s), RS_LEASE, LEASE_LUA, &a, lease_read, &op);
    *which = op.which;
    return rc;
}

int wd_rd_lease_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_rd_args a;
    lease_args(RD(s), &a, op);
    return wd_rd_ask_script(RD(s), RS_LEASE, LEASE_LUA, &a, lease_read, op, fn, ud);
}

static const char LEDGER_GET_LUA[] = "local out = {}\n"
                                     "for i = 3, 2 + 2 * tonumber(ARGV[2]), 2 do\n"
                                     "  local v = redis.call('HMGET', ARGV[1] .. 'spend:' .. ARGV[i] .. '\\31' ..\n"
                                     "    ARGV[i + 1], 'spent', 'reserved', 'warned')\n"
                                     "  for j = 1, 3 do out[#out + 1] = v[j] or '0' end\n"
                                     "end\n"
                                     "return out\n";

static void ledger_args(wd_redis *r, wd_rd_args *a, const wd_store_op *op)
{
    wd_rd_init(a, r);
    wd_rd_i(a, op->n);
    for (int i = 0; i < op->n; i++) {
        wd_rd_s(a, op->keys[i].scope);
        wd_rd_s(a, op->keys[i].period);
    }
}

static int ledger_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    for (int i = 0; i < op->n; i++) {
        wd_ledger_row *w = &op->rows[i];
        memset(w, 0, sizeof *w);
        wd_strlcpy(w->scope, op->keys[i].scope, sizeof w->scope);
        wd_strlcpy(w->period, op->keys[i].period, sizeof w->period);
        w->spent = wd_rd_int(x, 3 * (size_t)i);
        w->reserved = wd_rd_int(x, 3 * (size_t)i + 1);
        w->warned = (int)wd_rd_int(x, 3 * (size_t)i + 2);
    }
    return 0;
}

int wd_rd_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows)
{
    wd_store_op op = {.kind = WD_SOP_LEDGER_GET, .keys = k, .n = n, .rows = rows};
    wd_rd_args a;
    ledger_args(RD(s), &a, &op);
    return wd_rd_call(RD(s), RS_LEDGER_GET, LEDGER_GET_LUA, &a, ledger_read, &op);
}

int wd_rd_ledger_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_rd_args a;
    ledger_args(RD(s), &a, op);
    return wd_rd_ask_script(RD(s), RS_LEDGER_GET, LEDGER_GET_LUA, &a, ledger_read, op, fn, ud);
}

static const char LEDGER_LIST_LUA[] =
    "local rows = {}\n"
    "for _, k in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'spends')) do\n"
    "  local v = redis.call('HMGET', k, 'scope', 'period', 'spent', 'reserved', 'warned')\n"
    "  if v[1] and v[2] then rows[#rows + 1] = v end\n"
    "end\n"
    "table.sort(rows, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)\n"
    "local out = {}\n"
    "for _, v in ipairs(rows) do\n"
    "  for j = 1, 5 do out[#out + 1] = v[j] or '0' end\n"
    "end\n"
    "return out\n";

int wd_rd_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    redisReply *x = wd_rd_run(RD(s), RS_LEDGER_LIST, LEDGER_LIST_LUA, &a);
    if (!x)
        return -1;
    size_t k = x->type == REDIS_REPLY_ARRAY ? x->elements / 5 : 0;
    *rows = k ? calloc(k, sizeof **rows) : NULL;
    for (size_t i = 0; *rows && i < k; i++) {
        wd_ledger_row *w = &(*rows)[i];
        wd_rd_copy(x, 5 * i, w->scope, sizeof w->scope);
        wd_rd_copy(x, 5 * i + 1, w->period, sizeof w->period);
        w->spent = wd_rd_int(x, 5 * i + 2);
        w->reserved = wd_rd_int(x, 5 * i + 3);
        w->warned = (int)wd_rd_int(x, 5 * i + 4);
    }
    *n = *rows ? k : 0;
    freeReplyObject(x);
    return k && !*rows ? -1 : 0;
}

/* the leases of every process whose liveness key expired go back to the keys they held */
static const char SWEEP_LUA[] =
    "local P, self, dead = ARGV[1], ARGV[2], 0\n"
    "for _, o in ipairs(redis.call('SMEMBERS', P .. 'owners')) do\n"
    "  if o ~= self and redis.call('EXISTS', P .. 'alive:' .. o) == 0 then\n"
    "    local l = redis.call('HGETALL', P .. 'lease:' .. o)\n"
    "    for j = 1, #l, 2 do\n"
    "      local amt, k = string.match(l[j + 1], '^(%d+) (.*)$')\n"
    "      if amt then\n"
    "        local res = tonumber(redis.call('HGET', k, 'reserved') or '0') - tonumber(amt)\n"
    "        if res < 0 then res = 0 end\n"
    "        redis.call('HSET', k, 'reserved', string.format('%.0f', res))\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', P .. 'lease:' .. o)\n"
    "    -- what its leases paid stays a week: a host taken for dead that comes back counts\n"
    "    -- nothing twice\n"
    "    redis.call('PEXPIRE', P .. 'paid:' .. o, 604800000)\n"
    "    redis.call('SREM', P .. 'owners', o)\n"
    "    dead = dead + 1\n"
    "  end\n"
    "end\n"
    "return dead\n";

static int sweep_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    (void)op;
    return x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 0;
}

int wd_rd_sweep(wd_store *s)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, RD(s)->owner);
    return wd_rd_call(RD(s), RS_SWEEP, SWEEP_LUA, &a, sweep_read, NULL);
}

int wd_rd_sweep_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, RD(s)->owner);
    return wd_rd_ask_script(RD(s), RS_SWEEP, SWEEP_LUA, &a, sweep_read, op, fn, ud);
}

/* ---- rate windows: sorted set rate:KEY, one member per admitted request ---- */

static const char RATE_LUA[] =
    "local k = ARGV[1] .. 'rate:' .. ARGV[2]\n"
    "local limit, window, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)\n"
    "local count = redis.call('ZCARD', k)\n"
    "if count >= limit then\n"
    "  local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')\n"
    "  return {0, count, o[2] or ARGV[5]}\n"
    "end\n"
    "redis.call('ZADD', k, ARGV[5], ARGV[5] .. ':' .. redis.call('INCR', ARGV[1] .. 'seq'))\n"
    "redis.call('PEXPIRE', k, ARGV[4])\n"
    "return {1, count, 0}\n";

static void rate_args(wd_redis *r, wd_rd_args *a, const wd_store_op *op)
{
    wd_rd_init(a, r);
    wd_rd_s(a, op->key);
    wd_rd_i(a, op->limit);
    wd_rd_i(a, op->window_ms);
    wd_rd_i(a, op->now_ms);
}

static int rate_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    int admitted = wd_rd_int(x, 0) == 1;
    op->count = wd_rd_int(x, 1);
    op->retry_ms = 0;
    if (!admitted) {
        op->retry_ms = wd_rd_int(x, 2) + op->window_ms - op->now_ms;
        if (op->retry_ms < 1)
            op->retry_ms = 1;
        if (op->retry_ms > op->window_ms)
            op->retry_ms = op->window_ms;
    }
    return admitted;
}

int wd_rd_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms, long long *count,
                    int64_t *retry_ms)
{
    wd_store_op op = {.kind = WD_SOP_RATE_TAKE, .key = key, .limit = limit, .window_ms = window_ms, .now_ms = now_ms};
    wd_rd_args a;
    rate_args(RD(s), &a, &op);
    int rc = wd_rd_call(RD(s), RS_RATE, RATE_LUA, &a, rate_read, &op);
    *count = rc < 0 ? 0 : op.count;
    *retry_ms = rc < 0 ? 0 : op.retry_ms;
    return rc;
}

int wd_rd_rate_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_rd_args a;
    rate_args(RD(s), &a, op);
    return wd_rd_ask_script(RD(s), RS_RATE, RATE_LUA, &a, rate_read, op, fn, ud);
}

/* ---- sessions: hash session:ID {owner, messages, expires_ms}; the response cache:
** hash cache:KEY {answer, cost, expires_ms}; both expire in Redis too ---- */

static const char GET_LUA[] = "local v = redis.call('HMGET', ARGV[1] .. ARGV[2], ARGV[4], ARGV[5], 'expires_ms')\n"
                              "if not v[1] or not v[2] or tonumber(v[3] or '0') <= tonumber(ARGV[3]) then\n"
                              "  return {0}\n"
                              "end\n"
                              "return {1, v[1], v[2]}\n";

static const char PUT_LUA[] = "local k = ARGV[1] .. ARGV[2]\n"
                              "redis.call('HSET', k, ARGV[5], ARGV[6], ARGV[7], ARGV[8], 'expires_ms', ARGV[4])\n"
                              "local ttl = tonumber(ARGV[4]) - tonumber(ARGV[3])\n"
                              "redis.call('PEXPIRE', k, ttl > 0 and ttl or 1)\n"
                              "return 1\n";

/* the arguments of a read of the two fields f1, f2 of hash kind..id, while not expired;
** k holds the key (caller frees) */
static void pair_args(wd_redis *r, wd_rd_args *a, wd_buf *k, const char *kind, const wd_store_op *op, const char *f1,
                      const char *f2)
{
    wd_buf_addf(k, "%s%s", kind, op->key);
    wd_rd_init(a, r);
    wd_rd_s(a, k->p);
    wd_rd_i(a, op->now_ms);
    wd_rd_s(a, f1);
    wd_rd_s(a, f2);
    if (!k->p)
        a->oom = 1;
}

/* 1 found (*v1, *v2: caller frees), 0 not, -1 out of memory */
static int pair_read(const redisReply *x, char **v1, char **v2)
{
    *v1 = *v2 = NULL;
    if (wd_rd_int(x, 0) != 1 || x->elements != 3)
        return 0;
    *v1 = wd_strndup(x->element[1]->str, x->element[1]->len);
    *v2 = wd_strndup(x->element[2]->str, x->element[2]->len);
    if (*v1 && *v2)
        return 1;
    free(*v1);
    free(*v2);
    *v1 = *v2 = NULL;
    return -1;
}

static int session_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    return pair_read(x, &op->owner, &op->text);
}

static int cache_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    char *cost = NULL;
    int rc = pair_read(x, &op->text, &cost);
    op->cost_nusd = rc == 1 ? atoll(cost) : 0;
    free(cost);
    return rc;
}

int wd_rd_session_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_buf k = {0};
    wd_rd_args a;
    pair_args(RD(s), &a, &k, "session:", op, "owner", "messages");
    int rc = wd_rd_ask_script(RD(s), RS_SESSION_GET, GET_LUA, &a, session_read, op, fn, ud);
    wd_buf_free(&k);
    return rc;
}

int wd_rd_cache_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_buf k = {0};
    wd_rd_args a;
    pair_args(RD(s), &a, &k, "cache:", op, "answer", "cost");
    int rc = wd_rd_ask_script(RD(s), RS_CACHE_GET, GET_LUA, &a, cache_read, op, fn, ud);
    wd_buf_free(&k);
    return rc;
}

static int pair_put(wd_store *s, int slot, const char *kind, const char *id, int64_t now_ms, int64_t expires_ms,
                    const char *f1, const char *v1, const char *f2, const char *v2)
{
    wd_buf k = {0};
    wd_buf_addf(&k, "%s%s", kind, id);
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, k.p);
    wd_rd_i(&a, now_ms);
    wd_rd_i(&a, expires_ms);
    wd_rd_s(&a, f1);
    wd_rd_s(&a, v1);
    wd_rd_s(&a, f2);
    wd_rd_s(&a, v2);
    redisReply *x = k.p ? wd_rd_run(RD(s), slot, PUT_LUA, &a) : (wd_rd_done(&a), NULL);
    wd_buf_free(&k);
    freeReplyObject(x);
    return x ? 0 : -1;
}

int wd_rd_session_get(wd_store *s, const char *id, int64_t now_ms, char **owner, char **messages)
{
    wd_store_op op = {.kind = WD_SOP_SESSION_GET, .key = id, .now_ms = now_ms};
    wd_buf k = {0};
    wd_rd_args a;
    pair_args(RD(s), &a, &k, "session:", &op, "owner", "messages");
    int rc = wd_rd_call(RD(s), RS_SESSION_GET, GET_LUA, &a, session_read, &op);
    wd_buf_free(&k);
    *owner = op.owner;
    *messages = op.text;
    return rc;
}

int wd_rd_session_put(wd_store *s, const char *id, const char *owner, const char *messages, int64_t now_ms,
                      int64_t expires_ms)
{
    return pair_put(s, RS_SESSION_PUT, "session:", id, now_ms, expires_ms, "owner", owner, "messages", messages);
}

int wd_rd_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd)
{
    wd_store_op op = {.kind = WD_SOP_CACHE_GET, .key = key, .now_ms = now_ms};
    wd_buf k = {0};
    wd_rd_args a;
    pair_args(RD(s), &a, &k, "cache:", &op, "answer", "cost");
    int rc = wd_rd_call(RD(s), RS_CACHE_GET, GET_LUA, &a, cache_read, &op);
    wd_buf_free(&k);
    *answer = op.text;
    *cost_nusd = op.cost_nusd;
    return rc;
}

int wd_rd_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms, int64_t ttl_ms)
{
    char cost[24];
    snprintf(cost, sizeof cost, "%lld", (long long)cost_nusd);
    return pair_put(s, RS_CACHE_PUT, "cache:", key, now_ms, now_ms + ttl_ms, "answer", answer, "cost", cost);
}

static int put_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    (void)x;
    (void)op;
    return 0;
}

int wd_rd_cache_put_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    char cost[24];
    snprintf(cost, sizeof cost, "%lld", (long long)op->cost_nusd);
    wd_buf k = {0};
    wd_buf_addf(&k, "cache:%s", op->key);
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, k.p);
    wd_rd_i(&a, op->now_ms);
    wd_rd_i(&a, op->now_ms + op->window_ms);
    wd_rd_s(&a, "answer");
    wd_rd_s(&a, op->value);
    wd_rd_s(&a, "cost");
    wd_rd_s(&a, cost);
    if (!k.p)
        a.oom = 1;
    int rc = wd_rd_ask_script(RD(s), RS_CACHE_PUT, PUT_LUA, &a, put_read, op, fn, ud);
    wd_buf_free(&k);
    return rc;
}

/* ---- liveness: a host's leases and pending approvals are its while this key lives ---- */

static const char ALIVE_LUA[] = "redis.call('SET', ARGV[1] .. 'alive:' .. ARGV[2], ARGV[3], 'PX', ARGV[4])\n"
                                "return 1\n";

static void no_answer_needed(void *ud, redisReply *x)
{
    (void)ud;
    (void)x;
}

/* ** An engine's word goes without waiting when its loop has the asynchronous connection
** (the sweep after it too: both are the same whichever host's runs them); a command's
** waits for its answer. */
int wd_rd_keepalive(wd_store *s)
{
    wd_redis *r = RD(s);
    int64_t now = wd_now_ns();
    if (r->alive_ns && now - r->alive_ns < r->lease_ms * 1000000 / 4)
        return 0;
    wd_rd_args a;
    wd_rd_init(&a, r);
    wd_rd_s(&a, r->owner);
    wd_rd_i(&a, wd_rd_now(s));
    wd_rd_i(&a, r->lease_ms);
    if (wd_rd_async_run(r, RS_ALIVE, ALIVE_LUA, &a, no_answer_needed, NULL) == 0) {
        r->alive_ns = now;
        wd_rd_init(&a, r);
        wd_rd_s(&a, r->owner);
        wd_rd_async_run(r, RS_SWEEP, SWEEP_LUA, &a, no_answer_needed, NULL);
        return 0;
    }
    if (!r->c && now < r->retry_ns)
        return -1;
    r->alive_ns = now;
    wd_rd_init(&a, r);
    wd_rd_s(&a, r->owner);
    wd_rd_i(&a, wd_rd_now(s));
    wd_rd_i(&a, r->lease_ms);
    redisReply *x = wd_rd_run(r, RS_ALIVE, ALIVE_LUA, &a);
    if (!x)
        return -1;
    freeReplyObject(x);
    return wd_rd_sweep(s) < 0 ? -1 : 0; /* the leases of hosts that fell silent come back */
}
