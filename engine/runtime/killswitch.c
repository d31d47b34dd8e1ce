/* killswitch.c - the kill switch in the state store and what a run checks of it: its
** start refused, its end counted (killswitch.h); killtick.c ends the runs killed while
** they run */
#include "killswitch.h"
#include "engine.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wd_kill_set(wd_store *s, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms)
{
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *st = wd_store_prepare(s, "INSERT OR IGNORE INTO kills(agent, by, reason, automatic, created_ms)"
                                           " VALUES(?,?,?,?,?)");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, by ? by : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, automatic != 0);
    sqlite3_bind_int64(st, 5, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    int changed = sqlite3_changes(wd_store_db(s)) > 0;
    sqlite3_finalize(st);
    if (wd_store_commit(s) < 0)
        goto fail_commit;
    return changed;
fail:
    sqlite3_finalize(st);
fail_commit: /* a failed COMMIT leaves the transaction open */
    wd_store_rollback(s);
    return -1;
}

int wd_kill_clear(wd_store *s, const char *agent)
{
    int all = !strcmp(agent, WD_KILL_ALL), n = 0;
    if (wd_store_begin(s) < 0)
        return -1;
    const char *sql[2] = {all ? "DELETE FROM kills" : "DELETE FROM kills WHERE agent = ?1",
                          all ? "DELETE FROM agent_health" : "DELETE FROM agent_health WHERE agent = ?1"};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = wd_store_prepare(s, sql[i]);
        if (!st)
            goto fail;
        if (!all)
            sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            goto fail;
        if (i == 0)
            n = sqlite3_changes(wd_store_db(s));
    }
    if (wd_store_commit(s) < 0)
        goto fail_commit;
    return n;
fail:
fail_commit:
    wd_store_rollback(s);
    return -1;
}

int wd_kill_list(wd_store *s, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st =
        wd_store_prepare(s, "SELECT agent, by, reason, automatic, created_ms FROM kills ORDER BY created_ms, agent");
    json_t *l = json_array();
    if (!st || !l)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *c[3];
        for (int i = 0; i < 3; i++) {
            c[i] = (const char *)sqlite3_column_text(st, i);
            c[i] = c[i] ? c[i] : "";
        }
        json_array_append_new(l, json_pack("{s:s,s:s,s:s,s:b,s:I}", "agent", c[0], "by", c[1], "reason", c[2],
                                           "automatic", sqlite3_column_int(st, 3), "created_ms",
                                           (json_int_t)sqlite3_column_int64(st, 4)));
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    *out = l;
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(l);
    return -1;
}

int wd_kill_note_run(wd_store *s, const char *agent, int failed, long long *count)
{
    *count = 0;
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *st = wd_store_prepare(s, failed ? "INSERT INTO agent_health(agent, failures) VALUES(?1, 1)"
                                                    " ON CONFLICT(agent) DO UPDATE SET failures = failures + 1"
                                                    " RETURNING failures"
                                                  : "DELETE FROM agent_health WHERE agent = ?1");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto fail_txn;
    if (wd_store_commit(s) == 0)
        return 0;
    goto fail_txn;
fail:
    sqlite3_finalize(st);
fail_txn:
    wd_store_rollback(s);
    return -1;
}

/* ---- engine side ------------------------------------------------------------------ */

void wd_kills_invalidate(wd_engine *e) { e->kills.read_ns = 0; }

/* the engine's copy of the tables, read again when older than KILL_POLL_MS:
** killed {agent: reason}, failing {agent: count} */
int wd_kills_refresh(wd_engine *e, int force)
{
    int64_t now = wd_now_ns();
    if (!force && e->kills.read_ns && now - e->kills.read_ns < KILL_POLL_MS * 1000000LL)
        return 0;
    e->kills.read_ns = now;
    json_t *killed = json_object(), *failing = json_object();
    sqlite3_stmt *st = wd_store_prepare(e->store, "SELECT agent, reason FROM kills");
    int rc = SQLITE_ERROR;
    if (st && killed) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_object_set_new(killed, (const char *)sqlite3_column_text(st, 0),
                                json_string((const char *)sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    st = rc == SQLITE_DONE ? wd_store_prepare(e->store, "SELECT agent, failures FROM agent_health WHERE failures > 0")
                           : NULL;
    rc = SQLITE_ERROR;
    if (st && failing) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_object_set_new(failing, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) { /* keep what we knew: the store speaks again at the next poll */
        json_decref(killed);
        json_decref(failing);
        return -1;
    }
    json_decref(e->kills.killed);
    json_decref(e->kills.failing);
    e->kills.killed = killed;
    e->kills.failing = failing;
    return 0;
}

/* the reason agent is killed, or NULL */
const char *wd_kills_why(wd_engine *e, const char *agent, const char **who)
{
    json_t *v = json_object_get(e->kills.killed, WD_KILL_ALL);
    *who = "all agents";
    if (!v) {
        v = agent ? json_object_get(e->kills.killed, agent) : NULL;
        *who = agent;
    }
    return v ? json_string_value(v) : NULL;
}

void wd_kills_audit(wd_run *r, const char *action, const char *reason, int automatic)
{
    json_t *ev = wd_run_event(r, WD_AE_KILL_SWITCH, 0);
    json_object_set_new(ev, "action", json_string(action));
    json_object_set_new(ev, "reason", json_string(reason));
    if (automatic)
        json_object_set_new(ev, "automatic", json_true());
    wd_run_audit(r, ev);
}

int wd_kills_refuse(wd_run *r, char *msg, size_t n)
{
    wd_engine *e = r->eng;
    wd_kills_refresh(e, 0);
    const char *who, *why = wd_kills_why(e, r->agent_name, &who);
    if (!why)
        return 0;
    snprintf(msg, n, "agent '%s' is stopped by the kill switch (%s: %s); warden revive %s brings it back",
             r->agent_name, who, *why ? why : "no reason given", strcmp(who, "all agents") ? r->agent_name : "--all");
    wd_kills_audit(r, "refuse_run", msg, 0);
    return 1;
}

void wd_kills_note_end(wd_run *r, int st)
{
    wd_engine *e = r->eng;
    /* counted under the name its directory gives it, which its next runs are refused by:
    ** a script that declares another name is still that agent */
    const char *agent = r->agent_key ? r->agent_key : r->agent_name;
    if (!r->sb || !agent) /* never started: nothing the agent did */
        return;
    int failed = st == WD_ST_FAILED || st == WD_ST_MAX_ITERATIONS || st == WD_ST_TIMEOUT || st == WD_ST_HALTED;
    if (!failed && st != WD_ST_COMPLETED)
        return; /* out of budget or rate, refused, rejected by a person, killed: not the agent failing */
    wd_kills_refresh(e, 0);
    json_t *known = json_object_get(e->kills.failing, agent);
    if (!failed && !known)
        return; /* the common case costs no write */
    long long count;
    if (wd_kill_note_run(e->store, agent, failed, &count) < 0)
        return;
    if (!failed) {
        json_object_del(e->kills.failing, agent);
        return;
    }
    json_object_set_new(e->kills.failing, agent, json_integer(count));
    long long limit = r->pol ? r->pol->kill_consecutive_errors : 0;
    if (limit <= 0 || count < limit)
        return;
    char why[300];
    snprintf(why, sizeof why, "disabled automatically: its last %lld runs failed (kill_switch.consecutive_errors)",
             count);
    if (wd_kill_set(e->store, agent, "warden", why, 1, wd_wall_ms()) == 1) {
        wd_kills_audit(r, "kill", why, 1);
        if (e->notice) {
            char line[500];
            snprintf(line, sizeof line, "agent '%s' %s; warden revive %s brings it back", agent, why, agent);
            e->notice(e->notice_ud, line);
        }
    }
    wd_kills_refresh(e, 1);
}
