/* rx.h - PCRE2 patterns compiled once (JIT where available), matched with a
** per-thread match block so a match allocates nothing. */
#ifndef WD_RX_H
#define WD_RX_H

#include <stddef.h>

typedef struct wd_rx wd_rx;

#define WD_RX_CASELESS 1

/* caller frees with wd_rx_free; NULL with the PCRE2 message and offset in err */
wd_rx *wd_rx_compile(const char *pattern, int flags, char *err, size_t errlen);
void wd_rx_free(wd_rx *rx);
const char *wd_rx_source(const wd_rx *rx);
/* 1 match, 0 no match, -1 error (treated as a match by guardrails: fail closed) */
int wd_rx_match(const wd_rx *rx, const char *s, size_t len);
/* first match at or after start: 1 with [*so, *eo), 0 none */
int wd_rx_find(const wd_rx *rx, const char *s, size_t len, size_t start, size_t *so, size_t *eo);

/* as wd_rx_find, for a pattern of alternatives each in a capture group: 0 no match,
** -1 error, else the number of the first group that took part (1 when none did) */
int wd_rx_find_which(const wd_rx *rx, const char *s, size_t len, size_t start, size_t *so, size_t *eo);

#endif
