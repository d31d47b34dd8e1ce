/* redact.h - secrets never reach the audit log: values under secret-named keys and
** card numbers, emails, bearer tokens (the policy's patterns) inside any string. */
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
/* redacts in place one value (and everything below it) */
void wd_redact_value(const wd_policy *p, json_t *v);
/* 1 when a key names a secret (case-insensitive substring of a redact key) */
int wd_redact_is_secret_key(const wd_policy *p, const char *key);
/* caller frees: s with every pattern match replaced, or NULL when nothing matched */
char *wd_redact_string(const wd_policy *p, const char *s, size_t len);

#endif
