/* util.c - buffers, clocks, files, ids. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* the wall clock's shift from the real one: budget periods, rate windows, breakers
** and audit timestamps all read wd_wall_ms, so a spec can move a day ahead without
** waiting. Set by WARDEN_NOW (RFC 3339 or epoch ms) at the first read, or by
** wd_clock_set; the monotonic clock (timeouts) is never shifted. */
static _Atomic int64_t clock_shift;
static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

static int64_t real_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void clock_from_env(void)
{
    const char *s = getenv("WARDEN_NOW");
    if (!s || !*s)
        return;
    int64_t t = -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*end && v > 0)
        t = v;
    else
        t = wd_parse_time(s);
    if (t > 0)
        clock_shift = t - real_wall_ms();
}

int64_t wd_wall_ms(void)
{
    pthread_once(&clock_once, clock_from_env);
    return real_wall_ms() + clock_shift;
}

void wd_clock_set(int64_t wall_ms)
{
    pthread_once(&clock_once, clock_from_env);
    clock_shift = wall_ms > 0 ? wall_ms - real_wall_ms() : 0;
}

void wd_clock_advance(int64_t ms)
{
    pthread_once(&clock_once, clock_from_env);
    clock_shift += ms;
}

int64_t wd_clock_shift(void)
{
    pthread_once(&clock_once, clock_from_env);
    return clock_shift;
}

int64_t wd_real_wall_ms(void) { return real_wall_ms(); }

/* By the system call, not libc's wrapper: every process on the machine reads the same
** clock, whatever an LD_PRELOAD (faketime) does to the one it sees. Counts suspended
** time too: an open breaker's minute passes while the laptop sleeps. */
int64_t wd_boot_ms(void)
{
    struct timespec ts;
    if (syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &ts) != 0)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int64_t boot_id;
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void read_boot_id(void)
{
    char b[64] = "";
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, b, sizeof b - 1);
        b[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    /* 60 bits of the UUID's hex digits: a positive SQLite integer */
    int64_t v = 0;
    int got = 0;
    for (const char *p = b; *p && got < 15; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d >= 0) {
            v = v * 16 + d;
            got++;
        }
    }
    boot_id = v ? v : 1;
}

int64_t wd_boot_id(void)
{
    pthread_once(&boot_once, read_boot_id);
    return boot_id;
}

void wd_rfc3339_ms(int64_t wall_ms, char *out, size_t n)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
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

/* the length of the valid UTF-8 sequence at s (at most left bytes), 0 when there is none
** (a stray continuation, an overlong form, a surrogate, past U+10FFFF, cut short) */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

void wd_cstr_copy(char *out, size_t n, const char *s, size_t len)
{
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    if (!n)
        return;
    for (size_t i = 0; i < len;) {
        size_t k = u[i] ? utf8_seq(u + i, len - i) : 0;
        if (k) {
            if (o + k + 1 > n)
                break;
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            if (o + 5 > n)
                break;
            out[o++] = '\\', out[o++] = 'x', out[o++] = hexd[u[i] >> 4], out[o++] = hexd[u[i] & 15];
            i++;
        }
    }
    out[o] = '\0';
}

char *wd_cstr_of(const char *s, size_t len)
{
    size_t n = 4 * len + 1; /* every byte escaped, at the most */
    char *out = malloc(n);
    if (out)
        wd_cstr_copy(out, n, s, len);
    return out;
}

const char *wd_read_error(int e, size_t max)
{
    static _Thread_local char msg[64];
    if (e == WD_ENOTREG)
        return "not a regular file (a FIFO, device or socket)";
    if (e == ERANGE) {
        if (max % (1u << 20) == 0)
            snprintf(msg, sizeof msg, "file larger than %zu MiB", max >> 20);
        else
            snprintf(msg, sizeof msg, "file larger than %zu bytes", max);
        return msg;
    }
    return strerror(e);
}

char *wd_read_file(const char *path, size_t max, size_t *len)
{
    /* O_NONBLOCK: opening a FIFO with no writer must not wait for one */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return NULL;
    wd_buf b = {0};
    struct stat st;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : WD_ENOTREG;
        goto fail;
    }
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
fail : {
    int e = errno;
    close(fd);
    wd_buf_free(&b);
    errno = e;
    return NULL;
}
}

char *wd_strdup(const char *s) { return s ? strdup(s) : NULL; }
char *wd_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

/* random bytes for ids, drawn from the kernel a block at a time: a getrandom call per
** run cost more than the rest of its id; the block is per thread and dropped in a
** forked child, so two processes never hand out the same bytes */
static _Thread_local unsigned char id_pool[512];
static _Thread_local size_t id_left;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

/* runs in the child, on the only thread it has: the thread that forked */
static void id_forked(void) { id_left = 0; }
static void id_atfork(void) { pthread_atfork(NULL, NULL, id_forked); }

static void id_random(unsigned char *out, size_t n)
{
    unsigned char *pool = id_pool;
    size_t left = id_left;
    pthread_once(&id_once, id_atfork);
    if (left < n) {
        randombytes_buf(pool, sizeof id_pool);
        left = sizeof id_pool;
    }
    unsigned char *p = pool + sizeof id_pool - left;
    memcpy(out, p, n);
    sodium_memzero(p, n); /* what was handed out does not stay behind */
    id_left = left - n;
}

void wd_uuid(char out[37])
{
    static const char HEX[] = "0123456789abcdef";
    unsigned char r[16];
    id_random(r, sizeof r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = HEX[r[i] >> 4];
        *o++ = HEX[r[i] & 15];
    }
    *o = '\0';
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

char *wd_utf8_head(const char *s, size_t len, size_t max_chars, int *cut)
{
    size_t at = 0, chars = 0;
    while (at < len && chars < max_chars) {
        at++;
        while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80)
            at++;
        chars++;
    }
    *cut = at < len;
    return wd_strndup(s, at);
}

/* a root process (warden run by an operator) must not leave files the service's user
** cannot open: a file root owns in a directory someone else owns is given to them */
void wd_file_own_like_dir(int fd, const char *path)
{
    struct stat fst, lst, dst;
    if (fd < 0 || geteuid() != 0 || fstat(fd, &fst) < 0 || fst.st_uid != 0)
        return;
    /* only a file of its own in that directory: never what a link there points to (the
    ** directory's owner could plant a symlink or a hard link to a file of root's) */
    if (!S_ISREG(fst.st_mode) || fst.st_nlink != 1 || lstat(path, &lst) < 0 || !S_ISREG(lst.st_mode) ||
        lst.st_ino != fst.st_ino || lst.st_dev != fst.st_dev)
        return;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (stat(dir, &dst) == 0 && dst.st_uid != 0 && fchown(fd, dst.st_uid, dst.st_gid) < 0)
        return; /* best effort: the service's own open then says what is wrong */
}

char *wd_fmt_usd(double usd, char *out, size_t n)
{
    /* nano-dollars are the engine's unit: nine decimals hold any sum exactly; the zeros
    ** past the cents are dropped, so $0.0001 never reads $0.00 and $5 reads $5.00 */
    char buf[64];
    snprintf(buf, sizeof buf, "%.9f", usd);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf);
        while (end > dot + 3 && end[-1] == '0')
            *--end = '\0';
    }
    snprintf(out, n, "$%s", buf[0] == '-' && !strcmp(buf, "-0.00") ? "0.00" : buf);
    return out;
}

char *wd_fmt_duration(long long ms, char *out, size_t n)
{
    long long s = ms < 0 ? 0 : (ms + 999) / 1000;
    if (s < 60)
        snprintf(out, n, "%lld s", s);
    else if (s < 3600)
        snprintf(out, n, "%lld min %lld s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, n, "%lld h %lld min", s / 3600, s % 3600 / 60);
    else
        snprintf(out, n, "%lld d %lld h", s / 86400, s % 86400 / 3600);
    return out;
}

int wd_name_ok(const char *s)
{
    size_t l = strlen(s);
    if (!l || l > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}
