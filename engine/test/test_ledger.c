/* test_ledger.c - the store's ledger: leases checked against limits, and the sweep that
** releases the leases of dead processes but never a live one's */
#include "budget.h"
#include "harness.h"
#include "store.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-ledger-test.XXXXXX";

/* field 22 of /proc/PID/stat, split the plain way: what a live owner must be named by */
static long long start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')') + 2; /* field 3 */
    long long v = -1;
    for (int field = 3; p && field < 22; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (p)
        sscanf(p, "%lld", &v);
    return v;
}

static void sql(const char *path, const char *q)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *err = NULL;
    CHECK(sqlite3_exec(db, q, NULL, NULL, &err) == SQLITE_OK);
    if (err)
        fprintf(stderr, "  %s\n", err);
    sqlite3_free(err);
    sqlite3_close(db);
}

TEST(sweep_releases_dead_owners_only)
{
    char path[300], err[300], q[1000];
    snprintf(path, sizeof path, "%s/sweep.db", dir);
    wd_store *s = wd_store_open(path, err, sizeof err);
    REQUIRE(s != NULL);
    wd_store_close(s);
    /* the parent (alive) under its real start time; the parent under another start time
    ** (a reused pid: dead); a pid that does not exist */
    long ppid = (long)getppid();
    long long st = start_time(ppid);
    CHECK(st > 0);
    snprintf(q, sizeof q,
             "INSERT INTO spend(scope, period, spent, reserved) VALUES('user:a', 'day:x', 5, 700);"
             "INSERT INTO leases(owner, scope, period, amount, created_ms) VALUES"
             " ('%ld:%lld', 'user:a', 'day:x', 100, 0), ('%ld:%lld', 'user:a', 'day:x', 200, 0),"
             " ('999999999:1', 'user:a', 'day:x', 400, 0);",
             ppid, st, ppid, st + 1);
    sql(path, q);
    s = wd_store_open(path, err, sizeof err); /* opening sweeps */
    REQUIRE(s != NULL);
    wd_ledger_key k = {"user:a", "day:x", 0, 0};
    wd_ledger_row row;
    CHECK(wd_store_ledger_get(s, &k, 1, &row) == 0);
    CHECK(row.reserved == 100 && row.spent == 5);
    CHECK(wd_store_sweep(s) == 0); /* nothing left to release */
    wd_store_close(s);
}

TEST(a_lease_grows_only_within_the_limit_counting_pending_spend)
{
    char path[300], err[300];
    snprintf(path, sizeof path, "%s/lease.db", dir);
    wd_store *s = wd_store_open(path, err, sizeof err);
    REQUIRE(s != NULL);
    wd_ledger_key k = {"user:b", "day:x", 1000, 500};
    int64_t row_id = 0;
    int which;
    wd_lease_change c = {.key = &k, .row = &row_id, .old = 0, .new_amount = 600, .pending = 0};
    CHECK(wd_store_lease_apply(s, &c, 1, 1, 1, &which) == 1);
    CHECK(row_id > 0);
    /* 500 spent waiting, lease kept at 600: 1,100 would pass the limit */
    wd_lease_change d = {.key = &k, .row = &row_id, .old = 600, .new_amount = 600, .pending = 500};
    CHECK(wd_store_lease_apply(s, &d, 1, 1, 2, &which) == 0 && which == 0);
    /* shrunk to 400 with the spend: 900 fits, and the spend reaches the warning line at 500 */
    d.new_amount = 400;
    CHECK(wd_store_lease_apply(s, &d, 1, 1, 3, &which) == 1);
    CHECK(d.crossed == 1 && d.spent == 500);
    wd_ledger_row r;
    CHECK(wd_store_ledger_get(s, &k, 1, &r) == 0 && r.spent == 500 && r.reserved == 400 && r.warned);
    /* back to nothing: the lease row goes */
    wd_lease_change e = {.key = &k, .row = &row_id, .old = 400, .new_amount = 0, .pending = 0};
    CHECK(wd_store_lease_apply(s, &e, 1, 0, 4, &which) == 1 && row_id == 0);
    CHECK(wd_store_ledger_get(s, &k, 1, &r) == 0 && r.reserved == 0);
    wd_store_close(s);
}

/* amounts at the extremes never wrap: clamped to $1e9, NaN counted as the most, sums saturate */
TEST(money_at_the_extremes_never_wraps)
{
    CHECK(wd_budget_nusd(0.5) == 500000000);
    CHECK(wd_budget_nusd(-1) == 0);
    CHECK(wd_budget_nusd(0) == 0);
    CHECK(wd_budget_nusd(1e300) == 1000000000000000000LL);
    CHECK(wd_budget_nusd(9e18 / 1000 * 0.01) == 1000000000000000000LL);
    CHECK(wd_budget_nusd(1.0 / 0.0) == 1000000000000000000LL);
    CHECK(wd_budget_nusd(0.0 / 0.0) == 1000000000000000000LL);
    CHECK(wd_add_sat(INT64_MAX - 1, 5) == INT64_MAX);
    CHECK(wd_add_sat(INT64_MIN + 1, -5) == INT64_MIN);
    CHECK(wd_add_sat(40, 2) == 42);
}

/* a row near the top of int64 still refuses a lease: the sum saturates, it does not wrap */
TEST(a_spent_row_at_the_top_still_refuses)
{
    char path[300];
    snprintf(path, sizeof path, "%s/top.db", dir);
    char err[200];
    wd_store *s = wd_store_open(path, err, sizeof err);
    REQUIRE(s != NULL);
    wd_ledger_key k = {"user:x", "day:1", 1000, 0};
    int64_t row_id = 0;
    int which;
    wd_lease_change c = {.key = &k, .row = &row_id, .old = 0, .new_amount = 0, .pending = INT64_MAX - 10};
    CHECK(wd_store_lease_apply(s, &c, 1, 0, 1, &which) == 1); /* unchecked: spent near the top */
    wd_lease_change d = {.key = &k, .row = &row_id, .old = 0, .new_amount = 100, .pending = 0};
    CHECK(wd_store_lease_apply(s, &d, 1, 1, 2, &which) == 0 && which == 0);
    wd_store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    RUN(sweep_releases_dead_owners_only);
    RUN(a_lease_grows_only_within_the_limit_counting_pending_spend);
    RUN(money_at_the_extremes_never_wraps);
    RUN(a_spent_row_at_the_top_still_refuses);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    DONE();
}
