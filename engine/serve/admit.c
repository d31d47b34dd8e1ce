/* admit.c - the queue of runs waiting for room in warden serve (see admit.h) */
#include "admit.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_BUCKETS 256

typedef struct per_user {
    struct per_user *next;
    char name[160];
    long running, queued;
} per_user;

struct wd_admit {
    pthread_mutex_t mu;
    long running, queued;
    long long mem_mb;
    wd_admit_item *head, *tail;
    per_user *users[USER_BUCKETS];
    double avg_ms; /* of recent runs, for Retry-After */
};

static unsigned bucket(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % USER_BUCKETS;
}

/* with mu held; NULL out of memory (when make) or none */
static per_user *user_of(wd_admit *a, const char *name, int make)
{
    unsigned b = bucket(name);
    for (per_user *u = a->users[b]; u; u = u->next)
        if (!strcmp(u->name, name))
            return u;
    if (!make)
        return NULL;
    per_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    wd_strlcpy(u->name, name, sizeof u->name);
    u->next = a->users[b];
    a->users[b] = u;
    return u;
}

/* with mu held: a user with nothing running or waiting is forgotten */
static void user_tidy(wd_admit *a, per_user *u)
{
    if (!u || u->running || u->queued)
        return;
    for (per_user **pp = &a->users[bucket(u->name)]; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            free(u);
            return;
        }
}

wd_admit *wd_admit_new(void)
{
    wd_admit *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_init(&a->mu, NULL);
    a->avg_ms = 1000;
    return a;
}

void wd_admit_free(wd_admit *a)
{
    if (!a)
        return;
    for (int b = 0; b < USER_BUCKETS; b++)
        for (per_user *u = a->users[b], *n; u; u = n) {
            n = u->next;
            free(u);
        }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* with mu held: room to start a run of mem_mb for user u now */
static int fits(const wd_admit *a, const wd_admit_limits *l, const per_user *u, long long mem_mb)
{
    return a->running < l->max_runs && (!u || u->running < l->max_runs_user) && a->mem_mb + mem_mb <= l->memory_mb;
}

/* with mu held: how long a refused client should wait, in seconds (1..60) */
static int retry_after(const wd_admit *a, const wd_admit_limits *l)
{
    double s = a->avg_ms * (double)(a->queued + 1) / (double)(l->max_runs > 0 ? l->max_runs : 1) / 1000.0;
    return s < 1 ? 1 : s > 60 ? 60 : (int)(s + 0.999);
}

int wd_admit_ask(wd_admit *a, const wd_admit_limits *l, wd_admit_item *it, char *msg, size_t n, int *retry_s)
{
    *retry_s = 0;
    pthread_mutex_lock(&a->mu);
    int rc = WD_ADMIT_FULL;
    per_user *u = user_of(a, it->user, 1);
    if (!u) {
        snprintf(msg, n, "out of memory");
        *retry_s = 1;
        goto out;
    }
    if (it->mem_mb > l->memory_mb) {
        snprintf(msg, n, "a run needs %lld MB of sandbox memory and the server has %lld in all (serve.memory_mb)",
                 it->mem_mb, l->memory_mb);
        *retry_s = 60;
        goto out;
    }
    /* nobody waiting ahead that could take the room: start now */
    if (fits(a, l, u, it->mem_mb) && (!a->queued || u->queued == 0)) {
        a->running++;
        u->running++;
        a->mem_mb += it->mem_mb;
        rc = WD_ADMIT_RUN;
        goto out;
    }
    if (a->queued >= l->max_queued || u->queued >= l->max_queued_user) {
        int mine = u->queued >= l->max_queued_user;
        snprintf(msg, n, "too many runs: %ld running and %ld waiting %s (serve.%s %lld); retry later",
                 mine ? u->running : a->running, mine ? u->queued : a->queued, mine ? "for this user" : "in all",
                 mine ? "max_queued_per_user" : "max_queued", mine ? l->max_queued_user : l->max_queued);
        *retry_s = retry_after(a, l);
        goto out;
    }
    it->next = NULL;
    it->queued_ns = wd_now_ns();
    if (a->tail)
        a->tail->next = it;
    else
        a->head = it;
    a->tail = it;
    a->queued++;
    u->queued++;
    rc = WD_ADMIT_QUEUED;
out:
    if (rc == WD_ADMIT_FULL)
        user_tidy(a, u);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* with mu held: takes it (whose predecessor is prev) off the queue */
static void unqueue(wd_admit *a, wd_admit_item *prev, wd_admit_item *it, per_user *u)
{
    if (prev)
        prev->next = it->next;
    else
        a->head = it->next;
    if (a->tail == it)
        a->tail = prev;
    it->next = NULL;
    a->queued--;
    if (u)
        u->queued--;
}

wd_admit_item *wd_admit_done(wd_admit *a, const wd_admit_limits *l, const char *user, long long mem_mb,
                             long long ran_ms)
{
    wd_admit_item *out = NULL, **tail = &out;
    pthread_mutex_lock(&a->mu);
    per_user *u = user_of(a, user, 0);
    if (u && u->running > 0)
        u->running--;
    if (a->running > 0)
        a->running--;
    a->mem_mb -= mem_mb;
    if (a->mem_mb < 0)
        a->mem_mb = 0;
    a->avg_ms = 0.9 * a->avg_ms + 0.1 * (double)(ran_ms > 0 ? ran_ms : 0);
    user_tidy(a, u);
    /* first come first served, skipping users at their own limit */
    for (wd_admit_item *prev = NULL, *it = a->head, *next; it && a->running < l->max_runs; it = next) {
        next = it->next;
        per_user *w = user_of(a, it->user, 0);
        if (!fits(a, l, w, it->mem_mb)) {
            prev = it;
            continue;
        }
        unqueue(a, prev, it, w);
        a->running++;
        if (w)
            w->running++;
        a->mem_mb += it->mem_mb;
        *tail = it;
        tail = &it->next;
    }
    pthread_mutex_unlock(&a->mu);
    return out;
}

wd_admit_item *wd_admit_expire(wd_admit *a, const wd_admit_limits *l, int all)
{
    wd_admit_item *out = NULL, **tail = &out;
    int64_t now = wd_now_ns();
    pthread_mutex_lock(&a->mu);
    for (wd_admit_item *prev = NULL, *it = a->head, *next; it; it = next) {
        next = it->next;
        if (!all && now - it->queued_ns < l->queue_wait_ms * 1000000LL) {
            prev = it;
            continue;
        }
        per_user *w = user_of(a, it->user, 0);
        unqueue(a, prev, it, w);
        user_tidy(a, w);
        *tail = it;
        tail = &it->next;
    }
    pthread_mutex_unlock(&a->mu);
    return out;
}

void wd_admit_counts(wd_admit *a, long *running, long *queued, long long *mem_mb)
{
    pthread_mutex_lock(&a->mu);
    *running = a->running;
    *queued = a->queued;
    *mem_mb = a->mem_mb;
    pthread_mutex_unlock(&a->mu);
}
