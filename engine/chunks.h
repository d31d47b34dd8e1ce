/* chunks.h - compiled Lua chunks, cached per process by file version. */
#ifndef WD_CHUNKS_H
#define WD_CHUNKS_H

#include <lua.h>

/* Loads the Lua text file `path` as a function named "@chunkname" on L (mode text
** only: the parser sees the file once per version, later runs load our own dump of
** it). Returns LUA_OK with the function pushed, or an error status with a message
** pushed. Thread-safe. */
int wd_chunks_load(lua_State *L, const char *path, const char *chunkname);

/* drops every cached chunk (tests, reloads) */
void wd_chunks_clear(void);
/* loads served from the cache, and loads that compiled text, since the process began */
void wd_chunks_stats(long *hits, long *compiles);
/* files changed less than this long ago are not cached (default 2,000 ms; tests) */
void wd_chunks_set_racy_window(long ms);

#endif
