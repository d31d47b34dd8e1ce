/* test_admit.c - admission into warden serve (admit.h): runs start while there is room,
** wait in order otherwise (a user at its own limit does not hold up others), are refused
** past the queue, and leave after their wait */
#include "admit.h"
#include "harness.h"

#include <unistd.h>

static wd_admit_limits limits(void) { return (wd_admit_limits){100, 2, 2, 1, 2, 50}; }

static wd_admit_item item(const char *user, long long mb)
{
    wd_admit_item it;
    memset(&it, 0, sizeof it);
    snprintf(it.user, sizeof it.user, "%s", user);
    it.mem_mb = mb;
    return it;
}

TEST(runs_start_while_there_is_room_and_then_wait)
{
    wd_admit *a = wd_admit_new();
    REQUIRE(a);
    wd_admit_limits l = limits();
    char msg[300];
    int retry;
    wd_admit_item x = item("ann", 40), y = item("bob", 40), z = item("cy", 40), w = item("dee", 40);
    CHECK(wd_admit_ask(a, &l, &x, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &y, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &z, msg, sizeof msg, &retry) == WD_ADMIT_QUEUED); /* max_runs 2 */
    CHECK(wd_admit_ask(a, &l, &w, msg, sizeof msg, &retry) == WD_ADMIT_QUEUED);
    wd_admit_item v = item("eve", 40);
    CHECK(wd_admit_ask(a, &l, &v, msg, sizeof msg, &retry) == WD_ADMIT_FULL); /* max_queued 2 */
    CHECK_HAS(msg, "serve.max_queued 2");
    CHECK(retry >= 1 && retry <= 60);
    wd_admit_item *go = wd_admit_done(a, &l, "ann", 40, 10);
    CHECK(go == &z && !go->next); /* first come first served */
    long running, queued;
    long long mem;
    wd_admit_counts(a, &running, &queued, &mem);
    CHECK(running == 2 && queued == 1 && mem == 80);
    wd_admit_free(a);
}

TEST(memory_holds_runs_back_and_a_run_too_big_is_refused)
{
    wd_admit *a = wd_admit_new();
    REQUIRE(a);
    wd_admit_limits l = {100, 10, 10, 10, 10, 50};
    char msg[300];
    int retry;
    wd_admit_item x = item("ann", 60), y = item("bob", 60), big = item("cy", 200);
    CHECK(wd_admit_ask(a, &l, &x, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &y, msg, sizeof msg, &retry) == WD_ADMIT_QUEUED); /* 120 > 100 MB */
    CHECK(wd_admit_ask(a, &l, &big, msg, sizeof msg, &retry) == WD_ADMIT_FULL);
    CHECK_HAS(msg, "serve.memory_mb");
    CHECK(wd_admit_done(a, &l, "ann", 60, 5) == &y);
    wd_admit_free(a);
}

TEST(a_user_at_its_limit_does_not_hold_up_others)
{
    wd_admit *a = wd_admit_new();
    REQUIRE(a);
    wd_admit_limits l = {1000, 3, 10, 1, 10, 50};
    char msg[300];
    int retry;
    wd_admit_item a1 = item("ann", 1), a2 = item("ann", 1), b1 = item("bob", 1), c1 = item("cy", 1);
    CHECK(wd_admit_ask(a, &l, &a1, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &a2, msg, sizeof msg, &retry) == WD_ADMIT_QUEUED); /* ann: 1 at a time */
    CHECK(wd_admit_ask(a, &l, &b1, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &c1, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    wd_admit_item *go = wd_admit_done(a, &l, "bob", 1, 5);
    CHECK(go == NULL); /* ann's waits for ann's */
    go = wd_admit_done(a, &l, "ann", 1, 5);
    CHECK(go == &a2);
    wd_admit_free(a);
}

TEST(runs_leave_the_queue_after_their_wait)
{
    wd_admit *a = wd_admit_new();
    REQUIRE(a);
    wd_admit_limits l = {1000, 1, 10, 1, 10, 20};
    char msg[300];
    int retry;
    wd_admit_item x = item("ann", 1), y = item("bob", 1);
    CHECK(wd_admit_ask(a, &l, &x, msg, sizeof msg, &retry) == WD_ADMIT_RUN);
    CHECK(wd_admit_ask(a, &l, &y, msg, sizeof msg, &retry) == WD_ADMIT_QUEUED);
    CHECK(wd_admit_expire(a, &l, 0) == NULL);
    usleep(30000);
    CHECK(wd_admit_expire(a, &l, 0) == &y);
    long running, queued;
    long long mem;
    wd_admit_counts(a, &running, &queued, &mem);
    CHECK(running == 1 && queued == 0);
    wd_admit_free(a);
}

int main(void)
{
    RUN(runs_start_while_there_is_room_and_then_wait);
    RUN(memory_holds_runs_back_and_a_run_too_big_is_refused);
    RUN(a_user_at_its_limit_does_not_hold_up_others);
    RUN(runs_leave_the_queue_after_their_wait);
    DONE();
}
