/* exec.h - ctx:exec for tools of category execute (exec.c): a command under
** bubblewrap with limits, its output captured. */
#ifndef WD_EXEC_H
#define WD_EXEC_H

#include "engine.h"

int wd_exec_call(wd_run *r, lua_State *L); /* checks, records r->exec, yields */
void wd_exec_start(wd_run *r);
void wd_exec_cancel(wd_run *r, const char *why); /* kills the command, if any (why: unused) */
/* the kind of operation a ctx:exec command is (engine.h) */
extern const wd_op_kind wd_op_exec;

#endif
