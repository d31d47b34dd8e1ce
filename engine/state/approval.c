/* approval.c - the rules of approval requests (approval.h); their rows live in the
** state store (wd_store_approval_*) */
#include "approval.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const WD_URGENCIES[4] = {"low", "normal", "high", "critical"};

int wd_approval_create(wd_store *s, const json_t *req, char id[37])
{
    wd_uuid(id);
    return wd_store_approval_insert(s, id, req);
}

void wd_approval_state_clear(wd_approval_state *st)
{
    json_decref(st->approved_by);
    json_decref(st->approvers);
    st->approved_by = st->approvers = NULL;
}

int wd_approval_close(wd_store *s, const char *id, const char *status, const char *reason, int64_t now_ms)
{
    if (wd_store_begin(s) < 0)
        return -1;
    wd_approval_change ch = {.status = status, .reason = reason, .decided_ms = now_ms, .only_pending = 1};
    int rc = wd_store_approval_update(s, id, &ch);
    if (rc < 0 || wd_store_commit(s) < 0) {
        wd_store_rollback(s);
        return -1;
    }
    return rc;
}

/* is name in the list? */
static int listed(const json_t *l, const char *name)
{
    size_t i;
    json_t *v;
    int found = 0;
    json_array_foreach(l, i, v) found |= json_is_string(v) && !strcmp(json_string_value(v), name);
    return found;
}

/* this person's decision written (approve: one more approver, the request approved
** once it has enough; else rejected): 1, 0 refused (msg says why: they approved it
** already), -1 the store failed */
/* one write, the decision whole: a reader that does not take the store's lock (a run
** polling on Redis) never sees it half made */
static int write_decision(wd_store *s, wd_approval_state *st, const char *id, int approve, const char *by,
                          const char *via, const char *reason, int64_t now_ms, char *msg, size_t n)
{
    int c;
    if (approve) {
        if (listed(st->approved_by, by)) {
            snprintf(msg, n, "%s has approved request %s already; it needs %d different approvers", by, id, st->needed);
            return 0;
        }
        json_array_append_new(st->approved_by, json_string(by));
        int done = (int)json_array_size(st->approved_by) >= st->needed;
        wd_approval_change ch = {.approved_by = st->approved_by,
                                 .decided_by = by,
                                 .decided_via = via ? via : "",
                                 .status = done ? "approved" : NULL,
                                 .decided_ms = done ? now_ms : -1};
        c = wd_store_approval_update(s, id, &ch);
        if (done)
            snprintf(msg, n, "approved request %s", id);
        else
            snprintf(msg, n, "approval %zu of %d recorded for request %s: it needs %d more",
                     json_array_size(st->approved_by), st->needed, id,
                     st->needed - (int)json_array_size(st->approved_by));
    } else {
        wd_approval_change ch = {.status = "rejected",
                                 .decided_by = by,
                                 .decided_via = via ? via : "",
                                 .reason = reason,
                                 .decided_ms = now_ms};
        c = wd_store_approval_update(s, id, &ch);
        snprintf(msg, n, "rejected request %s", id);
    }
    return c < 0 ? -1 : 1;
}

int wd_approval_decide(wd_store *s, const char *id, int approve, const char *by, const char *via, const char *reason,
                       int64_t now_ms, char *msg, size_t n)
{
    wd_approval_state st = {0};
    int rc = -1;
    if (wd_store_begin(s) < 0)
        return -1;
    int got = wd_store_approval_get(s, id, &st);
    if (got != 1) {
        if (got == 0) {
            snprintf(msg, n, "no approval request %s", id);
            rc = 0;
        }
        goto out;
    }
    rc = 0;
    if (strcmp(st.status, "pending")) {
        snprintf(msg, n, "request %s is %s already%s%s", id, st.status, st.reason[0] ? ": " : "", st.reason);
        goto out;
    }
    if (now_ms >= st.expires_ms) { /* decided by the clock before this person */
        wd_approval_change ch = {.status = "expired", .reason = "no decision before it expired", .decided_ms = now_ms};
        int c = wd_store_approval_update(s, id, &ch);
        if (c < 0 || wd_store_commit(s) < 0) {
            rc = -1;
            goto out;
        }
        snprintf(msg, n, "request %s has expired", id);
        goto out;
    }
    if (json_array_size(st.approvers) && !listed(st.approvers, by)) {
        char *names = json_dumps(st.approvers, JSON_COMPACT);
        snprintf(msg, n, "%s may not decide request %s: its approvers are %s", by, id, names ? names : "?");
        free(names);
        goto out;
    }
    int c = write_decision(s, &st, id, approve, by, via, reason, now_ms, msg, n);
    if (c == 0)
        goto out;
    if (c < 0 || wd_store_commit(s) < 0) {
        rc = -1;
        goto out;
    }
    rc = 1;
out:
    wd_store_rollback(s); /* after a refusal or an error; nothing once committed */
    wd_approval_state_clear(&st);
    return rc;
}
