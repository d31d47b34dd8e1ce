/* redact.h - secrets never reach the audit log: values under secret-named keys and
** secrets by their shape in any string (key: value, bearer tokens, provider keys, private
** keys) and the policy's patterns (card numbers, emails...). */
#ifndef WD_REDACT_H
#define WD_REDACT_H

#include <jansson.h>
#include "audit.h"
#include "policy.h"

/* redacts in place every field of an audit record but the engine's own identifiers;
** a record that held any gets sensitive_data: N (the values redacted). Returns N. */
int wd_redact_record(const wd_policy *p, json_t *rec);
/* A record of no run (a server's, an operator's, a budget's): the run_id, session_id,
** user_id and agent it lacks are null, it is redacted by p and appended to a. Takes rec;
** what wd_audit_append returns */
int wd_redact_append(const wd_policy *p, wd_audit *a, json_t *rec);
/* redacts in place one value (and everything below it); the values redacted */
int wd_redact_value(const wd_policy *p, json_t *v);
/* 1 when a key names a secret (case-insensitive substring of a redact key) */
int wd_redact_is_secret_key(const wd_policy *p, const char *key);
/* caller frees: s with every secret and pattern match replaced, or NULL when nothing
** matched; *hits (may be NULL) grows by the matches */
char *wd_redact_string(const wd_policy *p, const char *s, size_t len, int *hits);

#endif
