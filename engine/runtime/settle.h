/* settle.h - the one tail every operation that called out ends with: a tool call, an
** LLM call, ctx:http, ctx:exec (docs/architecture.md, Operations). In this order: the
** breaker told the outcome (its state into the record), the cost counted, the record
** audited, the budget's reservation settled at the cost, the breaker's change audited
** (before the record for an LLM call, whose endpoint's breaker decides before the
** answer is read), the detectors told, the results pushed onto the waiting coroutine
** (inside the engine's memory slack), the operation's state released, the coroutine
** resumed. A step whose field is empty is skipped. */
#ifndef WD_SETTLE_H
#define WD_SETTLE_H

#include "engine.h"

typedef struct wd_settle {
    json_t *record;           /* the operation's audit record; taken */
    double cost;              /* joins the run's cost */
    wd_budget_hold *hold;     /* settled at cost */
    const char *breaker;      /* the breaker told the outcome when *admitted */
    int *admitted;            /* cleared once told */
    int probe, ok;            /* a half-open probe; the outcome the breaker counts */
    int state_in_record;      /* the breaker's state after the outcome as circuit_breaker_state */
    int breaker_first;        /* the breaker's change audited before the record */
    const char *tool, *model; /* named by the breaker's record */
    json_t *observe;          /* the detectors' event (NULL none); taken */
    lua_State *co;            /* resumed; NULL: nothing pushed, nothing resumed (the caller ends the run) */
    const char *fail;         /* push nil, fail; else push() */
    int (*push)(wd_run *r, lua_State *co, void *ud); /* pushes the results, returns how many */
    void *ud;
    void (*clear)(wd_run *r); /* releases the operation's state */
} wd_settle;

void wd_run_settle(wd_run *r, const wd_settle *s);

#endif
