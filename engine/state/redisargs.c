/* redisargs.c - the arguments of one script call (wd_rd_args, redispriv.h): strings
** borrowed, numbers written out and kept until the call is done */
#include "redispriv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wd_rd_init(wd_rd_args *a, const wd_redis *r)
{
    memset(a, 0, sizeof *a);
    wd_rd_s(a, r->prefix);
}

/* one more slot; -1 out of memory (remembered: the call fails) */
static int grow(wd_rd_args *a)
{
    if (a->n < a->cap)
        return 0;
    int cap = a->cap ? 2 * a->cap : 16;
    const char **v = realloc(a->v, cap * sizeof *v);
    if (v)
        a->v = v;
    size_t *len = v ? realloc(a->len, cap * sizeof *len) : NULL;
    if (len)
        a->len = len;
    char **num = len ? realloc(a->num, cap * sizeof *num) : NULL;
    if (!num) {
        a->oom = 1;
        return -1;
    }
    a->num = num;
    a->cap = cap;
    return 0;
}

void wd_rd_b(wd_rd_args *a, const void *p, size_t n)
{
    if (grow(a) < 0)
        return;
    a->v[a->n] = p;
    a->len[a->n] = n;
    a->num[a->n++] = NULL;
}

void wd_rd_s(wd_rd_args *a, const char *str) { wd_rd_b(a, str ? str : "", str ? strlen(str) : 0); }

void wd_rd_i(wd_rd_args *a, long long v)
{
    char *t = malloc(24);
    if (!t || grow(a) < 0) {
        a->oom = 1;
        free(t);
        return;
    }
    int len = snprintf(t, 24, "%lld", v);
    wd_rd_b(a, t, (size_t)len);
    a->num[a->n - 1] = t;
}

void wd_rd_done(wd_rd_args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->num[i]);
    free(a->v);
    free(a->len);
    free(a->num);
    memset(a, 0, sizeof *a);
}
