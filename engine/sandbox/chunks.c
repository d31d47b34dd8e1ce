/* chunks.c - compiled Lua chunks, cached per process by file version.
**
** Every run gets a fresh lua_State and loads the same files (runner, react, the agent,
** its tools). Parsing them dominated run creation, so the first load of a file version
** compiles the text and keeps lua_dump's bytecode; later loads undump it. Only dumps we
** made from text go through the binary loader: scripts still cannot load bytecode.
** A version is (device, inode, size, mtime, ctime). A file changed within the last two
** seconds is not cached (the "racy" window: two writes inside one timestamp tick with
** the same size would look alike). */
#include "chunks.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NBUCKETS    256
#define MAX_ENTRIES 2048
#define RACY_NS     (2 * 1000000000LL)

typedef struct entry {
    struct entry *next;
    char *path, *name;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    wd_buf code;
} entry;

static entry *buckets[NBUCKETS];
static size_t nentries;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long hits, compiles; /* under mu */
static long long racy_ns = RACY_NS;
static int pinned; /* under mu: a cached version serves until wd_chunks_refresh replaces it */

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int same_version(const entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* NULL-safe */
static void entry_free(entry *e)
{
    if (!e)
        return;
    free(e->path);
    free(e->name);
    wd_buf_free(&e->code);
    free(e);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    return wd_buf_add(ud, p, n) < 0;
}

static int is_racy(const struct stat *st)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long m = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    long long c = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
    long long n = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    return n - m < racy_ns || n - c < racy_ns;
}

/* called with mu held */
static void clear_locked(void)
{
    for (int i = 0; i < NBUCKETS; i++)
        while (buckets[i]) {
            entry *x = buckets[i];
            buckets[i] = x->next;
            entry_free(x);
        }
    nentries = 0;
}

/* takes ownership of e; called with mu held */
static void insert(entry *e, unsigned b)
{
    if (nentries >= MAX_ENTRIES) /* a bound, not an LRU: this many distinct files is unusual */
        clear_locked();
    for (entry **pp = &buckets[b]; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->path, e->path) && !strcmp((*pp)->name, e->name)) {
            entry *old = *pp;
            e->next = old->next;
            *pp = e;
            entry_free(old);
            return;
        }
    e->next = buckets[b];
    buckets[b] = e;
    nentries++;
}

void wd_chunks_clear(void)
{
    pthread_mutex_lock(&mu);
    clear_locked();
    pthread_mutex_unlock(&mu);
}

void wd_chunks_set_racy_window(long ms)
{
    pthread_mutex_lock(&mu);
    racy_ns = ms * 1000000LL;
    pthread_mutex_unlock(&mu);
}

void wd_chunks_stats(long *h, long *c)
{
    pthread_mutex_lock(&mu);
    *h = hits;
    *c = compiles;
    pthread_mutex_unlock(&mu);
}

void wd_chunks_pin(int on)
{
    pthread_mutex_lock(&mu);
    pinned = on;
    pthread_mutex_unlock(&mu);
}

/* text compiled as chunk `name` and dumped into code (a state of its own: callers hold
** no Lua state); 0, or -1 with the compiler's message in err */
static int compile_dump(const char *text, size_t len, const char *name, wd_buf *code, char *err, size_t n)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        wd_errf(err, n, "out of memory");
        return -1;
    }
    int rc = luaL_loadbufferx(L, text, len, name, "t");
    if (rc != LUA_OK)
        wd_errf(err, n, "%s", lua_tostring(L, -1));
    else if (lua_dump(L, dump_writer, code, 0) != 0)
        wd_errf(err, n, "out of memory");
    else
        rc = -2; /* done */
    lua_close(L);
    return rc == -2 ? 0 : -1;
}

int wd_chunks_refresh(const char *path, char *err, size_t n)
{
    size_t len;
    char *text = wd_read_file(path, 4u << 20, &len);
    if (!text) {
        wd_errf(err, n, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char name[512];
    snprintf(name, sizeof name, "@%s", path);
    wd_buf probe = {0};
    int rc = compile_dump(text, len, name, &probe, err, n); /* the message names the file */
    wd_buf_free(&probe);
    if (rc < 0) {
        free(text);
        return -1;
    }
    /* every cached name of the file gets the new text: the names read under the lock, the
    ** text compiled for each outside it, the entries swapped in under it */
    unsigned b = hash(path) % NBUCKETS;
    int count = 0;
    pthread_mutex_lock(&mu);
    for (entry *e = buckets[b]; e; e = e->next)
        count += !strcmp(e->path, path);
    char **names = calloc((size_t)count + 1, sizeof *names);
    entry **fresh = calloc((size_t)count + 1, sizeof *fresh);
    int k = 0;
    for (entry *e = buckets[b]; names && e; e = e->next)
        if (!strcmp(e->path, path))
            names[k++] = wd_strdup(e->name);
    pthread_mutex_unlock(&mu);
    if (!names || !fresh) {
        wd_errf(err, n, "out of memory");
        rc = -1;
    }
    for (int i = 0; i < count && rc == 0; i++) {
        entry *e = calloc(1, sizeof *e);
        if (!e || !names[i] || !(e->path = wd_strdup(path)) || !(e->name = wd_strdup(names[i]))) {
            wd_errf(err, n, "out of memory");
            rc = -1;
        } else if (compile_dump(text, len, names[i], &e->code, err, n) < 0) {
            rc = -1;
        }
        if (rc < 0)
            entry_free(e);
        else
            fresh[i] = e;
    }
    pthread_mutex_lock(&mu);
    for (int i = 0; fresh && i < count; i++)
        if (rc == 0)
            insert(fresh[i], b); /* replaces the entry of the same name */
        else
            entry_free(fresh[i]);
    pthread_mutex_unlock(&mu);
    for (int i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
    free(fresh);
    free(text);
    return rc < 0 ? -1 : count;
}

void wd_chunks_forget(const char *path)
{
    unsigned b = hash(path) % NBUCKETS;
    pthread_mutex_lock(&mu);
    for (entry **pp = &buckets[b]; *pp;) {
        entry *e = *pp;
        if (!strcmp(e->path, path)) {
            *pp = e->next;
            entry_free(e);
            nentries--;
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&mu);
}

int wd_chunks_load(lua_State *L, const char *path, const char *chunkname)
{
    char name[512];
    snprintf(name, sizeof name, "@%s", chunkname);
    unsigned b = hash(path) % NBUCKETS;
    pthread_mutex_lock(&mu);
    if (pinned) /* the version the watcher last accepted, whatever the file holds now */
        for (entry *e = buckets[b]; e; e = e->next)
            if (!strcmp(e->path, path) && !strcmp(e->name, name)) {
                int rc = luaL_loadbufferx(L, e->code.p, e->code.len, name, "b");
                hits++;
                pthread_mutex_unlock(&mu);
                return rc;
            }
    pthread_mutex_unlock(&mu);
    struct stat st;
    if (stat(path, &st) < 0) {
        lua_pushfstring(L, "cannot read %s: %s", path, strerror(errno));
        return LUA_ERRFILE;
    }
    pthread_mutex_lock(&mu);
    for (entry *e = buckets[b]; e; e = e->next)
        if (!strcmp(e->path, path) && !strcmp(e->name, name) && same_version(e, &st)) {
            /* undumping under the lock: the entry cannot be replaced meanwhile */
            int rc = luaL_loadbufferx(L, e->code.p, e->code.len, name, "b");
            hits++;
            pthread_mutex_unlock(&mu);
            return rc;
        }
    compiles++;
    pthread_mutex_unlock(&mu);

    size_t len;
    char *text = wd_read_file(path, 4u << 20, &len);
    if (!text) {
        lua_pushfstring(L, "cannot read %s: %s", path, strerror(errno));
        return LUA_ERRFILE;
    }
    int rc = luaL_loadbufferx(L, text, len, name, "t");
    free(text);
    if (rc != LUA_OK || !S_ISREG(st.st_mode) || (size_t)st.st_size != len)
        return rc;
    pthread_mutex_lock(&mu);
    int racy = !pinned && is_racy(&st);
    pthread_mutex_unlock(&mu);
    if (racy)
        return rc;
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return rc;
    e->path = wd_strdup(path);
    e->name = wd_strdup(name);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->size = st.st_size;
    e->mtime = st.st_mtim;
    e->ctime = st.st_ctim;
    if (!e->path || !e->name || lua_dump(L, dump_writer, &e->code, 0) != 0) {
        entry_free(e);
        return rc;
    }
    pthread_mutex_lock(&mu);
    insert(e, b);
    pthread_mutex_unlock(&mu);
    return rc;
}
