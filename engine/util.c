/* util.c - buffers, clocks, files, ids. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

/* room for n more bytes and the NUL */
int wd_buf_grow(wd_buf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int wd_buf_adds(wd_buf *b, const char *s) { return wd_buf_add(b, s, strlen(s)); }

int wd_buf_vaddf(wd_buf *b, const char *fmt, va_list ap)
{
    char tmp[512];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof tmp)
        return wd_buf_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -1;
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    int rc = wd_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

int wd_buf_addf(wd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = wd_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void wd_buf_free(wd_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int64_t wd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t wd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void wd_rfc3339_ms(int64_t wall_ms, char *out, size_t n)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
}

int64_t wd_parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    const char *rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest)
        return -1;
    if (*rest == 'T' || *rest == ' ') {
        rest = strptime(rest + 1, "%H:%M:%S", &tm);
        if (!rest)
            return -1;
        if (*rest == '.') {
            rest++;
            int digits = 0;
            while (*rest >= '0' && *rest <= '9') {
                if (digits < 3) {
                    ms = ms * 10 + (*rest - '0');
                    digits++;
                }
                rest++;
            }
            while (digits++ < 3)
                ms *= 10;
        }
        if (*rest == 'Z')
            rest++;
    }
    if (*rest)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t * 1000 + ms;
}

char *wd_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    wd_buf b = {0};
    char tmp[16384];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > max) {
            errno = ERANGE;
            goto fail;
        }
        if (wd_buf_add(&b, tmp, (size_t)r) < 0) {
            errno = ENOMEM;
            goto fail;
        }
    }
    close(fd);
    if (!b.p && wd_buf_add(&b, "", 0) < 0)
        return NULL;
    if (len)
        *len = b.len;
    return b.p;
fail: {
    int e = errno;
    close(fd);
    wd_buf_free(&b);
    errno = e;
    return NULL;
}
}

char *wd_strdup(const char *s) { return s ? strdup(s) : NULL; }
char *wd_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

void wd_uuid(char out[37])
{
    unsigned char r[16];
    randombytes_buf(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
}

void wd_strlcpy(char *dst, const char *src, size_t n)
{
    if (!n)
        return;
    size_t l = strlen(src);
    if (l >= n)
        l = n - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
}

void wd_errf(char *err, size_t n, const char *fmt, ...)
{
    if (!err || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}
