/* auditpol.c - the policy's audit and notify sections: where the log goes, how it is
** synced, redacted, rotated, kept and sealed (docs/policy.md), and who is told of what */
#include "yread.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include "rx.h"

static const char *const AUDIT_KEYS[] = {"path",   "fsync",     "redact_keys",     "redact_patterns",
                                         "rotate", "retention", "personal_fields", NULL};
static const char *const ROTATE_KEYS[] = {"max_bytes", "max_age", NULL};
static const char *const RETENTION_KEYS[] = {"max_files", "max_age", "archive", NULL};
static const char *const NOTIFY_KEYS[] = {"webhooks", "max_attempts", "retry_base_ms", "retry_max_ms", NULL};
static const char *const WEBHOOK_KEYS[] = {"url", "events", "secret_env", "timeout_ms", NULL};
/* the fields audit.personal_fields may name; the tool_ ones also as FIELD:TOOL */
static const char *const PERSONAL[] = {"query",     "model_text",          "final_answer", "tool_calls",
                                       "tool_args", "tool_result_summary", "fields",       NULL};
static void load_keeping(wd_yread *c, const wd_ynode *a);

const char *const WD_NOTIFY_EVENTS[] = {"approval_requested", "approval_escalated", "approval_expiring",
                                        "breaker_opened",     "budget_warning",     "budget_exceeded",
                                        "kill_switch",        "detector_halt",      "detector_escalate",
                                        "unauthorized",       "auth_blocked",       NULL};

/* named redaction patterns users may list under audit.redact_patterns */
static const struct {
    const char *name, *rx;
} REDACT_NAMED[] = {
    {"credit_card", "\\b(?:\\d[ -]?){12,18}\\d\\b"},
    {"email", "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"},
    {"bearer_token", "\\bBearer\\s+[A-Za-z0-9._~+/=-]+"},
    {"api_key", "\\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"},
    {"ssn", "\\b\\d{3}-\\d{2}-\\d{4}\\b"},
    {NULL, NULL},
};

void wd_policy_load_audit(wd_yread *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, a, "audit", AUDIT_KEYS) < 0)
        return;
    wd_yread_str(c, a, "path", "audit", &p->audit_path);
    const wd_ynode *f = wd_ydoc_get(a, "fsync");
    if (f) {
        if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "always"))
            p->audit_fsync = WD_FSYNC_ALWAYS;
        else if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "batch"))
            p->audit_fsync = WD_FSYNC_BATCH;
        else if (f->kind == WD_Y_SCALAR && !strcmp(f->str, "none"))
            p->audit_fsync = WD_FSYNC_NONE;
        else
            wd_yread_err(c, f, "audit.fsync must be always, batch or none");
    }
    const wd_ynode *k = wd_ydoc_get(a, "redact_keys");
    if (k) {
        wd_yread_strlist_free(&p->redact_keys);
        memset(&p->redact_keys, 0, sizeof p->redact_keys);
        wd_yread_strlist(c, k, "audit.redact_keys", &p->redact_keys);
    }
    const wd_ynode *r = wd_ydoc_get(a, "redact_patterns");
    if (r) {
        wd_yread_strlist_free(&p->redact_pattern_names);
        memset(&p->redact_pattern_names, 0, sizeof p->redact_pattern_names);
        wd_yread_strlist(c, r, "audit.redact_patterns", &p->redact_pattern_names);
    }
    load_keeping(c, a);
}

int wd_policy_compile_redactions(wd_yread *c, const wd_ynode *root)
{
    wd_policy *p = c->p;
    const wd_ynode *at = wd_ydoc_get(wd_ydoc_get(root, "audit"), "redact_patterns");
    p->redact_patterns.v = calloc(p->redact_pattern_names.n + 1, sizeof(wd_rx *));
    if (!p->redact_patterns.v)
        return -1;
    for (size_t i = 0; i < p->redact_pattern_names.n; i++) {
        const char *name = p->redact_pattern_names.v[i];
        const char *src = NULL;
        for (int j = 0; REDACT_NAMED[j].name; j++)
            if (!strcmp(REDACT_NAMED[j].name, name))
                src = REDACT_NAMED[j].rx;
        char e[200];
        int named = src != NULL;
        if (!src) {
            if (strncmp(name, "re:", 3)) {
                wd_yread_err(c, at && i < at->n ? at->kids[i] : at,
                             "audit.redact_patterns: unknown '%s'; use credit_card, email, bearer_token, api_key, "
                             "ssn, or 're:<PCRE2 pattern>'",
                             name);
                continue;
            }
            src = name + 3;
        }
        wd_rx *rx = wd_rx_compile(src, named ? 0 : WD_RX_CASELESS, e, sizeof e);
        if (!rx) {
            wd_yread_err(c, at && i < at->n ? at->kids[i] : at, "audit.redact_patterns '%s': %s", name, e);
            continue;
        }
        p->redact_patterns.v[p->redact_patterns.n++] = rx;
    }
    return 0;
}

static void load_personal(wd_yread *c, const wd_ynode *n)
{
    wd_policy *p = c->p;
    wd_yread_strlist_free(&p->personal_fields);
    if (wd_yread_strlist(c, n, "audit.personal_fields", &p->personal_fields) < 0)
        return;
    for (size_t i = 0; i < p->personal_fields.n; i++) {
        const char *f = p->personal_fields.v[i];
        if (!f) /* not a string: reported by the list's reader */
            continue;
        const char *colon = strchr(f, ':');
        char name[64];
        size_t l = colon ? (size_t)(colon - f) : strlen(f);
        snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), f);
        int tool_only = !strcmp(name, "tool_args") || !strcmp(name, "tool_result_summary");
        if (!wd_yread_in_list(name, PERSONAL) || (colon && (!tool_only || !colon[1])))
            wd_yread_err(c, n,
                         "audit.personal_fields: '%s' is not a field that can be sealed; use query, model_text, "
                         "final_answer, tool_calls, tool_args, tool_result_summary, fields, or tool_args:TOOL / "
                         "tool_result_summary:TOOL",
                         f);
    }
}

/* audit.rotate, audit.retention and audit.personal_fields */
static void load_keeping(wd_yread *c, const wd_ynode *a)
{
    wd_policy *p = c->p;
    const wd_ynode *n;
    if ((n = wd_ydoc_get(a, "rotate")) && wd_yread_map(c, n, "audit.rotate", ROTATE_KEYS) == 0) {
        wd_yread_int(c, n, "max_bytes", "audit.rotate", &p->audit_rotate_bytes, 4096, 1LL << 40);
        wd_yread_dur(c, n, "max_age", "audit.rotate", &p->audit_rotate_ms, 1000, 3660LL * 86400000);
    }
    if ((n = wd_ydoc_get(a, "retention")) && wd_yread_map(c, n, "audit.retention", RETENTION_KEYS) == 0) {
        wd_yread_int(c, n, "max_files", "audit.retention", &p->audit_keep_files, 1, 1000000);
        wd_yread_dur(c, n, "max_age", "audit.retention", &p->audit_keep_ms, 1000, 36600LL * 86400000);
        wd_yread_bool(c, n, "archive", "audit.retention", &p->audit_archive);
        if (!p->audit_rotate_bytes && !p->audit_rotate_ms)
            wd_yread_err(c, n, "audit.retention removes rotated files: it needs audit.rotate (max_bytes or max_age)");
    }
    if ((n = wd_ydoc_get(a, "personal_fields")))
        load_personal(c, n);
}

static void load_webhook(wd_yread *c, const wd_ynode *w, size_t i)
{
    wd_policy *p = c->p;
    char where[64];
    snprintf(where, sizeof where, "notify.webhooks[%zu]", i);
    if (wd_yread_map(c, w, where, WEBHOOK_KEYS) < 0)
        return;
    wd_webhook *h = &p->webhooks[p->n_webhooks++];
    h->timeout_ms = 5000;
    wd_yread_str(c, w, "url", where, &h->url);
    wd_yread_str(c, w, "secret_env", where, &h->secret_env);
    wd_yread_dur(c, w, "timeout_ms", where, &h->timeout_ms, 100, 120000);
    if (!h->url || (strncmp(h->url, "http://", 7) && strncmp(h->url, "https://", 8)))
        wd_yread_err(c, w, "%s.url must be an http:// or https:// address", where);
    const wd_ynode *ev = wd_ydoc_get(w, "events");
    char ew[80];
    snprintf(ew, sizeof ew, "%s.events", where);
    if (!ev) {
        wd_yread_err(c, w, "%s.events must list what it is told of (or [\"*\"] for everything)", where);
        return;
    }
    if (wd_yread_strlist(c, ev, ew, &h->events) < 0)
        return;
    for (size_t k = 0; k < h->events.n; k++)
        if (strcmp(h->events.v[k], "*") && !wd_yread_in_list(h->events.v[k], WD_NOTIFY_EVENTS))
            wd_yread_err(c, ev,
                         "%s: unknown '%s'; use approval_requested, approval_escalated, approval_expiring, "
                         "breaker_opened, budget_warning, budget_exceeded, kill_switch, detector_halt, "
                         "detector_escalate, unauthorized, auth_blocked or *",
                         ew, h->events.v[k]);
}

void wd_policy_load_notify(wd_yread *c, const wd_ynode *n)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, n, "notify", NOTIFY_KEYS) < 0)
        return;
    wd_yread_int(c, n, "max_attempts", "notify", &p->notify_max_attempts, 1, 100);
    wd_yread_dur(c, n, "retry_base_ms", "notify", &p->notify_base_ms, 10, 3600000);
    wd_yread_dur(c, n, "retry_max_ms", "notify", &p->notify_max_ms, 10, 86400000);
    const wd_ynode *w = wd_ydoc_get(n, "webhooks");
    if (!w)
        return;
    if (w->kind != WD_Y_SEQ) {
        wd_yread_err(c, w, "notify.webhooks must be a list of {url, events, secret_env, timeout_ms}");
        return;
    }
    wd_policy_webhooks_free(p);
    p->webhooks = calloc(w->n ? w->n : 1, sizeof *p->webhooks);
    for (size_t i = 0; p->webhooks && i < w->n; i++)
        load_webhook(c, w->kids[i], i);
}

void wd_policy_account_defaults(wd_policy *p)
{
    p->notify_max_attempts = 8;
    p->notify_base_ms = 1000;
    p->notify_max_ms = 300000;
    p->serve_authfail_max = 500; /* more than 500 failed authentications a day: blocked a day */
    p->serve_authfail_window_ms = 86400000;
    p->serve_authfail_block_ms = 86400000;
    const char *personal[] = {"query", "model_text", "final_answer"};
    p->personal_fields.v = calloc(4, sizeof(char *));
    for (int i = 0; p->personal_fields.v && i < 3; i++)
        p->personal_fields.v[p->personal_fields.n++] = wd_strdup(personal[i]);
}

void wd_policy_webhooks_free(wd_policy *p)
{
    for (size_t i = 0; i < p->n_webhooks; i++) {
        free(p->webhooks[i].url);
        free(p->webhooks[i].secret_env);
        wd_yread_strlist_free(&p->webhooks[i].events);
    }
    free(p->webhooks);
    p->webhooks = NULL;
    p->n_webhooks = 0;
}

int wd_webhook_wants(const wd_webhook *h, const char *event)
{
    for (size_t k = 0; k < h->events.n; k++)
        if (!strcmp(h->events.v[k], "*") || !strcmp(h->events.v[k], event))
            return 1;
    return 0;
}

int wd_policy_notifies(const wd_policy *p, const char *event)
{
    for (size_t i = 0; i < p->n_webhooks; i++)
        if (wd_webhook_wants(&p->webhooks[i], event))
            return 1;
    return 0;
}
