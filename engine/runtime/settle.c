/* settle.c - the common tail of operations that called out (settle.h) */
#include "settle.h"
#include "budget.h"

#include <lauxlib.h>

void wd_run_settle(wd_run *r, const wd_settle *s)
{
    wd_breaker_change ch = {0};
    if (s->breaker && s->admitted && *s->admitted) {
        wd_breaker_cfg bc = wd_run_breaker_cfg(r);
        int state = wd_breakers_outcome(r->eng->breakers, s->breaker, &bc, s->ok, s->probe, &ch);
        *s->admitted = 0;
        if (s->record && s->state_in_record)
            json_object_set_new(s->record, "circuit_breaker_state", json_string(wd_breaker_state_name(state)));
    }
    if (s->breaker_first)
        wd_run_audit_breaker(r, s->breaker, &ch, s->tool, s->model);
    r->cost += s->cost;
    if (s->record)
        wd_run_audit(r, s->record);
    if (s->hold)
        wd_budget_settle(r, s->hold, s->cost);
    if (!s->breaker_first)
        wd_run_audit_breaker(r, s->breaker, &ch, s->tool, s->model);
    if (s->observe)
        wd_run_observe(r, s->observe);
    lua_State *co = s->co;
    if (!co) { /* the run ends instead (a stream cut at its budget) */
        if (s->clear)
            s->clear(r);
        return;
    }
    int nres = 0;
    r->sb->in_engine++; /* the engine's own pushes take the slack, not the script's cap */
    if (s->fail) {
        luaL_pushfail(co);
        lua_pushstring(co, s->fail);
        nres = 2;
    } else if (s->push) {
        nres = s->push(r, co, s->ud);
    }
    r->sb->in_engine--;
    if (s->clear)
        s->clear(r);
    wd_run_schedule(r, co, nres);
}
