/* version.c - an agent's version: its files hashed, remembered while they stay put */
#include "version.h"
#include "util.h"

#include <dirent.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES 256
#define MAX_DIRS  16 /* agents remembered; more and the oldest is forgotten */

typedef struct one {
    char *dir;
    uint64_t stamp; /* of the files' names, sizes, times and inodes */
    char version[65];
} one;

struct wd_versions {
    one v[MAX_DIRS];
    int next;
};

typedef struct list {
    char *names[MAX_FILES];
    int n;
} list;

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the regular files of dir (or only *.lua) into l */
static void add_dir(list *l, const char *dir, int lua_only)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && l->n < MAX_FILES) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || (lua_only && (len < 5 || strcmp(e->d_name + len - 4, ".lua"))))
            continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, e->d_name) > 0)
            l->names[l->n++] = p;
    }
    closedir(d);
}

/* FNV-1a over bytes, continued from h */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* the files' stamp; the files that are not regular (or gone) are dropped from l */
static uint64_t stamp_of(list *l)
{
    uint64_t h = 14695981039346656037ULL;
    for (int i = 0; i < l->n; i++) {
        struct stat st;
        if (stat(l->names[i], &st) < 0 || !S_ISREG(st.st_mode)) {
            l->names[i][0] = '\0';
            continue;
        }
        int64_t f[5] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                        (int64_t)st.st_ino, (int64_t)st.st_ctim.tv_nsec};
        h = fnv(h, l->names[i], strlen(l->names[i]) + 1);
        h = fnv(h, f, sizeof f);
    }
    return h;
}

static int hash_files(const list *l, char out[65])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (int i = 0; i < l->n; i++) {
        if (!l->names[i][0])
            continue;
        size_t len;
        char *text = wd_read_file(l->names[i], 4u << 20, &len);
        if (!text)
            return -1;
        const char *base = strrchr(l->names[i], '/');
        base = base ? base + 1 : l->names[i];
        crypto_hash_sha256_update(&st, (const unsigned char *)base, strlen(base) + 1);
        crypto_hash_sha256_update(&st, (const unsigned char *)text, len);
        free(text);
    }
    unsigned char d[32];
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(out, 65, d, sizeof d);
    return 0;
}

const char *wd_agent_version(wd_versions **vsp, const char *agent_dir, const char *agent_path)
{
    if (!*vsp && !(*vsp = calloc(1, sizeof **vsp)))
        return "unreadable";
    wd_versions *vs = *vsp;
    list l = {.n = 0};
    char sub[4096];
    l.names[l.n++] = wd_strdup(agent_path);
    snprintf(sub, sizeof sub, "%s/tools", agent_dir);
    add_dir(&l, sub, 1);
    snprintf(sub, sizeof sub, "%s/prompts", agent_dir);
    add_dir(&l, sub, 0);
    snprintf(sub, sizeof sub, "%s/../tools", agent_dir);
    add_dir(&l, sub, 1);
    if (l.n > 1)
        qsort(l.names + 1, (size_t)l.n - 1, sizeof *l.names, by_name);
    int ok = l.names[0] != NULL;
    uint64_t stamp = ok ? stamp_of(&l) : 0;
    one *slot = NULL;
    for (int i = 0; ok && i < MAX_DIRS; i++)
        if (vs->v[i].dir && !strcmp(vs->v[i].dir, agent_dir))
            slot = &vs->v[i];
    const char *res = "unreadable";
    if (slot && slot->stamp == stamp) {
        res = slot->version;
    } else if (ok) {
        if (!slot) {
            slot = &vs->v[vs->next];
            vs->next = (vs->next + 1) % MAX_DIRS;
            free(slot->dir);
            slot->dir = wd_strdup(agent_dir);
        }
        slot->stamp = stamp;
        if (slot->dir && hash_files(&l, slot->version) == 0) {
            res = slot->version;
        } else {
            free(slot->dir);
            slot->dir = NULL;
        }
    }
    for (int i = 0; i < l.n; i++)
        free(l.names[i]);
    return res;
}

void wd_versions_free(wd_versions *vs)
{
    if (!vs)
        return;
    for (int i = 0; i < MAX_DIRS; i++)
        free(vs->v[i].dir);
    free(vs);
}
