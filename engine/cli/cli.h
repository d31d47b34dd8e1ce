/* cli.h - what the files of the `warden` command share: args.c reads the command line,
** cli.c runs agents, checks and the server, opcmds.c holds the operator's commands,
** auditcmds.c those that read the audit log. */
#ifndef WD_CLI_H
#define WD_CLI_H

#include <jansson.h>
#include "policy.h"

typedef struct {
    const char *pos[4];
    int npos;
    const char *user, *session, *policy, *llm, *run, *event, *since, *until, *by, *reason, *key_file;
    int json, all;
} args_t;

enum { REPORT_COST, REPORT_COMPLIANCE, REPORT_FAILURES };     /* warden report KIND */
enum { AUDIT_VERIFY, AUDIT_QUERY, AUDIT_TRACE, AUDIT_ERASE }; /* warden audit WHAT */

/* args.c */
/* argv[from..] into a (positional arguments and --options); 0, or -1 (the caller gives
** the usage) */
int wd_cli_parse(int argc, char **argv, int from, args_t *a);
void wd_cli_help(void);              /* the usage on stdout (warden help) */
int wd_cli_usage(const char *msg);   /* the usage on stderr (msg first, when given); 2 */
wd_policy *wd_cli_policy(args_t *a); /* --policy (or the default) loaded; NULL after its errors */
/* the policy's state store opened (caller closes it and unrefs *p); NULL after a message */
typedef struct wd_store wd_store;
wd_store *wd_cli_store(args_t *a, wd_policy **p);

/* opcmds.c: each returns the command's exit code */
int wd_cli_breakers(args_t *a);
int wd_cli_approvals(args_t *a);
int wd_cli_kill(args_t *a, int revive);
int wd_cli_report(args_t *a, int kind);
int wd_cli_notify(args_t *a); /* warden notify list [--all] */
/* rec (taken) into the policy's log; 0, or -1 after a message */
int wd_cli_audit_one(const wd_policy *p, json_t *rec);

/* auditcmds.c */
int wd_cli_audit(args_t *a, int what);

#endif
