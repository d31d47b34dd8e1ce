/* ready.c - the runs whose turn it is: a queue the driver (engine.c) takes from once
** per loop pass */
#include "engine.h"

#include <lauxlib.h>

static void ready_push(wd_run *r)
{
    wd_engine *e = r->eng;
    if (r->in_ready)
        return;
    r->in_ready = 1;
    r->next_ready = NULL;
    if (e->ready_tail)
        e->ready_tail->next_ready = r;
    else
        e->ready_head = r;
    e->ready_tail = r;
    if (!e->in_ready)
        event_active(e->ready_ev, EV_READ, 0);
}

void wd_ready_remove(wd_run *r)
{
    wd_engine *e = r->eng;
    if (!r->in_ready)
        return;
    wd_run **pp = &e->ready_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next_ready;
    }
    if (*pp) {
        *pp = r->next_ready;
        if (e->ready_tail == r)
            e->ready_tail = prev;
    }
    r->in_ready = 0;
}

void wd_run_schedule(wd_run *r, lua_State *co, int nargs)
{
    r->resume_co = co;
    r->resume_nargs = nargs;
    ready_push(r);
}

void wd_run_reply_fail(wd_run *r, lua_State *co, const char *msg)
{
    r->sb->in_engine++; /* the engine's own pushes take the slack, not the script's cap */
    lua_pushnil(co);
    lua_pushstring(co, msg);
    r->sb->in_engine--;
    wd_run_schedule(r, co, 2);
}

void wd_run_reply_error(wd_run *r, lua_State *co, const char *msg)
{
    r->sb->in_engine++;
    wd_push_error_table(co, msg);
    r->sb->in_engine--;
    wd_run_schedule(r, co, 1);
}

void wd_push_error_table(lua_State *L, const char *msg)
{
    lua_createtable(L, 0, 1);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "error");
}
