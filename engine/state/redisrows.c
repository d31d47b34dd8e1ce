/* redisrows.c - the Redis backend's approval requests (hash ap:ID, sorted set aps by
** creation, set aps_pending), kill switch (hash kill:AGENT, set kills), agent health
** (hash health) and detectors' own state (hash det:SCOPE, SCOPE the agent, user, origin
** and detector, each led by its length) */
#include "redispriv.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- approvals ---- */

static const char AP_INSERT_LUA[] = "local P, id = ARGV[1], ARGV[2]\n"
                                    "local k = P .. 'ap:' .. id\n"
                                    "if redis.call('EXISTS', k) == 1 then return 0 end\n"
                                    "redis.call('HSET', k, unpack(ARGV, 6))\n"
                                    "redis.call('ZADD', P .. 'aps', ARGV[5], id)\n"
                                    "redis.call('SADD', P .. 'aps_pending', id)\n"
                                    "redis.call('SET', P .. 'alive:' .. ARGV[3], ARGV[5], 'PX', ARGV[4])\n"
                                    "return 1\n";

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

int wd_rd_approval_insert(wd_store *s, const char *id, const json_t *req)
{
    wd_redis *r = RD(s);
    char *args = json_dumps(json_object_get(req, "args"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *approvers = json_dumps(json_object_get(req, "approvers"), JSON_COMPACT | JSON_ENCODE_ANY);
    wd_rd_args a;
    wd_rd_init(&a, r);
    wd_rd_s(&a, id);
    wd_rd_s(&a, r->owner);
    wd_rd_i(&a, r->lease_ms);
    wd_rd_i(&a, json_integer_value(json_object_get(req, "created_ms")));
    static const char *const TEXT[] = {"run_id", "session_id", "user_id", "agent",
                                       "tool",   "risk",       "urgency", "justification"};
    for (size_t i = 0; i < sizeof TEXT / sizeof *TEXT; i++) {
        wd_rd_s(&a, TEXT[i]);
        wd_rd_s(&a, jstr(req, TEXT[i]));
    }
    static const char *const NUM[] = {"needed", "created_ms", "expires_ms", "escalate_ms"};
    for (size_t i = 0; i < sizeof NUM / sizeof *NUM; i++) {
        wd_rd_s(&a, NUM[i]);
        wd_rd_i(&a, json_integer_value(json_object_get(req, NUM[i])));
    }
    const char *rest[] = {"args",        args ? args : "null",
                          "approvers",   approvers ? approvers : "[]",
                          "status",      "pending",
                          "owner",       r->owner,
                          "escalated",   "0",
                          "approved_by", "[]"};
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++)
        wd_rd_s(&a, rest[i]);
    redisReply *x = args && approvers ? wd_rd_run(r, RS_AP_INSERT, AP_INSERT_LUA, &a) : (wd_rd_done(&a), NULL);
    free(args);
    free(approvers);
    if (!x)
        return -1;
    int ok = x->type == REDIS_REPLY_INTEGER && x->integer == 1;
    if (!ok)
        snprintf(r->err, sizeof r->err, "approval request %s exists already", id);
    freeReplyObject(x);
    return ok ? 0 : -1;
}

/* the fields of wd_approval_state, in this order */
static const char AP_GET_LUA[] =
    "local v = redis.call('HMGET', ARGV[1] .. 'ap:' .. ARGV[2], 'status', 'approved_by', 'needed', 'escalated',\n"
    "  'created_ms', 'expires_ms', 'escalate_ms', 'decided_ms', 'decided_by', 'reason', 'approvers', 'decided_via')\n"
    "if not v[1] then return {0} end\n"
    "local out = {1}\n"
    "for i = 1, 12 do out[i + 1] = v[i] or '' end\n"
    "return out\n";

static json_t *list_of(const redisReply *x, size_t i)
{
    json_t *v = NULL;
    if (x && x->type == REDIS_REPLY_ARRAY && i < x->elements && x->element[i]->type == REDIS_REPLY_STRING)
        v = json_loadb(x->element[i]->str, x->element[i]->len, JSON_DECODE_ANY, NULL);
    if (!json_is_array(v)) {
        json_decref(v);
        v = json_array();
    }
    return v;
}

static int approval_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    (void)r;
    wd_approval_state *st = op->approval;
    memset(st, 0, sizeof *st);
    int found = wd_rd_int(x, 0) == 1 && x->elements == 13;
    if (found) {
        wd_rd_copy(x, 1, st->status, sizeof st->status);
        st->approved_by = list_of(x, 2);
        st->given = (int)json_array_size(st->approved_by);
        st->needed = (int)wd_rd_int(x, 3);
        st->escalated = (int)wd_rd_int(x, 4);
        st->created_ms = wd_rd_int(x, 5);
        st->expires_ms = wd_rd_int(x, 6);
        st->escalate_ms = wd_rd_int(x, 7);
        st->decided_ms = wd_rd_int(x, 8);
        wd_rd_copy(x, 9, st->decided_by, sizeof st->decided_by);
        wd_rd_copy(x, 10, st->reason, sizeof st->reason);
        st->approvers = list_of(x, 11);
        wd_rd_copy(x, 12, st->decided_via, sizeof st->decided_via);
    }
    return found;
}

int wd_rd_approval_get(wd_store *s, const char *id, wd_approval_state *st)
{
    memset(st, 0, sizeof *st);
    wd_store_op op = {.kind = WD_SOP_APPROVAL_GET, .key = id, .approval = st};
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, id);
    return wd_rd_call(RD(s), RS_AP_GET, AP_GET_LUA, &a, approval_read, &op);
}

int wd_rd_approval_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    memset(op->approval, 0, sizeof *op->approval);
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, op->key);
    return wd_rd_ask_script(RD(s), RS_AP_GET, AP_GET_LUA, &a, approval_read, op, fn, ud);
}

static const char AP_UPDATE_LUA[] = "local P, id = ARGV[1], ARGV[2]\n"
                                    "local k = P .. 'ap:' .. id\n"
                                    "local status = redis.call('HGET', k, 'status')\n"
                                    "if not status or (ARGV[3] == '1' and status ~= 'pending') then return 0 end\n"
                                    "if #ARGV > 3 then redis.call('HSET', k, unpack(ARGV, 4)) end\n"
                                    "local now = redis.call('HGET', k, 'status')\n"
                                    "if now ~= 'pending' then redis.call('SREM', P .. 'aps_pending', id) end\n"
                                    "redis.call('PUBLISH', P .. 'events', 'approval ' .. id)\n"
                                    "return 1\n";

int wd_rd_approval_update(wd_store *s, const char *id, const wd_approval_change *c)
{
    char *by = c->approved_by ? json_dumps(c->approved_by, JSON_COMPACT) : NULL;
    const char *text[] = {c->status, c->reason, c->decided_by, c->decided_via, by};
    static const char *const COL[] = {"status", "reason", "decided_by", "decided_via", "approved_by"};
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, id);
    wd_rd_i(&a, c->only_pending != 0);
    for (int i = 0; i < 5; i++)
        if (text[i]) {
            wd_rd_s(&a, COL[i]);
            wd_rd_s(&a, text[i]);
        }
    if (c->decided_ms >= 0) {
        wd_rd_s(&a, "decided_ms");
        wd_rd_i(&a, c->decided_ms);
    }
    redisReply *x = !c->approved_by || by ? wd_rd_run(RD(s), RS_AP_UPDATE, AP_UPDATE_LUA, &a) : (wd_rd_done(&a), NULL);
    free(by);
    if (!x)
        return -1;
    int rc = x->type == REDIS_REPLY_INTEGER && x->integer == 1;
    freeReplyObject(x);
    return rc;
}

/* ** What time and death decided, as the SQLite backend's sweep: a request whose
** process's liveness key expired is abandoned, one past expiry expired, one past its
** escalation point marked escalated */
static const char AP_SWEEP_LUA[] =
    "local P, now, n = ARGV[1], tonumber(ARGV[2]), 0\n"
    "for _, id in ipairs(redis.call('SMEMBERS', P .. 'aps_pending')) do\n"
    "  local k = P .. 'ap:' .. id\n"
    "  local v = redis.call('HMGET', k, 'status', 'owner', 'expires_ms', 'escalate_ms', 'escalated')\n"
    "  if v[1] ~= 'pending' then\n"
    "    redis.call('SREM', P .. 'aps_pending', id)\n"
    "  elseif redis.call('EXISTS', P .. 'alive:' .. (v[2] or '')) == 0 then\n"
    "    redis.call('HSET', k, 'status', 'abandoned', 'reason', 'the process of its run ended before a decision',\n"
    "      'decided_ms', ARGV[2])\n"
    "    redis.call('SREM', P .. 'aps_pending', id)\n"
    "    redis.call('PUBLISH', P .. 'events', 'approval ' .. id)\n"
    "    n = n + 1\n"
    "  elseif tonumber(v[3] or '0') <= now then\n"
    "    redis.call('HSET', k, 'status', 'expired', 'reason', 'no decision before it expired', 'decided_ms', ARGV[2])\n"
    "    redis.call('SREM', P .. 'aps_pending', id)\n"
    "    redis.call('PUBLISH', P .. 'events', 'approval ' .. id)\n"
    "    n = n + 1\n"
    "  elseif v[5] ~= '1' and tonumber(v[4] or '0') <= now then\n"
    "    redis.call('HSET', k, 'escalated', '1')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

int wd_rd_approval_sweep(wd_store *s, int64_t now_ms)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_i(&a, now_ms);
    redisReply *x = wd_rd_run(RD(s), RS_AP_SWEEP, AP_SWEEP_LUA, &a);
    if (!x)
        return -1;
    int n = x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 0;
    freeReplyObject(x);
    return n;
}

#define AP_COLS 21
static const char AP_LIST_LUA[] =
    "local P, all, out = ARGV[1], ARGV[2] == '1', {}\n"
    "local F = {'run_id', 'session_id', 'user_id', 'agent', 'tool', 'args', 'risk', 'urgency', 'justification',\n"
    "  'approvers', 'needed', 'approved_by', 'status', 'reason', 'decided_by', 'created_ms', 'expires_ms',\n"
    "  'escalated', 'decided_ms', 'decided_via'}\n"
    "for _, id in ipairs(redis.call('ZRANGE', P .. 'aps', 0, -1)) do\n"
    "  local v = redis.call('HMGET', P .. 'ap:' .. id, unpack(F))\n"
    "  if v[13] and (all or v[13] == 'pending') then\n"
    "    out[#out + 1] = id\n"
    "    for i = 1, #F do out[#out + 1] = v[i] or '' end\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char *col(const redisReply *x, size_t i)
{
    return x->element[i]->type == REDIS_REPLY_STRING ? x->element[i]->str : "";
}

static json_t *ap_json(const redisReply *x, size_t b)
{
    json_t *o = json_object();
    static const char *const TEXT[] = {"id", "run_id", "session_id", "user_id", "agent", "tool"};
    for (int i = 0; i < 6; i++)
        json_object_set_new(o, TEXT[i], json_string(col(x, b + i)));
    static const int JSONCOL[] = {6, 10, 12};
    static const char *const JSONKEY[] = {"args", "approvers", "approved_by"};
    for (int i = 0; i < 3; i++) {
        json_t *j = json_loads(col(x, b + JSONCOL[i]), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_object_set_new(o, JSONKEY[i], j ? j : json_null());
    }
    static const int TCOL[] = {7, 8, 9, 13, 14, 15};
    static const char *const TKEY[] = {"risk", "urgency", "justification", "status", "reason", "decided_by"};
    for (int i = 0; i < 6; i++) {
        const char *v = col(x, b + TCOL[i]);
        json_object_set_new(o, TKEY[i], *v || i < 4 ? json_string(v) : json_null());
    }
    json_object_set_new(o, "approvals_needed", json_integer(atoll(col(x, b + 11))));
    json_object_set_new(o, "created_ms", json_integer(atoll(col(x, b + 16))));
    json_object_set_new(o, "expires_ms", json_integer(atoll(col(x, b + 17))));
    json_object_set_new(o, "escalated", json_boolean(!strcmp(col(x, b + 18), "1")));
    if (*col(x, b + 19))
        json_object_set_new(o, "decided_ms", json_integer(atoll(col(x, b + 19))));
    if (*col(x, b + 20))
        json_object_set_new(o, "decided_via", json_string(col(x, b + 20)));
    return o;
}

int wd_rd_approval_list(wd_store *s, int all, json_t **out)
{
    *out = NULL;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_i(&a, all != 0);
    redisReply *x = wd_rd_run(RD(s), RS_AP_LIST, AP_LIST_LUA, &a);
    if (!x)
        return -1;
    json_t *l = json_array();
    size_t k = x->type == REDIS_REPLY_ARRAY ? x->elements / AP_COLS : 0;
    for (size_t i = 0; l && i < k; i++)
        json_array_append_new(l, ap_json(x, i * AP_COLS));
    freeReplyObject(x);
    *out = l;
    return l ? 0 : -1;
}

/* ---- the kill switch and agent health ---- */

static const char KILL_SET_LUA[] = "local k = ARGV[1] .. 'kill:' .. ARGV[2]\n"
                                   "if redis.call('EXISTS', k) == 1 then return 0 end\n"
                                   "redis.call('HSET', k, 'by', ARGV[3], 'reason', ARGV[4], 'automatic', ARGV[5],\n"
                                   "  'created_ms', ARGV[6])\n"
                                   "redis.call('SADD', ARGV[1] .. 'kills', ARGV[2])\n"
                                   "redis.call('PUBLISH', ARGV[1] .. 'events', 'kill ' .. ARGV[2])\n"
                                   "return 1\n";

int wd_rd_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, agent);
    wd_rd_s(&a, by);
    wd_rd_s(&a, reason);
    wd_rd_i(&a, automatic != 0);
    wd_rd_i(&a, now_ms);
    redisReply *x = wd_rd_run(RD(s), RS_KILL_SET, KILL_SET_LUA, &a);
    if (!x)
        return -1;
    int rc = x->type == REDIS_REPLY_INTEGER && x->integer == 1;
    freeReplyObject(x);
    return rc;
}

static const char KILL_CLEAR_LUA[] = "local P, n = ARGV[1], 0\n"
                                     "local agents = ARGV[3] == '1' and redis.call('SMEMBERS', P .. 'kills') or"
                                     " {ARGV[2]}\n"
                                     "for _, a in ipairs(agents) do\n"
                                     "  n = n + redis.call('DEL', P .. 'kill:' .. a)\n"
                                     "  redis.call('SREM', P .. 'kills', a)\n"
                                     "  redis.call('HDEL', P .. 'health', a)\n"
                                     "end\n"
                                     "if ARGV[3] == '1' then redis.call('DEL', P .. 'health') end\n"
                                     "if n > 0 then redis.call('PUBLISH', P .. 'events', 'kill ' .. ARGV[2]) end\n"
                                     "return n\n";

int wd_rd_kill_clear(wd_store *s, const char *agent, int all)
{
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, agent);
    wd_rd_i(&a, all != 0);
    redisReply *x = wd_rd_run(RD(s), RS_KILL_CLEAR, KILL_CLEAR_LUA, &a);
    if (!x)
        return -1;
    int n = x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 0;
    freeReplyObject(x);
    return n;
}

static const char KILL_LIST_LUA[] =
    "local P, rows, out = ARGV[1], {}, {}\n"
    "for _, a in ipairs(redis.call('SMEMBERS', P .. 'kills')) do\n"
    "  local v = redis.call('HMGET', P .. 'kill:' .. a, 'by', 'reason', 'automatic', 'created_ms')\n"
    "  if v[4] then rows[#rows + 1] = {a, v[1] or '', v[2] or '', v[3] or '0', v[4]} end\n"
    "end\n"
    "table.sort(rows, function(x, y)\n"
    "  local cx, cy = tonumber(x[5]), tonumber(y[5])\n"
    "  return cx < cy or (cx == cy and x[1] < y[1])\n"
    "end)\n"
    "for _, v in ipairs(rows) do for i = 1, 5 do out[#out + 1] = v[i] end end\n"
    "return out\n";

int wd_rd_kill_list(wd_store *s, json_t **out)
{
    *out = NULL;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    redisReply *x = wd_rd_run(RD(s), RS_KILL_LIST, KILL_LIST_LUA, &a);
    if (!x)
        return -1;
    json_t *l = json_array();
    size_t k = x->type == REDIS_REPLY_ARRAY ? x->elements / 5 : 0;
    for (size_t i = 0; l && i < k; i++)
        json_array_append_new(l, json_pack("{s:s,s:s,s:s,s:b,s:I}", "agent", col(x, 5 * i), "by", col(x, 5 * i + 1),
                                           "reason", col(x, 5 * i + 2), "automatic", !strcmp(col(x, 5 * i + 3), "1"),
                                           "created_ms", (json_int_t)atoll(col(x, 5 * i + 4))));
    freeReplyObject(x);
    *out = l;
    return l ? 0 : -1;
}

static const char KILL_READ_LUA[] = "local P, out = ARGV[1], {0}\n"
                                    "for _, a in ipairs(redis.call('SMEMBERS', P .. 'kills')) do\n"
                                    "  out[#out + 1] = a\n"
                                    "  out[#out + 1] = redis.call('HGET', P .. 'kill:' .. a, 'reason') or ''\n"
                                    "end\n"
                                    "out[1] = (#out - 1) / 2\n"
                                    "local h = redis.call('HGETALL', P .. 'health')\n"
                                    "for i = 1, #h do out[#out + 1] = h[i] end\n"
                                    "return out\n";

/* KILL_READ's answer as the two tables: 0, or -1 */
static int kills_of(const redisReply *x, json_t **killed, json_t **failing)
{
    *killed = *failing = NULL;
    json_t *k = json_object(), *f = json_object();
    size_t nk = (size_t)wd_rd_int(x, 0), n = x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
    for (size_t i = 0; i < nk && 2 + 2 * i < n; i++)
        json_object_set_new(k, col(x, 1 + 2 * i), json_string(col(x, 2 + 2 * i)));
    for (size_t i = 1 + 2 * nk; i + 1 < n; i += 2)
        if (atoll(col(x, i + 1)) > 0)
            json_object_set_new(f, col(x, i), json_integer(atoll(col(x, i + 1))));
    if (!k || !f) {
        json_decref(k);
        json_decref(f);
        return -1;
    }
    *killed = k;
    *failing = f;
    return 0;
}

int wd_rd_kill_read(wd_store *s, json_t **killed, json_t **failing)
{
    *killed = *failing = NULL;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    redisReply *x = wd_rd_run(RD(s), RS_KILL_READ, KILL_READ_LUA, &a);
    if (!x)
        return -1;
    int rc = kills_of(x, killed, failing);
    freeReplyObject(x);
    return rc;
}

typedef struct kills_ask {
    wd_store_kills_fn fn;
    void *ud;
} kills_ask;

static void kills_answer(void *ud, redisReply *x)
{
    kills_ask *k = ud;
    json_t *killed = NULL, *failing = NULL;
    int rc = x ? kills_of(x, &killed, &failing) : -1;
    k->fn(k->ud, rc, killed, failing);
    free(k);
}

int wd_rd_kill_read_async(wd_store *s, wd_store_kills_fn fn, void *ud)
{
    kills_ask *k = malloc(sizeof *k);
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    if (!k) {
        wd_rd_done(&a);
        return 1;
    }
    k->fn = fn;
    k->ud = ud;
    if (wd_rd_async_run(RD(s), RS_KILL_READ, KILL_READ_LUA, &a, kills_answer, k) < 0) {
        free(k);
        return 1;
    }
    return 0;
}

static const char HEALTH_LUA[] = "if ARGV[3] == '1' then\n"
                                 "  return redis.call('HINCRBY', ARGV[1] .. 'health', ARGV[2], 1)\n"
                                 "end\n"
                                 "redis.call('HDEL', ARGV[1] .. 'health', ARGV[2])\n"
                                 "return 0\n";

int wd_rd_health_note(wd_store *s, const char *agent, int failed, long long *count)
{
    *count = 0;
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    wd_rd_s(&a, agent);
    wd_rd_i(&a, failed != 0);
    redisReply *x = wd_rd_run(RD(s), RS_HEALTH, HEALTH_LUA, &a);
    if (!x)
        return -1;
    *count = x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
    freeReplyObject(x);
    return 0;
}

/* ---- detectors' state ---- */

static const char DETECT_GET_LUA[] = "return redis.call('HGET', ARGV[1] .. 'det:' .. ARGV[2], ARGV[3])\n";
static const char DETECT_PUT_LUA[] = "local k = ARGV[1] .. 'det:' .. ARGV[2]\n"
                                     "if ARGV[4] == '0' then return redis.call('HDEL', k, ARGV[3]) end\n"
                                     "return redis.call('HSET', k, ARGV[3], ARGV[5])\n";

/* each part led by its length, so no name (a user's may hold any byte) can make two
** scopes one key */
static void scope_arg(wd_rd_args *a, wd_buf *b, const wd_store_scope *sc)
{
    const char *part[4] = {sc->agent, sc->user, sc->origin, sc->detector};
    for (int i = 0; i < 4; i++)
        wd_buf_addf(b, "%zu:%s", strlen(part[i] ? part[i] : ""), part[i] ? part[i] : "");
    wd_rd_s(a, b->p);
}

int wd_rd_detect_get(wd_store *s, const wd_store_scope *sc, const char *key, char **text)
{
    *text = NULL;
    wd_buf b = {0};
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    scope_arg(&a, &b, sc);
    wd_rd_s(&a, key);
    redisReply *x = b.p ? wd_rd_run(RD(s), RS_DETECT_GET, DETECT_GET_LUA, &a) : (wd_rd_done(&a), NULL);
    wd_buf_free(&b);
    if (!x)
        return -1;
    int rc = 0;
    if (x->type == REDIS_REPLY_STRING && !(*text = wd_strndup(x->str, x->len)))
        rc = -1;
    freeReplyObject(x);
    return rc;
}

int wd_rd_detect_put(wd_store *s, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms)
{
    (void)now_ms;
    wd_buf b = {0};
    wd_rd_args a;
    wd_rd_init(&a, RD(s));
    scope_arg(&a, &b, sc);
    wd_rd_s(&a, key);
    wd_rd_i(&a, text != NULL);
    wd_rd_s(&a, text);
    redisReply *x = b.p ? wd_rd_run(RD(s), RS_DETECT_PUT, DETECT_PUT_LUA, &a) : (wd_rd_done(&a), NULL);
    wd_buf_free(&b);
    freeReplyObject(x);
    return x ? 0 : -1;
}

/* state kept before scopes lives only in SQLite stores: nothing to adopt */
void wd_rd_detect_adopt(wd_store *s, const wd_store_scope *sc)
{
    (void)s;
    (void)sc;
}
