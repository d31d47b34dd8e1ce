/* sqlconn.c - the SQLite backend's connection: the schema, the store's clock, the
** transactions (sqlpriv.h). One file in WAL mode, shared by every warden process on
** the machine. Within a process, write transactions take turns on a mutex (a worker
** waits microseconds, not SQLite's millisecond busy sleeps); between processes the
** busy handler retries in short steps for up to two seconds. */
#include "sqlpriv.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* write transactions of this process, whatever the store */
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
    " detector TEXT NOT NULL, PRIMARY KEY(agent, user, origin, detector)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS audit_keys (key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, key BLOB,"
    " created_ms INTEGER NOT NULL, erased_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS audit_keys_user ON audit_keys(user_id, created_ms);"
    "CREATE TABLE IF NOT EXISTS notify (id TEXT PRIMARY KEY, event TEXT NOT NULL, url TEXT NOT NULL,"
    " secret_env TEXT NOT NULL, timeout_ms INTEGER NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL, claim_ms INTEGER NOT NULL, last_error TEXT,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS notify_due ON notify(status, next_ms);"
    "CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until_ms INTEGER NOT NULL, reason TEXT);"
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, owner TEXT NOT NULL, messages TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);";

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

int64_t wd_sq_now(const wd_store *s) { return wd_boot_ms() + SQ(s)->clock_off + wd_clock_shift(); }

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

wd_sqlite *wd_sq_connect(const char *path, char *err, size_t errlen)
{
    wd_sqlite *s = calloc(1, sizeof *s);
    if (!s || !(s->base.path = wd_strdup(path))) {
        free(s);
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (make_parent(path) < 0) {
        wd_errf(err, errlen, "state store %s: cannot create its directory: %s", path, strerror(errno));
        goto fail_quiet;
    }
    /* made by us, readable by its owner alone: it holds the audit log's keys. SQLite
    ** gives the -wal and -shm files the database file's mode */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    wd_file_own_like_dir(fd, path); /* SQLite gives its -wal and -shm the same owner */
    if (fd >= 0)
        close(fd);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        (sqlite3_busy_handler(s->db, on_busy, NULL), setup(s->db, &s->clock_off) != SQLITE_OK))
        goto fail;
    return s;
fail:
    wd_errf(err, errlen, "state store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
fail_quiet:
    wd_sq_close(&s->base);
    return NULL;
}

void wd_sq_close(wd_store *st)
{
    wd_sqlite *s = SQ(st);
    if (!s)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    if (s->in_txn) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        pthread_mutex_unlock(&txn_mu);
    }
    sqlite3_close(s->db);
    free(s->base.path);
    free(s);
}

const char *wd_sq_error(const wd_store *s) { return SQ(s)->db ? sqlite3_errmsg(SQ(s)->db) : "no database"; }

sqlite3_stmt *wd_sq_cached(wd_sqlite *s, int which, const char *sql)
{
    if (!s->q[which] &&
        sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->q[which], NULL) != SQLITE_OK) {
        sqlite3_finalize(s->q[which]);
        s->q[which] = NULL;
    }
    return s->q[which];
}

sqlite3_stmt *wd_sq_prepare(wd_sqlite *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* accepts NULL (a statement that failed to prepare) */
void wd_sq_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

void wd_sq_copy_col(sqlite3_stmt *st, int col, char *out, size_t n)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    wd_strlcpy(out, v ? (const char *)v : "", n);
}

/* a cached statement run once: 0 done, -1 not */
static int run1(wd_sqlite *s, int which, const char *sql)
{
    sqlite3_stmt *st = wd_sq_cached(s, which, sql);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int wd_sq_begin(wd_store *st)
{
    wd_sqlite *s = SQ(st);
    pthread_mutex_lock(&txn_mu);
    if (run1(s, Q_BEGIN, "BEGIN IMMEDIATE") < 0) {
        pthread_mutex_unlock(&txn_mu);
        return -1;
    }
    s->in_txn = 1;
    return 0;
}

/* a failed COMMIT leaves the transaction open: the caller rolls back */
int wd_sq_commit(wd_store *st)
{
    wd_sqlite *s = SQ(st);
    if (run1(s, Q_COMMIT, "COMMIT") < 0)
        return -1;
    if (s->in_txn) {
        s->in_txn = 0;
        pthread_mutex_unlock(&txn_mu);
    }
    return 0;
}

void wd_sq_rollback(wd_store *st)
{
    wd_sqlite *s = SQ(st);
    if (!s->in_txn)
        return;
    run1(s, Q_ROLLBACK, "ROLLBACK");
    s->in_txn = 0;
    pthread_mutex_unlock(&txn_mu);
}
