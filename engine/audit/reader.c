/* reader.c - the files of an audit log's chain, and their records in order */
#include "reader.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long wd_audit_file_number(const char *path, const char *name)
{
    size_t l = strlen(path);
    if (strncmp(name, path, l) || name[l] != '.' || !name[l + 1])
        return 0;
    char *end;
    long n = strtol(name + l + 1, &end, 10);
    return *end || n <= 0 || name[l + 1] < '1' || name[l + 1] > '9' ? 0 : n;
}

typedef struct numbered {
    long n;
    char *name;
} numbered;

static int by_number(const void *a, const void *b)
{
    long x = ((const numbered *)a)->n, y = ((const numbered *)b)->n;
    return x < y ? -1 : x > y;
}

void wd_audit_files_free(wd_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int wd_audit_files(const char *path, wd_strlist *out)
{
    out->v = NULL;
    out->n = 0;
    char *d1 = wd_strdup(path), *d2 = wd_strdup(path);
    if (!d1 || !d2) {
        free(d1);
        free(d2);
        return -1;
    }
    const char *dir = dirname(d1), *base = basename(d2);
    DIR *d = opendir(dir);
    numbered *v = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    if (!d)
        goto done;
    struct dirent *e;
    while ((e = readdir(d))) {
        long k = wd_audit_file_number(base, e->d_name);
        if (!k)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            numbered *nv = realloc(v, nc * sizeof *nv);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        if (asprintf(&v[n].name, "%s/%s", dir, e->d_name) < 0)
            break;
        v[n++].n = k;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, by_number);
    out->v = calloc(n + 1, sizeof(char *));
    if (!out->v)
        goto done;
    for (size_t i = 0; i < n; i++) {
        out->v[out->n++] = v[i].name;
        v[i].name = NULL;
    }
    if (access(path, F_OK) == 0)
        out->v[out->n++] = wd_strdup(path);
    rc = (int)out->n;
done:
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
    free(d1);
    free(d2);
    return rc;
}

int wd_audit_read(const char *path, wd_audit_each fn, void *ud)
{
    wd_strlist files;
    if (wd_audit_files(path, &files) <= 0) {
        wd_audit_files_free(&files);
        return -1;
    }
    int rc = 0, opened = 0;
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < files.n && !rc; i++) {
        FILE *f = fopen(files.v[i], "r");
        if (!f)
            continue;
        opened++;
        while (!rc && getline(&line, &cap, f) > 0) {
            json_t *r = json_loads(line, JSON_ALLOW_NUL, NULL);
            if (json_is_object(r))
                rc = fn(ud, r);
            json_decref(r);
        }
        fclose(f);
    }
    free(line);
    wd_audit_files_free(&files);
    return opened ? rc : -1;
}
