/* sqlrows.c - the SQLite backend's approval requests: table approvals (store.h;
** approval.h holds the rules a decision follows) */
#include "owner.h"
#include "sqlpriv.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

int wd_sq_approval_insert(wd_store *st_, const char *id, const json_t *req)
{
    wd_sqlite *s = SQ(st_);
    char *args = NULL, *approvers = NULL;
    sqlite3_stmt *st = NULL;
    args = json_dumps(json_object_get(req, "args"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    approvers = json_dumps(json_object_get(req, "approvers"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!args || !approvers || wd_sq_begin(st_) < 0)
        goto fail;
    st = wd_sq_prepare(s, "INSERT INTO approvals(id, run_id, session_id, user_id, agent, tool, args, risk, urgency,"
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
    sqlite3_bind_text(st, 13, wd_owner_id(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 14, json_integer_value(json_object_get(req, "created_ms")));
    sqlite3_bind_int64(st, 15, json_integer_value(json_object_get(req, "expires_ms")));
    sqlite3_bind_int64(st, 16, json_integer_value(json_object_get(req, "escalate_ms")));
    if (sqlite3_step(st) != SQLITE_DONE || wd_sq_commit(st_) < 0)
        goto fail_txn;
    sqlite3_finalize(st);
    free(args);
    free(approvers);
    return 0;
fail_txn:
    sqlite3_finalize(st);
    wd_sq_rollback(st_);
fail:
    free(args);
    free(approvers);
    return -1;
}

#define STATE_COLS                                                                                                     \
    "status, approved_by, needed, escalated, created_ms, expires_ms, escalate_ms, decided_ms,"                         \
    " decided_by, reason, approvers, owner, decided_via"

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
    wd_sq_copy_col(q, 0, st->status, sizeof st->status);
    st->approved_by = list_col(q, 1);
    st->approvers = list_col(q, 10);
    st->given = (int)json_array_size(st->approved_by);
    st->needed = sqlite3_column_int(q, 2);
    st->escalated = sqlite3_column_int(q, 3);
    st->created_ms = sqlite3_column_int64(q, 4);
    st->expires_ms = sqlite3_column_int64(q, 5);
    st->escalate_ms = sqlite3_column_int64(q, 6);
    st->decided_ms = sqlite3_column_int64(q, 7);
    wd_sq_copy_col(q, 8, st->decided_by, sizeof st->decided_by);
    wd_sq_copy_col(q, 9, st->reason, sizeof st->reason);
    wd_sq_copy_col(q, 12, st->decided_via, sizeof st->decided_via);
}

int wd_sq_approval_get(wd_store *st_, const char *id, wd_approval_state *st)
{
    memset(st, 0, sizeof *st);
    sqlite3_stmt *q = wd_sq_prepare(SQ(st_), "SELECT " STATE_COLS " FROM approvals WHERE id = ?");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), found = rc == SQLITE_ROW;
    if (found)
        read_state(q, st);
    sqlite3_finalize(q);
    return found ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ** One UPDATE built from the fields the change sets, in a fixed order, so the
** statement's text comes only from this file: the values are always bound. */
int wd_sq_approval_update(wd_store *st_, const char *id, const wd_approval_change *c)
{
    wd_sqlite *s = SQ(st_);
    char *by = c->approved_by ? json_dumps(c->approved_by, JSON_COMPACT) : NULL;
    const char *text[] = {c->status, c->reason, c->decided_by, c->decided_via, by};
    static const char *const COL[] = {"status", "reason", "decided_by", "decided_via", "approved_by"};
    char sql[320] = "UPDATE approvals SET id = id";
    for (int i = 0; i < 5; i++)
        if (text[i])
            snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ", %s = ?%d", COL[i], i + 2);
    if (c->decided_ms >= 0)
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ", decided_ms = ?7");
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " WHERE id = ?1%s",
             c->only_pending ? " AND status = 'pending'" : "");
    sqlite3_stmt *st = wd_sq_prepare(s, sql);
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        for (int i = 0; i < 5; i++)
            if (text[i])
                sqlite3_bind_text(st, i + 2, text[i], -1, SQLITE_STATIC);
        if (c->decided_ms >= 0)
            sqlite3_bind_int64(st, 7, c->decided_ms);
        rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(s->db) > 0 : -1;
    }
    sqlite3_finalize(st);
    free(by);
    return rc;
}

int wd_sq_approval_sweep(wd_store *st_, int64_t now_ms)
{
    wd_sqlite *s = SQ(st_);
    int changed = 0;
    if (wd_sq_begin(st_) < 0)
        return -1;
    sqlite3_stmt *q = wd_sq_prepare(s, "SELECT id, owner FROM approvals WHERE status = 'pending'");
    if (!q)
        goto fail;
    /* the owners' liveness first: a statement may not run while this one reads */
    size_t n = 0, cap = 0;
    char(*dead)[37] = NULL;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text(q, 1);
        if (owner && wd_owner_alive(owner))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            void *m = realloc(dead, cap * sizeof *dead);
            if (!m)
                break;
            dead = m;
        }
        wd_sq_copy_col(q, 0, dead[n++], sizeof dead[0]);
    }
    sqlite3_finalize(q);
    for (size_t i = 0; i < n; i++) {
        wd_approval_change ch = {.status = "abandoned",
                                 .reason = "the process of its run ended before a decision",
                                 .decided_ms = now_ms,
                                 .only_pending = 1};
        int c = wd_sq_approval_update(st_, dead[i], &ch);
        if (c < 0) {
            free(dead);
            goto fail;
        }
        changed += c;
    }
    free(dead);
    sqlite3_stmt *u =
        wd_sq_prepare(s, "UPDATE approvals SET status = 'expired', reason = 'no decision before it expired',"
                         " decided_ms = ?1 WHERE status = 'pending' AND expires_ms <= ?1");
    if (!u)
        goto fail;
    sqlite3_bind_int64(u, 1, now_ms);
    int rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE)
        goto fail;
    changed += sqlite3_changes(s->db);
    u = wd_sq_prepare(
        s, "UPDATE approvals SET escalated = 1 WHERE status = 'pending' AND escalated = 0 AND escalate_ms <= ?1");
    if (!u)
        goto fail;
    sqlite3_bind_int64(u, 1, now_ms);
    rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE)
        goto fail;
    changed += sqlite3_changes(s->db);
    if (wd_sq_commit(st_) < 0)
        goto fail;
    return changed;
fail:
    wd_sq_rollback(st_);
    return -1;
}

int wd_sq_approval_list(wd_store *st_, int all, json_t **out)
{
    wd_sqlite *s = SQ(st_);
    *out = NULL;
    sqlite3_stmt *q =
        wd_sq_prepare(s, all ? "SELECT id, run_id, session_id, user_id, agent, tool, args, risk, urgency,"
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
