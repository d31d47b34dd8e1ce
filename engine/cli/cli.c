/* cli.c - the `warden` command (README.md, Command line). Exit codes: 0 success, 1 the
** run ended without success (its result still printed), 2 usage or configuration. */
#include "admin.h"
#include "approval.h"
#include "audit.h"
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

static const char USAGE[] =
    "usage:\n"
    "  warden run AGENT [QUERY] [--user ID] [--session ID] [--policy FILE] [--llm mock:FILE|URL] [--json]\n"
    "  warden policy check FILE [--json]\n"
    "  warden check PATH... [--policy FILE] [--json]   (agent directories or scripts, as a run loads them)\n"
    "  warden audit verify [FILE] [--policy FILE] [--json]\n"
    "  warden audit query [FILE] [--run ID] [--user ID] [--event TYPE] [--since T] [--policy FILE]\n"
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

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "warden: %s\n", msg);
    fputs(USAGE, stderr);
    return 2;
}

typedef struct {
    const char *pos[4];
    int npos;
    const char *user, *session, *policy, *llm, *run, *event, *since, *until, *by, *reason, *key_file;
    int json, all;
} args_t;

static int parse(int argc, char **argv, int from, args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = from; i < argc; i++) {
        const char *s = argv[i];
        const char **dst = NULL;
        if (!strcmp(s, "--json") || !strcmp(s, "--all")) {
            *(s[2] == 'j' ? &a->json : &a->all) = 1;
            continue;
        }
        if (!strcmp(s, "--user")) dst = &a->user;
        else if (!strcmp(s, "--session")) dst = &a->session;
        else if (!strcmp(s, "--policy")) dst = &a->policy;
        else if (!strcmp(s, "--llm")) dst = &a->llm;
        else if (!strcmp(s, "--run")) dst = &a->run;
        else if (!strcmp(s, "--event")) dst = &a->event;
        else if (!strcmp(s, "--since")) dst = &a->since;
        else if (!strcmp(s, "--until")) dst = &a->until;
        else if (!strcmp(s, "--by")) dst = &a->by;
        else if (!strcmp(s, "--reason")) dst = &a->reason;
        else if (!strcmp(s, "--key-file")) dst = &a->key_file;
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

typedef struct {
    json_t *res;
} one_t;

static void on_done(const json_t *res, void *ud)
{
    ((one_t *)ud)->res = json_incref((json_t *)res);
}

static void to_stderr(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "warden: %s\n", line);
}

static int cmd_run(args_t *a)
{
    if (a->npos < 1)
        return usage("run needs an AGENT");
    char err[4096] = "";
    wd_engine_opts eo = {a->policy, a->llm, NULL, NULL};
    wd_engine *e = wd_engine_new(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    one_t one = {NULL};
    wd_run_opts ro = {a->pos[0], a->npos > 1 ? a->pos[1] : "", a->user, a->session, NULL, NULL, NULL, 0};
    wd_engine_on_notice(e, to_stderr, NULL);
    wd_engine_submit(e, &ro, on_done, &one);
    wd_engine_wait(e);
    char *audit = strdup(wd_engine_audit_path(e));
    wd_engine_free(e);
    if (!one.res) {
        fprintf(stderr, "warden: the run produced no result\n");
        free(audit);
        return 1;
    }
    int ok = json_is_true(json_object_get(one.res, "success"));
    if (a->json) {
        char *s = json_dumps(one.res, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
    } else {
        printf("%s\n\n", json_string_value(json_object_get(one.res, "result")));
        printf("status: %s   steps: %lld   cost: $%.4f   time: %lld ms\n",
               json_string_value(json_object_get(one.res, "status")),
               json_integer_value(json_object_get(one.res, "steps_taken")),
               json_real_value(json_object_get(one.res, "cost_usd")),
               json_integer_value(json_object_get(one.res, "execution_time_ms")));
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(one.res, "tool_calls"), i, c) {
            printf("tool %-20s %s  %s\n", json_string_value(json_object_get(c, "name")),
                   json_is_true(json_object_get(c, "success")) ? "ok     " : "refused",
                   json_string_value(json_object_get(c, "result")));
        }
        json_array_foreach(json_object_get(one.res, "errors"), i, c) printf("error: %s\n", json_string_value(c));
        printf("run: %s\naudit log: %s\n", json_string_value(json_object_get(one.res, "run_id")), audit);
    }
    json_decref(one.res);
    free(audit);
    return ok ? 0 : 1;
}

static int cmd_policy_check(args_t *a)
{
    if (a->npos < 1)
        return usage("policy check needs a FILE");
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(a->pos[0], &pe);
    if (a->json) {
        json_t *errs = json_array();
        for (size_t i = 0; i < pe.n; i++)
            json_array_append_new(errs, json_string(pe.v[i]));
        json_t *j = json_pack("{s:s,s:b,s:o}", "path", a->pos[0], "ok", p != NULL, "errors", errs);
        char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
        puts(out ? out : "{}");
        free(out);
        json_decref(j);
        wd_policy_unref(p);
        wd_perrors_free(&pe);
        return p ? 0 : 2;
    }
    if (p) {
        printf("%s: ok (%zu users, %zu tools, %zu models)\n", a->pos[0], p->n_users, p->n_tools, p->n_models);
        wd_policy_unref(p);
        return 0;
    }
    for (size_t i = 0; i < pe.n; i++)
        fprintf(stderr, "%s\n", pe.v[i]);
    fprintf(stderr, "%zu error%s\n", pe.n, pe.n == 1 ? "" : "s");
    wd_perrors_free(&pe);
    return 2;
}

/* caller frees: the audit path, an explicit FILE or else the policy's audit.path */
static char *audit_path(args_t *a)
{
    if (a->npos >= 1)
        return strdup(a->pos[0]);
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(a->policy ? a->policy : "policies/default.yaml", &pe);
    if (!p) {
        for (size_t i = 0; i < pe.n; i++)
            fprintf(stderr, "%s\n", pe.v[i]);
        wd_perrors_free(&pe);
        return NULL;
    }
    char *s = strdup(p->audit_path);
    wd_policy_unref(p);
    return s;
}

static int cmd_audit_verify(args_t *a)
{
    char *path = audit_path(a);
    if (!path)
        return 2;
    wd_buf rep = {0};
    long n = 0;
    int rc = wd_audit_verify(path, &rep, &n);
    if (a->json) {
        json_t *j = json_pack("{s:b,s:i,s:s,s:s}", "intact", rc == 0, "records", (json_int_t)n, "path", path,
                              "report", rep.p ? rep.p : "");
        char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
        puts(out ? out : "{}");
        free(out);
        json_decref(j);
    } else
        printf("%s\n", rep.p ? rep.p : "");
    wd_buf_free(&rep);
    free(path);
    return rc == 0 ? 0 : rc == 1 ? 1 : 2;
}

static int cmd_audit_query(args_t *a)
{
    char *path = audit_path(a);
    if (!path)
        return 2;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "warden: cannot open %s\n", path);
        free(path);
        return 2;
    }
    long long since = -1;
    if (a->since && (since = wd_parse_time(a->since)) < 0) {
        fprintf(stderr, "warden: --since wants a time like 2026-11-21 or 2026-11-21T10:00:00Z\n");
        fclose(f);
        free(path);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    long shown = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *r = json_loads(line, JSON_ALLOW_NUL, NULL);
        if (!r)
            continue;
        const char *ev = json_string_value(json_object_get(r, "event"));
        const char *run = json_string_value(json_object_get(r, "run_id"));
        const char *user = json_string_value(json_object_get(r, "user_id"));
        const char *ts = json_string_value(json_object_get(r, "timestamp"));
        int keep = (!a->event || (ev && !strcmp(ev, a->event))) && (!a->run || (run && !strcmp(run, a->run))) &&
                   (!a->user || (user && !strcmp(user, a->user))) &&
                   (since < 0 || (ts && wd_parse_time(ts) >= since));
        if (keep) {
            fputs(line, stdout);
            shown++;
        }
        json_decref(r);
    }
    free(line);
    fclose(f);
    free(path);
    if (!a->json)
        fprintf(stderr, "%ld record%s\n", shown, shown == 1 ? "" : "s");
    return 0;
}

static wd_policy *load_policy(args_t *a)
{
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load(a->policy ? a->policy : "policies/default.yaml", &pe);
    for (size_t i = 0; i < pe.n; i++)
        fprintf(stderr, "%s\n", pe.v[i]);
    wd_perrors_free(&pe);
    return p;
}

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
        json_array_foreach(list, i, b) {
            long long ri = json_integer_value(json_object_get(b, "retry_in_ms"));
            char when[32] = "-";
            if (!strcmp(json_string_value(json_object_get(b, "state")), "open"))
                snprintf(when, sizeof when, "%lld s", (ri + 999) / 1000);
            printf("%-40s %-10s %8lld  %s\n", json_string_value(json_object_get(b, "name")),
                   json_string_value(json_object_get(b, "state")),
                   json_integer_value(json_object_get(b, "failures")), when);
        }
    }
    json_decref(list);
    return 0;
}

/* rec (taken) into the policy's log; 0, or -1 after a message */
static int audit_one(const wd_policy *p, json_t *rec)
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
                a->user ? " ('" : "", a->user ? a->user : "", a->user ? (u ? "' has less)" : "' is not in the policy)") : "");
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
    int rc = audit_one(p, rec);
    printf("%s: closed (was %s)\n", name, wd_breaker_state_name(from));
    return rc < 0 ? 2 : 0;
}

static int cmd_breakers(args_t *a)
{
    int reset = a->npos >= 1 && !strcmp(a->pos[0], "reset");
    if (a->npos > (reset ? 2 : 0) || (reset && a->npos < 2))
        return usage(reset ? "breakers reset needs a NAME" : "breakers takes no argument but reset NAME");
    wd_policy *p = load_policy(a);
    if (!p)
        return 2;
    char err[400];
    wd_store *st = wd_store_open(p->store_path, err, sizeof err);
    if (!st) {
        fprintf(stderr, "warden: %s\n", err);
        wd_policy_unref(p);
        return 2;
    }
    int rc = reset ? cmd_breakers_reset(a, p, st) : cmd_breakers_list(a, p, st);
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
}

/* warden approvals list | approve ID | reject ID: from any process; each first settles
** what time and death decided (approval.h) */
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

static int cmd_approvals(args_t *a)
{
    const char *sub = a->npos ? a->pos[0] : "list";
    int list = !strcmp(sub, "list"), approve = !strcmp(sub, "approve"), reject = !strcmp(sub, "reject");
    if (!list && !approve && !reject)
        return usage("approvals takes list, approve ID or reject ID");
    if (list ? a->npos > 1 : a->npos != 2)
        return usage(list ? "approvals list takes no argument" : "approvals approve|reject needs one ID");
    if (reject && (!a->reason || !*a->reason))
        return usage("approvals reject needs --reason TEXT");
    wd_policy *p = load_policy(a);
    if (!p)
        return 2;
    char err[600];
    const char *by = NULL, *via = NULL;
    char key[512] = "";
    if (!list) { /* who decides, proved (admin.h) */
        const char *env = getenv("WARDEN_API_KEY");
        if (a->key_file && read_key(a->key_file, key, sizeof key) < 0) {
            fprintf(stderr, "warden: --key-file %s: %s\n", a->key_file,
                    errno == EINVAL ? "no key on its first line" : wd_read_error(errno, 4096));
            wd_policy_unref(p);
            return 2;
        }
        if (!key[0] && env && *env)
            wd_strlcpy(key, env, sizeof key);
        struct passwd *pw = getpwuid(geteuid());
        int ok = wd_admin_identify(p, key[0] ? key : NULL, pw ? pw->pw_name : NULL, a->by, &by, &via, err,
                                   sizeof err) == 0;
        sodium_memzero(key, sizeof key);
        if (!ok) {
            fprintf(stderr, "warden: %s\n", err);
            wd_policy_unref(p);
            return 2;
        }
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
    if (wd_approval_sweep(st, now) < 0)
        goto store_fail;
    if (list) {
        json_t *l;
        if (wd_approval_list(st, a->all, &l) < 0)
            goto store_fail;
        if (a->json) {
            char *s = json_dumps(l, JSON_INDENT(2));
            if (s)
                puts(s);
            free(s);
        } else {
            size_t i;
            json_t *o;
            if (!json_array_size(l))
                printf("no %sapproval requests\n", a->all ? "" : "pending ");
            json_array_foreach(l, i, o) {
                char *args = json_dumps(json_object_get(o, "args"), JSON_COMPACT | JSON_SORT_KEYS);
                char *who = json_dumps(json_object_get(o, "approvers"), JSON_COMPACT);
                long long left = (long long)(json_integer_value(json_object_get(o, "expires_ms")) - now) / 1000;
                printf("%s  %s  tool %s %s  run %s user %s  %s risk, %s urgency, needs %lld of %s\n",
                       json_string_value(json_object_get(o, "id")), json_string_value(json_object_get(o, "status")),
                       json_string_value(json_object_get(o, "tool")), args ? args : "{}",
                       json_string_value(json_object_get(o, "run_id")),
                       json_string_value(json_object_get(o, "user_id")),
                       json_string_value(json_object_get(o, "risk")), json_string_value(json_object_get(o, "urgency")),
                       (long long)json_integer_value(json_object_get(o, "approvals_needed")), who ? who : "[]");
                if (left > 0 && !strcmp(json_string_value(json_object_get(o, "status")), "pending"))
                    printf("    expires in %lld s; justification: %s\n", left,
                           json_string_value(json_object_get(o, "justification")));
                free(args);
                free(who);
            }
        }
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
static int cmd_kill(args_t *a, int revive)
{
    if (a->npos > 1 || (a->npos && a->all))
        return usage("kill and revive take one agent name, or --all");
    if (revive && !a->npos && !a->all)
        return usage("revive needs an agent name, or --all");
    const char *agent = a->all ? WD_KILL_ALL : a->npos ? a->pos[0] : NULL;
    const char *by = a->by && *a->by ? a->by : getenv("USER");
    wd_policy *p = load_policy(a);
    if (!p)
        return 2;
    char err[600];
    wd_store *st = wd_store_open(p->store_path, err, sizeof err);
    if (!st) {
        wd_policy_unref(p);
        fprintf(stderr, "warden: %s\n", err);
        return 2;
    }
    int rc = 2, got;
    if (!agent) { /* the list */
        json_t *l;
        if (wd_kill_list(st, &l) < 0)
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
        json_array_foreach(l, i, o) if (!a->json) {
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
    int logged = audit_one(p, rec);
    const char *what = !strcmp(agent, WD_KILL_ALL) ? "every agent" : agent;
    if (revive)
        printf("%s revived%s\n", what, got ? "" : " (it was not killed)");
    else
        printf("%s killed%s: new runs are refused, running ones end within a second\n", what,
               got ? "" : " already");
    rc = logged < 0 ? 2 : 0;
    goto done;
store_fail:
    fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
done:
    wd_store_close(st);
    wd_policy_unref(p);
    return rc;
}

/* warden report cost | compliance | failures [FILE]: from the audit log (the policy's, or FILE);
** cost adds budget use from the store, compliance reads the log alone (its figures are
** the log's) */
enum { REPORT_COST, REPORT_COMPLIANCE, REPORT_FAILURES };

static int cmd_report(args_t *a, int kind)
{
    if (a->npos > 1)
        return usage("report takes at most one audit log");
    int64_t since, until;
    if (window(a, &since, &until) < 0)
        return 2;
    wd_policy *p = load_policy(a);
    if (!p)
        return 2;
    char err[600];
    const char *log = a->npos ? a->pos[0] : p->audit_path;
    json_t *rep;
    if (kind == REPORT_COST) {
        wd_store *st = wd_store_open(p->store_path, err, sizeof err);
        if (!st)
            fprintf(stderr, "warden: %s (the report goes on without budgets)\n", err);
        rep = wd_report_cost(log, st, p, since, until, until >= 0 ? until : wd_wall_ms(), err, sizeof err);
        wd_store_close(st);
    } else if (kind == REPORT_COMPLIANCE) {
        rep = wd_report_compliance(log, since, until, err, sizeof err);
    } else {
        rep = wd_report_failures(log, since, until, err, sizeof err);
    }
    wd_policy_unref(p);
    if (!rep) {
        fprintf(stderr, "warden: %s\n", err);
        return 2;
    }
    char *out = a->json ? json_dumps(rep, JSON_INDENT(2) | JSON_REAL_PRECISION(12))
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

/* warden serve: its own options (serve.h) */
static int cmd_serve(int argc, char **argv)
{
    wd_serve_opts o = {0};
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || strncmp(k, "--", 2))
            return usage(v ? NULL : "serve: every option takes a value");
        i++;
        if (!strcmp(k, "--policy"))
            o.policy_path = v;
        else if (!strcmp(k, "--agents"))
            o.agents_dir = v;
        else if (!strcmp(k, "--listen"))
            o.listen = v;
        else if (!strcmp(k, "--llm"))
            o.llm = v;
        else if (!strcmp(k, "--workers") || !strcmp(k, "--max-body")) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*end || n < 1 || (k[2] == 'w' && n > 64))
                return usage(k[2] == 'w' ? "serve: --workers takes 1 to 64" : "serve: --max-body takes a byte count");
            if (k[2] == 'w')
                o.workers = (int)n;
            else
                o.max_body = n;
        } else if (!strcmp(k, "--grace")) {
            long long ms = wd_policy_duration(v);
            if (ms <= 0)
                return usage("serve: --grace takes a duration like 30s or 2m, or milliseconds");
            o.grace_ms = ms;
        } else {
            fprintf(stderr, "warden: serve: unknown option %s\n", k);
            return usage(NULL);
        }
    }
    return wd_serve(&o);
}

/* warden check PATH... [--policy FILE] [--json]: each script as a run would load it
** (check.h); exit 2 on any error */
static int cmd_check(int argc, char **argv)
{
    int json = 0, bad = 0, total = 0, paths = 0;
    const char *policy = NULL;
    for (int i = 2; i < argc; i++) { /* the options first: they hold for every path */
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--policy") && i + 1 < argc)
            policy = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return usage("check takes PATH..., --policy FILE and --json");
        else
            paths++;
    }
    if (!paths)
        return usage("check needs an agent directory or a script");
    wd_policy *p = NULL;
    if (policy) {
        wd_perrors pe = {0};
        p = wd_policy_load(policy, &pe);
        for (size_t k = 0; k < pe.n; k++)
            fprintf(stderr, "%s\n", pe.v[k]);
        wd_perrors_free(&pe);
        if (!p)
            return 2;
    }
    wd_buf out = {0};
    for (int i = 2; i < argc && argv[i]; i++) {
        if (!strcmp(argv[i], "--policy")) {
            i++; /* its value (the first pass saw one) */
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] == '-')
            continue;
        int n, r = wd_check_tree(argv[i], p, &out, &n);
        if (r < 0) {
            wd_buf_addf(&out, "%s:1: cannot read: %s\n", argv[i], strerror(errno));
            r = 1;
        }
        bad += r;
        total += n;
    }
    wd_policy_unref(p);
    if (json) {
        json_t *errs = json_array();
        for (char *line = out.p, *nl; line && *line && (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = '\0';
            if (!(strlen(line) > 4 && !strcmp(line + strlen(line) - 4, ": ok")))
                json_array_append_new(errs, json_string(line));
        }
        json_t *j = json_pack("{s:b,s:i,s:o}", "ok", bad == 0, "scripts", total, "errors", errs);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        puts(s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        fputs(out.p ? out.p : "", bad ? stderr : stdout);
        fprintf(bad ? stderr : stdout, "%d script%s checked, %d with errors\n", total, total == 1 ? "" : "s", bad);
    }
    wd_buf_free(&out);
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    args_t a;
    if (argc < 2)
        return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("warden %s\n", WARDEN_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "run")) {
        if (parse(argc, argv, 2, &a) < 0)
            return usage(NULL);
        return cmd_run(&a);
    }
    if (!strcmp(cmd, "policy") && argc >= 3 && !strcmp(argv[2], "check")) {
        if (parse(argc, argv, 3, &a) < 0)
            return usage(NULL);
        return cmd_policy_check(&a);
    }
    if (!strcmp(cmd, "audit") && argc >= 3 && !strcmp(argv[2], "verify")) {
        if (parse(argc, argv, 3, &a) < 0)
            return usage(NULL);
        return cmd_audit_verify(&a);
    }
    if (!strcmp(cmd, "audit") && argc >= 3 && !strcmp(argv[2], "query")) {
        if (parse(argc, argv, 3, &a) < 0)
            return usage(NULL);
        return cmd_audit_query(&a);
    }
    if (!strcmp(cmd, "report") && argc >= 3 &&
        (!strcmp(argv[2], "cost") || !strcmp(argv[2], "compliance") || !strcmp(argv[2], "failures"))) {
        if (parse(argc, argv, 3, &a) < 0)
            return usage(NULL);
        return cmd_report(&a, !strcmp(argv[2], "cost")         ? REPORT_COST
                              : !strcmp(argv[2], "compliance") ? REPORT_COMPLIANCE
                                                               : REPORT_FAILURES);
    }
    if (!strcmp(cmd, "kill") || !strcmp(cmd, "revive")) {
        if (parse(argc, argv, 2, &a) < 0)
            return usage(NULL);
        return cmd_kill(&a, cmd[0] == 'r');
    }
    if (!strcmp(cmd, "approvals")) {
        if (parse(argc, argv, 2, &a) < 0)
            return usage(NULL);
        return cmd_approvals(&a);
    }
    if (!strcmp(cmd, "breakers")) {
        if (parse(argc, argv, 2, &a) < 0)
            return usage(NULL);
        return cmd_breakers(&a);
    }
    fprintf(stderr, "warden: unknown command '%s'\n", cmd);
    return usage(NULL);
}
