/* sqlkills.c - the SQLite backend's kill switch (table kills), agent health (table
** agent_health) and detectors' own state (tables detector_store, detector_scopes) */
#include "sqlpriv.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int wd_sq_kill_set(wd_store *st_, const char *agent, const char *by, const char *reason, int automatic, int64_t now_ms)
{
    wd_sqlite *s = SQ(st_);
    if (wd_sq_begin(st_) < 0)
        return -1;
    sqlite3_stmt *st = wd_sq_prepare(s, "INSERT OR IGNORE INTO kills(agent, by, reason, automatic, created_ms)"
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
    int changed = sqlite3_changes(s->db) > 0;
    sqlite3_finalize(st);
    if (wd_sq_commit(st_) < 0)
        goto fail_commit;
    return changed;
fail:
    sqlite3_finalize(st);
fail_commit: /* a failed COMMIT leaves the transaction open */
    wd_sq_rollback(st_);
    return -1;
}

int wd_sq_kill_clear(wd_store *st_, const char *agent, int all)
{
    wd_sqlite *s = SQ(st_);
    int n = 0;
    if (wd_sq_begin(st_) < 0)
        return -1;
    const char *sql[2] = {all ? "DELETE FROM kills" : "DELETE FROM kills WHERE agent = ?1",
                          all ? "DELETE FROM agent_health" : "DELETE FROM agent_health WHERE agent = ?1"};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = wd_sq_prepare(s, sql[i]);
        if (!st)
            goto fail;
        if (!all)
            sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            goto fail;
        if (i == 0)
            n = sqlite3_changes(s->db);
    }
    if (wd_sq_commit(st_) < 0)
        goto fail_commit;
    return n;
fail:
fail_commit:
    wd_sq_rollback(st_);
    return -1;
}

int wd_sq_kill_list(wd_store *st_, json_t **out)
{
    wd_sqlite *s = SQ(st_);
    *out = NULL;
    sqlite3_stmt *st =
        wd_sq_prepare(s, "SELECT agent, by, reason, automatic, created_ms FROM kills ORDER BY created_ms, agent");
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

int wd_sq_health_note(wd_store *st_, const char *agent, int failed, long long *count)
{
    wd_sqlite *s = SQ(st_);
    *count = 0;
    if (wd_sq_begin(st_) < 0)
        return -1;
    sqlite3_stmt *st = wd_sq_prepare(s, failed ? "INSERT INTO agent_health(agent, failures) VALUES(?1, 1)"
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
    if (wd_sq_commit(st_) == 0)
        return 0;
    goto fail_txn;
fail:
    sqlite3_finalize(st);
fail_txn:
    wd_sq_rollback(st_);
    return -1;
}

int wd_sq_kill_read(wd_store *st_, json_t **killed_out, json_t **failing_out)
{
    wd_sqlite *s = SQ(st_);
    *killed_out = *failing_out = NULL;
    json_t *killed = json_object(), *failing = json_object();
    sqlite3_stmt *st = wd_sq_prepare(s, "SELECT agent, reason FROM kills");
    int rc = SQLITE_ERROR;
    if (st && killed) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_object_set_new(killed, (const char *)sqlite3_column_text(st, 0),
                                json_string((const char *)sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    st = rc == SQLITE_DONE ? wd_sq_prepare(s, "SELECT agent, failures FROM agent_health WHERE failures > 0") : NULL;
    rc = SQLITE_ERROR;
    if (st && failing) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_object_set_new(failing, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(killed);
        json_decref(failing);
        return -1;
    }
    *killed_out = killed;
    *failing_out = failing;
    return 0;
}

/* ---- detectors' state ---- */

static void bind_scope(sqlite3_stmt *st, const wd_store_scope *sc)
{
    sqlite3_bind_text(st, 1, sc->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sc->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sc->origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sc->detector, -1, SQLITE_STATIC);
}

int wd_sq_detect_get(wd_store *st_, const wd_store_scope *sc, const char *key, char **text)
{
    *text = NULL;
    sqlite3_stmt *st = wd_sq_prepare(SQ(st_), "SELECT value FROM detector_store WHERE agent = ?1 AND user = ?2 AND "
                                              "origin = ?3 AND detector = ?4 AND key = ?5");
    if (!st)
        return -1;
    bind_scope(st, sc);
    sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        *text = t ? wd_strdup(t) : NULL;
        rc = t && !*text ? SQLITE_NOMEM : sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int wd_sq_detect_put(wd_store *st_, const wd_store_scope *sc, const char *key, const char *text, int64_t now_ms)
{
    sqlite3_stmt *st = wd_sq_prepare(SQ(st_), text ? "INSERT OR REPLACE INTO detector_store VALUES(?1, ?2, ?3, ?4, ?5,"
                                                     " ?6, ?7)"
                                                   : "DELETE FROM detector_store WHERE agent = ?1 AND user = ?2 AND "
                                                     "origin = ?3 AND detector = ?4 AND key = ?5");
    if (!st)
        return -1;
    bind_scope(st, sc);
    sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
    if (text) {
        sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, now_ms);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ** State kept before scopes (by detector name alone, table detector_state) is copied
** into a scope the first time the scope is used, once: detector_scopes lists the scopes
** that have had their copy. A store that fails here leaves the scope to start empty. */
void wd_sq_detect_adopt(wd_store *st_, const wd_store_scope *sc)
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st = wd_sq_prepare(s, "SELECT 1 FROM detector_scopes WHERE agent = ?1 AND user = ?2 AND "
                                        "origin = ?3 AND detector = ?4");
    if (!st)
        return;
    bind_scope(st, sc);
    int known = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (known || wd_sq_begin(st_) < 0)
        return;
    int ok = 0;
    st = wd_sq_prepare(s, "INSERT OR IGNORE INTO detector_scopes VALUES(?1, ?2, ?3, ?4)");
    if (st) {
        bind_scope(st, sc);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    st = ok ? wd_sq_prepare(s, "INSERT OR IGNORE INTO detector_store SELECT ?1, ?2, ?3, ?4, key, value, updated_ms"
                               " FROM detector_state WHERE detector = ?4")
            : NULL;
    if (st) {
        bind_scope(st, sc);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (!ok || wd_sq_commit(st_) < 0)
        wd_sq_rollback(st_);
}
