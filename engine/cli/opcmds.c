/* opcmds.c - the operator's commands of `warden`: breakers, approvals, kill and revive,
** reports (README.md, Command line) */
#include "cli.h"
#include "admin.h"
#include "approval.h"
#include "audit.h"
#include "notify.h"
#include "breaker.h"
#include "check.h"
#include "killswitch.h"
#include "policy.h"
#include "redact.h"
#include "report.h"
#include "serve.h"
#include "store.h"
#include "util.h"
#include "warden.h"

#include <errno.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_breakers_list(args_t *a, wd_policy *p, wd_store *st)
{
    json_t *list = wd_admin_breakers(st, p);
    if (!list) {
        fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
        return 2;
    }
    if (a->json) {
        char *out = json_dumps(list, JSON_COMPACT);
        puts(out ? out : "[]");
        free(out);
    } else if (!json_array_size(list)) {
        printf("no breaker has been used yet (store %s)\n", wd_store_path(st));
    } else {
        printf("%-40s %-10s %8s  %s\n", "BREAKER", "STATE", "FAILURES", "RETRY IN");
        size_t i;
        json_t *b;
        json_array_foreach(list, i, b)
        {
            long long ri = json_integer_value(json_object_get(b, "retry_in_ms"));
            char when[32] = "-";
            if (!strcmp(json_string_value(json_object_get(b, "state")), "open"))
                snprintf(when, sizeof when, "%lld s", (ri + 999) / 1000);
            printf("%-40s %-10s %8lld  %s\n", json_string_value(json_object_get(b, "name")),
                   json_string_value(json_object_get(b, "state")), json_integer_value(json_object_get(b, "failures")),
                   when);
        }
    }
    json_decref(list);
    return 0;
}

int wd_cli_audit_one(const wd_policy *p, json_t *rec)
{
    char err[300];
    wd_audit *au = wd_audit_open(p->audit_path, p->audit_fsync, err, sizeof err);
    if (!au) {
        json_decref(rec);
        fprintf(stderr, "warden: %s\n", err);
        return -1;
    }
    wd_redact_append(p, au, rec);
    int rc = wd_audit_flush(au);
    if (rc < 0)
        fprintf(stderr, "warden: %s\n", wd_audit_error(au));
    wd_audit_close(au);
    return rc;
}

/* an operator closes a breaker by hand: admins only, audited */
static int cmd_breakers_reset(args_t *a, wd_policy *p, wd_store *st)
{
    const char *name = a->pos[1];
    const wd_user *u = a->user ? wd_policy_user(p, a->user) : NULL;
    int top = (int)p->roles.n - 1;
    if (!u || u->role < top) {
        fprintf(stderr, "warden: breakers reset needs --user with the '%s' role%s%s%s\n", p->roles.v[top],
                a->user ? " ('" : "", a->user ? a->user : "",
                a->user ? (u ? "' has less)" : "' is not in the policy)") : "");
        return 2;
    }
    int from;
    json_t *rec;
    int found = wd_admin_breaker_reset(st, name, u->name, &from, &rec);
    if (found < 0) {
        fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
        return 2;
    }
    if (!found) {
        fprintf(stderr, "warden: no breaker named '%s' (see `warden breakers`)\n", name);
        return 2;
    }
    int rc = wd_cli_audit_one(p, rec);
    printf("%s: closed (was %s)\n", name, wd_breaker_state_name(from));
    return rc < 0 ? 2 : 0;
}

int wd_cli_breakers(args_t *a)
{
    int reset = a->npos >= 1 && !strcmp(a->pos[0], "reset");
    if (a->npos > (reset ? 2 : 0) || (reset && a->npos < 2))
        return wd_cli_usage(reset ? "breakers reset needs a NAME" : "breakers takes no argument but reset NAME");
    wd_policy *p;
    wd_store *st = wd_cli_store(a, &p);
    if (!st)
        return 2;
    int rc = reset ? cmd_breakers_reset(a, p, st) : cmd_breakers_list(a, p, st);
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
}

/* the first line of a key file, without its newline; -1 with errno */
static int read_key(const char *path, char *out, size_t n)
{
    size_t len;
    char *text = wd_read_file(path, 4096, &len);
    if (!text)
        return -1;
    size_t l = strcspn(text, "\r\n");
    int ok = l > 0 && l < n;
    if (ok) {
        memcpy(out, text, l);
        out[l] = '\0';
    }
    sodium_memzero(text, len);
    free(text);
    if (!ok)
        errno = EINVAL;
    return ok ? 0 : -1;
}

/* who decides an approval, proved by a key (--key-file or WARDEN_API_KEY) or by the
** process's own user where the policy trusts it (admin.h): *by and *via may point into p.
** 0, or -1 after a message. */
static int identify(const args_t *a, const wd_policy *p, const char **by, const char **via)
{
    char err[600], key[512] = "";
    const char *env = getenv("WARDEN_API_KEY");
    if (a->key_file && read_key(a->key_file, key, sizeof key) < 0) {
        fprintf(stderr, "warden: --key-file %s: %s\n", a->key_file,
                errno == EINVAL ? "no key on its first line" : wd_read_error(errno, 4096));
        return -1;
    }
    if (!key[0] && env && *env)
        wd_strlcpy(key, env, sizeof key);
    struct passwd *pw = getpwuid(geteuid());
    int ok = wd_admin_identify(p, key[0] ? key : NULL, pw ? pw->pw_name : NULL, a->by, by, via, err, sizeof err) == 0;
    sodium_memzero(key, sizeof key);
    if (!ok) {
        fprintf(stderr, "warden: %s\n", err);
        return -1;
    }
    return 0;
}

/* the requests of l on stdout: JSON, or a line each (and its expiry while pending) */
static void print_requests(const args_t *a, json_t *l, int64_t now)
{
    if (a->json) {
        char *s = json_dumps(l, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        return;
    }
    size_t i;
    json_t *o;
    if (!json_array_size(l))
        printf("no %sapproval requests\n", a->all ? "" : "pending ");
    json_array_foreach(l, i, o)
    {
        char *args = json_dumps(json_object_get(o, "args"), JSON_COMPACT | JSON_SORT_KEYS);
        char *who = json_dumps(json_object_get(o, "approvers"), JSON_COMPACT);
        long long left = (long long)(json_integer_value(json_object_get(o, "expires_ms")) - now);
        char in[40];
        printf("%s  %s  tool %s %s  run %s user %s  %s risk, %s urgency, needs %lld of %s\n",
               json_string_value(json_object_get(o, "id")), json_string_value(json_object_get(o, "status")),
               json_string_value(json_object_get(o, "tool")), args ? args : "{}",
               json_string_value(json_object_get(o, "run_id")), json_string_value(json_object_get(o, "user_id")),
               json_string_value(json_object_get(o, "risk")), json_string_value(json_object_get(o, "urgency")),
               (long long)json_integer_value(json_object_get(o, "approvals_needed")), who ? who : "[]");
        if (left > 0 && !strcmp(json_string_value(json_object_get(o, "status")), "pending"))
            printf("    expires in %s; justification: %s\n", wd_fmt_duration(left, in, sizeof in),
                   json_string_value(json_object_get(o, "justification")));
        free(args);
        free(who);
    }
}

int wd_cli_approvals(args_t *a)
{
    const char *sub = a->npos ? a->pos[0] : "list";
    int list = !strcmp(sub, "list"), approve = !strcmp(sub, "approve"), reject = !strcmp(sub, "reject");
    if (!list && !approve && !reject)
        return wd_cli_usage("approvals takes list, approve ID or reject ID");
    if (list ? a->npos > 1 : a->npos != 2)
        return wd_cli_usage(list ? "approvals list takes no argument" : "approvals approve|reject needs one ID");
    if (reject && (!a->reason || !*a->reason))
        return wd_cli_usage("approvals reject needs --reason TEXT");
    wd_policy *p = wd_cli_policy(a);
    if (!p)
        return 2;
    char err[600];
    const char *by = NULL, *via = NULL;
    if (!list && identify(a, p, &by, &via) < 0) { /* who decides, proved (admin.h) */
        wd_policy_unref(p);
        return 2;
    }
    /* by may point into p: p is released with the store */
    wd_store *st = wd_store_open(p->store_path, err, sizeof err);
    if (!st) {
        fprintf(stderr, "warden: %s\n", err);
        wd_policy_unref(p);
        return 2;
    }
    int64_t now = wd_store_now(st);
    int rc = 2;
    if (wd_store_approval_sweep(st, now) < 0)
        goto store_fail;
    if (list) {
        json_t *l;
        if (wd_store_approval_list(st, a->all, &l) < 0)
            goto store_fail;
        print_requests(a, l, now);
        json_decref(l);
        rc = 0;
    } else {
        char msg[1400];
        int got = wd_approval_decide(st, a->pos[1], approve, by, via, a->reason, now, msg, sizeof msg);
        if (got < 0)
            goto store_fail;
        fprintf(got ? stdout : stderr, "%s%s\n", got ? "" : "warden: ", msg);
        rc = got ? 0 : 1;
    }
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
store_fail:
    fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
    wd_store_close(st);
    wd_policy_unref(p);
    return 2;
}

/* --since and --until as ms since the epoch (-1 when not given); -1 after a message */
static int window(const args_t *a, int64_t *since, int64_t *until)
{
    *since = *until = -1;
    if ((a->since && (*since = wd_parse_time(a->since)) < 0) || (a->until && (*until = wd_parse_time(a->until)) < 0)) {
        fprintf(stderr, "warden: --since and --until want a time like 2026-11-21 or 2026-11-21T10:00:00Z\n");
        return -1;
    }
    return 0;
}

/* warden kill [AGENT|--all] | revive AGENT|--all: the kill switch in the store, audited */
int wd_cli_kill(args_t *a, int revive)
{
    if (a->npos > 1 || (a->npos && a->all))
        return wd_cli_usage("kill and revive take one agent name, or --all");
    if (revive && !a->npos && !a->all)
        return wd_cli_usage("revive needs an agent name, or --all");
    const char *agent = a->all ? WD_KILL_ALL : a->npos ? a->pos[0] : NULL;
    const char *by = a->by && *a->by ? a->by : getenv("USER");
    wd_policy *p;
    wd_store *st = wd_cli_store(a, &p);
    if (!st)
        return 2;
    int rc = 2, got;
    if (!agent) { /* the list */
        json_t *l;
        if (wd_store_kill_list(st, &l) < 0)
            goto store_fail;
        if (a->json) {
            char *t = json_dumps(l, JSON_INDENT(2));
            if (t)
                puts(t);
            free(t);
        } else if (!json_array_size(l)) {
            puts("no agent is killed");
        }
        size_t i;
        json_t *o;
        json_array_foreach(l, i, o) if (!a->json)
        {
            const char *ag = json_string_value(json_object_get(o, "agent"));
            printf("%s  killed %s by %s: %s\n", !strcmp(ag, WD_KILL_ALL) ? "--all" : ag,
                   json_is_true(json_object_get(o, "automatic")) ? "automatically" : "",
                   json_string_value(json_object_get(o, "by")), json_string_value(json_object_get(o, "reason")));
        }
        json_decref(l);
        rc = 0;
        goto done;
    }
    const char *reason = a->reason && *a->reason ? a->reason : revive ? "revived" : "killed by an operator";
    json_t *rec;
    got = wd_admin_kill(st, agent, revive, by, reason, &rec);
    if (got < 0)
        goto store_fail;
    if (!revive && got > 0) { /* queued for the webhooks; an engine's loop delivers it */
        char summary[400];
        snprintf(summary, sizeof summary, "%s killed by %s: %s", !strcmp(agent, WD_KILL_ALL) ? "every agent" : agent,
                 by ? by : "an operator", reason);
        wd_redact_record(p, rec);
        wd_notify_enqueue(p, st, "kill_switch", summary, rec);
    }
    int logged = wd_cli_audit_one(p, rec);
    const char *what = !strcmp(agent, WD_KILL_ALL) ? "every agent" : agent;
    if (revive)
        printf("%s revived%s\n", what, got ? "" : " (it was not killed)");
    else
        printf("%s killed%s: new runs are refused, running ones end within a second\n", what, got ? "" : " already");
    rc = logged < 0 ? 2 : 0;
    goto done;
store_fail:
    fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
done:
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
}

int wd_cli_report(args_t *a, int kind)
{
    int64_t since, until;
    if (window(a, &since, &until) < 0)
        return 2;
    wd_policy *p = wd_cli_policy(a);
    if (!p)
        return 2;
    char err[600];
    /* several logs (one per host sharing a Redis store) make one report */
    const char *own[1] = {p->audit_path};
    const char *const *logs = a->npos ? a->pos : own;
    size_t nlogs = a->npos ? (size_t)a->npos : 1;
    json_t *rep;
    if (kind == REPORT_COST) {
        wd_store *st = wd_store_open(p->store_path, err, sizeof err);
        if (!st)
            fprintf(stderr, "warden: %s (the report goes on without budgets)\n", err);
        rep = wd_report_cost(logs, nlogs, st, p, since, until, until >= 0 ? until : wd_wall_ms(), err, sizeof err);
        wd_store_close(st);
    } else if (kind == REPORT_COMPLIANCE) {
        rep = wd_report_compliance(logs, nlogs, since, until, err, sizeof err);
    } else {
        rep = wd_report_failures(logs, nlogs, since, until, err, sizeof err);
    }
    wd_policy_unref(p);
    if (!rep) {
        fprintf(stderr, "warden: %s\n", err);
        return 2;
    }
    char *out = a->json                     ? json_dumps(rep, JSON_INDENT(2) | JSON_REAL_PRECISION(12))
                : kind == REPORT_COST       ? wd_report_cost_text(rep)
                : kind == REPORT_COMPLIANCE ? wd_report_compliance_text(rep)
                                            : wd_report_failures_text(rep);
    json_decref(rep);
    if (out)
        fputs(out, stdout);
    if (a->json)
        fputc('\n', stdout);
    free(out);
    return 0;
}

/* warden notify list [--all]: the dead letters (every notification with --all) */
int wd_cli_notify(args_t *a)
{
    if (a->npos != 1 || strcmp(a->pos[0], "list"))
        return wd_cli_usage("notify takes list [--all]");
    wd_policy *p;
    wd_store *st = wd_cli_store(a, &p);
    json_t *l = NULL;
    int rc = 2;
    if (!st)
        return 2;
    if (wd_store_notify_list(st, a->all, &l) < 0)
        fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
    else
        rc = 0;
    size_t i;
    json_t *o;
    if (l && a->json) {
        json_array_foreach(l, i, o) json_object_del(o, "body"); /* its data is in the audit log */
        char *t = json_dumps(l, JSON_INDENT(2));
        if (t)
            puts(t);
        free(t);
    } else if (l) {
        if (!json_array_size(l))
            puts(a->all ? "no notification" : "no dead letter: every notification was delivered or is still tried");
        json_array_foreach(l, i, o)
        {
            printf("%s  %-18s %-9s %lld attempt%s  %s\n", json_string_value(json_object_get(o, "id")),
                   json_string_value(json_object_get(o, "event")), json_string_value(json_object_get(o, "status")),
                   (long long)json_integer_value(json_object_get(o, "attempts")),
                   json_integer_value(json_object_get(o, "attempts")) == 1 ? "" : "s",
                   json_string_value(json_object_get(o, "url")));
            const char *e = json_string_value(json_object_get(o, "last_error"));
            if (e && *e)
                printf("    last error: %s\n", e);
        }
    }
    json_decref(l);
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
}
