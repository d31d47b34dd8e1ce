/* args.c - the `warden` command line read: its usage, its options, the policy it names */
#include "cli.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage:\n"
    "  warden run AGENT [QUERY] [--user ID] [--session ID] [--policy FILE] [--llm mock:FILE|URL] [--json]\n"
    "  warden policy check FILE [--json]\n"
    "  warden check PATH... [--policy FILE] [--json]   (agent directories or scripts, as a run loads them)\n"
    "  warden audit verify [FILE] [--policy FILE] [--json]\n"
    "  warden audit query [FILE] [--run ID] [--user ID] [--event TYPE] [--since T] [--policy FILE]\n"
    "  warden audit trace RUN_ID [FILE] [--policy FILE]   (one run as a story)\n"
    "  warden audit erase --user ID [--reason TEXT] [--by WHO] [--policy FILE]\n"
    "  warden notify list [--all] [--policy FILE] [--json]   (dead letters; --all: pending ones too)\n"
    "  warden report cost [AUDIT_FILE] [--since T] [--until T] [--policy FILE] [--json]\n"
    "  warden approvals list [--all] [--policy FILE] [--json]\n"
    "  warden approvals approve ID [--key-file FILE] [--by WHO] [--policy FILE]\n"
    "  warden approvals reject ID --reason TEXT [--key-file FILE] [--by WHO] [--policy FILE]\n"
    "      (who decides is proved by an API key: --key-file or WARDEN_API_KEY; or by the login,\n"
    "       mapped with users.NAME.os_user)\n"
    "  warden kill [AGENT|--all] [--reason TEXT] [--by WHO] [--policy FILE] [--json]   (no AGENT: list)\n"
    "  warden revive AGENT|--all [--by WHO] [--policy FILE]\n"
    "  warden report compliance [AUDIT_FILE] [--since T] [--until T] [--policy FILE] [--json]\n"
    "  warden report failures [AUDIT_FILE] [--since T] [--until T] [--policy FILE] [--json]\n"
    "  warden breakers [--policy FILE] [--json]\n"
    "  warden breakers reset NAME --user ID [--policy FILE]   (ID must hold the highest role)\n"
    "  warden serve [--policy FILE] [--agents DIR] [--listen HOST:PORT] [--workers N] [--llm mock:FILE|URL]\n"
    "               [--grace DURATION] [--max-body BYTES]   (defaults: agents, 127.0.0.1:8080, 2, 10s, 1048576)\n"
    "  warden version\n";

void wd_cli_help(void) { fputs(USAGE, stdout); }

int wd_cli_usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "warden: %s\n", msg);
    fputs(USAGE, stderr);
    return 2;
}

int wd_cli_parse(int argc, char **argv, int from, args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = from; i < argc; i++) {
        const char *s = argv[i];
        const char **dst = NULL;
        if (!strcmp(s, "--json") || !strcmp(s, "--all")) {
            *(s[2] == 'j' ? &a->json : &a->all) = 1;
            continue;
        }
        if (!strcmp(s, "--user"))
            dst = &a->user;
        else if (!strcmp(s, "--session"))
            dst = &a->session;
        else if (!strcmp(s, "--policy"))
            dst = &a->policy;
        else if (!strcmp(s, "--llm"))
            dst = &a->llm;
        else if (!strcmp(s, "--run"))
            dst = &a->run;
        else if (!strcmp(s, "--event"))
            dst = &a->event;
        else if (!strcmp(s, "--since"))
            dst = &a->since;
        else if (!strcmp(s, "--until"))
            dst = &a->until;
        else if (!strcmp(s, "--by"))
            dst = &a->by;
        else if (!strcmp(s, "--reason"))
            dst = &a->reason;
        else if (!strcmp(s, "--key-file"))
            dst = &a->key_file;
        else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "warden: unknown option %s\n", s);
            return -1;
        }
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "warden: %s needs a value\n", s);
                return -1;
            }
            *dst = argv[++i];
            continue;
        }
        if (a->npos >= 4) {
            fprintf(stderr, "warden: too many arguments\n");
            return -1;
        }
        a->pos[a->npos++] = s;
    }
    return 0;
}

wd_policy *wd_cli_policy(args_t *a)
{
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(a->policy ? a->policy : "policies/default.yaml", &pe);
    for (size_t i = 0; i < pe.n; i++)
        fprintf(stderr, "%s\n", pe.v[i]);
    wd_perrors_free(&pe);
    return p;
}

wd_store *wd_cli_store(args_t *a, wd_policy **p)
{
    char err[600];
    *p = wd_cli_policy(a);
    wd_store *st = *p ? wd_store_open((*p)->store_path, err, sizeof err) : NULL;
    if (*p && !st) {
        fprintf(stderr, "warden: %s\n", err);
        wd_policy_unref(*p);
        *p = NULL;
    }
    return st;
}
