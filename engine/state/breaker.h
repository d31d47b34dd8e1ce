/* breaker.h - circuit breakers, one per tool and one per model endpoint.
**
** CLOSED -> OPEN after failure_threshold consecutive failures -> after open_ms,
** HALF_OPEN admits half_open_probes calls -> a probe's success closes, its failure
** re-opens. State lives in the store, so every process sees the same breakers; each
** process keeps a copy it re-reads at most every WD_BREAKER_REFRESH_MS while the
** breaker is closed (a closed breaker with no failures costs no store access). */
#ifndef WD_BREAKER_H
#define WD_BREAKER_H

#include "store.h"

#define WD_BREAKER_REFRESH_MS 100

typedef struct wd_breaker_cfg {
    long long failure_threshold, open_ms, half_open_probes;
} wd_breaker_cfg;

/* ---- the state machine, on a row (pure: unit-tested) ---- */

/* 1 admitted (*probe set when as a half-open probe), 0 refused (*retry_in_ms set).
** May move OPEN -> HALF_OPEN; *changed is set when the row changed. */
int wd_breaker_admit(wd_breaker_row *row, const wd_breaker_cfg *c, int64_t now_ms, int *probe, long long *retry_in_ms,
                     int *changed);
/* the outcome of an admitted call; *changed as above */
void wd_breaker_outcome(wd_breaker_row *row, const wd_breaker_cfg *c, int success, int probe, int64_t now_ms,
                        int *changed);
const char *wd_breaker_state_name(int state);

/* ---- the registry of one engine ---- */

typedef struct wd_breakers wd_breakers;

/* a state change for the audit log: from -> to, with why */
typedef struct wd_breaker_change {
    int happened, from, to;
    char reason[160];
} wd_breaker_change;

/* caller frees; the store is borrowed and may be NULL (state kept in this process) */
wd_breakers *wd_breakers_new(wd_store *s);
void wd_breakers_free(wd_breakers *b); /* accepts NULL */
/* 1 admitted, 0 refused with msg ("circuit open for X, retry in N s"), -1 refused because
** the store could not be read (msg says so): a call is never let through unchecked */
int wd_breakers_admit(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int *probe, char *msg, size_t msglen,
                      wd_breaker_change *ch);
/* wd_breakers_admit in two halves, for a caller that asks the store without waiting
** (wd_store_ask, WD_SOP_BREAKER_STEP): 1 the store must take st (filled: ask it, then
** give its answer to wd_breakers_admit_answer), 0 wd_breakers_admit decides at once */
int wd_breakers_admit_ask(wd_breakers *b, const char *name, const wd_breaker_cfg *c, wd_breaker_step *st);
/* rc: the step's answer (1 taken, 0 not this store's: the rules run here in a
** transaction, -1 store error); as wd_breakers_admit answers */
int wd_breakers_admit_answer(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int rc,
                             const wd_breaker_step *st, int *probe, char *msg, size_t msglen, wd_breaker_change *ch);
/* returns the state the breaker is left in */
int wd_breakers_outcome(wd_breakers *b, const char *name, const wd_breaker_cfg *c, int success, int probe,
                        wd_breaker_change *ch);
/* a probe abandoned without an outcome (its run ended): frees its slot */
void wd_breakers_release(wd_breakers *b, const char *name);
/* another process changed name's row (NULL: any): read it again at its next use */
void wd_breakers_forget(wd_breakers *b, const char *name);
/* the state this process last saw (WD_BR_CLOSED for one never used) */
int wd_breakers_state(wd_breakers *b, const char *name);

#endif
