/* notices.c - what other processes changed, told by the state store (wd_store_watch;
** on Redis, a subscription on the engine's loop): a kill is enforced at once, a run
** waiting for an approval reads it at once, a breaker is read again at its next use.
** The polls behind each stay: a notice only makes them sooner. */
#include "engine.h"
#include "killswitch.h"

#include <string.h>

/* every run waiting on an operation that looks at the store (a person's decision) looks
** now: each operation kind says how (its notice hook) */
static void wake_waiting(wd_engine *e)
{
    for (wd_run *r = e->live; r; r = r->live_next)
        for (int k = 0; k < OP_COUNT; k++)
            if (e->hooks->ops[k] && e->hooks->ops[k]->notice)
                e->hooks->ops[k]->notice(r);
}

void wd_notice_take(void *ud, const char *kind, const char *name)
{
    wd_engine *e = ud;
    int all = !strcmp(kind, "resync");
    if (all || !strcmp(kind, "kill"))
        wd_kills_now(e);
    if (all || !strcmp(kind, "breaker"))
        wd_breakers_forget(e->breakers, all ? NULL : name);
    if (all || !strcmp(kind, "approval"))
        wake_waiting(e);
}
