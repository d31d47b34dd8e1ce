/* yread.c - a policy's YAML nodes read into its fields, with errors (yread.h) */
#include "yread.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void wd_yread_err(wd_yread *c, const wd_ynode *n, const char *fmt, ...)
{
    wd_buf b = {0};
    va_list ap;
    wd_buf_addf(&b, "%s:%d:%d: ", n && n->file ? n->file : c->fname, n ? n->line : 1, n ? n->col : 1);
    va_start(ap, fmt);
    wd_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    if (!b.p)
        return;
    char **v = realloc(c->errs->v, (c->errs->n + 1) * sizeof *v);
    if (!v) {
        wd_buf_free(&b);
        return;
    }
    c->errs->v = v;
    v[c->errs->n++] = b.p;
}

void wd_perrors_free(wd_perrors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* report keys of map not in keys[]; 0 when the node is a map */
int wd_yread_map(wd_yread *c, const wd_ynode *n, const char *where, const char *const *keys)
{
    if (!n || n->kind != WD_Y_MAP) {
        wd_yread_err(c, n, "%s must be a mapping (key: value lines)", where);
        return -1;
    }
    for (size_t i = 0; i + 1 < n->n; i += 2) {
        const wd_ynode *k = n->kids[i];
        if (k->kind != WD_Y_SCALAR) {
            wd_yread_err(c, k, "%s: keys must be plain names", where);
            continue;
        }
        for (size_t j = i + 2; j + 1 < n->n; j += 2)
            if (n->kids[j]->kind == WD_Y_SCALAR && !strcmp(n->kids[j]->str, k->str))
                wd_yread_err(c, n->kids[j], "%s: key '%s' appears twice (first at line %d); keep one", where, k->str,
                             k->line);
        if (!keys)
            continue;
        int found = 0;
        const char *best = NULL;
        size_t bestd = 3;
        for (const char *const *kk = keys; *kk; kk++) {
            if (!strcmp(*kk, k->str)) {
                found = 1;
                break;
            }
            size_t d = edit_distance(*kk, k->str);
            if (d < bestd) {
                bestd = d;
                best = *kk;
            }
        }
        if (found)
            continue;
        if (best) {
            wd_yread_err(c, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where, best);
        } else {
            wd_buf b = {0};
            for (const char *const *kk = keys; *kk; kk++)
                wd_buf_addf(&b, "%s%s", kk == keys ? "" : ", ", *kk);
            wd_yread_err(c, k, "unknown key '%s' in %s; expected one of: %s", k->str, where, b.p ? b.p : "");
            wd_buf_free(&b);
        }
    }
    return 0;
}

long long wd_policy_duration(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0)) /* NaN too: no conversion to an integer below */
        return -1;
    double mul;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return -1;
    double ms = v * mul;
    if (!(ms <= 9.0e15))
        return -1;
    return (long long)ms;
}

void wd_yread_int(wd_yread *c, const wd_ynode *m, const char *key, const char *where, long long *dst, long long lo,
                  long long hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    long long v;
    if (!n)
        return;
    if (wd_ydoc_int(n, &v) < 0) {
        wd_yread_err(c, n, "%s.%s must be a whole number, e.g. %s: %lld", where, key, key, *dst);
        return;
    }
    if (v < lo || v > hi) {
        wd_yread_err(c, n, "%s.%s is %lld; write a number from %lld to %lld", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

void wd_yread_dur(wd_yread *c, const wd_ynode *m, const char *key, const char *where, long long *dst, long long lo,
                  long long hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    if (!n)
        return;
    long long v = n->kind == WD_Y_SCALAR ? wd_policy_duration(n->str) : -1;
    if (v < 0) {
        wd_yread_err(c, n, "%s.%s must be a duration: milliseconds (5000) or a string like 90s, 15m, 4h", where, key);
        return;
    }
    if (v < lo || v > hi) {
        wd_yread_err(c, n, "%s.%s is %lld ms; write a duration from %lld ms to %lld ms", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

void wd_yread_num(wd_yread *c, const wd_ynode *m, const char *key, const char *where, double *dst, double lo, double hi)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    double v;
    if (!n)
        return;
    if (wd_ydoc_number(n, &v) < 0) {
        wd_yread_err(c, n, "%s.%s must be a number, e.g. %s: %g", where, key, key, *dst);
        return;
    }
    if (v < lo || v > hi) {
        wd_yread_err(c, n, "%s.%s is %g; write a number from %g to %g", where, key, v, lo, hi);
        return;
    }
    *dst = v;
}

void wd_yread_bool(wd_yread *c, const wd_ynode *m, const char *key, const char *where, int *dst)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    int v;
    if (!n)
        return;
    if (wd_ydoc_bool(n, &v) < 0) {
        wd_yread_err(c, n, "%s.%s must be true or false", where, key);
        return;
    }
    *dst = v;
}

/* *dst is replaced (old value freed) */
void wd_yread_str(wd_yread *c, const wd_ynode *m, const char *key, const char *where, char **dst)
{
    const wd_ynode *n = wd_ydoc_get(m, key);
    if (!n)
        return;
    if (n->kind != WD_Y_SCALAR || wd_ydoc_is_null(n)) {
        wd_yread_err(c, n, "%s.%s must be a string", where, key);
        return;
    }
    free(*dst);
    *dst = wd_strdup(n->str);
}

int wd_yread_strlist(wd_yread *c, const wd_ynode *n, const char *where, wd_strlist *out)
{
    if (!n)
        return 0;
    if (n->kind != WD_Y_SEQ) {
        wd_yread_err(c, n, "%s must be a list, e.g. [a, b]", where);
        return -1;
    }
    out->v = calloc(n->n ? n->n : 1, sizeof *out->v);
    if (!out->v)
        return -1;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kids[i]->kind != WD_Y_SCALAR) {
            wd_yread_err(c, n->kids[i], "%s[%zu] must be a string", where, i);
            continue;
        }
        if (!(out->v[out->n] = wd_strdup(n->kids[i]->str))) {
            wd_yread_err(c, n->kids[i], "out of memory");
            return -1;
        }
        out->n++;
    }
    return 0;
}

void wd_yread_strlist_free(wd_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL; /* empty again: a list read twice (a default, then the file's) starts over */
    l->n = 0;
}

void wd_yread_rxlist_free(wd_rxlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        wd_rx_free(l->v[i]);
    free(l->v);
}

void wd_yread_rxlist(wd_yread *c, const wd_ynode *n, const char *where, wd_rxlist *out)
{
    if (!n)
        return;
    if (n->kind != WD_Y_SEQ) {
        wd_yread_err(c, n, "%s must be a list of patterns, e.g. ['\\.env$', 'secret']", where);
        return;
    }
    out->v = calloc(n->n ? n->n : 1, sizeof *out->v);
    if (!out->v)
        return;
    for (size_t i = 0; i < n->n; i++) {
        char e[200];
        if (n->kids[i]->kind != WD_Y_SCALAR) {
            wd_yread_err(c, n->kids[i], "%s[%zu] must be a pattern string", where, i);
            continue;
        }
        wd_rx *rx = wd_rx_compile(n->kids[i]->str, WD_RX_CASELESS, e, sizeof e);
        if (!rx) {
            wd_yread_err(c, n->kids[i], "%s[%zu]: %s; quote the pattern in single quotes so YAML keeps backslashes",
                         where, i, e);
            continue;
        }
        out->v[out->n++] = rx;
    }
}

/* 1 when s is in the NULL-ended list l */
int wd_yread_in_list(const char *s, const char *const *l)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return 1;
    return 0;
}
