/* admit.h - admission of runs into warden serve (docs/serve.md, Limits). A run starts
** when the server has room for it: fewer than max_runs running (max_runs_per_user for
** its user) and its memory (its sandbox's cap and its detectors') within memory_mb of
** all sandboxes together. Otherwise it waits in a queue, first come first served but
** for users at their own limit, until a run ends or queue_wait_ms passes; past
** max_queued (max_queued_per_user) it is refused, and the caller answers 429 with
** Retry-After. Thread-safe: workers ask and finish, the main thread expires. */
#ifndef WD_ADMIT_H
#define WD_ADMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct wd_admit_limits {
    long long memory_mb, max_runs, max_queued, max_runs_user, max_queued_user, queue_wait_ms;
} wd_admit_limits;

/* a run waiting for room; the caller owns it and its ud until it is handed back */
typedef struct wd_admit_item {
    struct wd_admit_item *next;
    char user[160];
    long long mem_mb;
    int64_t queued_ns;
    void *ud;
} wd_admit_item;

typedef struct wd_admit wd_admit;

enum { WD_ADMIT_FULL = -1, WD_ADMIT_QUEUED = 0, WD_ADMIT_RUN = 1 };

/* caller frees with wd_admit_free; NULL out of memory */
wd_admit *wd_admit_new(void);
/* accepts NULL; items still queued are the caller's (take them first) */
void wd_admit_free(wd_admit *a);
/* RUN: it starts now, counted running (wd_admit_done when it ends); QUEUED: the item
** waits (held, not copied: it must live until handed back); FULL: refused, msg says which
** limit, *retry_s how long to wait. A run that could never fit (its memory above
** memory_mb) is FULL too. */
int wd_admit_ask(wd_admit *a, const wd_admit_limits *l, wd_admit_item *it, char *msg, size_t n, int *retry_s);
/* A running run ended after ran_ms: its room is free. Returns the queued items that
** start now (each counted running), linked by next. */
wd_admit_item *wd_admit_done(wd_admit *a, const wd_admit_limits *l, const char *user, long long mem_mb,
                             long long ran_ms);
/* the queued items that waited queue_wait_ms (all of them when all), taken off the queue */
wd_admit_item *wd_admit_expire(wd_admit *a, const wd_admit_limits *l, int all);
/* what is running and waiting now, and the memory held */
void wd_admit_counts(wd_admit *a, long *running, long *queued, long long *mem_mb);

#endif
