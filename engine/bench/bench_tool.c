/* bench_tool.c - enforcement overhead of one tool call: a no-op tool through the whole
** pipeline (policy lookup, role, JSON Schema, forbidden patterns, cost cap, handler
** coroutine under its deadline, result conversion, redacted and hash-chained audit
** record, buffered with group fsync), timed natively from ctx:call_tool's entry to the
** agent's resumption, handler time excluded. Prints the distribution. */
#include "warden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void on_done(const json_t *res, void *ud) { *(json_t **)ud = json_incref((json_t *)res); }

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    char q[32], err[2048];
    snprintf(q, sizeof q, "%ld", n);
    unlink("/tmp/warden-bench-audit.jsonl");
    wd_engine_opts eo = {"bench/bench.yaml", NULL, NULL, NULL};
    wd_engine *e = wd_engine_new(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    wd_engine_record_tool_overhead(e, 1);
    json_t *res = NULL;
    wd_run_opts ro = {"bench/agents/noop_loop", q, "bench", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wd_engine_submit(e, &ro, on_done, &res);
    wd_engine_wait(e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const long long *s;
    size_t k = wd_engine_tool_overhead(e, &s);
    long long *v = malloc(k * sizeof *v);
    for (size_t i = 0; i < k; i++)
        v[i] = s[i];
    qsort(v, k, sizeof *v, cmp);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const char *status = json_string_value(json_object_get(res, "status"));
    if (!k || !status || strcmp(status, "completed")) {
        fprintf(stderr, "bench run did not complete: %s\n", status ? status : "?");
        return 1;
    }
    double sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += (double)v[i];
    printf("tool-call enforcement overhead, no-op tool, %zu calls, buffered audit (fsync: batch)\n", k);
    printf("  median  %8.2f us\n", v[k / 2] / 1000.0);
    printf("  p90     %8.2f us\n", v[k * 90 / 100] / 1000.0);
    printf("  p99     %8.2f us\n", v[k * 99 / 100] / 1000.0);
    printf("  p99.9   %8.2f us\n", v[k * 999 / 1000] / 1000.0);
    printf("  mean    %8.2f us\n", sum / (double)k / 1000.0);
    printf("  whole loop (script + handler + enforcement): %.2f us per call, %.0f calls/s\n", wall * 1e6 / (double)k,
           (double)k / wall);
    free(v);
    json_decref(res);
    wd_engine_free(e);
    return 0;
}
