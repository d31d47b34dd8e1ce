/* admin.h - operator actions shared by the command line and the HTTP API: the breakers'
** list and their reset, the kill switch. Each returns the audit record its caller
** writes (to its own log handle), so the two front ends record the same facts. */
#ifndef WD_ADMIN_H
#define WD_ADMIN_H

#include <jansson.h>

#include "policy.h"
#include "store.h"

/* [{name, state, failures, opened_at, retry_in_ms, probes_in_flight}] by name; caller
** decrefs; NULL on a store error */
json_t *wd_admin_breakers(wd_store *st, const wd_policy *p);
/* closes breaker name by hand. 1 done (*from: its state before; *rec: the
** breaker_closed record, caller appends or decrefs), 0 no such breaker, -1 store error */
int wd_admin_breaker_reset(wd_store *st, const char *name, const char *by, int *from, json_t **rec);
/* kills (revive 0) or revives agent (WD_KILL_ALL: every agent). 1 changed, 0 it already
** was, -1 store error; *rec: the kill_switch record either way (0 or 1) */
int wd_admin_kill(wd_store *st, const char *agent, int revive, const char *by, const char *reason, json_t **rec);

/* the user whose api_key_sha256 is the SHA-256 of key (every user compared, each in
** constant time), or NULL */
const wd_user *wd_admin_user_by_key(const wd_policy *p, const char *key);

/* Who decides at the command line, proved: the user whose API key is given (key, NULL
** none), else the user whose os_user is login (the one running the command), else the
** name given with --by (by) when the policy sets approvals.trust_cli_identity. A --by
** that names someone else than the proof is refused. 0 with *name (borrowed from p or
** by) and *via ("api_key", "os_user" or "cli_flag"), or -1 with err saying what to do. */
int wd_admin_identify(const wd_policy *p, const char *key, const char *login, const char *by, const char **name,
                      const char **via, char *err, size_t n);

#endif
