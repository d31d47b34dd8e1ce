/* retry.c - backoff and transient classification */
#include "retry.h"

#include <sodium.h>

long long wd_retry_delay_ms(const wd_retry_cfg *c, int retry, long long retry_after_ms, double rnd)
{
    if (retry_after_ms >= 0) /* the server knows best, within our cap */
        return retry_after_ms < c->max_ms ? retry_after_ms : c->max_ms;
    long long d = c->base_ms;
    for (int i = 0; i < retry && d < c->max_ms; i++)
        d *= 2;
    if (d > c->max_ms)
        d = c->max_ms;
    if (c->jitter_ms > 0)
        d += (long long)(rnd * (double)(c->jitter_ms + 1));
    return d;
}

int wd_retry_transient(const wd_http_resp *r)
{
    switch (r->fail) {
    case WD_HTTP_CONNECT_TIMEOUT:
    case WD_HTTP_READ_TIMEOUT:
    case WD_HTTP_NETWORK: return 1;
    case WD_HTTP_OK: return wd_retry_transient_status(r->status);
    default: return 0;
    }
}

int wd_retry_transient_status(long status) { return status >= 500 || status == 429; }

double wd_retry_random(void) { return (double)randombytes_uniform(1u << 30) / (double)(1u << 30); }
