/* sqlaccount.c - the SQLite backend's accountability tables: the audit log's per-user
** keys (audit_keys), the notifications waiting to be delivered (notify) and the
** addresses and keys blocked after failed authentications (blocks) */
#include "sqlpriv.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- audit keys: one live key per user; erasure destroys them ---- */

static int key_row(sqlite3_stmt *st, char id[17], unsigned char key[32])
{
    const void *b = sqlite3_column_blob(st, 1);
    if (sqlite3_column_bytes(st, 1) != 32 || !b)
        return 0;
    wd_sq_copy_col(st, 0, id, 17);
    memcpy(key, b, 32);
    return 1;
}

int wd_sq_audit_key(wd_store *st_, const char *user, int64_t now_ms, char id[17], unsigned char key[32])
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st = wd_sq_cached(s, Q_AKEY_USER,
                                    "SELECT key_id, key FROM audit_keys WHERE user_id = ?1 AND key IS NOT NULL"
                                    " ORDER BY created_ms DESC LIMIT 1");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW && key_row(st, id, key);
    wd_sq_done(st);
    if (found)
        return 0;
    /* none yet: made in a transaction, where a key another process made meanwhile wins */
    if (wd_sq_begin(st_) < 0)
        return -1;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW && key_row(st, id, key);
    wd_sq_done(st);
    if (!found) {
        unsigned char rid[8];
        randombytes_buf(rid, sizeof rid);
        randombytes_buf(key, 32);
        sodium_bin2hex(id, 17, rid, sizeof rid);
        sqlite3_stmt *ins =
            wd_sq_prepare(s, "INSERT INTO audit_keys(key_id, user_id, key, created_ms) VALUES(?1, ?2, ?3, ?4)");
        int rc = ins ? SQLITE_OK : SQLITE_ERROR;
        if (ins) {
            sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, user, -1, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 3, key, 32, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 4, now_ms);
            rc = sqlite3_step(ins);
            sqlite3_finalize(ins);
        }
        if (rc != SQLITE_DONE) {
            wd_sq_rollback(st_);
            return -1;
        }
    }
    if (wd_sq_commit(st_) < 0) {
        wd_sq_rollback(st_);
        return -1;
    }
    return 0;
}

int wd_sq_audit_key_get(wd_store *st_, const char *id, unsigned char key[32])
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st = wd_sq_prepare(s, "SELECT key_id, key FROM audit_keys WHERE key_id = ?1");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    char got[17];
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW ? key_row(st, got, key) : 2;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

/* ** Erasure: the key's bytes are overwritten where SQLite keeps them. secure_delete
** zeroes the freed content of the pages written, and a checkpoint moves the WAL's copies
** into the database file and truncates the WAL, so no old version of the page outlives
** the call. */
int wd_sq_audit_erase(wd_store *st_, const char *user, int64_t now_ms)
{
    wd_sqlite *s = SQ(st_);
    sqlite3_exec(s->db, "PRAGMA secure_delete = ON", NULL, NULL, NULL);
    int n = -1;
    if (wd_sq_begin(st_) < 0)
        goto done;
    sqlite3_stmt *st = wd_sq_prepare(s, "UPDATE audit_keys SET key = zeroblob(32), erased_ms = ?2"
                                        " WHERE user_id = ?1 AND erased_ms IS NULL");
    sqlite3_stmt *st2 = wd_sq_prepare(s, "UPDATE audit_keys SET key = NULL WHERE user_id = ?1");
    int rc = st && st2 ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = sqlite3_step(st);
        n = sqlite3_changes(s->db);
        sqlite3_bind_text(st2, 1, user, -1, SQLITE_STATIC);
        if (rc == SQLITE_DONE)
            rc = sqlite3_step(st2);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(st2);
    if (rc != SQLITE_DONE || wd_sq_commit(st_) < 0) {
        wd_sq_rollback(st_);
        n = -1;
        goto done;
    }
    if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) != SQLITE_OK)
        n = -1; /* the key is gone from the table; a copy may wait in the WAL: the caller says so */
done:
    sqlite3_exec(s->db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
    return n;
}

/* ---- notifications: queued, claimed by one deliverer at a time, settled ---- */

int wd_sq_notify_add(wd_store *st_, const wd_notify_row *n, int64_t now_ms)
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st = wd_sq_prepare(s, "INSERT OR IGNORE INTO notify(id, event, url, secret_env, timeout_ms, body,"
                                        " status, attempts, next_ms, claim_ms, created_ms, updated_ms)"
                                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, 0, ?7, ?7)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, n->event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, n->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, n->secret_env ? n->secret_env : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, n->timeout_ms);
    sqlite3_bind_text(st, 6, n->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static json_t *notify_json(sqlite3_stmt *st)
{
    const char *c[7];
    for (int i = 0; i < 7; i++) {
        c[i] = (const char *)sqlite3_column_text(st, i);
        c[i] = c[i] ? c[i] : "";
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:s,s:I}", "id", c[0], "event", c[1], "url", c[2],
                     "secret_env", c[3], "timeout_ms", (json_int_t)sqlite3_column_int64(st, 4), "body", c[5], "status",
                     c[6], "attempts", (json_int_t)sqlite3_column_int64(st, 7), "next_ms",
                     (json_int_t)sqlite3_column_int64(st, 8), "last_error",
                     sqlite3_column_text(st, 9) ? (const char *)sqlite3_column_text(st, 9) : "", "created_ms",
                     (json_int_t)sqlite3_column_int64(st, 10));
}

#define NOTIFY_COLS "id, event, url, secret_env, timeout_ms, body, status, attempts, next_ms, last_error, created_ms"

/* ** Every engine with webhooks asks twice a second: a read first, so an idle queue
** never takes the store's write lock from the budgets and breakers */
static int notify_due(wd_sqlite *s, int64_t now_ms)
{
    sqlite3_stmt *st = wd_sq_cached(s, Q_NOTIFY_DUE,
                                    "SELECT 1 FROM notify WHERE status = 'pending' AND next_ms <= ?1"
                                    " AND claim_ms <= ?1 LIMIT 1");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, now_ms);
    int rc = sqlite3_step(st);
    wd_sq_done(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int wd_sq_notify_claim(wd_store *st_, int64_t now_ms, int64_t lease_ms, int max, json_t **out)
{
    wd_sqlite *s = SQ(st_);
    *out = NULL;
    int due = notify_due(s, now_ms);
    if (due <= 0) {
        *out = due == 0 ? json_array() : NULL;
        return due == 0 ? 0 : -1;
    }
    json_t *l = json_array();
    if (!l || wd_sq_begin(st_) < 0) {
        json_decref(l);
        return -1;
    }
    sqlite3_stmt *st = wd_sq_prepare(s, "UPDATE notify SET claim_ms = ?1 + ?2 WHERE id IN (SELECT id FROM notify"
                                        " WHERE status = 'pending' AND next_ms <= ?1 AND claim_ms <= ?1"
                                        " ORDER BY next_ms LIMIT ?3) RETURNING " NOTIFY_COLS);
    int rc = SQLITE_ERROR;
    if (st) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, lease_ms);
        sqlite3_bind_int(st, 3, max);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(l, notify_json(st));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || wd_sq_commit(st_) < 0) {
        wd_sq_rollback(st_);
        json_decref(l);
        return -1;
    }
    *out = l;
    return 0;
}

/* ** What the table keeps: pending rows, and the newest MAX_DEAD dead letters. A
** delivered notification is gone from it (the log has its attempts), so a busy server
** does not grow the store with every approval it ever announced. */
#define MAX_DEAD   10000
#define WD_STR_(x) #x
#define WD_STR(x)  WD_STR_(x)

int wd_sq_notify_settle(wd_store *st_, const char *id, const char *status, int attempts, int64_t next_ms,
                        const char *error, int64_t now_ms)
{
    wd_sqlite *s = SQ(st_);
    int done = !strcmp(status, "delivered"), dead = !strcmp(status, "dead");
    sqlite3_stmt *st =
        wd_sq_prepare(s, done ? "DELETE FROM notify WHERE id = ?1"
                              : "UPDATE notify SET status = ?2, attempts = ?3, next_ms = ?4, claim_ms = 0,"
                                " last_error = ?5, updated_ms = ?6 WHERE id = ?1");
    if (!st)
        return -1;
    if (dead) /* the oldest dead letters past MAX_DEAD go */
        sqlite3_exec(s->db,
                     "DELETE FROM notify WHERE status = 'dead' AND id NOT IN (SELECT id FROM notify WHERE status = "
                     "'dead' ORDER BY updated_ms DESC LIMIT " WD_STR(MAX_DEAD) ")",
                     NULL, NULL, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (!done) {
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, attempts);
        sqlite3_bind_int64(st, 4, next_ms);
        sqlite3_bind_text(st, 5, error ? error : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, now_ms);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int wd_sq_notify_list(wd_store *st_, int all, json_t **out)
{
    wd_sqlite *s = SQ(st_);
    *out = NULL;
    sqlite3_stmt *st = wd_sq_prepare(s, all ? "SELECT " NOTIFY_COLS " FROM notify ORDER BY created_ms, id"
                                            : "SELECT " NOTIFY_COLS " FROM notify WHERE status = 'dead'"
                                              " ORDER BY created_ms, id");
    json_t *l = json_array();
    int rc = SQLITE_ERROR;
    if (st && l)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(l, notify_json(st));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(l);
        return -1;
    }
    *out = l;
    return 0;
}

/* ---- blocks: who may not authenticate until when ---- */

int wd_sq_block_set(wd_store *st_, const char *key, int64_t until_ms, const char *reason)
{
    wd_sqlite *s = SQ(st_);
    /* blocks that ended go as a new one begins: the table holds the live ones */
    sqlite3_stmt *gc = wd_sq_prepare(s, "DELETE FROM blocks WHERE until_ms < ?1");
    if (gc) {
        sqlite3_bind_int64(gc, 1, wd_sq_now(st_));
        sqlite3_step(gc);
        sqlite3_finalize(gc);
    }
    sqlite3_stmt *st = wd_sq_prepare(s, "INSERT INTO blocks(key, until_ms, reason) VALUES(?1, ?2, ?3)"
                                        " ON CONFLICT(key) DO UPDATE SET until_ms = max(until_ms, ?2), reason = ?3");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, until_ms);
    sqlite3_bind_text(st, 3, reason ? reason : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int wd_sq_block_get(wd_store *st_, const char *key, int64_t now_ms, int64_t *until_ms)
{
    wd_sqlite *s = SQ(st_);
    *until_ms = 0;
    sqlite3_stmt *st = wd_sq_cached(s, Q_BLOCK_GET, "SELECT until_ms FROM blocks WHERE key = ?1 AND until_ms > ?2");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *until_ms = sqlite3_column_int64(st, 0);
    wd_sq_done(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}
