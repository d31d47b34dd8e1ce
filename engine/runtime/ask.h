/* ask.h - a run's question to the state store, asked without waiting (wd_store_ask). A
** run has one question out at most. Its answer waits in the run for the code that asked,
** which asks again when told (again) and is then given it; a run that ends first drops
** it. The question copies what the answer is read against, so nothing of the run is
** touched after it went. */
#ifndef WD_ASK_H
#define WD_ASK_H

#include "store.h"
#include "approval.h"
#include "breaker.h"

typedef struct wd_run wd_run;

/* Asks op (its inputs copied; key, name, keys, step, approval are read from op and
** answered into it): 1 answered now (*rc what the plain operation returns, op's outputs
** filled: the caller frees text and owner and decrefs the approval's lists), 2 out:
** again(r) is called on the loop when the answer came; the same call made then answers
** 1 with it. again NULL: asked and answered at once (the plain operation). */
int wd_run_ask(wd_run *r, wd_store_op *op, void (*again)(wd_run *r), int *rc);
/* wd_breakers_admit for a run, asking the store without waiting when again is given: as
** it answers, or 2 (again(r) is called on the loop; the same call then answers) */
int wd_run_breaker_admit(wd_run *r, const char *name, const wd_breaker_cfg *c, int *probe, char *msg, size_t n,
                         wd_breaker_change *ch, void (*again)(wd_run *r));
/* the question is dropped (the run ends or gave it up); accepts a run with none */
void wd_run_unask(wd_run *r);

#endif
