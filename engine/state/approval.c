/* approval.c - approval requests in the state store (see approval.h) */
#include "approval.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const WD_URGENCIES[4] = {"low", "normal", "high", "critical"};

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

int wd_approval_create(wd_store *s, const json_t *req, char id[37])
{
    char *args = NULL, *approvers = NULL;
    sqlite3_stmt *st = NULL;
    wd_uuid(id);
    args = json_dumps(json_object_get(req, "args"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    approvers = json_dumps(json_object_get(req, "approvers"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!args || !approvers || wd_store_begin(s) < 0)
        goto fail;
    st = wd_store_prepare(s, "INSERT INTO approvals(id, run_id, session_id, user_id, agent, tool, args, risk, urgency,"
                             " justification, approvers, needed, status, owner, created_ms, expires_ms, escalate_ms)"
                             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?,?,?)");
    if (!st)
        goto fail_txn;
    static const char *const TEXT[] = {"run_id", "session_id", "user_id", "agent", "tool"};
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    for (int i = 0; i < 5; i++)
        sqlite3_bind_text(st, 2 + i, jstr(req, TEXT[i]), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, args, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, jstr(req, "risk"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, jstr(req, "urgency"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 10, jstr(req, "justification"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 11, approvers, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, json_integer_value(json_object_get(req, "needed")));
    sqlite3_bind_text(st, 13, wd_store_owner(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 14, json_integer_value(json_object_get(req, "created_ms")));
    sqlite3_bind_int64(st, 15, json_integer_value(json_object_get(req, "expires_ms")));
    sqlite3_bind_int64(st, 16, json_integer_value(json_object_get(req, "escalate_ms")));
    if (sqlite3_step(st) != SQLITE_DONE || wd_store_commit(s) < 0)
        goto fail_txn;
    sqlite3_finalize(st);
    free(args);
    free(approvers);
    return 0;
fail_txn:
    sqlite3_finalize(st);
    wd_store_rollback(s);
fail:
    free(args);
    free(approvers);
    return -1;
}

#define STATE_COLS                                                                                                     \
    "status, approved_by, needed, escalated, created_ms, expires_ms, escalate_ms, decided_ms,"                         \
    " decided_by, reason, approvers, owner, decided_via"

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t n)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    wd_strlcpy(out, v ? (const char *)v : "", n);
}

/* a column holding a JSON list, as an array (empty when it holds none); caller decrefs */
static json_t *list_col(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    json_t *v = json_loads(t ? (const char *)t : "[]", JSON_ALLOW_NUL, NULL);
    if (!json_is_array(v)) {
        json_decref(v);
        v = json_array();
    }
    return v;
}

/* a row of STATE_COLS into st */
static void read_state(sqlite3_stmt *q, wd_approval_state *st)
{
    memset(st, 0, sizeof *st);
    copy_col(q, 0, st->status, sizeof st->status);
    st->approved_by = list_col(q, 1);
    st->approvers = list_col(q, 10);
    st->given = (int)json_array_size(st->approved_by);
    st->needed = sqlite3_column_int(q, 2);
    st->escalated = sqlite3_column_int(q, 3);
    st->created_ms = sqlite3_column_int64(q, 4);
    st->expires_ms = sqlite3_column_int64(q, 5);
    st->escalate_ms = sqlite3_column_int64(q, 6);
    st->decided_ms = sqlite3_column_int64(q, 7);
    copy_col(q, 8, st->decided_by, sizeof st->decided_by);
    copy_col(q, 9, st->reason, sizeof st->reason);
    copy_col(q, 12, st->decided_via, sizeof st->decided_via);
}

void wd_approval_state_clear(wd_approval_state *st)
{
    json_decref(st->approved_by);
    json_decref(st->approvers);
    st->approved_by = st->approvers = NULL;
}

int wd_approval_get(wd_store *s, const char *id, wd_approval_state *st)
{
    memset(st, 0, sizeof *st);
    sqlite3_stmt *q = wd_store_prepare(s, "SELECT " STATE_COLS " FROM approvals WHERE id = ?");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), found = rc == SQLITE_ROW;
    if (found)
        read_state(q, st);
    sqlite3_finalize(q);
    return found ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* one statement with text and integer parameters (NULL text binds NULL): 1 a row
** changed, 0 none, -1 error */
static int exec_changed(wd_store *s, const char *sql, const char *t1, const char *t2, const char *t3, int64_t i1)
{
    sqlite3_stmt *st = wd_store_prepare(s, sql);
    if (!st)
        return -1;
    /* ?1..?3 text, ?4 the time: one a statement does not use is not bound (SQLITE_RANGE) */
    const char *t[3] = {t1, t2, t3};
    for (int i = 0; i < 3; i++)
        sqlite3_bind_text(st, i + 1, t[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, i1);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes(wd_store_db(s)) > 0;
}

int wd_approval_close(wd_store *s, const char *id, const char *status, const char *reason, int64_t now_ms)
{
    if (wd_store_begin(s) < 0)
        return -1;
    int rc = exec_changed(s,
                          "UPDATE approvals SET status = ?2, reason = ?3, decided_ms = ?4"
                          " WHERE id = ?1 AND status = 'pending'",
                          id, status, reason, now_ms);
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
static int write_decision(wd_store *s, wd_approval_state *st, const char *id, int approve, const char *by,
                          const char *reason, int64_t now_ms, char *msg, size_t n)
{
    int c;
    char *by_text = NULL;
    if (approve) {
        if (listed(st->approved_by, by)) {
            snprintf(msg, n, "%s has approved request %s already; it needs %d different approvers", by, id, st->needed);
            return 0;
        }
        json_array_append_new(st->approved_by, json_string(by));
        by_text = json_dumps(st->approved_by, JSON_COMPACT);
        int done = (int)json_array_size(st->approved_by) >= st->needed;
        c = exec_changed(s,
                         done ? "UPDATE approvals SET approved_by = ?2, decided_by = ?3, status = 'approved',"
                                " decided_ms = ?4 WHERE id = ?1"
                              : "UPDATE approvals SET approved_by = ?2, decided_by = ?3 WHERE id = ?1",
                         id, by_text, by, now_ms);
        if (done)
            snprintf(msg, n, "approved request %s", id);
        else
            snprintf(msg, n, "approval %zu of %d recorded for request %s: it needs %d more",
                     json_array_size(st->approved_by), st->needed, id,
                     st->needed - (int)json_array_size(st->approved_by));
    } else {
        c = exec_changed(s,
                         "UPDATE approvals SET status = 'rejected', decided_by = ?2, reason = ?3, decided_ms = ?4"
                         " WHERE id = ?1",
                         id, by, reason, now_ms);
        snprintf(msg, n, "rejected request %s", id);
    }
    free(by_text);
    return c < 0 ? -1 : 1;
}

int wd_approval_decide(wd_store *s, const char *id, int approve, const char *by, const char *via, const char *reason,
                       int64_t now_ms, char *msg, size_t n)
{
    wd_approval_state st = {0};
    int rc = -1;
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *q = wd_store_prepare(s, "SELECT " STATE_COLS " FROM approvals WHERE id = ?");
    if (!q)
        goto out;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        read_state(q, &st);
    sqlite3_finalize(q);
    if (step != SQLITE_ROW) {
        if (step == SQLITE_DONE) {
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
        int c = exec_changed(s, "UPDATE approvals SET status = 'expired', reason = ?2, decided_ms = ?4 WHERE id = ?1",
                             id, "no decision before it expired", NULL, now_ms);
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
    int c = write_decision(s, &st, id, approve, by, reason, now_ms, msg, n);
    if (c == 0)
        goto out;
    if (c >= 0)
        c = exec_changed(s, "UPDATE approvals SET decided_via = ?2 WHERE id = ?1", id, via ? via : "", NULL, 0);
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

int wd_approval_sweep(wd_store *s, int64_t now_ms)
{
    int changed = 0;
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *q = wd_store_prepare(s, "SELECT id, owner FROM approvals WHERE status = 'pending'");
    if (!q)
        goto fail;
    /* the owners' liveness first: a statement may not run while this one reads */
    size_t n = 0, cap = 0;
    char(*dead)[37] = NULL;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text(q, 1);
        if (owner && wd_store_owner_alive(owner))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            void *m = realloc(dead, cap * sizeof *dead);
            if (!m)
                break;
            dead = m;
        }
        copy_col(q, 0, dead[n++], sizeof dead[0]);
    }
    sqlite3_finalize(q);
    for (size_t i = 0; i < n; i++) {
        int c = exec_changed(s,
                             "UPDATE approvals SET status = 'abandoned', reason = ?2, decided_ms = ?4"
                             " WHERE id = ?1 AND status = 'pending'",
                             dead[i], "the process of its run ended before a decision", NULL, now_ms);
        if (c < 0) {
            free(dead);
            goto fail;
        }
        changed += c;
    }
    free(dead);
    sqlite3_stmt *u =
        wd_store_prepare(s, "UPDATE approvals SET status = 'expired', reason = 'no decision before it expired',"
                            " decided_ms = ?1 WHERE status = 'pending' AND expires_ms <= ?1");
    if (!u)
        goto fail;
    sqlite3_bind_int64(u, 1, now_ms);
    int rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE)
        goto fail;
    changed += sqlite3_changes(wd_store_db(s));
    u = wd_store_prepare(
        s, "UPDATE approvals SET escalated = 1 WHERE status = 'pending' AND escalated = 0 AND escalate_ms <= ?1");
    if (!u)
        goto fail;
    sqlite3_bind_int64(u, 1, now_ms);
    rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE)
        goto fail;
    changed += sqlite3_changes(wd_store_db(s));
    if (wd_store_commit(s) < 0)
        goto fail;
    return changed;
fail:
    wd_store_rollback(s);
    return -1;
}

int wd_approval_list(wd_store *s, int all, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *q =
        wd_store_prepare(s, all ? "SELECT id, run_id, session_id, user_id, agent, tool, args, risk, urgency,"
                                  " justification, approvers, needed, approved_by, status, reason, decided_by,"
                                  " created_ms, expires_ms, escalated, decided_ms, decided_via FROM approvals"
                                  " ORDER BY created_ms"
                                : "SELECT id, run_id, session_id, user_id, agent, tool, args, risk, urgency,"
                                  " justification, approvers, needed, approved_by, status, reason, decided_by,"
                                  " created_ms, expires_ms, escalated, decided_ms, decided_via FROM approvals"
                                  " WHERE status = 'pending' ORDER BY created_ms");
    if (!q)
        return -1;
    json_t *a = json_array();
    static const char *const TEXT[] = {"id", "run_id", "session_id", "user_id", "agent", "tool"};
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int i = 0; i < 6; i++) {
            const unsigned char *v = sqlite3_column_text(q, i);
            json_object_set_new(o, TEXT[i], v ? json_string((const char *)v) : json_null());
        }
        static const int JSONCOL[] = {6, 10, 12};
        static const char *const JSONKEY[] = {"args", "approvers", "approved_by"};
        for (int i = 0; i < 3; i++) {
            const unsigned char *v = sqlite3_column_text(q, JSONCOL[i]);
            json_t *j = v ? json_loads((const char *)v, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
            json_object_set_new(o, JSONKEY[i], j ? j : json_null());
        }
        static const int TCOL[] = {7, 8, 9, 13, 14, 15};
        static const char *const TKEY[] = {"risk", "urgency", "justification", "status", "reason", "decided_by"};
        for (int i = 0; i < 6; i++) {
            const unsigned char *v = sqlite3_column_text(q, TCOL[i]);
            json_object_set_new(o, TKEY[i], v ? json_string((const char *)v) : json_null());
        }
        json_object_set_new(o, "approvals_needed", json_integer(sqlite3_column_int(q, 11)));
        json_object_set_new(o, "created_ms", json_integer(sqlite3_column_int64(q, 16)));
        json_object_set_new(o, "expires_ms", json_integer(sqlite3_column_int64(q, 17)));
        json_object_set_new(o, "escalated", json_boolean(sqlite3_column_int(q, 18)));
        if (sqlite3_column_type(q, 19) != SQLITE_NULL)
            json_object_set_new(o, "decided_ms", json_integer(sqlite3_column_int64(q, 19)));
        const unsigned char *via = sqlite3_column_text(q, 20);
        if (via && *via)
            json_object_set_new(o, "decided_via", json_string((const char *)via));
        json_array_append_new(a, o);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return -1;
    }
    *out = a;
    return 0;
}
