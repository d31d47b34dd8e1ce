/* apiops.c - approvals and the operator routes of the HTTP API: kill and revive,
** breakers, the cost report, metrics and the dashboard */
#include "admin.h"
#include "admit.h"
#include "approval.h"
#include "bound.h"
#include "chunks.h"
#include "detect.h"
#include "killswitch.h"
#include "redact.h"
#include "report.h"
#include "serve.h"
#include "apicall.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- approvals ------------------------------------------------------------- */

/* user is in the list of approvers */
static int named_approver(const json_t *approvers, const char *user)
{
    size_t i;
    json_t *a;
    json_array_foreach(approvers, i, a) if (json_is_string(a) && !strcmp(json_string_value(a), user)) return 1;
    return 0;
}

/* the requests this user may see: an admin every one, others those naming them as an
** approver or asked by their own runs */
void wd_api_get_approvals(wd_call *c, int all)
{
    wd_store *st = wd_engine_store(c->f->e);
    json_t *l;
    if (wd_store_approval_sweep(st, wd_store_now(st)) < 0 || wd_store_approval_list(st, all, &l) < 0) {
        wd_call_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(l, i, r)
    {
        const char *owner = json_string_value(json_object_get(r, "user_id"));
        if (c->admin || named_approver(json_object_get(r, "approvers"), c->user->name) ||
            (owner && !strcmp(owner, c->user->name)))
            json_array_append(out, r);
    }
    json_decref(l);
    wd_call_json(c, 200, out);
}

void wd_api_decide(wd_call *c, const char *id, int approve)
{
    wd_store *st = wd_engine_store(c->f->e);
    json_t *o = wd_call_body(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"reason", NULL};
    const char *reason;
    if (!wd_call_keys(c, o, KEYS, "reason") || wd_call_opt_string(c, o, "reason", &reason) < 0)
        goto done;
    if (!approve && (!reason || !*reason)) {
        wd_call_error(c, 400, "request body: a rejection needs a 'reason'");
        goto done;
    }
    int64_t now = wd_store_now(st);
    wd_approval_state as;
    int found = wd_store_approval_sweep(st, now) < 0 ? -1 : wd_store_approval_get(st, id, &as);
    if (found < 0) {
        wd_call_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
        goto done;
    }
    if (!found) {
        wd_call_error(c, 404, "no approval request %s", id);
        goto done;
    }
    int may = c->admin || named_approver(as.approvers, c->user->name);
    wd_approval_state_clear(&as);
    if (!may) {
        char why[300];
        snprintf(why, sizeof why, "%s is not an approver of request %s (an admin or a named approver decides)",
                 c->user->name, id);
        wd_call_deny(c, 403, c->user->name, why);
        goto done;
    }
    char msg[1400];
    int got = wd_approval_decide(st, id, approve, c->user->name, "api_key", reason, now, msg, sizeof msg);
    if (got < 0)
        wd_call_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
    else if (!got)
        wd_call_error(c, 409, "%s", msg);
    else
        wd_call_json(c, 200,
                     json_pack("{s:s,s:s,s:s}", "id", id, "decision", approve ? "approve" : "reject", "message", msg));
done:
    json_decref(o);
}

/* ---- operator routes ----------------------------------------------------------- */

static void invalidate_kills(void *arg, int index, wd_engine *e)
{
    (void)arg;
    (void)index;
    wd_kills_invalidate(e);
}

void wd_api_kill_or_revive(wd_call *c, int revive)
{
    json_t *o = wd_call_body(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"agent", "all", "reason", NULL};
    const char *agent, *reason;
    json_t *all = json_object_get(o, "all");
    if (!wd_call_keys(c, o, KEYS, "agent, all, reason") || wd_call_opt_string(c, o, "agent", &agent) < 0 ||
        wd_call_opt_string(c, o, "reason", &reason) < 0)
        goto done;
    if (!!agent == json_is_true(all)) {
        wd_call_error(c, 400, "request body: give an 'agent', or \"all\": true");
        goto done;
    }
    const char *target = agent ? agent : WD_KILL_ALL;
    const char *why = reason && *reason ? reason : revive ? "revived" : "killed by an operator";
    json_t *rec;
    int got = wd_admin_kill(wd_engine_store(c->f->e), target, revive, c->user->name, why, &rec);
    if (got < 0) {
        wd_call_error(c, 503, "state store: %s", wd_store_error(wd_engine_store(c->f->e)));
        goto done;
    }
    json_incref(rec);
    wd_call_audit_now(c->f, c->p, rec);
    if (got > 0)
        wd_engine_notify(c->f->e, rec); /* a kill: the webhooks are told */
    json_decref(rec);
    /* every worker reads the switch again before its next run, not within its poll */
    for (int i = 0; i < c->f->srv->nfronts; i++)
        wd_pool_post(c->f->srv->pool, i, invalidate_kills, NULL);
    wd_call_json(
        c, 200,
        json_pack("{s:s,s:s,s:b}", "agent", agent ? agent : "*", "action", revive ? "revive" : "kill", "changed", got));
done:
    json_decref(o);
}

void wd_api_reset_breaker(wd_call *c, const char *name)
{
    int from;
    json_t *rec;
    int got = wd_admin_breaker_reset(wd_engine_store(c->f->e), name, c->user->name, &from, &rec);
    if (got < 0)
        wd_call_error(c, 503, "state store: %s", wd_store_error(wd_engine_store(c->f->e)));
    else if (!got)
        wd_call_error(c, 404, "no breaker named '%s' (GET /v1/breakers lists them)", name);
    else {
        wd_call_audit_now(c->f, c->p, rec);
        wd_call_json(c, 200,
                     json_pack("{s:s,s:s,s:s}", "name", name, "state", "closed", "was", wd_breaker_state_name(from)));
    }
}

/* a query parameter, or NULL */

void wd_api_get_cost(wd_call *c, struct evkeyvalq *q)
{
    const char *si = wd_call_param(q, "since"), *un = wd_call_param(q, "until");
    int64_t since = si ? wd_parse_time(si) : -1, until = un ? wd_parse_time(un) : -1;
    if ((si && since < 0) || (un && until < 0)) {
        wd_call_error(c, 400, "since and until want a time like 2026-11-21 or 2026-11-21T10:00:00Z");
        return;
    }
    char err[600];
    const char *log[1] = {wd_audit_path(wd_engine_audit(c->f->e))};
    json_t *rep = wd_report_cost(log, 1, wd_engine_store(c->f->e), c->p, since, until,
                                 until >= 0 ? until : wd_wall_ms(), err, sizeof err);
    if (!rep)
        wd_call_error(c, 503, "%s", err);
    else
        wd_call_json(c, 200, rep);
}

void wd_api_get_metrics(wd_call *c)
{
    wd_buf b = {0};
    wd_metrics_now now = {wd_registry_live(c->f->srv->reg), atomic_load(&c->f->srv->generation), 0, 0, 0};
    wd_admit_counts(c->f->srv->admit, &now.running, &now.queued, &now.reserved_mb);
    if (wd_metrics_render(c->f->srv->met, &b, wd_engine_store(c->f->e), c->p, &now) < 0) {
        wd_buf_free(&b);
        wd_call_error(c, 503, "out of memory");
        return;
    }
    wd_call_text(c, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
    wd_buf_free(&b);
}

/* everything the dashboard shows, in one answer */
void wd_api_get_dashboard(wd_call *c)
{
    wd_server *s = c->f->srv;
    wd_store *st = wd_engine_store(c->f->e);
    json_t *appr = NULL, *br = wd_admin_breakers(st, c->p);
    if (wd_store_approval_sweep(st, wd_store_now(st)) < 0 || wd_store_approval_list(st, 0, &appr) < 0)
        appr = json_array();
    json_t *d = json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "runs", wd_registry_list(s->reg, NULL, 0, 50), "costs",
                          wd_metrics_costs(s->met), "breakers", br ? br : json_array(), "approvals", appr, "violations",
                          wd_registry_violations(s->reg), "runs_active", (json_int_t)wd_registry_live(s->reg),
                          "policy_generation", (json_int_t)atomic_load(&s->generation));
    wd_call_json(c, 200, d);
}

void wd_api_get_page(wd_call *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dashboard.html", c->f->srv->web_dir);
    size_t n;
    char *html = wd_read_file(path, 1u << 20, &n);
    if (!html) {
        wd_call_error(c, 404, "the dashboard's page %s cannot be read", path);
        return;
    }
    wd_call_text(c, 200, "text/html; charset=utf-8", html, n);
    free(html);
}
