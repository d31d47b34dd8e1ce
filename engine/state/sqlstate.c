/* sqlstate.c - the SQLite backend's breakers, spend ledger and leases, rate windows
** and response cache (store.h says what each operation promises) */
#include "owner.h"
#include "sqlpriv.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void row_from(sqlite3_stmt *st, int col, wd_breaker_row *row)
{
    row->state = sqlite3_column_int(st, col);
    row->failures = sqlite3_column_int64(st, col + 1);
    row->opened_ms = sqlite3_column_int64(st, col + 2);
    row->probes = sqlite3_column_int64(st, col + 3);
    row->probe_ms = sqlite3_column_int64(st, col + 4);
    row->updated_ms = sqlite3_column_int64(st, col + 5);
}

int wd_sq_breaker_get(wd_store *st_, const char *name, wd_breaker_row *row)
{
    wd_sqlite *s = SQ(st_);
    memset(row, 0, sizeof *row);
    wd_strlcpy(row->name, name, sizeof row->name);
    sqlite3_stmt *st = wd_sq_cached(
        s, Q_BR_GET, "SELECT state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers WHERE name = ?1");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), out;
    if (rc == SQLITE_ROW) {
        row_from(st, 0, row);
        out = 1;
    } else {
        out = rc == SQLITE_DONE ? 0 : -1;
    }
    wd_sq_done(st);
    return out;
}

int wd_sq_breaker_put(wd_store *st_, const wd_breaker_row *row)
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st =
        wd_sq_cached(s, Q_BR_PUT,
                     "INSERT INTO breakers(name, state, failures, opened_ms, probes, probe_ms, updated_ms) VALUES(?1, "
                     "?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET state = ?2, failures = ?3, opened_ms = "
                     "?4, probes = ?5, probe_ms = ?6, updated_ms = ?7");
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, row->state);
    sqlite3_bind_int64(st, 3, row->failures);
    sqlite3_bind_int64(st, 4, row->opened_ms);
    sqlite3_bind_int64(st, 5, row->probes);
    sqlite3_bind_int64(st, 6, row->probe_ms);
    sqlite3_bind_int64(st, 7, row->updated_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    wd_sq_done(st);
    return rc;
}

int wd_sq_breaker_list(wd_store *st_, wd_breaker_row **rows, size_t *n)
{
    wd_sqlite *s = SQ(st_);
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = wd_sq_cached(
        s, Q_BR_LIST,
        "SELECT name, state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers ORDER BY name");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wd_breaker_row *v = realloc(*rows, (*n + 1) * sizeof *v);
        if (!v)
            break;
        *rows = v;
        memset(&v[*n], 0, sizeof v[*n]);
        wd_strlcpy(v[*n].name, (const char *)sqlite3_column_text(st, 0), sizeof v[*n].name);
        row_from(st, 1, &v[*n]);
        (*n)++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the spend ledger ------------------------------------------------------------ */

static void bind_key(sqlite3_stmt *st, const wd_ledger_key *k)
{
    sqlite3_bind_text(st, 1, k->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->period, -1, SQLITE_STATIC);
}

/* 0 (row filled, zero when absent) or -1 */
static int ledger_row(wd_sqlite *s, const wd_ledger_key *k, wd_ledger_row *row)
{
    memset(row, 0, sizeof *row);
    wd_strlcpy(row->scope, k->scope, sizeof row->scope);
    wd_strlcpy(row->period, k->period, sizeof row->period);
    sqlite3_stmt *st =
        wd_sq_cached(s, Q_SP_GET, "SELECT spent, reserved, warned FROM spend WHERE scope = ?1 AND period = ?2");
    bind_key(st, k);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row->spent = sqlite3_column_int64(st, 0);
        row->reserved = sqlite3_column_int64(st, 1);
        row->warned = sqlite3_column_int(st, 2);
    }
    wd_sq_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* the change's lease row inserted, resized or deleted, inside the caller's
** transaction: 0 or -1 */
static int write_lease(wd_sqlite *s, wd_lease_change *c, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc;
    if (!*c->row) { /* a new lease row, owned by this process */
        st = wd_sq_cached(s, Q_LEASE_INS,
                          "INSERT INTO leases(owner, scope, period, amount, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)");
        sqlite3_bind_text(st, 1, wd_owner_id(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, c->key->scope, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->key->period, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, c->new_amount);
        sqlite3_bind_int64(st, 5, now_ms);
        rc = sqlite3_step(st);
        wd_sq_done(st);
        if (rc != SQLITE_DONE)
            return -1;
        *c->row = sqlite3_last_insert_rowid(s->db);
        return 0;
    }
    st = c->new_amount > 0 ? wd_sq_cached(s, Q_LEASE_UPD, "UPDATE leases SET amount = ?2 WHERE id = ?1")
                           : wd_sq_cached(s, Q_LEASE_DEL, "DELETE FROM leases WHERE id = ?1");
    sqlite3_bind_int64(st, 1, *c->row);
    if (c->new_amount > 0)
        sqlite3_bind_int64(st, 2, c->new_amount);
    rc = sqlite3_step(st);
    wd_sq_done(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (c->new_amount <= 0)
        *c->row = 0;
    return 0;
}

int wd_sq_lease_apply(wd_store *st_, wd_lease_change *c, int n, int check, int64_t now_ms, int *which)
{
    wd_sqlite *s = SQ(st_);
    *which = -1;
    if (wd_sq_begin(&s->base) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const wd_ledger_key *k = c[i].key;
        if (ledger_row(s, k, &c[i].state) < 0)
            goto fail;
        const wd_ledger_row *row = &c[i].state;
        if (check && wd_add_sat(c[i].pending, c[i].new_amount) > c[i].old && k->limit > 0 &&
            wd_add_sat(wd_add_sat(wd_add_sat(row->spent, c[i].pending), row->reserved), c[i].new_amount - c[i].old) >
                k->limit) {
            *which = i;
            wd_sq_rollback(&s->base);
            return 0;
        }
    }
    for (int i = 0; i < n; i++) {
        const wd_ledger_key *k = c[i].key;
        c[i].crossed = 0;
        sqlite3_stmt *st =
            wd_sq_cached(s, Q_SP_APPLY,
                         "INSERT INTO spend(scope, period, spent, reserved, updated_ms) VALUES(?1, ?2, ?3, max(0, ?4), "
                         "?5) ON CONFLICT(scope, period) DO UPDATE SET spent = spent + ?3, reserved = max(0, reserved "
                         "+ ?4), updated_ms = ?5 RETURNING spent, warned");
        bind_key(st, k);
        sqlite3_bind_int64(st, 3, c[i].pending);
        sqlite3_bind_int64(st, 4, c[i].new_amount - c[i].old);
        sqlite3_bind_int64(st, 5, now_ms);
        int rc = sqlite3_step(st);
        c[i].spent = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        int warned = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 1;
        if (rc == SQLITE_ROW)
            rc = sqlite3_step(st);
        wd_sq_done(st);
        if (rc != SQLITE_DONE)
            goto fail;
        if (k->warn_at > 0 && c[i].spent >= k->warn_at && !warned) {
            st = wd_sq_cached(s, Q_SP_WARN, "UPDATE spend SET warned = 1 WHERE scope = ?1 AND period = ?2");
            bind_key(st, k);
            rc = sqlite3_step(st);
            wd_sq_done(st);
            if (rc != SQLITE_DONE)
                goto fail;
            c[i].crossed = 1;
        }
        if (c[i].new_amount == c[i].old)
            continue;
        if (write_lease(s, &c[i], now_ms) < 0)
            goto fail;
    }
    if (wd_sq_commit(&s->base) < 0)
        goto fail;
    return 1;
fail:
    wd_sq_rollback(&s->base);
    return -1;
}

int wd_sq_ledger_get(wd_store *st_, const wd_ledger_key *k, int n, wd_ledger_row *rows)
{
    wd_sqlite *s = SQ(st_);
    for (int i = 0; i < n; i++)
        if (ledger_row(s, &k[i], &rows[i]) < 0)
            return -1;
    return 0;
}

int wd_sq_ledger_list(wd_store *st_, wd_ledger_row **rows, size_t *n)
{
    wd_sqlite *s = SQ(st_);
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st =
        wd_sq_cached(s, Q_SP_LIST, "SELECT scope, period, spent, reserved, warned FROM spend ORDER BY scope, period");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wd_ledger_row *v = realloc(*rows, (*n + 1) * sizeof *v);
        if (!v)
            break;
        *rows = v;
        wd_ledger_row *r = &v[(*n)++];
        memset(r, 0, sizeof *r);
        wd_strlcpy(r->scope, (const char *)sqlite3_column_text(st, 0), sizeof r->scope);
        wd_strlcpy(r->period, (const char *)sqlite3_column_text(st, 1), sizeof r->period);
        r->spent = sqlite3_column_int64(st, 2);
        r->reserved = sqlite3_column_int64(st, 3);
        r->warned = sqlite3_column_int(st, 4);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* releases every lease of one owner, inside the caller's transaction */
static int release_owner(wd_sqlite *s, const char *owner)
{
    sqlite3_stmt *sts[2] = {
        wd_sq_cached(s, Q_SP_RELEASE_OWNER,
                     "UPDATE spend SET reserved = max(0, reserved - (SELECT SUM(amount) FROM leases l WHERE l.owner = "
                     "?1 AND l.scope = spend.scope AND l.period = spend.period)) WHERE (scope, period) IN (SELECT "
                     "scope, period FROM leases WHERE owner = ?1)"),
        wd_sq_cached(s, Q_LEASE_DEL_OWNER, "DELETE FROM leases WHERE owner = ?1")};
    for (int i = 0; i < 2; i++) {
        sqlite3_bind_text(sts[i], 1, owner, -1, SQLITE_STATIC);
        int rc = sqlite3_step(sts[i]);
        wd_sq_done(sts[i]);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

int wd_sq_sweep(wd_store *st_)
{
    wd_sqlite *s = SQ(st_);
    /* a cheap look first: most of the time nobody died holding a lease */
    wd_buf dead = {0};
    int ndead = 0, rc;
    sqlite3_stmt *st = wd_sq_cached(s, Q_LEASE_OWNERS, "SELECT DISTINCT owner FROM leases");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(st, 0);
        if (o && strcmp(o, wd_owner_id()) && !wd_owner_alive(o)) {
            wd_buf_addf(&dead, "%s\n", o);
            ndead++;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        wd_buf_free(&dead);
        return -1;
    }
    if (!ndead)
        return 0;
    if (wd_sq_begin(&s->base) < 0) {
        wd_buf_free(&dead);
        return -1;
    }
    for (char *p = dead.p; *p;) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        if (release_owner(s, p) < 0) {
            wd_sq_rollback(&s->base);
            wd_buf_free(&dead);
            return -1;
        }
        p = nl + 1;
    }
    wd_buf_free(&dead);
    if (wd_sq_commit(&s->base) < 0) {
        wd_sq_rollback(&s->base);
        return -1;
    }
    return ndead;
}

/* ---- rate windows ------------------------------------------------------------------ */

int wd_sq_rate_take(wd_store *st_, const char *key, long long limit, int64_t window_ms, int64_t now_ms,
                    long long *count, int64_t *retry_ms)
{
    wd_sqlite *s = SQ(st_);
    *count = 0;
    *retry_ms = 0;
    if (wd_sq_begin(&s->base) < 0)
        return -1;
    sqlite3_stmt *st = wd_sq_cached(s, Q_RATE_DEL, "DELETE FROM rate WHERE key = ?1 AND ts <= ?2");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms - window_ms);
    int rc = sqlite3_step(st);
    wd_sq_done(st);
    if (rc != SQLITE_DONE)
        goto fail;
    st = wd_sq_cached(s, Q_RATE_CNT, "SELECT COUNT(*), MIN(ts) FROM rate WHERE key = ?1");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int64_t oldest = 0;
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        oldest = sqlite3_column_int64(st, 1);
    }
    wd_sq_done(st);
    if (rc != SQLITE_ROW)
        goto fail;
    if (*count >= limit) {
        *retry_ms = oldest + window_ms - now_ms;
        if (*retry_ms < 1)
            *retry_ms = 1;
        if (*retry_ms > window_ms) /* a stamp ahead of now: never wait longer than the window */
            *retry_ms = window_ms;
        return wd_sq_commit(&s->base) < 0 ? (wd_sq_rollback(&s->base), -1) : 0; /* the expired rows stay deleted */
    }
    st = wd_sq_cached(s, Q_RATE_INS, "INSERT INTO rate(key, ts) VALUES(?1, ?2)");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st);
    wd_sq_done(st);
    if (rc != SQLITE_DONE || wd_sq_commit(&s->base) < 0)
        goto fail;
    return 1;
fail:
    wd_sq_rollback(&s->base);
    return -1;
}

/* ---- sessions ---------------------------------------------------------------------- */

int wd_sq_session_get(wd_store *st_, const char *id, int64_t now_ms, char **owner, char **messages)
{
    wd_sqlite *s = SQ(st_);
    *owner = *messages = NULL;
    sqlite3_stmt *st =
        wd_sq_cached(s, Q_SESSION_GET, "SELECT owner, messages FROM sessions WHERE id = ?1 AND expires_ms > ?2");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st), out = rc == SQLITE_DONE ? 0 : -1;
    if (rc == SQLITE_ROW) {
        *owner = wd_strdup((const char *)sqlite3_column_text(st, 0));
        *messages = wd_strdup((const char *)sqlite3_column_text(st, 1));
        out = *owner && *messages ? 1 : -1;
    }
    wd_sq_done(st);
    if (out < 0) {
        free(*owner);
        free(*messages);
        *owner = *messages = NULL;
    }
    return out;
}

int wd_sq_session_put(wd_store *st_, const char *id, const char *owner, const char *messages, int64_t now_ms,
                      int64_t expires_ms)
{
    wd_sqlite *s = SQ(st_);
    sqlite3_stmt *st = wd_sq_cached(s, Q_SESSION_PUT,
                                    "INSERT OR REPLACE INTO sessions(id, owner, messages, updated_ms, expires_ms) "
                                    "VALUES(?1, ?2, ?3, ?4, ?5)");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, messages, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int64(st, 5, expires_ms);
    int rc = sqlite3_step(st);
    wd_sq_done(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the response cache ------------------------------------------------------------ */

int wd_sq_cache_get(wd_store *st_, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd)
{
    wd_sqlite *s = SQ(st_);
    *answer = NULL;
    *cost_nusd = 0;
    sqlite3_stmt *st =
        wd_sq_cached(s, Q_CACHE_GET, "SELECT answer, cost FROM cache WHERE key = ?1 AND expires_ms > ?2");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st), out = rc == SQLITE_DONE ? 0 : -1;
    if (rc == SQLITE_ROW) {
        *answer = wd_strdup((const char *)sqlite3_column_text(st, 0));
        *cost_nusd = sqlite3_column_int64(st, 1);
        out = *answer ? 1 : -1;
    }
    wd_sq_done(st);
    return out;
}

int wd_sq_cache_put(wd_store *st_, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                    int64_t ttl_ms)
{
    wd_sqlite *s = SQ(st_);
    if (wd_sq_begin(&s->base) < 0)
        return -1;
    sqlite3_stmt *st = wd_sq_cached(s, Q_CACHE_GC, "DELETE FROM cache WHERE expires_ms <= ?1");
    sqlite3_bind_int64(st, 1, now_ms);
    int rc = sqlite3_step(st);
    wd_sq_done(st);
    if (rc != SQLITE_DONE)
        goto fail;
    st = wd_sq_cached(
        s, Q_CACHE_PUT,
        "INSERT OR REPLACE INTO cache(key, answer, cost, created_ms, expires_ms) VALUES(?1, ?2, ?3, ?4, ?5)");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, answer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cost_nusd);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int64(st, 5, now_ms + ttl_ms);
    rc = sqlite3_step(st);
    wd_sq_done(st);
    if (rc != SQLITE_DONE || wd_sq_commit(&s->base) < 0)
        goto fail;
    return 0;
fail:
    wd_sq_rollback(&s->base);
    return -1;
}
