/* retry.h - which failures are transient, and how long to wait before the next try
** (docs/safety.md): exponential backoff from base_ms doubling to max_ms, plus
** 0..jitter_ms, or the server's Retry-After capped at max_ms. */
#ifndef WD_RETRY_H
#define WD_RETRY_H

#include "http.h"

typedef struct wd_retry_cfg {
    long long max_retries, base_ms, max_ms, jitter_ms;
} wd_retry_cfg;

/* the wait before retry number `retry` (0 for the first retry). retry_after_ms < 0
** when the server gave none. rnd is a uniform random number in [0, 1). */
long long wd_retry_delay_ms(const wd_retry_cfg *c, int retry, long long retry_after_ms, double rnd);
/* a timeout, a network error, 5xx or 429; never another 4xx */
int wd_retry_transient(const wd_http_resp *r);
/* the same rule for an answered request's status alone (the mock's injected errors) */
int wd_retry_transient_status(long status);
/* a uniform random number in [0, 1) */
double wd_retry_random(void);

#endif
