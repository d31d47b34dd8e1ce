/* ask.h - a run's question to the state store, asked without waiting (wd_store_ask). A
** run has one question out at most. Its answer waits in the run for the code that asked,
** which asks again when told (again) and is then given it; a run that ends first drops
** it. The question copies what the answer is read against, so nothing of the run is
** touched after it went. */
#ifndef WD_ASK_H
#define WD_ASK_H

#include "store.h"
#include "approval.h"

typedef struct wd_run wd_run;

/* Asks op (its inputs copied; key, name, keys, step, approval are read from op and
** answered into it): 1 answered now (*rc what the plain operation returns, op's outputs
** filled: the caller frees text and owner and decrefs the approval's lists), 2 out:
** again(r) is called on the loop when the answer came; the same call made then answers
** 1 with it. */
int wd_run_ask(wd_run *r, wd_store_op *op, void (*again)(wd_run *r), int *rc);
/* the question is dropped (the run ends or gave it up); accepts a run with none */
void wd_run_unask(wd_run *r);

#endif
