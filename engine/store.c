/* store.c - SQLite behind the state store interface */
#include "store.h"
#include "util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>


struct wd_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *begin, *commit, *rollback, *br_get, *br_put, *br_list;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS breakers ("
    " name TEXT PRIMARY KEY, state INTEGER NOT NULL, failures INTEGER NOT NULL,"
    " opened_ms INTEGER NOT NULL, probes INTEGER NOT NULL, probe_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);";

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

/* WAL: readers never wait for writers; NORMAL: a commit does not fsync (state is
** advisory to a crash, the audit log is the record). Engines opening one file at the
** same moment (worker threads, processes) can get SQLITE_BUSY here without the busy
** handler being asked (switching the journal mode, upgrading a read lock), so the
** setup is retried for up to two seconds. */
static int setup(sqlite3 *db)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < 400; i++) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(db, SCHEMA, NULL, NULL, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, "PRAGMA user_version=1; COMMIT", NULL, NULL, NULL);
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
    sqlite3_busy_timeout(s->db, 2000);
    if (setup(s->db) != SQLITE_OK)
        goto fail;
    if (prep(s, &s->begin, "BEGIN IMMEDIATE") || prep(s, &s->commit, "COMMIT") ||
        prep(s, &s->rollback, "ROLLBACK") ||
        prep(s, &s->br_get,
             "SELECT state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers WHERE name = ?1") ||
        prep(s, &s->br_put,
             "INSERT INTO breakers(name, state, failures, opened_ms, probes, probe_ms, updated_ms)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET state = ?2, failures = ?3,"
             " opened_ms = ?4, probes = ?5, probe_ms = ?6, updated_ms = ?7") ||
        prep(s, &s->br_list,
             "SELECT name, state, failures, opened_ms, probes, probe_ms, updated_ms FROM breakers ORDER BY name"))
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

int wd_store_begin(wd_store *s) { return run1(s->begin); }
int wd_store_commit(wd_store *s) { return run1(s->commit); }
void wd_store_rollback(wd_store *s) { run1(s->rollback); }

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
