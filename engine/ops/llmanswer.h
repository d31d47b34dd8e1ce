/* llmanswer.h - an LLM answer as the agent reads it and as the audit log records it:
** its numbers range-checked, its tool calls capped, pushed as a Lua table, traced. */
#ifndef WD_LLMANSWER_H
#define WD_LLMANSWER_H

#include "engine.h"
#include "schema.h"

/* 0, or -1 with msg naming the field of the normalized answer a that is out of range */
int wd_llm_answer_check(json_t *a, char *msg, size_t n);
/* the calls the agent is given (a new reference): at most defaults.max_tool_calls_per_answer,
** the refusal of the rest audited */
json_t *wd_llm_answer_cap(wd_run *r, json_t *calls);
/* the answer as the agent reads it, pushed on co */
void wd_llm_answer_push(wd_run *r, lua_State *co, json_t *a, json_t *all, json_t *calls, long long in, long long out,
                        double cost, const char *model);
/* what the model said and asked for, into the llm_call record ev */
void wd_llm_answer_trace(wd_run *r, json_t *ev, json_t *a, json_t *all);
/* The answer's text (white space and a fenced block around it taken off) parsed and
** validated against s: 0 with *out the value (caller owns), or -1 with err saying why
** ("/name: is required", "the answer is not JSON ..."); a's content is then the JSON
** text alone */
int wd_llm_answer_fits(const wd_schema *s, json_t *a, json_t **out, char *err, size_t n);
/* A corrective ask: the answer a and what err says is wrong with it appended to the
** call's messages; the bytes added */
size_t wd_llm_answer_correction(json_t *call, json_t *a, const char *err);

#endif
