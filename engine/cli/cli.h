/* cli.h - what the files of the `warden` command share: args.c reads the command line,
** cli.c runs agents, checks and the server, opcmds.c holds the operator's commands,
** auditcmds.c those that read the audit log. */
#ifndef WD_CLI_H
#define WD_CLI_H

#include <jansson.h>
#include "policy.h"

typedef struct {
    const char *pos[64];
    int npos;
    const char *user, *session, *policy, *llm, *run, *event, *since, *until, *by, *reason, *key_file, *store, *out;
    int json, all, stream, merged;
} args_t;

enum { REPORT_COST, REPORT_COMPLIANCE, REPORT_FAILURES };                  /* warden report KIND */
enum { AUDIT_VERIFY, AUDIT_QUERY, AUDIT_TRACE, AUDIT_ERASE, AUDIT_MERGE }; /* warden audit WHAT */

/* args.c */
/* argv[from..] into a (positional arguments and --options); 0, or -1 (the caller gives
** the usage) */
int wd_cli_parse(int argc, char **argv, int from, args_t *a);
wd_policy *wd_cli_policy(args_t *a); /* the policy found (below) loaded; NULL after its errors */
#define WD_ETC_POLICY "/etc/warden/policy.yaml"
/* --policy > WARDEN_POLICY > ./policies/default.yaml > /etc/warden/policy.yaml; NULL after
** a message naming every place tried. given: the option's value or NULL; borrowed */
const char *wd_cli_policy_path(const char *given);
const char *wd_cli_listen(const char *given);     /* --listen > WARDEN_LISTEN > 127.0.0.1:8080 */
const char *wd_cli_store_path(const char *given); /* --store > WARDEN_STORE > NULL (the policy's) */
/* the policy's state store opened (caller closes it and unrefs *p); NULL after a message */
typedef struct wd_store wd_store;
wd_store *wd_cli_store(args_t *a, wd_policy **p);

/* help.c: one table says what each command takes */
#include <stdio.h>
/* warden help [--man|--commands|--home|--options CMD|COMMAND...]: argv[from..]; exit code */
int wd_cli_help(int argc, char **argv, int from, FILE *f);
/* a --help or -h among argv[2..]: that command's help printed, 0; else -1 */
int wd_cli_help_for(int argc, char **argv);
int wd_cli_usage(const char *msg); /* the commands on stderr (msg first, when given); 2 */

/* opcmds.c: each returns the command's exit code */
int wd_cli_breakers(args_t *a);
int wd_cli_approvals(args_t *a);
int wd_cli_kill(args_t *a, int revive);
int wd_cli_report(args_t *a, int kind);
int wd_cli_notify(args_t *a); /* warden notify list [--all] */
/* rec (taken) into the policy's log; 0, or -1 after a message */
int wd_cli_audit_one(const wd_policy *p, json_t *rec);

/* devcmds.c: warden init DIR, warden test [PATH...]; exit codes */
int wd_cli_init(int argc, char **argv);
int wd_cli_test(int argc, char **argv);

/* auditcmds.c */
int wd_cli_audit(args_t *a, int what);

#endif
