/* test_arena.c - a run's memory: size classes, resizing across the small/big line,
** the cap, reuse at the cap, and clearing everything at once (LeakSanitizer checks
** under make asan that nothing outlives wd_arena_clear) */
#include "harness.h"
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int filled(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

TEST(blocks_are_aligned_and_reused_by_class)
{
    wd_arena a = {0};
    void *p[64];
    for (size_t i = 0; i < 64; i++) {
        p[i] = wd_arena_alloc(&a, i * 8 + 1, SIZE_MAX);
        CHECK(p[i] != NULL && ((uintptr_t)p[i] & 15) == 0);
        memset(p[i], (int)i, i * 8 + 1);
    }
    for (size_t i = 0; i < 64; i++)
        CHECK(filled(p[i], i * 8 + 1, (unsigned char)i)); /* no block overlaps another */
    size_t held = a.held;
    wd_arena_release(&a, p[10], 81); /* class of 96 bytes */
    CHECK(wd_arena_alloc(&a, 90, SIZE_MAX) == p[10]);
    CHECK(a.held == held);
    wd_arena_clear(&a);
    CHECK(a.held == 0 && a.chunks == NULL && a.bigs == NULL);
}

TEST(resize_keeps_contents_across_the_small_big_line)
{
    wd_arena a = {0};
    unsigned char *p = wd_arena_alloc(&a, 100, SIZE_MAX);
    memset(p, 7, 100);
    CHECK(wd_arena_resize(&a, p, 100, 110, SIZE_MAX) == p); /* same class: in place */
    p = wd_arena_resize(&a, p, 110, 5000, SIZE_MAX);        /* small to big */
    REQUIRE(p != NULL && filled(p, 100, 7));
    memset(p, 9, 5000);
    p = wd_arena_resize(&a, p, 5000, 100000, SIZE_MAX); /* big to big */
    CHECK(p != NULL && filled(p, 5000, 9));
    p = wd_arena_resize(&a, p, 100000, 40, SIZE_MAX); /* big to small */
    CHECK(p != NULL && filled(p, 40, 9));
    CHECK(a.bigs == NULL);
    wd_arena_release(&a, p, 40);
    wd_arena_clear(&a);
}

TEST(cap_refuses_without_taking_anything)
{
    wd_arena a = {0};
    size_t cap = 64 * 1024;
    CHECK(wd_arena_alloc(&a, 100000, cap) == NULL);
    CHECK(a.held == 0);
    void *big = wd_arena_alloc(&a, 30000, cap);
    CHECK(big != NULL);
    CHECK(wd_arena_resize(&a, big, 30000, 70000, cap) == NULL); /* growth past the cap */
    size_t held = a.held;
    CHECK(held <= cap);
    /* small blocks until the cap: then none, and the arena never went past it */
    int n = 0;
    while (wd_arena_alloc(&a, 64, cap))
        n++;
    CHECK(n > 100 && a.held <= cap);
    /* shrinking never fails on the cap */
    CHECK(wd_arena_resize(&a, big, 30000, 16, cap) != NULL);
    wd_arena_clear(&a);
}

/* at the cap a request takes a free block of a bigger class rather than failing */
TEST(at_the_cap_bigger_free_blocks_serve)
{
    wd_arena a = {0};
    size_t cap = 8192;
    void *blocks[200];
    int n = 0;
    while (n < 200 && (blocks[n] = wd_arena_alloc(&a, 256, cap)))
        n++;
    CHECK(n > 10);
    while (wd_arena_alloc(&a, 16, cap)) /* the chunk's rest */
        ;
    CHECK(wd_arena_alloc(&a, 32, cap) == NULL && a.held <= cap);
    wd_arena_release(&a, blocks[0], 256);
    void *q = wd_arena_alloc(&a, 32, cap);
    CHECK(q == blocks[0]);
    wd_arena_clear(&a);
}

int main(void)
{
    RUN(blocks_are_aligned_and_reused_by_class);
    RUN(resize_keeps_contents_across_the_small_big_line);
    RUN(cap_refuses_without_taking_anything);
    RUN(at_the_cap_bigger_free_blocks_serve);
    DONE();
}
