/* test_pool.c - worker threads: every run ends once with its result, runs spread over
** the workers, one audit chain across them, submissions from many threads, a worker
** that is held up leaves new runs to the others */
#include "harness.h"
#include "audit.h"
#include "warden.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
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

static const wd_run_opts RUN_OPTS = {
    .agent = "agents/research_assistant", .query = "What do our notes say about AI safety?", .user_id = "alice"};

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

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int held, released, quick_done;
} holdup;

/* the callback runs on the worker's thread: until released, that worker does nothing */
static void on_hold(const json_t *res, void *ud)
{
    holdup *h = ud;
    (void)res;
    pthread_mutex_lock(&h->mu);
    h->held = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->released)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void on_quick(const json_t *res, void *ud)
{
    holdup *h = ud;
    (void)res;
    pthread_mutex_lock(&h->mu);
    h->quick_done++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* new runs wait in the pool until a worker has room, not on a worker chosen at
** submission: with one of two workers held up, every run submitted meanwhile ends on
** the other (handing them out in turn left half of them waiting for the held one) */
TEST(a_held_up_worker_leaves_new_runs_to_the_others)
{
    char err[600] = "";
    wd_pool *p = make(2, err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    holdup h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    CHECK(wd_pool_submit(p, &RUN_OPTS, on_hold, &h) == 0);
    pthread_mutex_lock(&h.mu);
    while (!h.held)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    for (int i = 0; i < 40; i++)
        CHECK(wd_pool_submit(p, &RUN_OPTS, on_quick, &h) == 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&h.mu);
    while (h.quick_done < 40 && pthread_cond_timedwait(&h.cv, &h.mu, &until) == 0)
        ;
    int done = h.quick_done;
    h.released = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    CHECK(done == 40);
    if (done != 40)
        fprintf(stderr, "  %d of 40 runs ended while a worker was held up\n", done);
    wd_pool_wait(p);
    CHECK(h.quick_done == 40);
    wd_pool_free(p);
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
    RUN(a_held_up_worker_leaves_new_runs_to_the_others);
    RUN(worker_threads_give_their_slots_back);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    DONE();
}
