/* auditcmds.c - warden audit verify | query | trace | erase: the log read back */
#include "cli.h"
#include "audit.h"
#include "events.h"
#include "reader.h"
#include "seal.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* caller frees: the audit path, the positional argument at `at` or else the policy's
** audit.path */
static char *audit_path(args_t *a, int at)
{
    if (a->npos > at)
        return strdup(a->pos[at]);
    wd_policy *p = wd_cli_policy(a);
    if (!p)
        return NULL;
    char *s = strdup(p->audit_path);
    wd_policy_unref(p);
    return s;
}

/* one log (or, --merged, a view audit merge wrote): 0 intact, 1 broken, -1 unreadable */
static int verify_one(args_t *a, const char *path, json_t *list)
{
    wd_buf rep = {0};
    long n = 0;
    int rc = a->merged ? wd_audit_verify_merged(path, &rep, &n) : wd_audit_verify(path, &rep, &n);
    if (a->json)
        json_array_append_new(list, json_pack("{s:b,s:i,s:s,s:s}", "intact", rc == 0, "records", (json_int_t)n, "path",
                                              path, "report", rep.p ? rep.p : ""));
    else
        printf("%s\n", rep.p ? rep.p : "");
    wd_buf_free(&rep);
    return rc;
}

/* ** warden audit verify [FILE...]: each log on its own chain (each host's file, in a
** deployment sharing a Redis store); exit 0 only when every one is intact. --json
** prints one object for one file, a list for several. */
static int cmd_verify(args_t *a)
{
    json_t *list = json_array();
    int worst = 0;
    for (int i = 0; i < (a->npos ? a->npos : 1); i++) {
        char *path = audit_path(a, i);
        if (!path) {
            json_decref(list);
            return 2;
        }
        int rc = verify_one(a, path, list);
        worst = rc < 0 || worst < 0 ? -1 : rc > worst ? rc : worst;
        free(path);
    }
    if (a->json) {
        json_t *show = json_array_size(list) == 1 ? json_array_get(list, 0) : list;
        char *out = json_dumps(show, JSON_COMPACT);
        puts(out ? out : "{}");
        free(out);
    }
    json_decref(list);
    return worst == 0 ? 0 : worst == 1 ? 1 : 2;
}

/* warden audit merge FILE... [--out FILE]: one time-ordered view of several hosts' logs */
static int cmd_merge(args_t *a)
{
    if (a->npos < 1) {
        fprintf(stderr, "warden: audit merge needs the logs to merge: warden audit merge A.jsonl B.jsonl\n");
        return 2;
    }
    FILE *out = stdout;
    if (a->out) {
        int fd = open(a->out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        out = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!out) {
            fprintf(stderr, "warden: cannot create %s: %s\n", a->out, strerror(errno));
            if (fd >= 0)
                close(fd);
            return 2;
        }
    }
    wd_buf rep = {0};
    long n = 0;
    int rc = wd_audit_merge(a->pos, (size_t)a->npos, out, &rep, &n);
    if ((out != stdout && fclose(out) != 0) || (out == stdout && fflush(out) != 0))
        rc = rc ? rc : -1;
    fprintf(stderr, "%s%s\n", rc ? "warden: " : "", rep.p ? rep.p : "");
    wd_buf_free(&rep);
    if (rc && a->out)
        unlink(a->out); /* no half view left behind */
    return rc == 0 ? 0 : rc == 1 ? 1 : 2;
}

/* ** Sealed fields are opened for the reader with the keys of the policy's store, fetched
** when the first sealed record is met: a log without any needs no store. */
typedef struct opener {
    args_t *a;
    int tried;
    wd_policy *p;
    wd_store *st;
    wd_keyring *kr;
} opener;

static void unseal(opener *o, json_t *rec)
{
    if (!json_object_get(rec, "sealed"))
        return;
    if (!o->tried) { /* without a store, sealed fields read [SEALED] */
        o->tried = 1;
        o->st = wd_cli_store(o->a, &o->p);
        o->kr = o->st ? wd_keyring_new(o->st) : NULL;
    }
    if (wd_unseal_record(o->kr, rec) < 0)
        fprintf(stderr, "warden: state store: %s\n", wd_store_error(o->st));
}

static void opener_close(opener *o)
{
    wd_keyring_free(o->kr);
    wd_store_close(o->st);
    wd_policy_unref(o->p);
}

typedef struct query {
    args_t *a;
    long long since;
    long shown;
    opener o;
} query;

static int query_one(void *ud, json_t *r)
{
    query *q = ud;
    args_t *a = q->a;
    const char *ev = json_string_value(json_object_get(r, "event"));
    const char *run = json_string_value(json_object_get(r, "run_id"));
    const char *user = json_string_value(json_object_get(r, "user_id"));
    const char *ts = json_string_value(json_object_get(r, "timestamp"));
    int keep = (!a->event || (ev && !strcmp(ev, a->event))) && (!a->run || (run && !strcmp(run, a->run))) &&
               (!a->user || (user && !strcmp(user, a->user))) &&
               (q->since < 0 || (ts && wd_parse_time(ts) >= q->since));
    if (!keep)
        return 0;
    unseal(&q->o, r);
    char *line = json_dumps(r, WD_AUDIT_JSON_FLAGS);
    if (line)
        puts(line);
    free(line);
    q->shown++;
    return 0;
}

static int cmd_query(args_t *a)
{
    char *path = audit_path(a, 0);
    if (!path)
        return 2;
    query q = {a, -1, 0, {a, 0, NULL, NULL, NULL}};
    if (a->since && (q.since = wd_parse_time(a->since)) < 0) {
        fprintf(stderr, "warden: --since wants a time like 2026-11-21 or 2026-11-21T10:00:00Z\n");
        free(path);
        return 2;
    }
    int rc = wd_audit_read(path, query_one, &q);
    opener_close(&q.o);
    if (rc < 0) {
        fprintf(stderr, "warden: cannot open %s\n", path);
        free(path);
        return 2;
    }
    free(path);
    if (!a->json)
        fprintf(stderr, "%ld record%s\n", q.shown, q.shown == 1 ? "" : "s");
    return 0;
}

/* ---- warden audit trace RUN_ID [FILE]: one run as a story ---------------------- */

/* ** Text from the log onto an operator's terminal: what a model or a tool wrote may hold
** escape sequences (clear the screen, retitle the window, hide a line). Control bytes
** are shown as \xNN, a newline as \n, so the story is the log's and nothing else. */
static void put_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t') /* a traceback's indent: harmless */
            fputs("  ", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

/* v as one line of text, at most max characters of it ("..." after a cut) */
static void show(const char *label, const json_t *v, size_t max)
{
    if (!v || json_is_null(v))
        return;
    char *t = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t)
        return;
    int cut = 0;
    char *h = wd_utf8_head(t, strlen(t), max, &cut);
    printf("      %s ", label);
    put_safe(h ? h : "", h ? strlen(h) : 0);
    printf("%s\n", cut ? " ..." : "");
    free(h);
    free(t);
}

/* a string member of r for printf: at most 400 bytes, control bytes shown as '?' (one
** of eight buffers, so a printf may take several) */
static const char *str(const json_t *r, const char *k)
{
    static char bufs[8][404];
    static int next;
    const char *s = json_string_value(json_object_get(r, k));
    char *b = bufs[next++ % 8];
    size_t i = 0;
    for (; s && s[i] && i < 400; i++)
        b[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    b[i] = '\0';
    return b;
}

/* an indented block of text: a traceback */
static void block(const char *label, const char *text)
{
    if (!text || !*text)
        return;
    printf("      %s\n", label);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fputs("        ", stdout);
        put_safe(p, (size_t)n);
        putchar('\n');
        p += n + (nl != NULL);
    }
}

typedef struct trace {
    const char *run;
    long records;
    opener o;
} trace;

static void trace_llm(const json_t *r)
{
    json_t *ok = json_object_get(r, "success");
    printf("  step %lld  model %s: %s (%lld in, %lld out tokens, $%.6f, %lld ms)\n",
           (long long)json_integer_value(json_object_get(r, "agent_step")), str(r, "model"),
           json_is_true(ok) ? "answered" : "failed", (long long)json_integer_value(json_object_get(r, "input_tokens")),
           (long long)json_integer_value(json_object_get(r, "output_tokens")),
           json_number_value(json_object_get(r, "cost_usd")),
           (long long)json_integer_value(json_object_get(r, "latency_ms")));
    show("said:", json_object_get(r, "model_text"), 2000);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "tool_calls"), i, c)
    {
        char label[200];
        snprintf(label, sizeof label, "asked for %s:", str(c, "name"));
        show(label, json_object_get(c, "arguments"), 400);
    }
    show("error:", json_object_get(r, "error"), 600);
}

static void trace_tool(const json_t *r)
{
    int ok = json_is_true(json_object_get(r, "success"));
    printf("  step %lld  tool %s: %s (%lld ms, $%.6f)\n",
           (long long)json_integer_value(json_object_get(r, "agent_step")), str(r, "tool_name"), ok ? "ok" : "failed",
           (long long)json_integer_value(json_object_get(r, "latency_ms")),
           json_number_value(json_object_get(r, "cost_usd")));
    show("with:", json_object_get(r, "tool_args"), 400);
    show(ok ? "gave:" : "error:", json_object_get(r, ok ? "tool_result_summary" : "error"), 400);
    if (json_array_size(json_object_get(r, "data_modified")))
        show("changed:", json_object_get(r, "data_modified"), 400);
    else
        show("read:", json_object_get(r, "data_accessed"), 400);
    block("traceback:", json_string_value(json_object_get(r, "traceback")));
}

static int trace_one(void *ud, json_t *r)
{
    trace *t = ud;
    if (strcmp(str(r, "run_id"), t->run))
        return 0;
    t->records++;
    unseal(&t->o, r);
    const char *ev = str(r, "event");
    printf("%s  ", str(r, "timestamp"));
    if (!strcmp(ev, "run_started")) {
        printf("run %s started: agent %s, user %s\n", t->run, str(r, "agent"), str(r, "user_id"));
        printf("      agent version %.16s, policy generation %lld (%.16s)\n", str(r, "agent_version"),
               (long long)json_integer_value(json_object_get(r, "policy_generation")), str(r, "policy_sha256"));
        show("asked:", json_object_get(r, "query"), 2000);
        show("error:", json_object_get(r, "error"), 600);
    } else if (!strcmp(ev, "llm_call")) {
        trace_llm(r);
    } else if (!strcmp(ev, "tool_call")) {
        trace_tool(r);
    } else if (!strcmp(ev, "run_finished")) {
        printf("run finished: %s after %lld steps, %lld ms, $%.6f\n", str(r, "reason"),
               (long long)json_integer_value(json_object_get(r, "agent_step")),
               (long long)json_integer_value(json_object_get(r, "latency_ms")),
               json_number_value(json_object_get(r, "cost_usd")));
        show("final answer:", json_object_get(r, "final_answer"), 4000);
        show("result:", json_object_get(r, "result"), 600);
        show("error:", json_object_get(r, "error"), 600);
        block("traceback:", json_string_value(json_object_get(r, "traceback")));
    } else {
        printf("%s%s\n", ev, json_is_false(json_object_get(r, "success")) ? " (refused or failed)" : "");
        show("tool:", json_object_get(r, "tool_name"), 200);
        show("why:", json_object_get(r, "reason"), 600);
        if (strcmp(str(r, "error"), str(r, "reason")))
            show("error:", json_object_get(r, "error"), 600);
    }
    return 0;
}

static int cmd_trace(args_t *a)
{
    if (a->npos < 1)
        return wd_cli_usage("audit trace takes a run id");
    char *path = audit_path(a, 1);
    if (!path)
        return 2;
    trace t = {a->pos[0], 0, {a, 0, NULL, NULL, NULL}};
    int rc = wd_audit_read(path, trace_one, &t);
    opener_close(&t.o);
    if (rc < 0)
        fprintf(stderr, "warden: cannot open %s\n", path);
    else if (!t.records)
        fprintf(stderr, "warden: no records of run %s in %s\n", t.run, path);
    free(path);
    return rc < 0 || !t.records ? 2 : 0;
}

/* warden audit erase --user U: the user's keys destroyed, so the personal fields of
** every record of theirs read [ERASED]; the chain is untouched, the erasure audited */
static int cmd_erase(args_t *a)
{
    if (!a->user || !*a->user || a->npos)
        return wd_cli_usage("audit erase takes --user ID");
    wd_policy *p;
    wd_store *st = wd_cli_store(a, &p);
    if (!st)
        return 2;
    int n = wd_store_audit_erase(st, a->user, wd_store_now(st));
    struct passwd *pw = getpwuid(getuid());
    const char *by = a->by && *a->by ? a->by : pw ? pw->pw_name : getenv("USER");
    char why[300];
    snprintf(why, sizeof why, "%s", a->reason && *a->reason ? a->reason : "erasure requested");
    json_t *rec =
        json_pack("{s:s,s:b,s:s,s:s?,s:s,s:i}", "event", wd_event_name(WD_AE_PERSONAL_DATA_ERASED), "success", n >= 0,
                  "user_id", a->user, "decided_by", by, "reason", why, "keys_destroyed", n < 0 ? 0 : n);
    if (n < 0)
        json_object_set_new(rec, "error", json_string(wd_store_error(st)));
    int logged = wd_cli_audit_one(p, rec);
    if (n < 0)
        fprintf(stderr, "warden: state store %s: %s\n", wd_store_path(st), wd_store_error(st));
    else
        printf("%s: %d key%s destroyed; their personal fields now read [ERASED]\n", a->user, n, n == 1 ? "" : "s");
    wd_store_close(st);
    wd_policy_unref(p);
    return n < 0 || logged < 0 ? 2 : 0;
}

int wd_cli_audit(args_t *a, int what)
{
    switch (what) {
    case AUDIT_VERIFY: return cmd_verify(a);
    case AUDIT_QUERY: return cmd_query(a);
    case AUDIT_TRACE: return cmd_trace(a);
    case AUDIT_MERGE: return cmd_merge(a);
    default: return cmd_erase(a);
    }
}
