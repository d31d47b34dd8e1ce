/* llm.h - one ctx:llm call on the loop: provider breaker -> HTTP (or the mock) with
** connect/read timeouts -> transient failures retried with backoff -> parse -> cost ->
** llm_call audited -> the agent resumed with the answer or (nil, message). */
#ifndef WD_LLM_H
#define WD_LLM_H

#include "engine.h"

/* starts the call recorded in r->req (model, call) */
void wd_llm_start(wd_run *r);
/* the kind of operation an LLM call is (engine.h) */
extern const wd_op_kind wd_op_llm;

#endif
