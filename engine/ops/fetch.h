/* fetch.h - ctx:http for tools (fetch.c): allowed hosts only, the tool's timeout,
** transient failures retried, the body capped. */
#ifndef WD_FETCH_H
#define WD_FETCH_H

#include "engine.h"

int wd_fetch_call(wd_run *r, lua_State *L); /* checks, records r->fetch, yields */
void wd_fetch_start(wd_run *r);
void wd_fetch_cancel(wd_run *r, const char *why); /* the request dropped, if any (why: unused) */
/* opts.timeout_ms of the table at idx (what names the call in the error), never longer
** than the running tool's timeout_ms; raises on a value that is not a positive integer */
lua_Integer wd_tool_timeout_opt(wd_run *r, lua_State *L, int idx, const char *what);
/* the kind of operation a ctx:http request is (engine.h) */
extern const wd_op_kind wd_op_http;

#endif
