/* arena.c - a run's memory (arena.h). */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_BYTES 8192
#define CHUNK_HEAD  16 /* the link to the next chunk, padded to keep blocks 16-aligned */
#define SMALL_MAX   (WD_ARENA_CLASSES * 16)

struct wd_arena_big {
    wd_arena_big *prev, *next;
    size_t size; /* of the block after this header */
    size_t pad;  /* keeps the block 16-aligned */
};

static size_t class_of(size_t n) { return (n - 1) >> 4; }
static size_t class_bytes(size_t c) { return (c + 1) << 4; }

static void push_free(wd_arena *a, void *p, size_t c)
{
    *(void **)p = a->free[c];
    a->free[c] = p;
    POISON(p, class_bytes(c));
}

static void *pop_free(wd_arena *a, size_t c)
{
    void *p = a->free[c];
    UNPOISON(p, class_bytes(c));
    a->free[c] = *(void **)p;
    return p;
}

/* a new chunk to carve from; the rest of the old one goes to a free list */
static int new_chunk(wd_arena *a, size_t cap)
{
    if (a->held + CHUNK_BYTES > cap)
        return -1;
    char *c = malloc(CHUNK_BYTES);
    if (!c)
        return -1;
    for (size_t rest = (size_t)(a->end - a->bump) & ~(size_t)15; rest >= 16;) {
        size_t k = rest > SMALL_MAX ? SMALL_MAX : rest;
        UNPOISON(a->bump, k);
        push_free(a, a->bump, class_of(k));
        a->bump += k;
        rest -= k;
    }
    *(void **)c = a->chunks;
    a->chunks = c;
    a->bump = c + CHUNK_HEAD;
    a->end = c + CHUNK_BYTES;
    POISON(a->bump, (size_t)(a->end - a->bump));
    a->held += CHUNK_BYTES;
    return 0;
}

static void *small_alloc(wd_arena *a, size_t n, size_t cap)
{
    size_t c = class_of(n), b = class_bytes(c);
    if (a->free[c])
        return pop_free(a, c);
    if ((size_t)(a->end - a->bump) < b && new_chunk(a, cap) < 0) {
        /* at the cap: a free block of a bigger class will do (its spare bytes are lost
        ** until the arena is cleared, which beats failing) */
        for (size_t k = c + 1; k < WD_ARENA_CLASSES; k++)
            if (a->free[k]) {
                void *p = pop_free(a, k);
                POISON((char *)p + b, class_bytes(k) - b);
                return p;
            }
        return NULL;
    }
    void *p = a->bump;
    a->bump += b;
    UNPOISON(p, b);
    return p;
}

static void *big_alloc(wd_arena *a, size_t n, size_t cap)
{
    size_t total = sizeof(wd_arena_big) + n;
    if (total < n || a->held + total > cap)
        return NULL;
    wd_arena_big *g = malloc(total);
    if (!g)
        return NULL;
    g->size = n;
    g->prev = NULL;
    g->next = a->bigs;
    if (a->bigs)
        a->bigs->prev = g;
    a->bigs = g;
    a->held += total;
    return g + 1;
}

static void big_unlink(wd_arena *a, wd_arena_big *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        a->bigs = g->next;
    if (g->next)
        g->next->prev = g->prev;
}

void *wd_arena_alloc(wd_arena *a, size_t n, size_t cap)
{
    return n <= SMALL_MAX ? small_alloc(a, n, cap) : big_alloc(a, n, cap);
}

void wd_arena_release(wd_arena *a, void *p, size_t osize)
{
    if (!p)
        return;
    if (osize <= SMALL_MAX) {
        push_free(a, p, class_of(osize ? osize : 1));
        return;
    }
    wd_arena_big *g = (wd_arena_big *)p - 1;
    big_unlink(a, g);
    a->held -= sizeof *g + g->size;
    free(g);
}

void *wd_arena_resize(wd_arena *a, void *p, size_t osize, size_t n, size_t cap)
{
    if (osize <= SMALL_MAX && n <= SMALL_MAX && class_of(osize ? osize : 1) == class_of(n))
        return p;
    if (osize > SMALL_MAX && n > SMALL_MAX) {
        wd_arena_big *g = (wd_arena_big *)p - 1;
        if (n > g->size && a->held + (n - g->size) > cap)
            return NULL;
        wd_arena_big *ng = realloc(g, sizeof *g + n);
        if (!ng)
            return NULL;
        a->held = a->held - ng->size + n;
        ng->size = n;
        if (ng->prev)
            ng->prev->next = ng;
        else
            a->bigs = ng;
        if (ng->next)
            ng->next->prev = ng;
        return ng + 1;
    }
    /* across the small/big line: a new block, the old one released. A shrink must not
    ** fail on the cap (it lowers what the run holds once the old block is gone). */
    void *q = wd_arena_alloc(a, n, n < osize ? SIZE_MAX : cap);
    if (!q)
        return NULL;
    memcpy(q, p, n < osize ? n : osize);
    wd_arena_release(a, p, osize);
    return q;
}

void wd_arena_clear(wd_arena *a)
{
    if (!a)
        return;
    while (a->bigs) {
        wd_arena_big *g = a->bigs;
        a->bigs = g->next;
        free(g);
    }
    while (a->chunks) {
        void *c = a->chunks;
        a->chunks = *(void **)c;
        UNPOISON((char *)c + CHUNK_HEAD, CHUNK_BYTES - CHUNK_HEAD);
        free(c);
    }
    memset(a, 0, sizeof *a);
}
