/* registry.c - the runs a server knows: a hash table by run id under one mutex, with
** the finished runs on a list, oldest first, trimmed to `keep`. */
#include "registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NVIOLATIONS    50
#define ENDED_GRACE_MS 2000 /* a run that ended this long ago without its last record is done */

typedef struct entry {
    struct entry *next;     /* in its bucket */
    struct entry *fin_next; /* on the finished list */
    char run_id[37];
    char *agent, *user, *session;
    char status[24];
    int64_t created_ms, finished_ms; /* wall clock, shown */
    int64_t ended_ns;                /* monotonic: the grace for a last record */
    char *result;                    /* JSON text, once ended */
    char **lines;                    /* audit lines, oldest first */
    char (*events)[24];              /* each line's event */
    size_t n, cap;
    long dropped; /* lines dropped from the front (their numbers stay) */
    int saw_finished;
    size_t line_bytes; /* of lines */
    size_t bytes;      /* what it holds in all, counted in kept once finished */
} entry;

struct wd_registry {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets, count;
    size_t keep, max_events, events_bytes, kept_max, result_max;
    entry *fin_head, *fin_tail;
    size_t nfin, kept; /* finished runs, and their bytes */
    long live;
    char *viol[NVIOLATIONS]; /* a ring of lines */
    size_t nviol, viol_at;
};

static unsigned long hash(const char *s)
{
    unsigned long h = 1469598103934665603UL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211UL;
    return h;
}

/* NULL-safe */
static void entry_free(entry *x)
{
    if (!x)
        return;
    free(x->agent);
    free(x->user);
    free(x->session);
    free(x->result);
    for (size_t i = 0; i < x->n; i++)
        free(x->lines[i]);
    free(x->lines);
    free(x->events);
    free(x);
}

wd_registry *wd_registry_new(size_t keep, size_t max_events)
{
    wd_registry *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->nbuckets = 4096;
    g->buckets = calloc(g->nbuckets, sizeof *g->buckets);
    if (!g->buckets) {
        free(g);
        return NULL;
    }
    g->keep = keep;
    g->max_events = max_events ? max_events : 1;
    g->events_bytes = 1u << 20;
    g->kept_max = 256u << 20;
    g->result_max = 64u << 10;
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

void wd_registry_free(wd_registry *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nbuckets; i++)
        while (g->buckets[i]) {
            entry *x = g->buckets[i];
            g->buckets[i] = x->next;
            entry_free(x);
        }
    for (size_t i = 0; i < NVIOLATIONS; i++)
        free(g->viol[i]);
    free(g->buckets);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* with mu held */
static entry *find(wd_registry *g, const char *run_id)
{
    for (entry *x = g->buckets[hash(run_id) % g->nbuckets]; x; x = x->next)
        if (!strcmp(x->run_id, run_id))
            return x;
    return NULL;
}

/* with mu held: the table doubles when it holds twice as many runs as buckets */
static void grow(wd_registry *g)
{
    size_t n = g->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < g->nbuckets; i++)
        while (g->buckets[i]) {
            entry *x = g->buckets[i];
            g->buckets[i] = x->next;
            unsigned long h = hash(x->run_id) % n;
            x->next = b[h];
            b[h] = x;
        }
    free(g->buckets);
    g->buckets = b;
    g->nbuckets = n;
}

/* with mu held: the oldest finished runs go until what is kept fits */
static void trim(wd_registry *g)
{
    while ((g->nfin > g->keep || g->kept > g->kept_max) && g->fin_head) {
        entry *old = g->fin_head;
        g->fin_head = old->fin_next;
        if (!g->fin_head)
            g->fin_tail = NULL;
        g->nfin--;
        g->kept -= old->bytes;
        for (entry **pp = &g->buckets[hash(old->run_id) % g->nbuckets]; *pp; pp = &(*pp)->next)
            if (*pp == old) {
                *pp = old->next;
                g->count--;
                break;
            }
        entry_free(old);
    }
}

void wd_registry_limits(wd_registry *g, size_t keep, size_t max_events, size_t events_bytes, size_t kept_bytes,
                        size_t result_bytes)
{
    pthread_mutex_lock(&g->mu);
    g->keep = keep;
    g->max_events = max_events ? max_events : 1;
    g->events_bytes = events_bytes;
    g->kept_max = kept_bytes;
    g->result_max = result_bytes;
    trim(g);
    pthread_mutex_unlock(&g->mu);
}

size_t wd_registry_result_max(wd_registry *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->result_max;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static char *dup_or_null(const char *s) { return s ? wd_strdup(s) : NULL; }

int wd_registry_add(wd_registry *g, const char *run_id, const char *agent, const char *user, const char *session)
{
    entry *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    wd_strlcpy(x->run_id, run_id, sizeof x->run_id);
    x->agent = dup_or_null(agent);
    x->user = dup_or_null(user);
    x->session = dup_or_null(session);
    if ((agent && !x->agent) || (user && !x->user) || (session && !x->session)) {
        entry_free(x);
        return -1;
    }
    strcpy(x->status, "queued");
    x->created_ms = wd_wall_ms();
    pthread_mutex_lock(&g->mu);
    if (g->count >= g->nbuckets * 2)
        grow(g);
    unsigned long h = hash(run_id) % g->nbuckets;
    x->next = g->buckets[h];
    g->buckets[h] = x;
    g->count++;
    g->live++;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static int is_violation(const char *ev)
{
    static const char *const V[] = {"authorization_denied", "validation_failed", "guardrail_violation",
                                    "rate_limited",         "budget_exceeded",   "approval_rejected",
                                    "kill_switch",          "detector_verdict",  NULL};
    for (int i = 0; V[i]; i++)
        if (!strcmp(ev, V[i]))
            return 1;
    return 0;
}

/* the oldest lines go, by count and by bytes, until a line of len fits; numbering goes on */
static void make_room(wd_registry *g, entry *x, size_t len)
{
    size_t k = 0, freed = 0;
    while (k < x->n && (x->n - k >= g->max_events || x->line_bytes - freed + len + 1 > g->events_bytes)) {
        freed += strlen(x->lines[k]) + 1;
        free(x->lines[k]);
        k++;
    }
    if (k) {
        memmove(x->lines, x->lines + k, (x->n - k) * sizeof *x->lines);
        memmove(x->events, x->events + k, (x->n - k) * sizeof *x->events);
        x->n -= k;
        x->dropped += (long)k;
        x->line_bytes -= freed;
        x->bytes -= freed;
        if (x->finished_ms)
            g->kept -= freed;
    }
}

/* room for more lines (up to max_events); -1 out of memory */
static int grow_lines(wd_registry *g, entry *x)
{
    size_t cap = x->cap ? x->cap * 2 : 8;
    if (cap > g->max_events)
        cap = g->max_events;
    char **l = realloc(x->lines, cap * sizeof *l);
    if (l)
        x->lines = l;
    char(*e)[24] = l ? realloc(x->events, cap * sizeof *e) : NULL;
    if (e)
        x->events = e;
    if (!l || !e)
        return -1;
    x->cap = cap;
    return 0;
}

void wd_registry_event(wd_registry *g, const char *run_id, const char *event, const char *line, size_t len)
{
    int viol = is_violation(event);
    pthread_mutex_lock(&g->mu);
    if (viol) {
        char *c = malloc(len + 1);
        if (c) {
            memcpy(c, line, len);
            c[len] = '\0';
            free(g->viol[g->viol_at]);
            g->viol[g->viol_at] = c;
            g->viol_at = (g->viol_at + 1) % NVIOLATIONS;
            if (g->nviol < NVIOLATIONS)
                g->nviol++;
        }
    }
    entry *x = *run_id ? find(g, run_id) : NULL;
    if (!x)
        goto done;
    if (!strcmp(event, "run_started") && !strcmp(x->status, "queued"))
        strcpy(x->status, "running");
    if (!strcmp(event, "run_finished"))
        x->saw_finished = 1;
    /* a line larger than a run may keep is replaced by a short line that says so (the log
    ** has it whole): the stream still sees the event, and numbering stays one per record */
    char brief[200];
    if (len + 1 > g->events_bytes) {
        snprintf(brief, sizeof brief,
                 "{\"event\":\"%.24s\",\"run_id\":\"%.36s\",\"line_bytes\":%zu,\"note\":"
                 "\"larger than serve.events_kb: the audit log has it\"}",
                 event, run_id, len);
        line = brief;
        len = strlen(brief);
    }
    make_room(g, x, len);
    if (x->n == x->cap && grow_lines(g, x) < 0)
        goto done; /* out of memory: the stream misses a record, the log has it */
    char *c = malloc(len + 1);
    if (!c)
        goto done;
    memcpy(c, line, len);
    c[len] = '\0';
    x->lines[x->n] = c;
    wd_strlcpy(x->events[x->n], event, sizeof x->events[x->n]);
    x->n++;
    x->line_bytes += len + 1;
    x->bytes += len + 1;
    if (x->finished_ms) {
        g->kept += len + 1;
        trim(g);
    }
done:
    pthread_mutex_unlock(&g->mu);
}

void wd_registry_finish(wd_registry *g, const char *run_id, const char *status, char *text)
{
    const char *st = status;
    pthread_mutex_lock(&g->mu);
    entry *x = find(g, run_id);
    if (!x || x->finished_ms) {
        pthread_mutex_unlock(&g->mu);
        free(text);
        return;
    }
    free(x->result);
    x->result = text;
    x->bytes += text ? strlen(text) + 1 : 0;
    wd_strlcpy(x->status, st ? st : "failed", sizeof x->status);
    x->finished_ms = wd_wall_ms();
    x->ended_ns = wd_now_ns();
    g->live--;
    if (g->fin_tail)
        g->fin_tail->fin_next = x;
    else
        g->fin_head = x;
    g->fin_tail = x;
    g->nfin++;
    g->kept += x->bytes;
    trim(g);
    pthread_mutex_unlock(&g->mu);
}

/* with mu held; caller decrefs */
static json_t *describe(const entry *x, int with_result)
{
    char c[40], f[40];
    wd_rfc3339_ms(x->created_ms, c, sizeof c);
    json_t *o = json_pack("{s:s,s:s?,s:s?,s:s?,s:s,s:s}", "run_id", x->run_id, "agent", x->agent, "user_id", x->user,
                          "session_id", x->session, "status", x->status, "created_at", c);
    if (o && x->finished_ms) {
        wd_rfc3339_ms(x->finished_ms, f, sizeof f);
        json_object_set_new(o, "finished_at", json_string(f));
    }
    if (o && with_result && x->result) {
        json_t *r = json_loads(x->result, JSON_ALLOW_NUL, NULL);
        if (r)
            json_object_set_new(o, "result", r);
    }
    return o;
}

json_t *wd_registry_get(wd_registry *g, const char *run_id, char owner[160])
{
    pthread_mutex_lock(&g->mu);
    entry *x = find(g, run_id);
    json_t *o = x ? describe(x, 1) : NULL;
    if (owner)
        wd_strlcpy(owner, x && x->user ? x->user : "", 160);
    pthread_mutex_unlock(&g->mu);
    return o;
}

long wd_registry_events(wd_registry *g, const char *run_id, long from, wd_buf *out, int *ended)
{
    *ended = 0;
    pthread_mutex_lock(&g->mu);
    entry *x = find(g, run_id);
    if (!x) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    long first = x->dropped, end = x->dropped + (long)x->n;
    if (from < first)
        from = first; /* what was dropped cannot be sent: the log has it */
    for (long i = from; i < end; i++) {
        size_t k = (size_t)(i - first);
        wd_buf_addf(out, "id: %ld\ndata: %s\n\n", i + 1, x->lines[k]); /* the record names its event */
    }
    *ended = x->finished_ms && (x->saw_finished || wd_now_ns() - x->ended_ns > ENDED_GRACE_MS * 1000000LL);
    pthread_mutex_unlock(&g->mu);
    return end;
}

static int newer_first(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    return x->created_ms < y->created_ms ? 1 : x->created_ms > y->created_ms ? -1 : strcmp(x->run_id, y->run_id);
}

json_t *wd_registry_list(wd_registry *g, const char *user, int live_only, size_t limit)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    pthread_mutex_lock(&g->mu);
    entry **v = malloc((g->count ? g->count : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < g->nbuckets; i++)
        for (entry *x = g->buckets[i]; x; x = x->next)
            if (!(live_only && x->finished_ms) && !(user && (!x->user || strcmp(user, x->user))))
                v[n++] = x;
    if (v)
        qsort(v, n, sizeof *v, newer_first);
    for (size_t i = 0; v && i < n && i < limit; i++)
        json_array_append_new(a, describe(v[i], 0));
    pthread_mutex_unlock(&g->mu);
    free(v);
    return a;
}

json_t *wd_registry_violations(wd_registry *g)
{
    json_t *a = json_array();
    pthread_mutex_lock(&g->mu);
    for (size_t k = 0; a && k < g->nviol; k++) {
        size_t i = (g->viol_at + NVIOLATIONS - 1 - k) % NVIOLATIONS;
        json_t *r = g->viol[i] ? json_loads(g->viol[i], JSON_ALLOW_NUL, NULL) : NULL;
        if (r)
            json_array_append_new(a, r);
    }
    pthread_mutex_unlock(&g->mu);
    return a;
}

long wd_registry_live(wd_registry *g)
{
    pthread_mutex_lock(&g->mu);
    long n = g->live;
    pthread_mutex_unlock(&g->mu);
    return n;
}
