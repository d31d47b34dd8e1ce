/* ready.c - the runs whose turn it is: a queue the driver (engine.c) takes from once
** per loop pass */
#include "engine.h"

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
