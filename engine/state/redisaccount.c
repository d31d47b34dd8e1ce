/* redisaccount.c - the Redis backend's accountability keys: the audit log's per-user
** keys (hash akey:ID, akeyuser:USER naming the live one, set akeys:USER), notifications
** waiting to be delivered (hash notify:ID; sorted sets nq, due time of the pending ones,
** and nall, by creation) and blocked addresses and keys (hash block:KEY, expiring) */
#include "redispriv.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- audit keys ---- */

static const char AKEY_LUA[] = "local P, user = ARGV[1], ARGV[2]\n"
                               "local cur = redis.call('GET', P .. 'akeyuser:' .. user)\n"
                               "if cur then\n"
                               "  local k = redis.call('HGET', P .. 'akey:' .. cur, 'key')\n"
                               "  if k and #k == 64 then return {cur, k} end\n"
                               "end\n"
                               "redis.call('HSET', P .. 'akey:' .. ARGV[4], 'user', user, 'key', ARGV[5],\n"
                               "  'created_ms', ARGV[3])\n"
                               "redis.call('SET', P .. 'akeyuser:' .. user, ARGV[4])\n"
                               "redis.call('SADD', P .. 'akeys:' .. user, ARGV[4])\n"
                               "return {ARGV[4], ARGV[5]}\n";

/* hex (64 digits) into key: 0, or -1 */
static int key_from(const char *hex, unsigned char key[32])
{
    size_t got = 0;
    return hex && strlen(hex) == 64 && sodium_hex2bin(key, 32, hex, 64, NULL, &got, NULL) == 0 && got == 32 ? 0 : -1;
}

/* the script's arguments: a candidate id and key, made here, kept if the user has none
** (hex: the key's text, wiped by the caller) */
static void akey_args(wd_redis *r, wd_rd_args *a, const wd_store_op *op, char cand[17], char hex[65])
{
    unsigned char rid[8], fresh[32];
    randombytes_buf(rid, sizeof rid);
    randombytes_buf(fresh, sizeof fresh);
    sodium_bin2hex(cand, 17, rid, sizeof rid);
    sodium_bin2hex(hex, 65, fresh, sizeof fresh);
    sodium_memzero(fresh, sizeof fresh);
    wd_rd_init(a, r);
    wd_rd_s(a, op->key);
    wd_rd_i(a, op->now_ms);
    wd_rd_s(a, cand);
    wd_rd_s(a, hex);
}

static int akey_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    char got[65];
    wd_rd_copy(x, 0, op->id, sizeof op->id);
    wd_rd_copy(x, 1, got, sizeof got);
    int rc = strlen(op->id) == 16 && key_from(got, op->secret) == 0 ? 0 : -1;
    sodium_memzero(got, sizeof got);
    if (rc < 0)
        snprintf(r->err, sizeof r->err, "redis: the audit key of %s is damaged", op->key);
    return rc;
}

int wd_rd_audit_key(wd_store *s, const char *user, int64_t now_ms, char id[17], unsigned char key[32])
{
    wd_store_op op = {.kind = WD_SOP_AUDIT_KEY, .key = user, .now_ms = now_ms};
    char cand[17], hex[65];
    wd_rd_args a;
    akey_args(RD(s), &a, &op, cand, hex);
    int rc = wd_rd_call(RD(s), RS_AKEY, AKEY_LUA, &a, akey_read, &op);
    sodium_memzero(hex, sizeof hex);
    memcpy(id, op.id, 17);
    memcpy(key, op.secret, 32);
    sodium_memzero(op.secret, sizeof op.secret);
    return rc;
}

int wd_rd_audit_key_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    char cand[17], hex[65];
    wd_rd_args a;
    akey_args(RD(s), &a, op, cand, hex);
    int rc = wd_rd_ask_script(RD(s), RS_AKEY, AKEY_LUA, &a, akey_read, op, fn, ud);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

static const char AKEY_GET_LUA[] = "local v = redis.call('HMGET', ARGV[1] .. 'akey:' .. ARGV[2], 'user', 'key')\n"
                                   "if not v[1] then return {2} end\n"
                                   "if not v[2] or #v[2] ~= 64 then return {0} end\n"
                                   "return {1, v[2]}\n";

int wd_rd_audit_key_get(wd_store *s, const char *id, unsigned char key[32])
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, id);
    redisReply *x = wd_rd_run(RD(s), RS_AKEY_GET, AKEY_GET_LUA, &a);
    if (!x)
        return -1;
    int rc = (int)wd_rd_int(x, 0);
    char got[65];
    wd_rd_copy(x, 1, got, sizeof got);
    freeReplyObject(x);
    if (rc == 1 && key_from(got, key) < 0)
        rc = 0;
    sodium_memzero(got, sizeof got);
    return rc;
}

/* ** Erasure: each key's field is overwritten with nothing. Redis's append-only file
** still holds the old commands until it is rewritten: warden asks for the rewrite
** (BGREWRITEAOF) at once, docs/scale-out.md says what replicas and backups keep. */
static const char AKEY_ERASE_LUA[] = "local P, user, n = ARGV[1], ARGV[2], 0\n"
                                     "for _, id in ipairs(redis.call('SMEMBERS', P .. 'akeys:' .. user)) do\n"
                                     "  local k = P .. 'akey:' .. id\n"
                                     "  local cur = redis.call('HGET', k, 'key')\n"
                                     "  if cur and cur ~= '' then\n"
                                     "    redis.call('HSET', k, 'key', '', 'erased_ms', ARGV[3])\n"
                                     "    n = n + 1\n"
                                     "  end\n"
                                     "end\n"
                                     "redis.call('DEL', P .. 'akeyuser:' .. user)\n"
                                     "return n\n";

int wd_rd_audit_erase(wd_store *s, const char *user, int64_t now_ms)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, user);
    wd_rd_i(&a, now_ms);
    redisReply *x = wd_rd_run(RD(s), RS_AKEY_ERASE, AKEY_ERASE_LUA, &a);
    if (!x)
        return -1;
    int n = x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 0;
    freeReplyObject(x);
    if (n > 0 && RD(s)->c) { /* best effort: a rewrite already running is fine too */
        redisReply *w = redisCommand(RD(s)->c, "BGREWRITEAOF");
        freeReplyObject(w);
    }
    return n;
}

/* ---- notifications ---- */

#define NOTIFY_FIELDS                                                                                                  \
    "'event', 'url', 'secret_env', 'timeout_ms', 'body', 'status', 'attempts', 'next_ms', 'last_error', 'created_ms'"

static const char NOTIFY_ADD_LUA[] =
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'notify:' .. id\n"
    "if redis.call('EXISTS', k) == 1 then return 0 end\n"
    "redis.call('HSET', k, 'event', ARGV[3], 'url', ARGV[4], 'secret_env', ARGV[5], 'timeout_ms', ARGV[6],\n"
    "  'body', ARGV[7], 'status', 'pending', 'attempts', 0, 'next_ms', ARGV[8], 'last_error', '',\n"
    "  'created_ms', ARGV[8], 'updated_ms', ARGV[8])\n"
    "redis.call('ZADD', P .. 'nq', ARGV[8], id)\n"
    "redis.call('ZADD', P .. 'nall', ARGV[8], id)\n"
    "return 1\n";

int wd_rd_notify_add(wd_store *s, const wd_notify_row *n, int64_t now_ms)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, n->id);
    wd_rd_s(&a, n->event);
    wd_rd_s(&a, n->url);
    wd_rd_s(&a, n->secret_env);
    wd_rd_i(&a, n->timeout_ms);
    wd_rd_s(&a, n->body);
    wd_rd_i(&a, now_ms);
    redisReply *x = wd_rd_run(RD(s), RS_NOTIFY_ADD, NOTIFY_ADD_LUA, &a);
    freeReplyObject(x);
    return x ? 0 : -1;
}

/* rows of 11: the id, then NOTIFY_FIELDS */
static json_t *notify_rows(const redisReply *x)
{
    json_t *l = json_array();
    size_t k = x->type == REDIS_REPLY_ARRAY ? x->elements / 11 : 0;
    for (size_t i = 0; l && i < k; i++) {
        const char *c[11];
        for (int j = 0; j < 11; j++) {
            const redisReply *e = x->element[11 * i + j];
            c[j] = e->type == REDIS_REPLY_STRING ? e->str : "";
        }
        json_array_append_new(l, json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:s,s:I}", "id", c[0], "event", c[1],
                                           "url", c[2], "secret_env", c[3], "timeout_ms", (json_int_t)atoll(c[4]),
                                           "body", c[5], "status", c[6], "attempts", (json_int_t)atoll(c[7]), "next_ms",
                                           (json_int_t)atoll(c[8]), "last_error", c[9], "created_ms",
                                           (json_int_t)atoll(c[10])));
    }
    return l;
}

static const char NOTIFY_CLAIM_LUA[] = "local P, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
                                       "local out = {}\n"
                                       "for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nq', '-inf', now,\n"
                                       "    'LIMIT', 0, tonumber(ARGV[4]))) do\n"
                                       "  local v = redis.call('HMGET', P .. 'notify:' .. id, " NOTIFY_FIELDS ")\n"
                                       "  if v[6] == 'pending' then\n"
                                       "    redis.call('ZADD', P .. 'nq', now + lease, id)\n"
                                       "    out[#out + 1] = id\n"
                                       "    for i = 1, 10 do out[#out + 1] = v[i] or '' end\n"
                                       "  else\n"
                                       "    redis.call('ZREM', P .. 'nq', id)\n"
                                       "  end\n"
                                       "end\n"
                                       "return out\n";

int wd_rd_notify_claim(wd_store *s, int64_t now_ms, int64_t lease_ms, int max, json_t **out)
{
    *out = NULL;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_i(&a, now_ms);
    wd_rd_i(&a, lease_ms);
    wd_rd_i(&a, max);
    redisReply *x = wd_rd_run(RD(s), RS_NOTIFY_CLAIM, NOTIFY_CLAIM_LUA, &a);
    if (!x)
        return -1;
    *out = notify_rows(x);
    freeReplyObject(x);
    return *out ? 0 : -1;
}

static const char NOTIFY_SETTLE_LUA[] =
    "local P, id, status = ARGV[1], ARGV[2], ARGV[3]\n"
    "local k = P .. 'notify:' .. id\n"
    "if status == 'delivered' then\n"
    "  redis.call('DEL', k)\n"
    "  redis.call('ZREM', P .. 'nq', id)\n"
    "  redis.call('ZREM', P .. 'nall', id)\n"
    "  return 1\n"
    "end\n"
    "if redis.call('EXISTS', k) == 0 then return 0 end\n"
    "redis.call('HSET', k, 'status', status, 'attempts', ARGV[4], 'next_ms', ARGV[5], 'last_error', ARGV[6],\n"
    "  'updated_ms', ARGV[7])\n"
    "if status == 'pending' then\n"
    "  redis.call('ZADD', P .. 'nq', ARGV[5], id)\n"
    "  return 1\n"
    "end\n"
    "redis.call('ZREM', P .. 'nq', id)\n"
    "redis.call('ZADD', P .. 'ndead', ARGV[7], id)\n"
    "local over = redis.call('ZCARD', P .. 'ndead') - 10000\n"
    "if over > 0 then\n"
    "  for _, old in ipairs(redis.call('ZRANGE', P .. 'ndead', 0, over - 1)) do\n"
    "    redis.call('DEL', P .. 'notify:' .. old)\n"
    "    redis.call('ZREM', P .. 'nall', old)\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYRANK', P .. 'ndead', 0, over - 1)\n"
    "end\n"
    "return 1\n";

int wd_rd_notify_settle(wd_store *s, const char *id, const char *status, int attempts, int64_t next_ms,
                        const char *error, int64_t now_ms)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, id);
    wd_rd_s(&a, status);
    wd_rd_i(&a, attempts);
    wd_rd_i(&a, next_ms);
    wd_rd_s(&a, error);
    wd_rd_i(&a, now_ms);
    redisReply *x = wd_rd_run(RD(s), RS_NOTIFY_SETTLE, NOTIFY_SETTLE_LUA, &a);
    freeReplyObject(x);
    return x ? 0 : -1;
}

static const char NOTIFY_LIST_LUA[] = "local P, all, out = ARGV[1], ARGV[2] == '1', {}\n"
                                      "for _, id in ipairs(redis.call('ZRANGE', P .. 'nall', 0, -1)) do\n"
                                      "  local v = redis.call('HMGET', P .. 'notify:' .. id, " NOTIFY_FIELDS ")\n"
                                      "  if v[6] and (all or v[6] == 'dead') then\n"
                                      "    out[#out + 1] = id\n"
                                      "    for i = 1, 10 do out[#out + 1] = v[i] or '' end\n"
                                      "  end\n"
                                      "end\n"
                                      "return out\n";

int wd_rd_notify_list(wd_store *s, int all, json_t **out)
{
    *out = NULL;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_i(&a, all != 0);
    redisReply *x = wd_rd_run(RD(s), RS_NOTIFY_LIST, NOTIFY_LIST_LUA, &a);
    if (!x)
        return -1;
    *out = notify_rows(x);
    freeReplyObject(x);
    return *out ? 0 : -1;
}

/* ---- blocks ---- */

static const char BLOCK_SET_LUA[] = "local k = ARGV[1] .. 'block:' .. ARGV[2]\n"
                                    "local cur = tonumber(redis.call('HGET', k, 'until_ms') or '0')\n"
                                    "local til = tonumber(ARGV[3])\n"
                                    "if cur > til then til = cur end\n"
                                    "redis.call('HSET', k, 'until_ms', string.format('%.0f', til), 'reason', ARGV[4])\n"
                                    "local ttl = til - tonumber(ARGV[5])\n"
                                    "redis.call('PEXPIRE', k, ttl > 0 and ttl or 1)\n"
                                    "return 1\n";

int wd_rd_block_set(wd_store *s, const char *key, int64_t until_ms, const char *reason)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, key);
    wd_rd_i(&a, until_ms);
    wd_rd_s(&a, reason);
    wd_rd_i(&a, wd_rd_now(s));
    redisReply *x = wd_rd_run(RD(s), RS_BLOCK_SET, BLOCK_SET_LUA, &a);
    freeReplyObject(x);
    return x ? 0 : -1;
}

static const char BLOCK_GET_LUA[] = "local u = tonumber(redis.call('HGET', ARGV[1] .. 'block:' .. ARGV[2],"
                                    " 'until_ms') or '0')\n"
                                    "if u > tonumber(ARGV[3]) then return u end\n"
                                    "return 0\n";

static int block_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    op->until_ms = x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
    return op->until_ms > 0;
}

int wd_rd_block_get(wd_store *s, const char *key, int64_t now_ms, int64_t *until_ms)
{
    wd_store_op op = {.kind = WD_SOP_BLOCK_GET, .key = key, .now_ms = now_ms};
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, key);
    wd_rd_i(&a, now_ms);
    int rc = wd_rd_call(RD(s), RS_BLOCK_GET, BLOCK_GET_LUA, &a, block_read, &op);
    *until_ms = rc < 0 ? 0 : op.until_ms;
    return rc;
}

int wd_rd_block_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, op->key);
    wd_rd_i(&a, op->now_ms);
    return wd_rd_ask_script(RD(s), RS_BLOCK_GET, BLOCK_GET_LUA, &a, block_read, op, fn, ud);
}
