/* test_breaker.c - the breaker state machine, the registry over a real SQLite store
** (two registries = two processes), backoff and transient classification */
#include "harness.h"
#include "breaker.h"
#include "retry.h"
#include "store.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

static const wd_breaker_cfg CFG = {3, 1000, 1};

TEST(closed_opens_after_threshold_consecutive_failures)
{
    wd_breaker_row r = {0};
    int ch;
    wd_breaker_outcome(&r, &CFG, 0, 0, 100, &ch);
    wd_breaker_outcome(&r, &CFG, 0, 0, 100, &ch);
    CHECK(r.state == WD_BR_CLOSED && r.failures == 2);
    wd_breaker_outcome(&r, &CFG, 1, 0, 100, &ch); /* a success starts over */
    CHECK(r.failures == 0 && ch);
    for (int i = 0; i < 3; i++)
        wd_breaker_outcome(&r, &CFG, 0, 0, 200, &ch);
    CHECK(r.state == WD_BR_OPEN && r.opened_ms == 200);
}

TEST(open_refuses_until_open_ms_then_admits_probes)
{
    wd_breaker_row r = {0};
    r.state = WD_BR_OPEN;
    r.opened_ms = 1000;
    int probe, ch;
    long long retry_in;
    CHECK(wd_breaker_admit(&r, &CFG, 1500, &probe, &retry_in, &ch) == 0);
    CHECK(retry_in == 500 && !ch);
    CHECK(wd_breaker_admit(&r, &CFG, 2000, &probe, &retry_in, &ch) == 1);
    CHECK(probe && ch && r.state == WD_BR_HALF_OPEN && r.probes == 1);
    /* the one probe is in flight: the next caller waits */
    CHECK(wd_breaker_admit(&r, &CFG, 2001, &probe, &retry_in, &ch) == 0);
    /* a probe whose process died frees its slot after open_ms */
    CHECK(wd_breaker_admit(&r, &CFG, 3001, &probe, &retry_in, &ch) == 1 && probe);
}

TEST(probe_success_closes_failure_reopens)
{
    wd_breaker_row r = {0};
    r.state = WD_BR_HALF_OPEN;
    r.probes = 1;
    int ch;
    wd_breaker_outcome(&r, &CFG, 1, 1, 5000, &ch);
    CHECK(r.state == WD_BR_CLOSED && r.failures == 0 && r.probes == 0);
    r.state = WD_BR_HALF_OPEN;
    r.probes = 1;
    wd_breaker_outcome(&r, &CFG, 0, 1, 6000, &ch);
    CHECK(r.state == WD_BR_OPEN && r.opened_ms == 6000);
    /* a call admitted before the breaker opened does not speak for the service */
    r.state = WD_BR_HALF_OPEN;
    r.probes = 1;
    wd_breaker_outcome(&r, &CFG, 1, 0, 7000, &ch);
    CHECK(r.state == WD_BR_HALF_OPEN && !ch);
}

TEST(registries_share_state_through_the_store)
{
    char dir[] = "/tmp/wd-breaker-test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], err[300];
    snprintf(path, sizeof path, "%s/sub/state.db", dir);
    wd_store *s1 = wd_store_open(path, err, sizeof err), *s2 = wd_store_open(path, err, sizeof err);
    CHECK(s1 && s2);
    if (!s1 || !s2)
        return;
    wd_breakers *a = wd_breakers_new(s1), *b = wd_breakers_new(s2);
    wd_breaker_cfg cfg = {2, 60000, 1};
    wd_breaker_change ch;
    int probe;
    char msg[200];
    CHECK(wd_breakers_admit(b, "tool:x", &cfg, &probe, msg, sizeof msg, &ch) == 1); /* b caches closed */
    wd_breakers_outcome(a, "tool:x", &cfg, 0, 0, &ch);
    CHECK(!ch.happened);
    wd_breakers_outcome(a, "tool:x", &cfg, 0, 0, &ch);
    CHECK(ch.happened && ch.from == WD_BR_CLOSED && ch.to == WD_BR_OPEN);
    CHECK_HAS(ch.reason, "2 consecutive failures");
    usleep((WD_BREAKER_REFRESH_MS + 20) * 1000); /* b's copy goes stale */
    CHECK(wd_breakers_admit(b, "tool:x", &cfg, &probe, msg, sizeof msg, &ch) == 0);
    CHECK_HAS(msg, "circuit open for tool:x, retry in 60 s");
    wd_breaker_row *rows;
    size_t n;
    CHECK(wd_store_breaker_list(s2, &rows, &n) == 0 && n == 1 && rows[0].state == WD_BR_OPEN);
    free(rows);
    wd_breakers_free(a);
    wd_breakers_free(b);
    wd_store_close(s1);
    wd_store_close(s2);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

TEST(backoff_doubles_to_max_plus_jitter)
{
    wd_retry_cfg c = {3, 1000, 8000, 500};
    CHECK(wd_retry_delay_ms(&c, 0, -1, 0.0) == 1000);
    CHECK(wd_retry_delay_ms(&c, 1, -1, 0.0) == 2000);
    CHECK(wd_retry_delay_ms(&c, 2, -1, 0.0) == 4000);
    CHECK(wd_retry_delay_ms(&c, 3, -1, 0.0) == 8000);
    CHECK(wd_retry_delay_ms(&c, 9, -1, 0.0) == 8000);
    CHECK(wd_retry_delay_ms(&c, 0, -1, 0.999999) == 1500); /* 0..jitter_ms inclusive */
    CHECK(wd_retry_delay_ms(&c, 0, 3000, 0.5) == 3000);    /* Retry-After wins, no jitter */
    CHECK(wd_retry_delay_ms(&c, 0, 60000, 0.5) == 8000);   /* capped at max_ms */
    for (int i = 0; i < 1000; i++) {
        double r = wd_retry_random();
        CHECK(r >= 0 && r < 1);
    }
}

TEST(transient_is_timeouts_network_5xx_and_429_only)
{
    wd_http_resp r = {0};
    r.fail = WD_HTTP_READ_TIMEOUT;
    CHECK(wd_retry_transient(&r));
    r.fail = WD_HTTP_CONNECT_TIMEOUT;
    CHECK(wd_retry_transient(&r));
    r.fail = WD_HTTP_NETWORK;
    CHECK(wd_retry_transient(&r));
    r.fail = WD_HTTP_TOO_LARGE;
    CHECK(!wd_retry_transient(&r));
    r.fail = WD_HTTP_INVALID;
    CHECK(!wd_retry_transient(&r));
    r.fail = WD_HTTP_OK;
    long yes[] = {500, 502, 503, 504, 429}, no[] = {200, 400, 401, 403, 404, 409, 422};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        r.status = yes[i];
        CHECK(wd_retry_transient(&r));
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        r.status = no[i];
        CHECK(!wd_retry_transient(&r));
    }
}

int main(void)
{
    RUN(closed_opens_after_threshold_consecutive_failures);
    RUN(open_refuses_until_open_ms_then_admits_probes);
    RUN(probe_success_closes_failure_reopens);
    RUN(registries_share_state_through_the_store);
    RUN(backoff_doubles_to_max_plus_jitter);
    RUN(transient_is_timeouts_network_5xx_and_429_only);
    DONE();
}
