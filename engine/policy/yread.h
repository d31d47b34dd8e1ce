/* yread.h - reading a policy's YAML nodes into its fields (yread.c), for policy.c,
** sections.c and auditpol.c: each reader checks type and range and reports a problem with the file,
** line and column, so that every problem of a policy is reported at once. */
#ifndef WD_YREAD_H
#define WD_YREAD_H

#include "policy.h"
#include "ydoc.h"

typedef struct {
    wd_perrors *errs;
    wd_policy *p;
    const char *fname;
} wd_yread;

void wd_yread_err(wd_yread *c, const wd_ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* n is a map whose keys are all in keys (an unknown one is reported with the nearest
** known key); 0, or -1 (reported) */
int wd_yread_map(wd_yread *c, const wd_ynode *n, const char *where, const char *const *keys);
void wd_yread_int(wd_yread *c, const wd_ynode *m, const char *key, const char *where, long long *dst, long long lo,
                  long long hi);
void wd_yread_dur(wd_yread *c, const wd_ynode *m, const char *key, const char *where, long long *dst, long long lo,
                  long long hi);
void wd_yread_num(wd_yread *c, const wd_ynode *m, const char *key, const char *where, double *dst, double lo,
                  double hi);
void wd_yread_bool(wd_yread *c, const wd_ynode *m, const char *key, const char *where, int *dst);
void wd_yread_str(wd_yread *c, const wd_ynode *m, const char *key, const char *where, char **dst);
int wd_yread_strlist(wd_yread *c, const wd_ynode *n, const char *where, wd_strlist *out);
void wd_yread_strlist_free(wd_strlist *l);
void wd_yread_rxlist(wd_yread *c, const wd_ynode *n, const char *where, wd_rxlist *out);
void wd_yread_rxlist_free(wd_rxlist *l);
int wd_yread_in_list(const char *s, const char *const *l);

/* sections.c: every section of the policy at root into c->p; c->p, or NULL when the top
** level is not a map of known keys */
wd_policy *wd_policy_build(wd_yread *c, const wd_ynode *root);

/* auditpol.c: the audit and notify sections; the redaction patterns compiled (after
** every section is read) */
void wd_policy_load_audit(wd_yread *c, const wd_ynode *a);
void wd_policy_load_notify(wd_yread *c, const wd_ynode *n);
/* mcppol.c: the mcp section; its servers freed */
void wd_policy_load_mcp(wd_yread *c, const wd_ynode *n);
void wd_policy_mcp_free(wd_policy *p);
int wd_policy_compile_redactions(wd_yread *c, const wd_ynode *root);
/* the audit, notify and serve.auth_failures defaults of a new policy */
void wd_policy_account_defaults(wd_policy *p);

#endif
