/* redisbreaker.c - a breaker's state machine moved by Redis itself, one script per move
** (wd_store_breaker_step): every host's admissions, outcomes and half-open probe slots
** are taken in turn on the one row, with no lock and one round trip. The script is
** breaker.c's wd_breaker_admit and wd_breaker_outcome written again in Redis's Lua;
** test_redis.c runs both on the same random moves and compares every row. */
#include "redispriv.h"
#include "util.h"

#include <string.h>

static const char BR_STEP_LUA[] =
    "local P, name, kind, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])\n"
    "local threshold, open_ms, hop = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local success, probe = ARGV[8] == '1', ARGV[9] == '1'\n"
    "local k = P .. 'br:' .. name\n"
    "local v = redis.call('HMGET', k, 'state', 'failures', 'opened_ms', 'probes', 'probe_ms', 'updated_ms')\n"
    "local state, failures = tonumber(v[1] or '0'), tonumber(v[2] or '0')\n"
    "local opened, probes, probe_ms = tonumber(v[3] or '0'), tonumber(v[4] or '0'), tonumber(v[5] or '0')\n"
    "local updated = tonumber(v[6] or '0')\n"
    "local from, changed, admitted, probe_out, retry = state, false, 1, 0, 0\n"
    "if kind == 'admit' and state ~= 0 then\n"
    "  if opened > now or probe_ms > now then\n" /* a stamp ahead of now starts its wait again */
    "    if opened > now then opened = now end\n"
    "    if probe_ms > now then probe_ms = now end\n"
    "    changed = true\n"
    "  end\n"
    "  if state == 1 then\n"
    "    local elapsed = now - opened\n"
    "    if elapsed < open_ms then\n"
    "      admitted, retry = 0, open_ms - elapsed\n"
    "    else\n"
    "      state, probes, changed = 2, 0, true\n"
    "    end\n"
    "  end\n"
    "  if admitted == 1 and probes >= hop then\n"
    "    local held = now - probe_ms\n"
    "    if held < open_ms then\n"
    "      admitted, retry = 0, open_ms - held\n"
    "    else\n"
    "      probes = 0\n"
    "    end\n"
    "  end\n"
    "  if admitted == 1 then\n"
    "    probes, probe_ms, probe_out, changed = probes + 1, now, 1, true\n"
    "  end\n"
    "elseif kind == 'outcome' then\n"
    "  if state == 2 then\n"
    "    if probe then\n"
    "      probes, changed = 0, true\n"
    "      if success then\n"
    "        state, failures = 0, 0\n"
    "      else\n"
    "        state, opened, failures = 1, now, failures + 1\n"
    "      end\n"
    "    end\n"
    "  elseif state == 0 then\n"
    "    if success then\n"
    "      if failures > 0 then failures, changed = 0, true end\n"
    "    else\n"
    "      failures, changed = failures + 1, true\n"
    "      if failures >= threshold then state, opened, probes = 1, now, 0 end\n"
    "    end\n"
    "  end\n"
    "elseif kind == 'release' then\n"
    "  if state == 2 and probes > 0 then probes, changed = probes - 1, true end\n"
    "end\n"
    "if changed then\n"
    "  updated = now\n"
    "  redis.call('HSET', k, 'state', state, 'failures', failures, 'opened_ms', opened, 'probes', probes,\n"
    "    'probe_ms', probe_ms, 'updated_ms', updated)\n"
    "  redis.call('SADD', P .. 'breakers', name)\n"
    "  if state ~= from then redis.call('PUBLISH', P .. 'events', 'breaker ' .. name) end\n"
    "end\n"
    "return {admitted, probe_out, retry, from, state, failures, opened, probes, probe_ms, updated}\n";

static const char *const STEP_KIND[] = {
    [WD_BRS_ADMIT] = "admit", [WD_BRS_OUTCOME] = "outcome", [WD_BRS_RELEASE] = "release"};

static void step_args(wd_redis *r, wd_rd_args *a, const char *name, const wd_breaker_step *st)
{
    wd_rd_init(a, r);
    wd_rd_s(a, name);
    wd_rd_s(a, STEP_KIND[st->kind]);
    wd_rd_i(a, st->now_ms);
    wd_rd_i(a, st->failure_threshold);
    wd_rd_i(a, st->open_ms);
    wd_rd_i(a, st->half_open_probes);
    wd_rd_i(a, st->success != 0);
    wd_rd_i(a, st->probe != 0);
}

static int step_read(wd_redis *r, const redisReply *x, wd_store_op *op)
{
    wd_breaker_step *st = op->step;
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 10) {
        snprintf(r->err, sizeof r->err, "redis: the breaker script answered something else");
        return -1;
    }
    st->admitted = (int)wd_rd_int(x, 0);
    st->probe_out = (int)wd_rd_int(x, 1);
    st->retry_in_ms = wd_rd_int(x, 2);
    st->from = (int)wd_rd_int(x, 3);
    memset(&st->row, 0, sizeof st->row);
    wd_strlcpy(st->row.name, op->name, sizeof st->row.name);
    st->row.state = (int)wd_rd_int(x, 4);
    st->row.failures = wd_rd_int(x, 5);
    st->row.opened_ms = wd_rd_int(x, 6);
    st->row.probes = wd_rd_int(x, 7);
    st->row.probe_ms = wd_rd_int(x, 8);
    st->row.updated_ms = wd_rd_int(x, 9);
    return 1;
}

int wd_rd_breaker_step(wd_store *s, const char *name, wd_breaker_step *st)
{
    if (st->kind < WD_BRS_ADMIT || st->kind > WD_BRS_RELEASE)
        return -1;
    wd_store_op op = {.kind = WD_SOP_BREAKER_STEP, .name = name, .step = st};
    wd_rd_args a;
    step_args(RD(s), &a, name, st);
    return wd_rd_call(RD(s), RS_BR_STEP, BR_STEP_LUA, &a, step_read, &op);
}

int wd_rd_breaker_ask(wd_store *s, wd_store_op *op, wd_store_done fn, void *ud)
{
    if (op->step->kind < WD_BRS_ADMIT || op->step->kind > WD_BRS_RELEASE) {
        snprintf(RD(s)->err, sizeof RD(s)->err, "no such breaker step");
        return -1;
    }
    wd_rd_args a;
    step_args(RD(s), &a, op->name, op->step);
    return wd_rd_ask_script(RD(s), RS_BR_STEP, BR_STEP_LUA, &a, step_read, op, fn, ud);
}
