/* cli.c - the `warden` command (README.md, Command line). Exit codes: 0 success, 1 the
** run ended without success (its result still printed), 2 usage or configuration. */
#include "cli.h"
#include "admin.h"
#include "approval.h"
#include "audit.h"
#include "breaker.h"
#include "check.h"
#include "killswitch.h"
#include "mock.h"
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
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    json_t *res;
    FILE *stream_to; /* --stream: where the text goes */
    int streamed;    /* some did */
} one_t;

static void on_done(const json_t *res, void *ud) { ((one_t *)ud)->res = json_incref((json_t *)res); }

static void to_stderr(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "warden: %s\n", line);
}

/* the agent names a directory holding agent.lua, or a .lua file; 0, or -1 after a message */
static int check_agent(const char *agent)
{
    struct stat st;
    char p[4200];
    if (stat(agent, &st) < 0) {
        fprintf(stderr, "warden: agent %s: %s (an agent is a directory holding agent.lua, or a .lua file)\n", agent,
                strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(p, sizeof p, "%s/agent.lua", agent);
        if (access(p, R_OK) < 0) {
            fprintf(stderr, "warden: agent %s: %s: %s\n", agent, p, strerror(errno));
            return -1;
        }
    } else if (access(agent, R_OK) < 0) {
        fprintf(stderr, "warden: agent %s: %s\n", agent, strerror(errno));
        return -1;
    }
    return 0;
}

/* --llm: a scenario that loads, or an http(s) URL; 0, or -1 after a message */
static int check_llm(const char *llm)
{
    char err[600];
    if (!llm)
        return 0;
    if (!strncmp(llm, "mock:", 5)) {
        wd_mock *m = wd_mock_load(llm + 5, err, sizeof err);
        if (!m) {
            fprintf(stderr, "warden: --llm %s: %s\n", llm, err);
            return -1;
        }
        wd_mock_free(m);
        return 0;
    }
    if (strncmp(llm, "http://", 7) && strncmp(llm, "https://", 8)) {
        fprintf(stderr, "warden: --llm '%s' is neither mock:FILE nor an http(s) URL\n", llm);
        return -1;
    }
    return 0;
}

/* --user > WARDEN_USER > the policy user whose os_user is the login > the one named as
** the login; NULL after a message */
static const char *run_user(args_t *a, const wd_policy *p)
{
    const char *env = getenv("WARDEN_USER");
    if (a->user && *a->user)
        return a->user;
    if (env && *env)
        return env;
    struct passwd *pw = getpwuid(geteuid());
    const char *login = pw ? pw->pw_name : "";
    for (size_t i = 0; i < p->n_users; i++)
        if (p->users[i].os_user && !strcmp(p->users[i].os_user, login))
            return p->users[i].name;
    if (wd_policy_user(p, login))
        return wd_policy_user(p, login)->name;
    fprintf(stderr,
            "warden: who runs? give --user ID or WARDEN_USER, or map your login '%s' to a user "
            "(users.NAME.os_user: %s) in %s\n",
            login, login, p->path ? p->path : "the policy");
    return NULL;
}

/* --stream: the model's text as it comes, to stdout (stderr with --json) */
static void print_text(const char *text, size_t len, void *ud)
{
    one_t *one = ud;
    FILE *f = one->stream_to;
    fwrite(text, 1, len, f);
    fflush(f);
    one->streamed = 1;
}

/* warden run: the configuration is checked first, so a mistake in it exits 2 with one
** line and writes no run record; only a run that started and did not succeed exits 1 */
static int cmd_run(args_t *a)
{
    if (a->npos < 1)
        return wd_cli_usage("run needs an AGENT");
    const char *policy_path = wd_cli_policy_path(a->policy);
    if (!policy_path || check_agent(a->pos[0]) < 0 || check_llm(a->llm) < 0)
        return 2;
    wd_policy *p = wd_cli_policy(&(args_t){.policy = policy_path});
    const char *user = p ? run_user(a, p) : NULL;
    char *user_copy = user ? strdup(user) : NULL;
    wd_policy_unref(p);
    if (!user_copy)
        return 2;
    char err[4096] = "";
    wd_engine_opts eo = {policy_path, a->llm, NULL, wd_cli_store_path(a->store)};
    wd_engine *e = wd_engine_new(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        free(user_copy);
        return 2;
    }
    one_t one = {NULL, a->json ? stderr : stdout, 0};
    wd_run_opts ro = {a->pos[0], a->npos > 1 ? a->pos[1] : "",  user_copy, a->session, NULL, NULL, NULL, 0, NULL, NULL,
                      NULL,      a->stream ? print_text : NULL, NULL};
    wd_engine_on_notice(e, to_stderr, NULL);
    wd_engine_submit(e, &ro, on_done, &one);
    wd_engine_wait(e);
    char *audit = strdup(wd_engine_audit_path(e));
    wd_engine_free(e);
    free(user_copy);
    if (!one.res) {
        fprintf(stderr, "warden: the run produced no result\n");
        free(audit);
        return 1;
    }
    int ok = json_is_true(json_object_get(one.res, "success"));
    if (a->json) {
        if (one.streamed)
            fputc('\n', stderr);
        char *s = json_dumps(one.res, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
    } else {
        if (one.streamed) /* the text is out already */
            printf("\n\n");
        else
            printf("%s\n\n", json_string_value(json_object_get(one.res, "result")));
        printf("status: %s   steps: %lld   cost: $%.4f   time: %lld ms\n",
               json_string_value(json_object_get(one.res, "status")),
               json_integer_value(json_object_get(one.res, "steps_taken")),
               json_real_value(json_object_get(one.res, "cost_usd")),
               json_integer_value(json_object_get(one.res, "execution_time_ms")));
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(one.res, "tool_calls"), i, c)
        {
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
        return wd_cli_usage("policy check needs a FILE");
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

/* warden approvals list | approve ID | reject ID: from any process; each first settles
** what time and death decided (approval.h) */

/* warden report cost | compliance | failures [FILE]: from the audit log (the policy's, or FILE);
** cost adds budget use from the store, compliance reads the log alone (its figures are
** the log's) */

/* warden serve: its own options (serve.h) */
static int cmd_serve(int argc, char **argv)
{
    wd_serve_opts o = {0};
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || strncmp(k, "--", 2))
            return wd_cli_usage(v ? NULL : "serve: every option takes a value");
        i++;
        if (!strcmp(k, "--policy"))
            o.policy_path = v;
        else if (!strcmp(k, "--agents"))
            o.agents_dir = v;
        else if (!strcmp(k, "--listen"))
            o.listen = v;
        else if (!strcmp(k, "--llm"))
            o.llm = v;
        else if (!strcmp(k, "--store"))
            o.store_path = v;
        else if (!strcmp(k, "--tls-cert"))
            o.tls_cert = v;
        else if (!strcmp(k, "--tls-key"))
            o.tls_key = v;
        else if (!strcmp(k, "--workers") || !strcmp(k, "--max-body")) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*end || n < 1 || (k[2] == 'w' && n > 64))
                return wd_cli_usage(k[2] == 'w' ? "serve: --workers takes 1 to 64"
                                                : "serve: --max-body takes a byte count");
            if (k[2] == 'w')
                o.workers = (int)n;
            else
                o.max_body = n;
        } else if (!strcmp(k, "--grace")) {
            long long ms = wd_policy_duration(v);
            if (ms <= 0)
                return wd_cli_usage("serve: --grace takes a duration like 30s or 2m, or milliseconds");
            o.grace_ms = ms;
        } else {
            fprintf(stderr, "warden: serve: unknown option %s\n", k);
            return wd_cli_usage(NULL);
        }
    }
    if (!o.tls_cert && getenv("WARDEN_TLS_CERT") && *getenv("WARDEN_TLS_CERT"))
        o.tls_cert = getenv("WARDEN_TLS_CERT");
    if (!o.tls_key && getenv("WARDEN_TLS_KEY") && *getenv("WARDEN_TLS_KEY"))
        o.tls_key = getenv("WARDEN_TLS_KEY");
    if (!!o.tls_cert != !!o.tls_key)
        return wd_cli_usage("serve: --tls-cert and --tls-key go together");
    if (!(o.policy_path = wd_cli_policy_path(o.policy_path)))
        return 2;
    o.listen = wd_cli_listen(o.listen);
    o.store_path = wd_cli_store_path(o.store_path);
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
            return wd_cli_usage("check takes PATH..., --policy FILE and --json");
        else
            paths++;
    }
    if (!paths)
        return wd_cli_usage("check needs an agent directory or a script");
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

/* warden audit WHAT: its AUDIT_* constant, -1 for another word */
static int audit_what(const char *w)
{
    static const char *const NAMES[] = {[AUDIT_VERIFY] = "verify",
                                        [AUDIT_QUERY] = "query",
                                        [AUDIT_TRACE] = "trace",
                                        [AUDIT_ERASE] = "erase",
                                        [AUDIT_MERGE] = "merge"};
    for (int i = 0; i < (int)(sizeof NAMES / sizeof *NAMES); i++)
        if (!strcmp(w, NAMES[i]))
            return i;
    return -1;
}

int main(int argc, char **argv)
{
    args_t a;
    if (argc < 2)
        return wd_cli_help(argc, argv, 2, stderr), 2;
    const char *cmd = argv[1];
    int rc = wd_cli_help_for(argc, argv); /* COMMAND ... --help, before the command reads its options */
    if (rc >= 0)
        return rc;
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("warden %s\n", WARDEN_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return wd_cli_help(argc, argv, 2, stdout);
    if (!strcmp(cmd, "init"))
        return wd_cli_init(argc, argv);
    if (!strcmp(cmd, "test"))
        return wd_cli_test(argc, argv);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "run")) {
        if (wd_cli_parse(argc, argv, 2, &a) < 0)
            return wd_cli_usage(NULL);
        return cmd_run(&a);
    }
    if (!strcmp(cmd, "policy") && argc >= 3 && !strcmp(argv[2], "check")) {
        if (wd_cli_parse(argc, argv, 3, &a) < 0)
            return wd_cli_usage(NULL);
        return cmd_policy_check(&a);
    }
    int what = !strcmp(cmd, "audit") && argc >= 3 ? audit_what(argv[2]) : -1;
    if (what >= 0) {
        if (wd_cli_parse(argc, argv, 3, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_audit(&a, what);
    }
    if (!strcmp(cmd, "report") && argc >= 3 &&
        (!strcmp(argv[2], "cost") || !strcmp(argv[2], "compliance") || !strcmp(argv[2], "failures"))) {
        if (wd_cli_parse(argc, argv, 3, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_report(&a, !strcmp(argv[2], "cost")         ? REPORT_COST
                                 : !strcmp(argv[2], "compliance") ? REPORT_COMPLIANCE
                                                                  : REPORT_FAILURES);
    }
    if (!strcmp(cmd, "kill") || !strcmp(cmd, "revive")) {
        if (wd_cli_parse(argc, argv, 2, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_kill(&a, cmd[0] == 'r');
    }
    if (!strcmp(cmd, "approvals")) {
        if (wd_cli_parse(argc, argv, 2, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_approvals(&a);
    }
    if (!strcmp(cmd, "notify")) {
        if (wd_cli_parse(argc, argv, 2, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_notify(&a);
    }
    if (!strcmp(cmd, "breakers")) {
        if (wd_cli_parse(argc, argv, 2, &a) < 0)
            return wd_cli_usage(NULL);
        return wd_cli_breakers(&a);
    }
    fprintf(stderr, "warden: unknown command '%s'\n", cmd);
    return wd_cli_usage(NULL);
}
