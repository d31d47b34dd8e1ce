/* test_pool.c - worker threads: every run ends once with its result, runs spread over
** the workers, one audit chain across them, submissions from many threads */
#include "harness.h"
#include "audit.h"
#include "warden.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-pool-test.XXXXXX";
static char audit_path[300], store_path[300];

typedef struct {
    pthread_mutex_t mu;
    int done, ok;
    pthread_t threads[16];
    int nthreads;
} tally;

static void on_done(const json_t *res, void *ud)
{
    tally *t = ud;
    pthread_mutex_lock(&t->mu);
    t->done++;
    if (json_is_true(json_object_get(res, "success")))
        t->ok++;
    pthread_t self = pthread_self();
    int seen = 0;
    for (int i = 0; i < t->nthreads; i++)
        seen |= pthread_equal(t->threads[i], self);
    if (!seen && t->nthreads < 16)
        t->threads[t->nthreads++] = self;
    pthread_mutex_unlock(&t->mu);
}

static wd_pool *make(int workers, char *err, size_t n)
{
    wd_engine_opts o = {"policies/demo.yaml", "mock:agents/research_assistant/scenarios/demo.yaml", audit_path,
                        store_path};
    return wd_pool_new(&o, workers, err, n);
}

static const wd_run_opts RUN_OPTS = {"agents/research_assistant", "What do our notes say about AI safety?", "alice",
                                     NULL, NULL};

TEST(runs_spread_over_workers_and_share_one_chain)
{
    char err[600] = "";
    unlink(audit_path);
    wd_pool *p = make(3, err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(wd_pool_workers(p) == 3);
    tally t = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {0}, 0};
    for (int i = 0; i < 60; i++)
        CHECK(wd_pool_submit(p, &RUN_OPTS, on_done, &t) == 0);
    wd_pool_wait(p);
    CHECK(t.done == 60);
    CHECK(t.ok == 60);
    CHECK(t.nthreads >= 2);
    /* the records are written when wait returns, before the pool is freed */
    wd_buf rep = {0};
    long records = 0;
    CHECK(wd_audit_verify(audit_path, &rep, &records) == 0);
    CHECK(records >= 60 * 4);
    CHECK_HAS(rep.p, "intact");
    wd_buf_free(&rep);
    wd_pool_free(p);
}

typedef struct {
    wd_pool *p;
    tally *t;
} feeder_arg;

static void *feeder(void *arg)
{
    feeder_arg *a = arg;
    for (int i = 0; i < 25; i++)
        wd_pool_submit(a->p, &RUN_OPTS, on_done, a->t);
    return NULL;
}

TEST(submissions_from_many_threads)
{
    char err[600] = "";
    unlink(audit_path);
    wd_pool *p = make(2, err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    tally t = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {0}, 0};
    pthread_t th[4];
    feeder_arg a = {p, &t};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, feeder, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    wd_pool_free(p); /* waits for every run */
    CHECK(t.done == 100);
    CHECK(t.ok == 100);
    wd_buf rep = {0};
    CHECK(wd_audit_verify(audit_path, &rep, NULL) == 0);
    wd_buf_free(&rep);
}

TEST(bad_setup_is_named)
{
    char err[600] = "";
    CHECK(make(0, err, sizeof err) == NULL);
    CHECK_HAS(err, "workers must be between 1 and 64");
    wd_engine_opts o = {"policies/no-such-policy.yaml", NULL, audit_path, store_path};
    err[0] = '\0';
    CHECK(wd_pool_new(&o, 2, err, sizeof err) == NULL);
    CHECK_HAS(err, "no-such-policy.yaml");
    wd_pool_free(NULL);
}

static long fd_table_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "FDSize: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* the descriptor table is sized before the workers start: grown later, with threads
** running, each doubling stalls every thread for an RCU grace period (a burst of runs
** opening sockets lost ~30 ms at each) */
TEST(descriptor_table_is_sized_before_workers_start)
{
    long before = fd_table_size();
    char err[600] = "";
    wd_pool *p = make(2, err, sizeof err);
    CHECK(p != NULL);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    long want = rl.rlim_cur < 16384 ? (long)rl.rlim_cur : 16384;
    long after = fd_table_size();
    CHECK(before < want);
    CHECK(after >= want);
    if (after < want)
        fprintf(stderr, "  FDSize %ld -> %ld, wanted %ld\n", before, after, want);
    wd_pool_free(p);
}

/* a worker hands its watchdog slot back when it exits: more pools than slots (256) over
** the process's life still start */
TEST(worker_threads_give_their_slots_back)
{
    char err[600] = "";
    int ok = 0;
    for (int i = 0; i < 300; i++) {
        wd_pool *p = make(1, err, sizeof err);
        if (!p)
            break;
        tally t = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {0}, 0};
        if (i % 50 == 0)
            wd_pool_submit(p, &RUN_OPTS, on_done, &t);
        wd_pool_free(p);
        ok++;
    }
    CHECK(ok == 300);
    if (ok != 300)
        fprintf(stderr, "  pool %d: %s\n", ok + 1, err);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(audit_path, sizeof audit_path, "%s/audit.jsonl", dir);
    snprintf(store_path, sizeof store_path, "%s/state.db", dir);
    RUN(descriptor_table_is_sized_before_workers_start);
    RUN(runs_spread_over_workers_and_share_one_chain);
    RUN(submissions_from_many_threads);
    RUN(bad_setup_is_named);
    RUN(worker_threads_give_their_slots_back);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    DONE();
}
