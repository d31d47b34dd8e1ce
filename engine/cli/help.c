/* help.c - what `warden help`, `warden COMMAND --help`, the man page warden(1) and the
** bash completion say about each command: one table, so the four cannot drift apart
** (spec/help_spec.lua compares them). */
#include "cli.h"
#include "home.h"
#include "warden.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;    /* "run", "audit verify" */
    const char *usage;   /* after "warden " */
    const char *summary; /* one line */
    const char *options; /* "--opt ARG\tWhat it does\n" lines; "" none */
    const char *example; /* a command line */
} cmd_help;

#define POLICY_OPT                                                                                                     \
    "--policy FILE\tthe policy (default: WARDEN_POLICY, ./policies/default.yaml, /etc/warden/policy.yaml)\n"
#define STORE_OPT "--store FILE\tthe state store (default: WARDEN_STORE, the policy's store.path)\n"
#define JSON_OPT  "--json\tprint JSON instead of text\n"
#define SPAN_OPTS "--since T\tonly records from T on (RFC 3339 or a date)\n--until T\tonly records before T\n"

static const cmd_help CMDS[] = {
    {"run", "run AGENT [QUERY] [options]",
     "Run an agent once under the policy and print its result. Exit 0 when the run succeeded, 1 when it ran and "
     "did not, 2 when the configuration is wrong (nothing is run or recorded then).",
     "--user ID\twho runs it (default: WARDEN_USER, the policy user whose os_user is your login, the user named "
     "as your login)\n--session ID\truns with the same ID share their conversation (yours alone)\n" POLICY_OPT STORE_OPT
     "--llm mock:FILE|URL\tplay a mock scenario, or call this OpenAI-compatible URL, instead of the policy's "
     "models\n--stream\tprint the model's text as it comes (its calls streamed from the provider); with --json, to "
     "stderr\n" JSON_OPT,
     "warden run hello \"hi\" --llm mock:hello/scenarios/hello.yaml"},
    {"init", "init DIR",
     "Make a new agent in DIR: agent.lua, a tool, a prompt, a policy fragment, a mock scenario and "
     "a spec. DIR must not exist yet.",
     "", "warden init hello"},
    {"test", "test [PATH...] [busted options]",
     "Run busted specs (default: ./spec, or each agent directory's spec/) under Lua 5.4 with warden's modules "
     "(warden.testing) on the path. Exit 0 when every spec passed.",
     "PATH\ta spec file, or a directory searched for *_spec.lua\n--filter TEXT\tonly the tests whose name matches\n",
     "warden test hello"},
    {"check", "check PATH... [options]",
     "Load each agent directory or script as a run would (syntax, globals, require, tool definitions) and report "
     "every error with its file and line. Exit 2 on any error.",
     POLICY_OPT "--json\tprint {ok, scripts, errors} instead of text\n", "warden check agents/hello"},
    {"policy check", "policy check FILE [--json]",
     "Validate a policy file: every error with its line and column. Exit 0 when valid, 2 when not.", JSON_OPT,
     "warden policy check /etc/warden/policy.yaml"},
    {"serve", "serve [options]",
     "Serve the engine over HTTP or HTTPS: runs, approvals, the dashboard at /, metrics at /metrics. SIGHUP (or a "
     "changed file) reloads the policy and scripts; SIGTERM stops gracefully.",
     POLICY_OPT STORE_OPT
     "--agents DIR\tthe agents it serves (default: ./agents)\n"
     "--listen HOST:PORT\twhere to listen (default: WARDEN_LISTEN, 127.0.0.1:8080; port 0: any free one)\n"
     "--tls-cert FILE\tserve HTTPS with this PEM certificate chain (default: WARDEN_TLS_CERT)\n"
     "--tls-key FILE\tthe certificate's PEM private key (default: WARDEN_TLS_KEY)\n"
     "--workers N\tworker threads, 1 to 64 (default: 2)\n"
     "--llm mock:FILE|URL\tevery run plays this scenario or calls this URL\n"
     "--grace DURATION\thow long SIGTERM lets runs finish (default: 10s)\n"
     "--max-body BYTES\tthe largest request body (default: 1048576)\n",
     "warden serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem"},
    {"audit verify", "audit verify [FILE...] [options]",
     "Check the audit log's hash chain, across rotated files: exit 0 when intact, 1 when a record was changed, "
     "removed or reordered (the first bad line is named). Several files: each on its own chain (one per host).",
     "--merged\ta view audit merge wrote: each host's records checked as that host's chain\n" POLICY_OPT JSON_OPT,
     "warden audit verify /var/log/warden/audit.jsonl"},
    {"audit merge", "audit merge FILE... [options]",
     "Interleave several hosts' audit logs into one time-ordered view; each line is copied as it was, so each "
     "host's chain still verifies (audit verify --merged).",
     "--out FILE\twrite the view to FILE (created, 0600) instead of standard output\n",
     "warden audit merge host-a/audit.jsonl host-b/audit.jsonl --out all.jsonl"},
    {"audit query", "audit query [FILE] [options]", "Print the audit records that match every filter given.",
     "--run ID\tone run\n--user ID\tone user\n--event TYPE\tone event type\n--since T\tfrom T on\n" POLICY_OPT,
     "warden audit query --event authorization_denied --since 2026-12-01"},
    {"audit trace", "audit trace RUN_ID [FILE] [options]",
     "Tell one run as a story: what the model was asked and said, each tool call and check, the result.", POLICY_OPT,
     "warden audit trace 2ee60622-e1a2-48cb-9c3b-70f46f2e36a2"},
    {"audit erase", "audit erase --user ID [options]",
     "Erase a user's personal fields from the audit log (their sealing key is destroyed); the chain stays intact.",
     "--user ID\twhose data\n--reason TEXT\twhy (recorded)\n--by WHO\twho asks (default: your login)\n" POLICY_OPT,
     "warden audit erase --user bob --reason \"GDPR request 118\""},
    {"report cost", "report cost [AUDIT_FILE...] [options]",
     "Money spent by user, agent, model and tool, with what each budget has left.", SPAN_OPTS POLICY_OPT JSON_OPT,
     "warden report cost --since 2026-12-01"},
    {"report compliance", "report compliance [AUDIT_FILE...] [options]",
     "What the audit log shows: runs, success rate, policy violations, approvals, redactions, chain integrity.",
     SPAN_OPTS POLICY_OPT JSON_OPT, "warden report compliance --json"},
    {"report failures", "report failures [AUDIT_FILE...] [options]",
     "Why runs failed: by status, by tool, by error, with the runs to look at.", SPAN_OPTS POLICY_OPT JSON_OPT,
     "warden report failures --since 2026-12-06"},
    {"approvals", "approvals list|approve ID|reject ID [options]",
     "List pending approval requests, or decide one. Who decides is proved by an API key (--key-file or "
     "WARDEN_API_KEY) or by the login, mapped with users.NAME.os_user.",
     "--all\tlist decided and expired requests too\n--key-file FILE\ta file holding the approver's API key\n"
     "--by WHO\tthe approver\n--reason TEXT\twhy (required to reject)\n" POLICY_OPT STORE_OPT JSON_OPT,
     "warden approvals approve 7f3c2a --by team_lead"},
    {"kill", "kill [AGENT|--all] [options]",
     "Stop an agent (or every agent) now: its runs end at their next step and new ones are refused, on every "
     "process sharing the store. Without AGENT: list what is killed.",
     "--all\tevery agent\n--reason TEXT\twhy (recorded)\n--by WHO\twho (default: your login)\n" POLICY_OPT STORE_OPT
         JSON_OPT,
     "warden kill research_assistant --reason \"runaway spend\""},
    {"revive", "revive AGENT|--all [options]", "Let a killed agent run again.",
     "--all\tevery agent\n--by WHO\twho (default: your login)\n" POLICY_OPT STORE_OPT,
     "warden revive research_assistant"},
    {"breakers", "breakers [reset NAME --user ID] [options]",
     "List the circuit breakers and their state, or close one by hand (the user must hold the highest role).",
     "--user ID\twho resets it\n" POLICY_OPT STORE_OPT JSON_OPT,
     "warden breakers reset tool:search_documents --user alice"},
    {"notify", "notify list [--all] [options]",
     "List webhook notifications that could not be delivered (dead letters); --all: pending ones too.",
     "--all\tpending notifications too\n" POLICY_OPT STORE_OPT JSON_OPT, "warden notify list"},
    {"help", "help [COMMAND]", "Print the commands, or one command's help (the same as warden COMMAND --help).", "",
     "warden help audit verify"},
    {"version", "version", "Print warden's version (also: warden --version).", "", "warden --version"},
};
#define NCMDS (sizeof CMDS / sizeof *CMDS)

/* the command that argv[1..] names (two words first), and how many words it took */
static const cmd_help *find(int argc, char **argv, int *words)
{
    char two[128];
    if (argc >= 3) {
        snprintf(two, sizeof two, "%s %s", argv[1], argv[2]);
        for (size_t i = 0; i < NCMDS; i++)
            if (!strcmp(CMDS[i].name, two))
                return *words = 2, &CMDS[i];
    }
    for (size_t i = 0; argc >= 2 && i < NCMDS; i++)
        if (!strcmp(CMDS[i].name, argv[1]))
            return *words = 1, &CMDS[i];
    return NULL;
}

/* s[0..n) in lines of at most 79 columns, each after `indent` spaces but the first
** (which starts at column `at`) */
static void wrap(FILE *f, const char *s, size_t n, int indent, int at)
{
    const char *end = s + n;
    while (s < end) {
        size_t room = (size_t)(79 - at), len = (size_t)(end - s);
        if (len > room) { /* break at the last space that fits */
            len = room;
            while (len > 0 && s[len] != ' ')
                len--;
            if (!len)
                len = strcspn(s, " ") < (size_t)(end - s) ? strcspn(s, " ") : (size_t)(end - s);
        }
        fprintf(f, "%.*s\n", (int)len, s);
        s += len;
        while (s < end && *s == ' ')
            s++;
        if (s < end)
            fprintf(f, "%*s", indent, "");
        at = indent;
    }
}

/* one command's help as the man page shows it too */
static void print_one(FILE *f, const cmd_help *c)
{
    fprintf(f, "usage: warden %s\n\n", c->usage);
    wrap(f, c->summary, strlen(c->summary), 0, 0);
    if (*c->options) {
        fputs("\noptions:\n", f);
        for (const char *p = c->options; *p;) {
            const char *nl = strchr(p, '\n'), *tab = strchr(p, '\t');
            fprintf(f, "  %-22.*s ", (int)(tab - p), p);
            wrap(f, tab + 1, (size_t)(nl - tab - 1), 25, 25);
            p = nl + 1;
        }
    }
    fprintf(f, "\nexample:\n  %s\n", c->example);
}

static void print_all(FILE *f)
{
    fputs("usage: warden COMMAND [options]   (warden COMMAND --help: one command's options and an example)\n\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-44s\n", CMDS[i].usage);
    fputs("\nexit codes: 0 success; 1 a run (or a verification) that did not succeed; 2 usage or configuration\n"
          "docs: man warden, man warden-policy, and docs/ under the warden home (warden help --home)\n",
          f);
}

/* text for troff: a backslash doubled, a leading dot or quote protected */
static void troff(FILE *f, const char *s)
{
    for (int bol = 1; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
        bol = *s == '\n';
    }
}

/* warden(1): each command's help verbatim in a no-fill block, so the page and --help
** say the same */
static void print_man(FILE *f)
{
    fprintf(f,
            ".TH WARDEN 1 \"\" \"warden %s\" \"User Commands\"\n.SH NAME\nwarden \\- run LLM agents under "
            "an enforced policy\n.SH SYNOPSIS\n.B warden\n.I COMMAND\n[options]\n.SH DESCRIPTION\n",
            WARDEN_VERSION);
    troff(f, "warden runs agents (Lua scripts) whose every model call and tool call passes through its engine: "
             "authorization, budgets, rate limits, timeouts, retries, circuit breakers, guardrails, approvals and "
             "a hash-chained audit log. The policy (warden-policy(5)) says what is allowed.\n");
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < NCMDS; i++) {
        fputs(".SS ", f);
        troff(f, CMDS[i].name);
        fputs("\n.nf\n", f);
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        if (m) {
            print_one(m, &CMDS[i]);
            fclose(m);
            troff(f, text);
        }
        free(text);
        fputs(".fi\n", f);
    }
    fputs(".SH ENVIRONMENT\n.TP\nWARDEN_POLICY\nthe policy when --policy is not given\n.TP\nWARDEN_LISTEN\n"
          "where warden serve listens when --listen is not given\n.TP\nWARDEN_STORE\nthe state store when --store "
          "is not given\n.TP\nWARDEN_USER\nwho runs when --user is not given\n.TP\nWARDEN_HOME\nwhere warden's own "
          "files are (Lua modules, dashboard, templates); default: found from the binary's prefix\n.TP\n"
          "WARDEN_API_KEY\nthe approver's API key for warden approvals\n.TP\nWARDEN_TLS_CERT, WARDEN_TLS_KEY\n"
          "warden serve's certificate and key when --tls-cert and --tls-key are not given\n",
          f);
    fputs(".SH FILES\n.TP\n/etc/warden/policy.yaml\nthe policy when no other is found\n.TP\n/var/lib/warden\nthe "
          "state store of the packaged service\n.TP\n/var/log/warden\nits audit log\n",
          f);
    fputs(".SH EXIT STATUS\n0 success; 1 a run or verification that did not succeed; 2 usage or configuration "
          "error.\n.SH SEE ALSO\nwarden\\-policy(5)\n",
          f);
}

int wd_cli_help(int argc, char **argv, int from, FILE *f)
{
    if (argc > from && !strcmp(argv[from], "--man"))
        return print_man(f), 0;
    if (argc > from && !strcmp(argv[from], "--home")) {
        int found;
        const char *h = wd_home_dir(&found);
        fprintf(f, "%s\n", h);
        return found ? 0 : 1;
    }
    if (argc > from && !strcmp(argv[from], "--commands")) { /* bash completion */
        for (size_t i = 0; i < NCMDS; i++)
            fprintf(f, "%s\n", CMDS[i].name);
        return 0;
    }
    if (argc > from + 1 && !strcmp(argv[from], "--options")) { /* bash completion: warden help --options audit verify */
        int words = 0;
        char *v[4] = {argv[0], argv[from + 1], argc > from + 2 ? argv[from + 2] : NULL, NULL};
        const cmd_help *c = find(v[2] ? 3 : 2, v, &words);
        for (const char *p = c ? c->options : ""; *p; p = strchr(p, '\n') + 1)
            if (*p == '-')
                fprintf(f, "%.*s\n", (int)strcspn(p, " \t"), p);
        fputs("--help\n", f);
        return 0;
    }
    if (argc <= from)
        return print_all(f), 0;
    int words = 0;
    char *v[4] = {argv[0], argv[from], argc > from + 1 ? argv[from + 1] : NULL, NULL};
    const cmd_help *c = find(v[2] ? 3 : 2, v, &words);
    if (!c) { /* "audit": its subcommands */
        int any = 0;
        for (size_t i = 0; i < NCMDS; i++)
            if (!strncmp(CMDS[i].name, argv[from], strlen(argv[from])) && CMDS[i].name[strlen(argv[from])] == ' ') {
                fprintf(f, "usage: warden %s\n", CMDS[i].usage);
                any++;
            }
        if (!any) {
            fprintf(stderr, "warden: no command '%s' (warden help lists them)\n", argv[from]);
            return 2;
        }
        return 0;
    }
    print_one(f, c);
    return 0;
}

int wd_cli_help_for(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            char *v[4] = {argv[0], argv[1], i > 2 ? argv[2] : NULL, NULL};
            int words = 0;
            const cmd_help *c = find(v[2] ? 3 : 2, v, &words);
            if (!c)
                return wd_cli_help(2, v, 1, stdout);
            print_one(stdout, c);
            return 0;
        }
    return -1;
}

int wd_cli_usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "warden: %s\n", msg);
    fputs("warden: 'warden help' lists the commands; 'warden COMMAND --help' shows one\n", stderr);
    return 2;
}
