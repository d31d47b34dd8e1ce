/* arena.h - a run's memory: small blocks carved from chunks with free lists per size
** class, big blocks malloc'd on a list, all of it released at once.
**
** A Lua state gives the size of every block it frees or resizes, so small blocks need
** no header. Releasing the arena frees what the state still holds without walking its
** objects one by one (lua_close spent more time doing that than the run did starting). */
#ifndef WD_ARENA_H
#define WD_ARENA_H

#include <stddef.h>

#define WD_ARENA_CLASSES 32 /* small blocks: 16, 32, ... 512 bytes */

typedef struct wd_arena_big wd_arena_big;

typedef struct wd_arena {
    void *free[WD_ARENA_CLASSES]; /* free small blocks, by size class */
    char *bump, *end;             /* the unused rest of the newest chunk */
    void *chunks;                 /* every chunk, newest first */
    wd_arena_big *bigs;           /* every big block */
    size_t held;                  /* bytes of chunks and big blocks taken from malloc */
} wd_arena;

/* a block of n > 0 bytes, 16-aligned, or NULL when that would take held past cap or
** malloc fails; nothing is allocated then */
void *wd_arena_alloc(wd_arena *a, size_t n, size_t cap);
/* p (of osize bytes, as allocated or last resized) resized to n > 0 bytes, contents
** kept; NULL (p untouched) as for wd_arena_alloc */
void *wd_arena_resize(wd_arena *a, void *p, size_t osize, size_t n, size_t cap);
/* p (osize bytes) back to the arena; accepts NULL */
void wd_arena_release(wd_arena *a, void *p, size_t osize);
/* every block at once; the arena is empty and usable afterwards */
void wd_arena_clear(wd_arena *a);

#endif
