/* test_redis.c - the Redis backend against a real redis-server of its own (started on
** a free loopback port, stopped at the end): budgets exact between two processes' handles,
** a silent owner's leases given back after store.lease, an unreachable server refused
** in its timeout, and a hung one never holding a watching engine's loop past one timeout */
#include "breaker.h"
#include "harness.h"
#include "store.h"
#include "util.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-redis-test.XXXXXX";
static int port;

static void sleep_ms(long ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL); }

static int start_redis(void)
{
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    for (int tries = 0; tries < 10; tries++) {
        port = 20000 + rand() % 40000;
        char cmd[600];
        snprintf(cmd, sizeof cmd,
                 "env -u LD_PRELOAD redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes "
                 "--dir %s --pidfile %s/pid --logfile %s/log >/dev/null 2>&1",
                 port, dir, dir, dir);
        if (system(cmd) != 0)
            return -1;
        for (int i = 0; i < 200; i++) {
            redisContext *c = redisConnectWithTimeout("127.0.0.1", port, (struct timeval){0, 100000});
            redisReply *x = c && !c->err ? redisCommand(c, "PING") : NULL;
            int up = x && x->type == REDIS_REPLY_STATUS;
            freeReplyObject(x);
            redisFree(c);
            if (up)
                return 0;
            sleep_ms(10);
        }
    }
    return -1;
}

static void stop_redis(void)
{
    char path[200], buf[32] = "";
    snprintf(path, sizeof path, "%s/pid", dir);
    FILE *f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f))
        kill((pid_t)atol(buf), SIGTERM);
    if (f)
        fclose(f);
}

static void redis_cmd(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *x = c && !c->err ? redisCommand(c, cmd) : NULL;
    freeReplyObject(x);
    redisFree(c);
}

static wd_store *open_store(const char *prefix, const char *extra)
{
    char loc[300], err[600];
    snprintf(loc, sizeof loc, "redis://127.0.0.1:%d/0?prefix=%s&timeout_ms=100%s", port, prefix, extra);
    wd_store *s = wd_store_open(loc, err, sizeof err);
    if (!s)
        fprintf(stderr, "  %s\n", err);
    return s;
}

TEST(two_handles_share_one_budget_and_a_silent_ones_leases_come_back)
{
    wd_store *a = open_store("t1:", "&lease_ms=300"), *b = open_store("t1:", "&lease_ms=300");
    REQUIRE(a && b);
    wd_ledger_key k = {.scope = "user:x", .period = "day:1", .limit = 1000};
    int64_t ra = 0, rb = 0;
    int which;
    wd_lease_change ca = {.key = &k, .row = &ra, .old = 0, .new_amount = 700};
    CHECK(wd_store_lease_apply(a, &ca, 1, 1, wd_store_now(a), &which) == 1 && ra > 0);
    wd_lease_change cb = {.key = &k, .row = &rb, .old = 0, .new_amount = 400};
    CHECK(wd_store_lease_apply(b, &cb, 1, 1, wd_store_now(b), &which) == 0 && which == 0); /* 700 + 400 > 1000 */
    CHECK(cb.state.reserved == 700);
    /* a falls silent (its process died): after store.lease, b's sweep gives its 700 back */
    wd_store_close(a);
    CHECK(wd_store_sweep(b) == 0); /* still alive */
    sleep_ms(400);
    CHECK(wd_store_sweep(b) == 1);
    wd_ledger_row row;
    CHECK(wd_store_ledger_get(b, &k, 1, &row) == 0 && row.reserved == 0 && row.spent == 0);
    CHECK(wd_store_lease_apply(b, &cb, 1, 1, wd_store_now(b), &which) == 1);
    wd_store_close(b);
}

/* a change sent again after its answer was lost counts nothing twice: spend goes as the
** lease's total, and a lease moves from the size Redis holds, whatever `old` says */
TEST(a_change_sent_twice_counts_once)
{
    wd_store *a = open_store("t9:", "");
    REQUIRE(a);
    wd_ledger_key k = {.scope = "user:z", .period = "day:1", .limit = 100000};
    int64_t row = 0;
    int which;
    wd_lease_change c = {.key = &k, .row = &row, .old = 0, .new_amount = 5000, .lease_id = 7, .total = 0};
    CHECK(wd_store_lease_apply(a, &c, 1, 1, wd_store_now(a), &which) == 1);
    /* 300 spent, the lease down to 1000: sent twice (the first answer "lost") */
    wd_lease_change d = {
        .key = &k, .row = &row, .old = 5000, .new_amount = 1000, .pending = 300, .lease_id = 7, .total = 300};
    CHECK(wd_store_lease_apply(a, &d, 1, 0, wd_store_now(a), &which) == 1);
    CHECK(wd_store_lease_apply(a, &d, 1, 0, wd_store_now(a), &which) == 1);
    wd_ledger_row r;
    CHECK(wd_store_ledger_get(a, &k, 1, &r) == 0 && r.spent == 300 && r.reserved == 1000);
    /* then 200 more, the engine thinking the lease still 5000: total 500, nothing held */
    wd_lease_change e = {
        .key = &k, .row = &row, .old = 5000, .new_amount = 0, .pending = 500, .lease_id = 7, .total = 500};
    CHECK(wd_store_lease_apply(a, &e, 1, 0, wd_store_now(a), &which) == 1);
    CHECK(wd_store_ledger_get(a, &k, 1, &r) == 0 && r.spent == 500 && r.reserved == 0);
    wd_store_close(a);
}

TEST(an_unreachable_server_fails_each_operation_within_its_timeout)
{
    char loc[200], err[600];
    snprintf(loc, sizeof loc, "redis://127.0.0.1:%d/0?timeout_ms=100", port == 1 ? 2 : 1);
    wd_store *s = wd_store_open(loc, err, sizeof err);
    REQUIRE(s); /* opened: each operation fails until it answers */
    long long count;
    int64_t retry, t0 = wd_now_ns();
    CHECK(wd_store_rate_take(s, "k", 10, 1000, wd_store_now(s), &count, &retry) == -1);
    CHECK(wd_now_ns() - t0 < 500000000LL);
    CHECK_HAS(wd_store_error(s), "unreachable");
    wd_store_close(s);
}

static void ignore(void *ud, const char *kind, const char *name)
{
    (void)ud;
    (void)kind;
    (void)name;
}

TEST(a_hung_server_holds_a_watching_loop_for_one_timeout_only)
{
    struct event_base *base = event_base_new();
    wd_store *s = open_store("t2:", "");
    REQUIRE(base && s);
    REQUIRE(wd_store_watch(s, base, ignore, NULL) == 0); /* an engine's: it has a loop to keep free */
    long long count;
    int64_t retry;
    CHECK(wd_store_rate_take(s, "k", 1000, 1000, wd_store_now(s), &count, &retry) == 1);
    redis_cmd("CLIENT PAUSE 1500 ALL"); /* connections taken, no command answered */
    int64_t t0 = wd_now_ns();
    CHECK(wd_store_rate_take(s, "k", 1000, 1000, wd_store_now(s), &count, &retry) == -1);
    CHECK(wd_now_ns() - t0 >= 90000000LL); /* the connection's own timeout, once */
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) { /* past several backoffs: each attempt is the dialer thread's */
        sleep_ms(30);
        t0 = wd_now_ns();
        CHECK(wd_store_rate_take(s, "k", 1000, 1000, wd_store_now(s), &count, &retry) == -1);
        int64_t took = wd_now_ns() - t0;
        worst = took > worst ? took : worst;
    }
    CHECK(worst < 30000000LL);
    if (worst >= 30000000LL)
        fprintf(stderr, "  an operation waited %lld ms\n", (long long)(worst / 1000000));
    int back = 0; /* the pause over, the dialer's connection serves again */
    for (int i = 0; i < 300 && !back; i++) {
        sleep_ms(20);
        back = wd_store_rate_take(s, "k", 1000, 1000, wd_store_now(s), &count, &retry) == 1;
    }
    CHECK(back);
    wd_store_watch(s, NULL, NULL, NULL);
    wd_store_close(s);
    event_base_free(base);
}

typedef struct kills_got {
    int calls, rc;
    json_t *killed;
} kills_got;

static void on_kills(void *ud, int rc, json_t *killed, json_t *failing)
{
    kills_got *g = ud;
    g->calls++;
    g->rc = rc;
    json_decref(g->killed);
    g->killed = killed;
    json_decref(failing);
}

/* the loop turned until g has an answer, or ms pass; the longest turn in *worst_ns */
static void turn_until(struct event_base *base, kills_got *g, int calls, long ms, int64_t *worst_ns)
{
    int64_t end = wd_now_ns() + ms * 1000000LL;
    while (g->calls < calls && wd_now_ns() < end) {
        int64_t t0 = wd_now_ns();
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        int64_t took = wd_now_ns() - t0;
        if (worst_ns && took > *worst_ns)
            *worst_ns = took;
        sleep_ms(1);
    }
}

/* ** The kill switch read on the engine's loop without waiting: answered later by a
** callback, and a hung server makes it fail after store.timeout_ms, never holding a
** turn of the loop. */
TEST(the_kill_switch_is_read_without_holding_the_loop)
{
    struct event_base *base = event_base_new();
    wd_store *s = open_store("t4:", "");
    REQUIRE(base && s);
    REQUIRE(wd_store_watch(s, base, ignore, NULL) == 0);
    kills_got g = {0, 0, NULL};
    int asked = 0;
    for (int i = 0; i < 200 && !asked; i++) { /* the command connection, once connected */
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        asked = wd_store_kill_read_async(s, on_kills, &g) == 0;
        sleep_ms(5);
    }
    REQUIRE(asked);
    turn_until(base, &g, 1, 1000, NULL);
    CHECK(g.calls == 1 && g.rc == 0 && json_object_size(g.killed) == 0);
    CHECK(wd_store_kill_set(s, "agent-x", "ops", "spec", 0, wd_store_now(s)) == 1);
    CHECK(wd_store_kill_read_async(s, on_kills, &g) == 0);
    turn_until(base, &g, 2, 1000, NULL);
    CHECK(g.calls == 2 && g.rc == 0 && json_object_get(g.killed, "agent-x"));
    redis_cmd("CLIENT PAUSE 1500 ALL");
    int64_t t0 = wd_now_ns(), worst = 0;
    CHECK(wd_store_kill_read_async(s, on_kills, &g) == 0);
    CHECK(wd_now_ns() - t0 < 20000000LL); /* asked, not waited for */
    turn_until(base, &g, 3, 1000, &worst);
    int64_t took = wd_now_ns() - t0;
    CHECK(g.calls == 3 && g.rc == -1);
    CHECK(took >= 90000000LL && took < 1000000000LL); /* store.timeout_ms, 100 */
    CHECK(worst < 20000000LL);
    int back = 0; /* the pause over, a new connection answers again */
    for (int i = 0; i < 400 && !back; i++) {
        int calls = g.calls;
        if (wd_store_kill_read_async(s, on_kills, &g) == 0) {
            turn_until(base, &g, calls + 1, 500, NULL);
            back = g.rc == 0;
        } else {
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
            sleep_ms(10);
        }
    }
    CHECK(back);
    wd_store_watch(s, NULL, NULL, NULL);
    json_decref(g.killed);
    wd_store_close(s);
    event_base_free(base);
}

/* ** The breaker's script is breaker.c's rules written again in Lua: the same random
** moves, on a row kept here by the C functions and on the store's row by the script,
** must leave the same rows and give the same answers, move after move. */
TEST(the_breaker_script_moves_as_the_c_rules_do)
{
    wd_store *s = open_store("t3:", "");
    REQUIRE(s);
    srand(12345);
    int mismatches = 0;
    for (int round = 0; round < 40 && !mismatches; round++) {
        char name[32];
        snprintf(name, sizeof name, "tool:r%d", round);
        wd_breaker_cfg c = {1 + rand() % 3, 50 + rand() % 200, 1 + rand() % 2};
        wd_breaker_row row = {0};
        wd_strlcpy(row.name, name, sizeof row.name);
        int64_t now = 1000000 + rand() % 1000;
        int probe = 0;
        for (int i = 0; i < 60; i++) {
            now += rand() % 4 == 0 ? -(rand() % 20) : rand() % 120; /* now and then a clock behind */
            int kind = rand() % 3, success = rand() % 2;
            wd_breaker_step st = {.kind = kind,
                                  .failure_threshold = c.failure_threshold,
                                  .open_ms = c.open_ms,
                                  .half_open_probes = c.half_open_probes,
                                  .success = success,
                                  .probe = probe,
                                  .now_ms = now};
            int from = row.state, admitted = 1, changed = 0, p = 0;
            long long retry = 0;
            if (kind == WD_BRS_ADMIT)
                admitted = wd_breaker_admit(&row, &c, now, &p, &retry, &changed);
            else if (kind == WD_BRS_OUTCOME)
                wd_breaker_outcome(&row, &c, success, probe, now, &changed);
            else if (row.state == WD_BR_HALF_OPEN && row.probes > 0) {
                row.probes--;
                changed = 1;
            }
            if (changed)
                row.updated_ms = now;
            if (wd_store_breaker_step(s, name, &st) != 1) {
                mismatches++;
                break;
            }
            int same =
                st.from == from && st.row.state == row.state && st.row.failures == row.failures &&
                st.row.opened_ms == row.opened_ms && st.row.probes == row.probes && st.row.probe_ms == row.probe_ms &&
                st.row.updated_ms == row.updated_ms &&
                (kind != WD_BRS_ADMIT || (st.admitted == admitted && st.probe_out == p && st.retry_in_ms == retry));
            if (!same) {
                fprintf(
                    stderr, "  round %d move %d (kind %d): C state %d failures %lld probes %lld, script %d %lld %lld\n",
                    round, i, kind, row.state, row.failures, row.probes, st.row.state, st.row.failures, st.row.probes);
                mismatches++;
                break;
            }
            if (kind == WD_BRS_ADMIT)
                probe = p;
        }
    }
    CHECK(mismatches == 0);
    wd_store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    if (system("command -v redis-server >/dev/null 2>&1") != 0 || start_redis() < 0) {
        fprintf(stderr, "test_redis: redis-server would not start (make deps installs it)\n");
        h_fail++;
    } else {
        RUN(two_handles_share_one_budget_and_a_silent_ones_leases_come_back);
        RUN(a_change_sent_twice_counts_once);
        RUN(an_unreachable_server_fails_each_operation_within_its_timeout);
        RUN(a_hung_server_holds_a_watching_loop_for_one_timeout_only);
        RUN(the_breaker_script_moves_as_the_c_rules_do);
        RUN(the_kill_switch_is_read_without_holding_the_loop);
        stop_redis();
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "sleep 0.2; rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    DONE();
}
