/* store.h - the embedded state store (DESIGN.md section 2): one SQLite file, in WAL
** mode, shared by every warden process on the machine. Breaker states live here now;
** spend, rate windows and approvals join them later. Each operation is one short
** transaction, so processes never see half a decision. */
#ifndef WD_STORE_H
#define WD_STORE_H

#include <stdint.h>
#include <stddef.h>

typedef struct wd_store wd_store;

enum { WD_BR_CLOSED = 0, WD_BR_OPEN = 1, WD_BR_HALF_OPEN = 2 };

typedef struct wd_breaker_row {
    char name[160];
    int state;               /* WD_BR_* */
    long long failures;      /* consecutive */
    int64_t opened_ms;       /* wall clock: when it last opened */
    long long probes;        /* half-open calls in flight */
    int64_t probe_ms;        /* when the last probe was admitted */
    int64_t updated_ms;
} wd_breaker_row;

/* caller frees with wd_store_close; creates the file and its directory. NULL with err. */
wd_store *wd_store_open(const char *path, char *err, size_t errlen);
void wd_store_close(wd_store *s);   /* accepts NULL */
const char *wd_store_path(const wd_store *s);
const char *wd_store_error(const wd_store *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK: 0 or -1 */
int wd_store_begin(wd_store *s);
int wd_store_commit(wd_store *s);
void wd_store_rollback(wd_store *s);

/* 1 found, 0 absent (row zeroed, name set, closed), -1 error */
int wd_store_breaker_get(wd_store *s, const char *name, wd_breaker_row *row);
int wd_store_breaker_put(wd_store *s, const wd_breaker_row *row);
/* every breaker, by name; caller frees *rows */
int wd_store_breaker_list(wd_store *s, wd_breaker_row **rows, size_t *n);

#endif
