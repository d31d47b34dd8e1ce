/* bench_runs.c - N concurrent runs in one process against the fake LLM server
** answering after 50 ms: each run is a ReAct agent making 3 LLM calls and 2 tool calls
** (docs/performance.md's workload). Prints runs/s, run latency against the ideal
** (3 x 50 ms), wall time against it, CPU per run and peak RSS. */
#include "warden.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LATENCY_MS 50

typedef struct {
    pthread_mutex_t mu; /* callbacks come from every worker's thread */
    long long *lat;
    size_t n, failed;
    char first_error[300];
} stats;

/* a run's latency is counted from its submission: the time it waits in the pool's
** queue is part of it */
typedef struct {
    stats *s;
    double t_submit;
} one;

static double now_s(void);

static void on_done(const json_t *res, void *ud)
{
    one *o = ud;
    stats *s = o->s;
    long long ms = (long long)((now_s() - o->t_submit) * 1000.0 + 0.5);
    pthread_mutex_lock(&s->mu);
    s->lat[s->n++] = ms;
    if (!json_is_true(json_object_get(res, "success"))) {
        if (!s->failed++) {
            json_t *e = json_array_get(json_object_get(res, "errors"), 0);
            snprintf(s->first_error, sizeof s->first_error, "%s: %s", json_string_value(json_object_get(res, "status")),
                     e ? json_string_value(e) : "");
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec / 1e6;
}

static pid_t start_server(const char *bin, int *port)
{
    const char *pf = "/tmp/warden-bench-fakellm.port";
    unlink(pf);
    pid_t pid = fork();
    if (pid == 0) {
        /* the server stands in for a remote provider, which would not share our cores:
        ** as a batch-class process it still gets its CPU, but does not preempt the
        ** engine's threads at each request it is woken for (docs/performance.md) */
        struct sched_param sp = {0};
        sched_setscheduler(0, SCHED_BATCH, &sp);
        freopen("/dev/null", "w", stdout);
        execl(bin, bin, "--port-file", pf, "--watch-pid", "1", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int ok = fscanf(f, "%d", port) == 1;
            fclose(f);
            if (ok)
                return pid;
        }
        usleep(10000);
    }
    kill(pid, SIGTERM);
    return -1;
}

static const char *agent = "bench/agents/react_noop";

/* one burst of n runs on pool p, timed; prints its line */
static int burst(wd_pool *p, int n, int workers, const char *label)
{
    stats s = {PTHREAD_MUTEX_INITIALIZER, calloc((size_t)n, sizeof(long long)), 0, 0, ""};
    one *runs = calloc((size_t)n, sizeof *runs);
    double c0 = cpu_s(), t0 = now_s();
    for (int i = 0; i < n; i++) {
        wd_run_opts ro = {agent, "go", "bench", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
        runs[i].s = &s;
        runs[i].t_submit = now_s();
        wd_pool_submit(p, &ro, on_done, &runs[i]);
    }
    wd_pool_wait(p);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    qsort(s.lat, s.n, sizeof *s.lat, cmp);
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double ideal = 3.0 * LATENCY_MS / 1000.0;
    printf("%5d runs, %d worker%s, %s: wall %.3f s (%.2fx the ideal %.3f s), %.0f runs/s, run latency p50 %lld ms "
           "p99 %lld ms max %lld ms (ideal %d ms), CPU %.3f ms/run, peak RSS %.1f MB, failed %zu\n",
           n, workers, workers == 1 ? "" : "s", label, wall, wall / ideal, ideal, (double)n / wall, s.lat[s.n / 2],
           s.lat[(s.n * 99) / 100], s.lat[s.n - 1], 3 * LATENCY_MS, cpu * 1000.0 / n, (double)u.ru_maxrss / 1024.0,
           s.failed);
    if (s.failed)
        printf("       first failure: %s\n", s.first_error);
    free(s.lat);
    free(runs);
    return s.failed ? 1 : 0;
}

/* a new pool's first burst (cold: its threads' heaps, caches and connections are new),
** then a second burst on the same pool (warm, as in a process that has been serving) */
static int bench(int n, int workers, const char *url)
{
    char err[2048];
    unlink("/tmp/warden-bench-audit.jsonl");
    unlink("/tmp/warden-bench-state.db");
    wd_engine_opts eo = {"bench/bench.yaml", url, NULL, NULL};
    wd_pool *p = wd_pool_new(&eo, workers, err, sizeof err);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int rc = burst(p, n, workers, "cold");
    rc |= burst(p, n, workers, "warm");
    wd_pool_free(p);
    return rc;
}

/* bench_runs [--workers W] [--agent DIR] N... : W defaults to the number of cores */
int main(int argc, char **argv)
{
    const char *bin = getenv("FAKELLM") ? getenv("FAKELLM") : "build/fakellm";
    int workers = (int)sysconf(_SC_NPROCESSORS_ONLN), first = 1;
    for (;;) {
        if (argc > first + 1 && !strcmp(argv[first], "--workers"))
            workers = atoi(argv[first + 1]);
        else if (argc > first + 1 && !strcmp(argv[first], "--agent"))
            agent = argv[first + 1];
        else
            break;
        first += 2;
    }
    int port;
    pid_t srv = start_server(bin, &port);
    if (srv < 0) {
        fprintf(stderr, "cannot start %s\n", bin);
        return 2;
    }
    char url[256];
    /* the model asks for noop twice, then answers: 3 LLM calls, 2 tool calls per run */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/delay=%d,calls=2,tool=noop,args=%%7B%%22query%%22:%%22x%%22%%7D/v1",
             port, LATENCY_MS);
    printf(
        "concurrent ReAct runs of %s, one process, fake OpenAI server (batch-class process) at %d ms per call (%s)\n",
        agent, LATENCY_MS, url);
    int rc = 0;
    for (int i = first; i < argc || i == first; i++) {
        int n = i < argc ? atoi(argv[i]) : 1000;
        rc |= bench(n, workers, url);
    }
    kill(srv, SIGTERM);
    struct rusage u;
    waitpid(srv, NULL, 0);
    getrusage(RUSAGE_CHILDREN, &u);
    printf("the fake server used %.0f ms of CPU in all\n",
           ((double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec) * 1000.0 +
               ((double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_usec) / 1000.0);
    return rc;
}
