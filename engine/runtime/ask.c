/* ask.c - a run's question to the state store (see ask.h) */
#include "ask.h"
#include "engine.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ASK_KEYS 8

/* ** The question and all it is read against live here, not in the run: a run that ends
** sets r to NULL, and the answer, when it comes, frees it unread by anyone. */
typedef struct wd_question wd_question;
struct wd_question {
    wd_run *r;
    void (*again)(wd_run *r);
    int answered, rc, now; /* now: inside wd_store_ask, the asker reads the answer */
    wd_store_op op;
    char *key, *name; /* copies */
    wd_ledger_key keys[ASK_KEYS];
    wd_ledger_row rows[ASK_KEYS];
    wd_breaker_step step;
    wd_approval_state approval;
};

static void ask_free(wd_question *a)
{
    sodium_memzero(a->op.secret, sizeof a->op.secret);
    free(a->op.text);
    free(a->op.owner);
    free(a->key);
    free(a->name);
    wd_approval_state_clear(&a->approval);
    free(a);
}

static void answered(void *ud, int rc)
{
    wd_question *a = ud;
    a->answered = 1;
    a->rc = rc;
    if (!a->r) { /* its run ended */
        ask_free(a);
        return;
    }
    if (!a->now)
        a->again(a->r);
}

/* the answer into the caller's op; the question gone */
static int take(wd_run *r, wd_store_op *op, int *rc)
{
    wd_question *a = r->ask;
    r->ask = NULL;
    *rc = a->rc;
    op->which = a->op.which;
    op->count = a->op.count;
    op->retry_ms = a->op.retry_ms;
    op->cost_nusd = a->op.cost_nusd;
    op->text = a->op.text;
    op->owner = a->op.owner;
    a->op.text = a->op.owner = NULL;
    if (op->rows)
        memcpy(op->rows, a->rows, (size_t)op->n * sizeof *op->rows);
    if (op->step)
        *op->step = a->step;
    if (op->approval) {
        *op->approval = a->approval;
        memset(&a->approval, 0, sizeof a->approval);
    }
    memcpy(op->id, a->op.id, sizeof op->id);
    memcpy(op->secret, a->op.secret, sizeof op->secret);
    ask_free(a);
    return 1;
}

int wd_run_ask(wd_run *r, wd_store_op *op, void (*again)(wd_run *r), int *rc)
{
    if (r->ask && r->ask->answered && r->ask->op.kind == op->kind)
        return take(r, op, rc);
    if (!again) {
        *rc = wd_store_do(r->eng->store, op);
        return 1;
    }
    wd_run_unask(r); /* another question, left unanswered: dropped */
    wd_question *a = calloc(1, sizeof *a);
    if (!a || op->n > ASK_KEYS || (op->c && op->kind == WD_SOP_LEASE_APPLY)) {
        free(a);
        *rc = -1;
        return 1;
    }
    a->r = r;
    a->again = again;
    a->op = *op;
    a->op.text = a->op.owner = NULL;
    a->op.key = op->key ? (a->key = wd_strdup(op->key)) : NULL;
    a->op.name = op->name ? (a->name = wd_strdup(op->name)) : NULL;
    if (op->keys) {
        memcpy(a->keys, op->keys, (size_t)op->n * sizeof *a->keys);
        a->op.keys = a->keys;
        a->op.rows = a->rows;
    }
    if (op->step) {
        a->step = *op->step;
        a->op.step = &a->step;
    }
    if (op->approval)
        a->op.approval = &a->approval;
    if ((op->key && !a->op.key) || (op->name && !a->op.name)) {
        ask_free(a);
        *rc = -1;
        return 1;
    }
    r->ask = a;
    a->now = 1;
    wd_store_ask(r->eng->store, &a->op, answered, a);
    a->now = 0;
    return a->answered ? take(r, op, rc) : 2;
}

void wd_run_unask(wd_run *r)
{
    wd_question *a = r->ask;
    if (!a)
        return;
    r->ask = NULL;
    if (a->answered)
        ask_free(a);
    else
        a->r = NULL; /* freed by its answer */
}

int wd_run_breaker_admit(wd_run *r, const char *name, const wd_breaker_cfg *c, int *probe, char *msg, size_t n,
                         wd_breaker_change *ch, void (*again)(wd_run *r))
{
    wd_breakers *b = r->eng->breakers;
    wd_breaker_step st;
    if (!again || !wd_breakers_admit_ask(b, name, c, &st))
        return wd_breakers_admit(b, name, c, probe, msg, n, ch);
    wd_store_op op = {.kind = WD_SOP_BREAKER_STEP, .name = name, .step = &st};
    int rc;
    if (wd_run_ask(r, &op, again, &rc) == 2)
        return 2;
    return wd_breakers_admit_answer(b, name, c, rc, &st, probe, msg, n, ch);
}
