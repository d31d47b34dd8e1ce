/* bench_store.c - budget reservations against the state store, each one a trip to it:
** the case a lease cannot absorb (every call growing its lease). One reservation is a
** checked lease_apply that holds an amount against a daily budget, then the settle that
** spends it and gives the lease back. Prints one JSON line: reservations per second and
** the reservation's latency (p50, p99), so bench/scale_bench.lua can run it on SQLite
** and on Redis, in one process and in three at once against the same budget.
**   bench_store STORE N        (STORE: a SQLite path or a redis:// locator) */
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_store STORE N\n");
        return 2;
    }
    long n = atol(argv[2]);
    char err[600];
    wd_store *s = wd_store_open(argv[1], err, sizeof err);
    if (!s || n <= 0) {
        fprintf(stderr, "bench_store: %s\n", s ? "N must be positive" : err);
        return 2;
    }
    wd_ledger_key k = {.scope = "user:bench", .period = "day:bench", .limit = 1000000000000000LL};
    long long *lat = malloc((size_t)n * sizeof *lat);
    int64_t t0 = wd_now_ns();
    long failed = 0;
    for (long i = 0; i < n; i++) {
        int64_t row = 0;
        int which;
        wd_lease_change c = {.key = &k, .row = &row, .old = 0, .new_amount = 1000, .pending = 0};
        int64_t a = wd_now_ns();
        int got = wd_store_lease_apply(s, &c, 1, 1, wd_store_now(s), &which);
        lat[i] = (wd_now_ns() - a) / 1000;
        wd_lease_change d = {.key = &k,
                             .row = &row,
                             .old = 1000,
                             .new_amount = 0,
                             .pending = 1000,
                             .lease_id = 1,
                             .total = (i + 1) * 1000};
        if (got != 1 || wd_store_lease_apply(s, &d, 1, 0, wd_store_now(s), &which) != 1)
            failed++;
    }
    double secs = (double)(wd_now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("{\"backend\":\"%s\",\"reservations\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"per_s\":%.0f,\"p50_us\":%lld,"
           "\"p99_us\":%lld}\n",
           wd_store_backend_name(s), n, failed, secs, (double)n / secs, lat[n / 2], lat[(n * 99) / 100]);
    free(lat);
    wd_store_close(s);
    return failed ? 1 : 0;
}
