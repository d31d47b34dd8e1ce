/* args.c - the `warden` command line read: its usage, its options, the policy it names */
#include "cli.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        if (!strcmp(s, "--stream") || !strcmp(s, "--merged")) {
            *(s[2] == 's' ? &a->stream : &a->merged) = 1;
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
        else if (!strcmp(s, "--store"))
            dst = &a->store;
        else if (!strcmp(s, "--out"))
            dst = &a->out;
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
        if (a->npos >= (int)(sizeof a->pos / sizeof a->pos[0])) {
            fprintf(stderr, "warden: too many arguments\n");
            return -1;
        }
        a->pos[a->npos++] = s;
    }
    return 0;
}

/* the first that names something: the option, the environment, ./policies/default.yaml,
** /etc/warden/policy.yaml (docs/install.md, Configuration lookup); NULL after a message
** that names every place tried */
const char *wd_cli_policy_path(const char *given)
{
    if (given && *given)
        return given;
    const char *env = getenv("WARDEN_POLICY");
    if (env && *env)
        return env;
    static const char *const files[] = {"policies/default.yaml", WD_ETC_POLICY};
    for (int i = 0; i < 2; i++)
        if (access(files[i], F_OK) == 0)
            return files[i];
    fprintf(stderr,
            "warden: no policy found; tried --policy (not given), WARDEN_POLICY (not set), "
            "./%s (%s), %s (%s)\n",
            files[0], strerror(ENOENT), files[1], strerror(ENOENT));
    return NULL;
}

const char *wd_cli_listen(const char *given)
{
    const char *env = getenv("WARDEN_LISTEN");
    return given && *given ? given : env && *env ? env : "127.0.0.1:8080";
}

const char *wd_cli_store_path(const char *given)
{
    const char *env = getenv("WARDEN_STORE");
    return given && *given ? given : env && *env ? env : NULL;
}

wd_policy *wd_cli_policy(args_t *a)
{
    const char *path = wd_cli_policy_path(a->policy);
    if (!path)
        return NULL;
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(path, &pe);
    for (size_t i = 0; i < pe.n; i++)
        fprintf(stderr, "%s\n", pe.v[i]);
    wd_perrors_free(&pe);
    return p;
}

wd_store *wd_cli_store(args_t *a, wd_policy **p)
{
    char err[600];
    *p = wd_cli_policy(a);
    const char *path = wd_cli_store_path(a->store);
    wd_store *st = *p ? wd_store_open(path ? path : (*p)->store_path, err, sizeof err) : NULL;
    if (*p && !st) {
        fprintf(stderr, "warden: %s\n", err);
        wd_policy_unref(*p);
        *p = NULL;
    }
    return st;
}
