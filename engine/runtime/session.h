/* session.h - sessions (docs/lua-api.md, Sessions): runs given the same session id share
** their conversation, kept in the state store, owned by the user who started it, capped by
** the policy's sessions.max_messages and max_tokens (the oldest turns dropped first) and
** expiring sessions.ttl after its last turn. */
#ifndef WD_SESSION_H
#define WD_SESSION_H

#include "engine.h"

/* At the run's start: the session's turns go before the run's own history (ctx:history).
** 0 (a new session, or its turns loaded); 1 refused: the session is another user's (msg);
** -1 the store failed (msg); 2 the store was asked without waiting, and again(r) is
** called on the loop (the same call then answers). */
int wd_session_load(wd_run *r, char *msg, size_t n, void (*again)(wd_run *r));
#define WD_TURNS_MAX 1000 /* messages a conversation given to a run may hold */

/* A conversation as runs take it (wd_run_opts.history, a session's turns): a list of at
** most WD_TURNS_MAX {role: system, user or assistant, content: text}. 0 when it is one;
** -1 not a list, or too long; else the 1-based place of the first message that is not. */
long wd_session_turns_check(const json_t *turns);
/* 1 when the session's turns the run was given pass the policy's caps (an agent's
** summarize hook is then asked to shorten them) */
int wd_session_over(const wd_run *r);
/* The session's turns replaced by what the agent's summarize hook returned (takes turns):
** the run's history and, at its end, the session. 0, or -1 with what is wrong in err. */
int wd_session_replace(wd_run *r, json_t *turns, char *err, size_t n);
/* At a completed run's end: its query and final answer appended to the session, the
** oldest turns dropped past the caps, its expiry pushed on. A failure goes to the run's
** errors. */
void wd_session_save(wd_run *r);

#endif
