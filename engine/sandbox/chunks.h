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

/* Serving (warden serve): on, a file's cached version is used whatever the file holds
** now, until wd_chunks_refresh accepts a new one, so a broken edit never reaches a run.
** A file not cached yet is read and cached on its first load. */
void wd_chunks_pin(int on);
/* The file's text now, compiled: on success it replaces every cached version of path and
** the count replaced is returned (0: not cached yet); -1 with the compiler's message
** ("path:line: ...") in err, and the cache keeps what it had. Thread-safe. */
int wd_chunks_refresh(const char *path, char *err, size_t n);
/* drops every cached version of path (the file was removed) */
void wd_chunks_forget(const char *path);

#endif
