/* bench_mcp.c - one MCP tool call through warden: server-everything's echo, called again
** and again by an agent (bench/agents/mcp_loop) through the whole pipeline and the MCP
** transport. Each call's time is the time between consecutive tool_call records (the
** agent does nothing else), the first left out. bench/mcp_bench.sh sets the same server
** against the official SDK's client calling it directly (bench/mcp_direct.mjs).
**   bench_mcp N stdio SERVER_JS      bench_mcp N http URL */
#include "warden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    long long *t; /* ns of each tool_call record */
    size_t n, cap;
} stamps;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void on_record(void *ud, const json_t *rec)
{
    stamps *s = ud;
    const char *ev = json_string_value(json_object_get(rec, "event"));
    if (!ev || strcmp(ev, "tool_call") || s->n >= s->cap)
        return;
    s->t[s->n++] = now_ns();
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void on_done(const json_t *res, void *ud) { *(json_t **)ud = json_incref((json_t *)res); }

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "stdio") && strcmp(argv[2], "http"))) {
        fprintf(stderr, "usage: bench_mcp N stdio SERVER_JS | bench_mcp N http URL\n");
        return 2;
    }
    long n = atol(argv[1]);
    const char *pol = "/tmp/warden-bench-mcp.yaml";
    FILE *f = fopen(pol, "w");
    if (!f)
        return 2;
    fprintf(f, "version: 1\ndefaults: {max_tool_calls: 1000000, max_audit_records: 100000000, "
               "max_audit_bytes: 17179869184, timeouts: {run_ms: 600000, tool_ms: 5000}}\n"
               "users: {bench: {role: read}}\n"
               "tools: {\"every__*\": {permission: read, risk: low}}\n"
               "store: {path: /tmp/warden-bench-mcp.db}\n"
               "audit: {path: /tmp/warden-bench-mcp-audit.jsonl, fsync: batch}\n");
    if (!strcmp(argv[2], "stdio"))
        fprintf(f, "mcp: {servers: {every: {command: [node, \"%s\", stdio], timeout_ms: 30s}}}\n", argv[3]);
    else
        fprintf(f, "mcp: {servers: {every: {url: \"%s\", timeout_ms: 30s}}}\n", argv[3]);
    fclose(f);
    unlink("/tmp/warden-bench-mcp-audit.jsonl");
    char err[2048], q[32];
    wd_engine_opts eo = {pol, NULL, NULL, NULL};
    wd_engine *e = wd_engine_new(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    stamps s = {calloc((size_t)n + 1, sizeof(long long)), 0, (size_t)n + 1};
    wd_engine_on_record(e, on_record, &s);
    snprintf(q, sizeof q, "%ld", n);
    json_t *res = NULL;
    wd_run_opts ro = {"bench/agents/mcp_loop", q, "bench", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    wd_engine_submit(e, &ro, on_done, &res);
    wd_engine_wait(e);
    const char *status = json_string_value(json_object_get(res, "status"));
    if (!status || strcmp(status, "completed") || s.n < 3) {
        fprintf(stderr, "bench run did not complete: %s %s\n", status ? status : "?",
                json_string_value(json_array_get(json_object_get(res, "errors"), 0)));
        return 1;
    }
    size_t k = s.n - 1;
    long long *d = malloc(k * sizeof *d);
    for (size_t i = 0; i < k; i++)
        d[i] = s.t[i + 1] - s.t[i];
    qsort(d, k, sizeof *d, cmp);
    printf("warden   %-5s %zu calls: p50 %8.1f us  p99 %8.1f us\n", argv[2], k, d[k / 2] / 1000.0,
           d[k * 99 / 100] / 1000.0);
    free(d);
    free(s.t);
    json_decref(res);
    wd_engine_free(e);
    return 0;
}
