/* rx.c - PCRE2 with JIT and a thread-local match block. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rx.h"
#include "util.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct wd_rx {
    pcre2_code *code;
    char *src;
};

static _Thread_local pcre2_match_data *tl_md;
static pthread_key_t md_key; /* its destructor frees a worker thread's block at exit */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *md) { pcre2_match_data_free(md); }
static void md_key_make(void) { pthread_key_create(&md_key, md_free); }

static pcre2_match_data *match_data(void)
{
    if (!tl_md) {
        pthread_once(&md_once, md_key_make);
        tl_md = pcre2_match_data_create(8, NULL);
        if (tl_md)
            pthread_setspecific(md_key, tl_md);
    }
    return tl_md;
}

wd_rx *wd_rx_compile(const char *pattern, int flags, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    if (flags & WD_RX_CASELESS)
        opts |= PCRE2_CASELESS;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        wd_errf(err, errlen, "invalid pattern at offset %zu: %s", (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* best effort: the interpreter still works */
    wd_rx *rx = calloc(1, sizeof *rx);
    if (!rx || !(rx->src = wd_strdup(pattern))) {
        free(rx);
        pcre2_code_free(code);
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    rx->code = code;
    return rx;
}

void wd_rx_free(wd_rx *rx)
{
    if (!rx)
        return;
    pcre2_code_free(rx->code);
    free(rx->src);
    free(rx);
}

const char *wd_rx_source(const wd_rx *rx) { return rx->src; }

int wd_rx_find_which(const wd_rx *rx, const char *s, size_t len, size_t start, size_t *so, size_t *eo)
{
    pcre2_match_data *md = match_data();
    if (!md)
        return -1;
    int rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, start, 0, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *so = ov[0];
    *eo = ov[1];
    for (int g = 1; g < rc; g++)
        if (ov[2 * g] != PCRE2_UNSET)
            return g;
    return 1;
}

int wd_rx_find(const wd_rx *rx, const char *s, size_t len, size_t start, size_t *so, size_t *eo)
{
    size_t a, b;
    int rc = wd_rx_find_which(rx, s, len, start, &a, &b);
    if (rc <= 0)
        return rc;
    if (so)
        *so = a;
    if (eo)
        *eo = b;
    return 1;
}

int wd_rx_match(const wd_rx *rx, const char *s, size_t len) { return wd_rx_find(rx, s, len, 0, NULL, NULL); }
