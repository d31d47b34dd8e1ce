/* store.c - SQLite behind the state store interface */
#include "store.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

struct wd_store {
    sqlite3 *db;
    char *path;
    int in_txn;        /* holds txn_mu */
    int64_t clock_off; /* the store's clock less wd_boot_ms (wd_store_now) */
    sqlite3_stmt *begin, *commit, *rollback, *br_get, *br_put, *br_list;
    sqlite3_stmt *sp_get, *sp_apply, *sp_warn, *sp_release_owner, *sp_list;
    sqlite3_stmt *lease_ins, *lease_upd, *lease_del, *lease_owners, *lease_del_owner;
    sqlite3_stmt *rate_del, *rate_cnt, *rate_ins, *cache_get, *cache_put, *cache_gc;
};

/* write transactions of this process, whatever the store: see store.h */
static pthread_mutex_t txn_mu = PTHREAD_MUTEX_INITIALIZER;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS breakers ("
    " name TEXT PRIMARY KEY, state INTEGER NOT NULL, failures INTEGER NOT NULL,"
    " opened_ms INTEGER NOT NULL, probes INTEGER NOT NULL, probe_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS spend (scope TEXT NOT NULL, period TEXT NOT NULL,"
    " spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,"
    " warned INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(scope, period)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, scope TEXT NOT NULL,"
    " period TEXT NOT NULL, amount INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS leases_owner ON leases(owner);"
    "CREATE TABLE IF NOT EXISTS rate (key TEXT NOT NULL, ts INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS rate_key ON rate(key, ts);"
    "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, answer TEXT NOT NULL, cost INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cache_expiry ON cache(expires_ms);"
    "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, session_id TEXT,"
    " user_id TEXT, agent TEXT, tool TEXT NOT NULL, args TEXT NOT NULL, risk TEXT NOT NULL,"
    " urgency TEXT NOT NULL, justification TEXT, approvers TEXT NOT NULL, needed INTEGER NOT NULL,"
    " approved_by TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL, reason TEXT, decided_by TEXT,"
    " owner TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
    " escalate_ms INTEGER NOT NULL, escalated INTEGER NOT NULL DEFAULT 0, decided_ms INTEGER, decided_via TEXT);"
    "CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, created_ms);"
    "CREATE TABLE IF NOT EXISTS kills (agent TEXT PRIMARY KEY, by TEXT NOT NULL, reason TEXT NOT NULL,"
    " automatic INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS agent_health (agent TEXT PRIMARY KEY, failures INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS detector_state (detector TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(detector, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), boot INTEGER NOT NULL,"
    " anchor_ms INTEGER NOT NULL, anchor_boot_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS detector_store (agent TEXT NOT NULL, user TEXT NOT NULL, origin TEXT NOT NULL,"
    " detector TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(agent, user, origin, detector, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS detector_scopes (agent TEXT NOT NULL, user TEXT NOT NULL, origin TEXT NOT NULL,"
    " detector TEXT NOT NULL, PRIMARY KEY(agent, user, origin, detector)) WITHOUT ROWID;";

/* another process holds the write lock for microseconds: yield, then short sleeps,
** for about two seconds in all (SQLite's own handler sleeps whole milliseconds) */
static int on_busy(void *ud, int n)
{
    (void)ud;
    if (n >= 4000)
        return 0;
    if (n < 10)
        sched_yield();
    else
        usleep(n < 100 ? 50 : 500);
    return 1;
}

/* mkdir -p of the directory part of path */
static int make_parent(const char *path)
{
    char *d = wd_strdup(path);
    if (!d)
        return -1;
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(d, 0750) < 0 && errno != EEXIST) {
            free(d);
            return -1;
        }
        *p = '/';
    }
    free(d);
    return 0;
}

static int prep(wd_store *s, sqlite3_stmt **st, const char *sql)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0 : -1;
}

/* columns added since a store was made: 6 approvals.decided_via (how the person who
** decided proved who they are) */
static int migrate(sqlite3 *db)
{
    sqlite3_stmt *q;
    int rc =
        sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('approvals') WHERE name = 'decided_via'", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return rc;
    int has = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return has ? SQLITE_OK : sqlite3_exec(db, "ALTER TABLE approvals ADD COLUMN decided_via TEXT", NULL, NULL, NULL);
}

/* ** The store's clock, for every duration kept in the store (breakers' open periods,
** rate windows, approvals' expiry and escalation, the cache's ttl): the wall clock as it
** read when this boot first opened the store, advanced by CLOCK_BOOTTIME since. Every
** process of one boot reads the same clock, and a step of the wall clock (by hand, by
** NTP) moves none of it. A new boot anchors again, at the wall clock or, when that is
** behind what the store already holds (a clock set back across a reboot), at the
** latest time held: the clock never runs backwards over a stamp, so no wait outlasts
** its length. Inside setup's transaction: one process anchors a boot. */
static int anchor_clock(sqlite3 *db, int64_t *off)
{
    int64_t boot = wd_boot_id(), now_boot = wd_boot_ms();
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT boot, anchor_ms, anchor_boot_ms FROM clock WHERE id = 1", -1, &q, NULL) !=
        SQLITE_OK)
        return SQLITE_ERROR;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_int64(q, 0) == boot) {
        *off = sqlite3_column_int64(q, 1) - sqlite3_column_int64(q, 2);
        sqlite3_finalize(q);
        return SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    static const char HIGH[] =
        "SELECT max(ifnull((SELECT anchor_ms FROM clock), 0), ifnull((SELECT max(max(opened_ms, probe_ms, updated_ms))"
        " FROM breakers), 0), ifnull((SELECT max(ts) FROM rate), 0), ifnull((SELECT max(created_ms) FROM approvals),"
        " 0), ifnull((SELECT max(created_ms) FROM cache), 0))";
    if (sqlite3_prepare_v2(db, HIGH, -1, &q, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    int64_t high = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    int64_t at = wd_real_wall_ms();
    if (at < high)
        at = high;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO clock VALUES(1, ?1, ?2, ?3)", -1, &q, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_int64(q, 1, boot);
    sqlite3_bind_int64(q, 2, at);
    sqlite3_bind_int64(q, 3, now_boot);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    *off = at - now_boot;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int64_t wd_store_now(const wd_store *s)
{
    if (!s)
        return wd_now_ns() / 1000000 + wd_clock_shift();
    return wd_boot_ms() + s->clock_off + wd_clock_shift();
}

/* WAL: readers never wait for writers; NORMAL: a commit does not fsync (state is
** advisory to a crash, the audit log is the record). Engines opening one file at the
** same moment (worker threads, processes) can get SQLITE_BUSY here without the busy
** handler being asked (switching the journal mode, upgrading a read lock), so the
** setup is retried for up to two seconds. */
static int setup(sqlite3 *db, int64_t *clock_off)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < 400; i++) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(db, SCHEMA, NULL, NULL, NULL);
            if (rc == SQLITE_OK)
                rc = migrate(db);
            if (rc == SQLITE_OK)
                rc = anchor_clock(db, clock_off);
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, "PRAGMA user_version=7; COMMIT", NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            return rc;
        usleep(5000);
    }
    return rc;
}

wd_store *wd_store_open(const char *path, char *err, size_t errlen)
{
    wd_store *s = calloc(1, sizeof *s);
    if (!s) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->path = wd_strdup(path);
    if (make_parent(path) < 0) {
        wd_errf(err, errlen, "state store %s: cannot create its directory: %s", path, strerror(errno));
        goto fail_quiet;
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_busy_handler(s->db, on_busy, NULL);
    if (setup(s->db, &s->clock_off) != SQLITE_OK)
        goto fail;
    if (prep(s, &s->begin, "BEGIN IMMEDIATE") || prep(s, &s->commit, "COMMIT") || prep(s, &s->rollback, "ROLLBACK") ||
        prep(s, &s->br_get,
             "SELECT state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers WHERE name = ?1") ||
        prep(s, &s->br_put,
             "INSERT INTO breakers(name, state, failures, opened_ms, probes, probe_ms, updated_ms)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET state = ?2, failures = ?3,"
             " opened_ms = ?4, probes = ?5, probe_ms = ?6, updated_ms = ?7") ||
        prep(s, &s->br_list,
             "SELECT name, state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers ORDER BY name") ||
        prep(s, &s->sp_get, "SELECT spent, reserved, warned FROM spend WHERE scope = ?1 AND period = ?2") ||
        prep(s, &s->sp_apply,
             "INSERT INTO spend(scope, period, spent, reserved, updated_ms) VALUES(?1, ?2, ?3, max(0, ?4), ?5)"
             " ON CONFLICT(scope, period) DO UPDATE SET spent = spent + ?3, reserved = max(0, reserved + ?4),"
             " updated_ms = ?5 RETURNING spent, warned") ||
        prep(s, &s->sp_warn, "UPDATE spend SET warned = 1 WHERE scope = ?1 AND period = ?2") ||
        prep(s, &s->sp_release_owner,
             "UPDATE spend SET reserved = max(0, reserved - (SELECT SUM(amount) FROM leases l WHERE l.owner = ?1"
             " AND l.scope = spend.scope AND l.period = spend.period))"
             " WHERE (scope, period) IN (SELECT scope, period FROM leases WHERE owner = ?1)") ||
        prep(s, &s->sp_list, "SELECT scope, period, spent, reserved, warned FROM spend ORDER BY scope, period") ||
        prep(s, &s->lease_ins,
             "INSERT INTO leases(owner, scope, period, amount, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)") ||
        prep(s, &s->lease_upd, "UPDATE leases SET amount = ?2 WHERE id = ?1") ||
        prep(s, &s->lease_del, "DELETE FROM leases WHERE id = ?1") ||
        prep(s, &s->lease_owners, "SELECT DISTINCT owner FROM leases") ||
        prep(s, &s->lease_del_owner, "DELETE FROM leases WHERE owner = ?1") ||
        prep(s, &s->rate_del, "DELETE FROM rate WHERE key = ?1 AND ts <= ?2") ||
        prep(s, &s->rate_cnt, "SELECT COUNT(*), MIN(ts) FROM rate WHERE key = ?1") ||
        prep(s, &s->rate_ins, "INSERT INTO rate(key, ts) VALUES(?1, ?2)") ||
        prep(s, &s->cache_get, "SELECT answer, cost FROM cache WHERE key = ?1 AND expires_ms > ?2") ||
        prep(s, &s->cache_put,
             "INSERT OR REPLACE INTO cache(key, answer, cost, created_ms, expires_ms)"
             " VALUES(?1, ?2, ?3, ?4, ?5)") ||
        prep(s, &s->cache_gc, "DELETE FROM cache WHERE expires_ms <= ?1"))
        goto fail;
    if (wd_store_sweep(s) < 0)
        goto fail;
    return s;
fail:
    wd_errf(err, errlen, "state store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
fail_quiet:
    wd_store_close(s);
    return NULL;
}

void wd_store_close(wd_store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->br_get);
    sqlite3_finalize(s->br_put);
    sqlite3_finalize(s->br_list);
    sqlite3_stmt *more[] = {s->sp_get,    s->sp_apply,  s->sp_warn,      s->sp_release_owner, s->sp_list,  s->lease_ins,
                            s->lease_upd, s->lease_del, s->lease_owners, s->lease_del_owner,  s->rate_del, s->rate_cnt,
                            s->rate_ins,  s->cache_get, s->cache_put,    s->cache_gc};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        sqlite3_finalize(more[i]);
    if (s->in_txn) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        pthread_mutex_unlock(&txn_mu);
    }
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *wd_store_path(const wd_store *s) { return s->path; }
const char *wd_store_error(const wd_store *s) { return s->db ? sqlite3_errmsg(s->db) : "no database"; }

static int run1(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int wd_store_begin(wd_store *s)
{
    pthread_mutex_lock(&txn_mu);
    if (run1(s->begin) < 0) {
        pthread_mutex_unlock(&txn_mu);
        return -1;
    }
    s->in_txn = 1;
    return 0;
}

/* a failed COMMIT leaves the transaction open: the caller rolls back */
int wd_store_commit(wd_store *s)
{
    if (run1(s->commit) < 0)
        return -1;
    if (s->in_txn) {
        s->in_txn = 0;
        pthread_mutex_unlock(&txn_mu);
    }
    return 0;
}

void wd_store_rollback(wd_store *s)
{
    if (!s->in_txn)
        return;
    run1(s->rollback);
    s->in_txn = 0;
    pthread_mutex_unlock(&txn_mu);
}

static void row_from(sqlite3_stmt *st, int col, wd_breaker_row *row)
{
    row->state = sqlite3_column_int(st, col);
    row->failures = sqlite3_column_int64(st, col + 1);
    row->opened_ms = sqlite3_column_int64(st, col + 2);
    row->probes = sqlite3_column_int64(st, col + 3);
    row->probe_ms = sqlite3_column_int64(st, col + 4);
    row->updated_ms = sqlite3_column_int64(st, col + 5);
}

int wd_store_breaker_get(wd_store *s, const char *name, wd_breaker_row *row)
{
    memset(row, 0, sizeof *row);
    wd_strlcpy(row->name, name, sizeof row->name);
    sqlite3_stmt *st = s->br_get;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), out;
    if (rc == SQLITE_ROW) {
        row_from(st, 0, row);
        out = 1;
    } else {
        out = rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

int wd_store_breaker_put(wd_store *s, const wd_breaker_row *row)
{
    sqlite3_stmt *st = s->br_put;
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, row->state);
    sqlite3_bind_int64(st, 3, row->failures);
    sqlite3_bind_int64(st, 4, row->opened_ms);
    sqlite3_bind_int64(st, 5, row->probes);
    sqlite3_bind_int64(st, 6, row->probe_ms);
    sqlite3_bind_int64(st, 7, row->updated_ms);
    int rc = run1(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int wd_store_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = s->br_list;
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

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* 0 (row filled, zero when absent) or -1 */
static int ledger_row(wd_store *s, const wd_ledger_key *k, wd_ledger_row *row)
{
    memset(row, 0, sizeof *row);
    wd_strlcpy(row->scope, k->scope, sizeof row->scope);
    wd_strlcpy(row->period, k->period, sizeof row->period);
    sqlite3_stmt *st = s->sp_get;
    bind_key(st, k);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row->spent = sqlite3_column_int64(st, 0);
        row->reserved = sqlite3_column_int64(st, 1);
        row->warned = sqlite3_column_int(st, 2);
    }
    done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* this process, as its leases name it: "pid:start time in clock ticks since boot"
** (a pid alone may be reused by the time a sweep looks) */
static int proc_start(long pid, char *out, size_t n)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');                   /* ends field 2, the command name (which may hold ')') */
    if (!p || !p[1] || p[2] == 'Z' || p[2] == 'X') /* a zombie is gone, whoever reaps it */
        return -1;
    for (int field = 3; field <= 22 && p; field++) /* p: the space before field 22, starttime */
        p = strchr(p + 1, ' ');
    if (!p)
        return -1;
    p++;
    size_t l = strcspn(p, " ");
    if (l == 0 || l >= n)
        return -1;
    memcpy(out, p, l);
    out[l] = '\0';
    return 0;
}

static int owner_alive(const char *owner);

static const char *owner_id(void)
{
    static __thread char id[64];
    static __thread long for_pid;
    long pid = (long)getpid();
    if (for_pid != pid) { /* computed again in a forked child */
        char st[32];
        if (proc_start(pid, st, sizeof st) < 0)
            snprintf(st, sizeof st, "?");
        snprintf(id, sizeof id, "%ld:%s", pid, st);
        for_pid = pid;
    }
    return id;
}

const char *wd_store_owner(void) { return owner_id(); }

int wd_store_owner_alive(const char *owner) { return owner_alive(owner); }

sqlite3 *wd_store_db(wd_store *s) { return s->db; }

sqlite3_stmt *wd_store_prepare(wd_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

static int owner_alive(const char *owner)
{
    char *end;
    long pid = strtol(owner, &end, 10);
    if (*end != ':' || pid <= 0)
        return 0;
    char st[32];
    if (proc_start(pid, st, sizeof st) < 0)
        return 0;
    return !strcmp(st, end + 1);
}

int wd_store_lease_apply(wd_store *s, wd_lease_change *c, int n, int check, int64_t now_ms, int *which)
{
    *which = -1;
    if (wd_store_begin(s) < 0)
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
            wd_store_rollback(s);
            return 0;
        }
    }
    for (int i = 0; i < n; i++) {
        const wd_ledger_key *k = c[i].key;
        c[i].crossed = 0;
        sqlite3_stmt *st = s->sp_apply;
        bind_key(st, k);
        sqlite3_bind_int64(st, 3, c[i].pending);
        sqlite3_bind_int64(st, 4, c[i].new_amount - c[i].old);
        sqlite3_bind_int64(st, 5, now_ms);
        int rc = sqlite3_step(st);
        c[i].spent = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        int warned = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 1;
        if (rc == SQLITE_ROW)
            rc = sqlite3_step(st);
        done(st);
        if (rc != SQLITE_DONE)
            goto fail;
        if (k->warn_at > 0 && c[i].spent >= k->warn_at && !warned) {
            st = s->sp_warn;
            bind_key(st, k);
            rc = sqlite3_step(st);
            done(st);
            if (rc != SQLITE_DONE)
                goto fail;
            c[i].crossed = 1;
        }
        if (c[i].new_amount == c[i].old)
            continue;
        if (!*c[i].row) { /* a new lease row, owned by this process */
            st = s->lease_ins;
            sqlite3_bind_text(st, 1, owner_id(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, k->scope, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, k->period, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, c[i].new_amount);
            sqlite3_bind_int64(st, 5, now_ms);
            rc = sqlite3_step(st);
            done(st);
            if (rc != SQLITE_DONE)
                goto fail;
            *c[i].row = sqlite3_last_insert_rowid(s->db);
        } else {
            st = c[i].new_amount > 0 ? s->lease_upd : s->lease_del;
            sqlite3_bind_int64(st, 1, *c[i].row);
            if (c[i].new_amount > 0)
                sqlite3_bind_int64(st, 2, c[i].new_amount);
            rc = sqlite3_step(st);
            done(st);
            if (rc != SQLITE_DONE)
                goto fail;
            if (c[i].new_amount <= 0)
                *c[i].row = 0;
        }
    }
    if (wd_store_commit(s) < 0)
        goto fail;
    return 1;
fail:
    wd_store_rollback(s);
    return -1;
}

int wd_store_ledger_get(wd_store *s, const wd_ledger_key *k, int n, wd_ledger_row *rows)
{
    for (int i = 0; i < n; i++)
        if (ledger_row(s, &k[i], &rows[i]) < 0)
            return -1;
    return 0;
}

int wd_store_ledger_list(wd_store *s, wd_ledger_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = s->sp_list;
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
static int release_owner(wd_store *s, const char *owner)
{
    sqlite3_stmt *sts[2] = {s->sp_release_owner, s->lease_del_owner};
    for (int i = 0; i < 2; i++) {
        sqlite3_bind_text(sts[i], 1, owner, -1, SQLITE_STATIC);
        int rc = sqlite3_step(sts[i]);
        done(sts[i]);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

int wd_store_sweep(wd_store *s)
{
    /* a cheap look first: most of the time nobody died holding a lease */
    wd_buf dead = {0};
    int ndead = 0, rc;
    sqlite3_stmt *st = s->lease_owners;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(st, 0);
        if (o && strcmp(o, owner_id()) && !owner_alive(o)) {
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
    if (wd_store_begin(s) < 0) {
        wd_buf_free(&dead);
        return -1;
    }
    for (char *p = dead.p; *p;) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        if (release_owner(s, p) < 0) {
            wd_store_rollback(s);
            wd_buf_free(&dead);
            return -1;
        }
        p = nl + 1;
    }
    wd_buf_free(&dead);
    if (wd_store_commit(s) < 0) {
        wd_store_rollback(s);
        return -1;
    }
    return ndead;
}

/* ---- rate windows ------------------------------------------------------------------ */

int wd_store_rate_take(wd_store *s, const char *key, long long limit, int64_t window_ms, int64_t now_ms,
                       long long *count, int64_t *retry_ms)
{
    *count = 0;
    *retry_ms = 0;
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *st = s->rate_del;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms - window_ms);
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        goto fail;
    st = s->rate_cnt;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int64_t oldest = 0;
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        oldest = sqlite3_column_int64(st, 1);
    }
    done(st);
    if (rc != SQLITE_ROW)
        goto fail;
    if (*count >= limit) {
        *retry_ms = oldest + window_ms - now_ms;
        if (*retry_ms < 1)
            *retry_ms = 1;
        if (*retry_ms > window_ms) /* a stamp ahead of now: never wait longer than the window */
            *retry_ms = window_ms;
        return wd_store_commit(s) < 0 ? (wd_store_rollback(s), -1) : 0; /* the expired rows stay deleted */
    }
    st = s->rate_ins;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE || wd_store_commit(s) < 0)
        goto fail;
    return 1;
fail:
    wd_store_rollback(s);
    return -1;
}

/* ---- the response cache ------------------------------------------------------------ */

int wd_store_cache_get(wd_store *s, const char *key, int64_t now_ms, char **answer, int64_t *cost_nusd)
{
    *answer = NULL;
    *cost_nusd = 0;
    sqlite3_stmt *st = s->cache_get;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st), out = rc == SQLITE_DONE ? 0 : -1;
    if (rc == SQLITE_ROW) {
        *answer = wd_strdup((const char *)sqlite3_column_text(st, 0));
        *cost_nusd = sqlite3_column_int64(st, 1);
        out = *answer ? 1 : -1;
    }
    done(st);
    return out;
}

int wd_store_cache_put(wd_store *s, const char *key, const char *answer, int64_t cost_nusd, int64_t now_ms,
                       int64_t ttl_ms)
{
    if (wd_store_begin(s) < 0)
        return -1;
    sqlite3_stmt *st = s->cache_gc;
    sqlite3_bind_int64(st, 1, now_ms);
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        goto fail;
    st = s->cache_put;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, answer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cost_nusd);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int64(st, 5, now_ms + ttl_ms);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE || wd_store_commit(s) < 0)
        goto fail;
    return 0;
fail:
    wd_store_rollback(s);
    return -1;
}
