/* util.h - small helpers shared by the engine: growable buffers, clocks, files. */
#ifndef WD_UTIL_H
#define WD_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>

typedef struct wd_buf {
    char *p;
    size_t len, cap;
} wd_buf;

/* all wd_buf functions keep p NUL-terminated; they return 0, or -1 when out of memory */
int wd_buf_grow(wd_buf *b, size_t n);
/* inline: the JSON writers call it for every quote and comma */
static inline int wd_buf_add(wd_buf *b, const char *s, size_t n)
{
    if ((!b->p || b->len + n + 1 > b->cap) && wd_buf_grow(b, n) < 0)
        return -1;
    if (n) /* s may be NULL when there is nothing to add */
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}
int wd_buf_adds(wd_buf *b, const char *s);
int wd_buf_addf(wd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wd_buf_vaddf(wd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void wd_buf_free(wd_buf *b);

/* sums of money (nano-dollars) and counts that must not wrap: saturates at the ends */
static inline int64_t wd_add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

int64_t wd_now_ns(void);  /* monotonic */
int64_t wd_wall_ms(void); /* realtime, ms since the epoch, shifted by the two below */
/* tests: the wall clock reads wall_ms now (0: the real clock again) / moves ahead by ms.
** WARDEN_NOW (RFC 3339 or epoch ms) in the environment sets it at the first read. */
void wd_clock_set(int64_t wall_ms);
void wd_clock_advance(int64_t ms);
int64_t wd_clock_shift(void);  /* what the two above set: 0 outside tests */
int64_t wd_real_wall_ms(void); /* realtime, never shifted */
/* CLOCK_BOOTTIME in ms: monotonic, the same for every process of one boot, deaf to
** steps of the wall clock. What outlives a process measures durations with it through
** the state store's clock (store.h, wd_store_now). */
int64_t wd_boot_ms(void);
/* this boot, as a positive number (from /proc/sys/kernel/random/boot_id) */
int64_t wd_boot_id(void);
/* "2026-11-21T04:36:00.123Z" into out (at least 32 bytes) */
void wd_rfc3339_ms(int64_t wall_ms, char *out, size_t n);
/* parse RFC 3339 (or a date "2026-11-21") into wall ms; -1 on error */
int64_t wd_parse_time(const char *s);

/* money as people read it: "$5.00", "$0.0001", "$0.000123456" (never "$0.00" for what
** is not zero); into out, which it returns */
char *wd_fmt_usd(double usd, char *out, size_t n);
/* a duration as people read it: "45 s", "12 min 5 s", "4 h 0 min", "2 d 3 h" (rounded
** up to the second); into out, which it returns */
char *wd_fmt_duration(long long ms, char *out, size_t n);
/* fd (the file at path) given to the owner of its directory when root created it there
** and someone else owns the directory (the service's files stay its own) */
void wd_file_own_like_dir(int fd, const char *path);
/* caller frees; NULL on error with errno set. Reads at most max bytes (ERANGE past it). */
char *wd_read_file(const char *path, size_t max, size_t *len);
/* s (len bytes, any bytes) as a C string of UTF-8 text: each NUL byte, and each byte that
** is not part of a valid UTF-8 sequence, becomes the text \xNN, so nothing after a NUL is
** lost and the text is always a valid JSON string; caller frees (NULL when out of memory) */
char *wd_cstr_of(const char *s, size_t len);
/* the same into out (n bytes), cut to fit */
void wd_cstr_copy(char *out, size_t n, const char *s, size_t len);
/* wd_read_file's errno for a FIFO, device or socket: refused, as reading one could block */
#define WD_ENOTREG EMEDIUMTYPE
/* what a failed wd_read_file (errno e, limit max) means, in words */
const char *wd_read_error(int e, size_t max);

/* caller frees: strdup that aborts on OOM is not used; returns NULL on OOM */
char *wd_strdup(const char *s);
char *wd_strndup(const char *s, size_t n);

/* random 128-bit id as a UUIDv4 string into out (37 bytes) */
void wd_uuid(char out[37]);

/* copy with truncation, always NUL-terminated */
void wd_strlcpy(char *dst, const char *src, size_t n);
/* 1 when s is a name a tool, a detector or an MCP tool may have: 1 to 64 letters, digits,
** '_' or '-' (what every LLM provider accepts as a function's name) */
int wd_name_ok(const char *s);
void wd_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* caller frees: the first max_chars characters of s (len bytes of UTF-8), cut on a
** character boundary; *cut says whether anything was left out */
char *wd_utf8_head(const char *s, size_t len, size_t max_chars, int *cut);

#endif
