/* canon.c - canonical JSON text, the form the audit chain hashes. */
#include "canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH  2048
#define STACK_KEYS 32

/* 1 where a byte must be escaped: ", \ and the C0 controls (jansson escapes no more) */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

static int put_string(wd_buf *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789ABCDEF";
    if (wd_buf_add(b, "\"", 1) < 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c])
            continue;
        if (i > run && wd_buf_add(b, s + run, i - run) < 0)
            return -1;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hexd[c >> 4], e[5] = hexd[c & 15]; el = 6;
        }
        if (wd_buf_add(b, e, el) < 0)
            return -1;
        run = i + 1;
    }
    if (n > run && wd_buf_add(b, s + run, n - run) < 0)
        return -1;
    return wd_buf_add(b, "\"", 1);
}

/* jansson's real format: %.15g (the audit's precision) or %.17g (its default), ".0"
** when it would read back as an integer, and the exponent without '+' or leading zeros */
static int put_real(wd_buf *b, double d, int sorted)
{
    char t[64];
    int n = snprintf(t, sizeof t - 3, sorted ? "%.15g" : "%.17g", d);
    if (n < 0 || n >= (int)sizeof t - 3)
        return -1;
    if (!strchr(t, '.') && !strchr(t, 'e')) {
        memcpy(t + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(t, 'e');
    if (e) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(t + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    return wd_buf_add(b, t, (size_t)n);
}

typedef struct {
    const char *k;
    json_t *v;
} pair;

/* bytewise, the first byte inline: most keys of a record differ there */
static inline int key_cmp(const char *a, const char *b)
{
    int d = (unsigned char)a[0] - (unsigned char)b[0];
    return d ? d : strcmp(a, b);
}

static int cmp_pairs(const void *a, const void *b) { return key_cmp(((const pair *)a)->k, ((const pair *)b)->k); }

static int put(const json_t *v, wd_buf *b, int depth, int sorted);

static int sorted_pairs(const json_t *v, pair *stack, pair **out);

/* the members sorted by key, each value taken with its key (no second lookup) */
static int put_object(const json_t *v, wd_buf *b, int depth, int sorted)
{
    if (!sorted) {
        const char *k;
        json_t *x;
        int rc = wd_buf_add(b, "{", 1), first = 1;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                rc |= wd_buf_add(b, ",", 1);
            first = 0;
            rc |= put_string(b, k, strlen(k));
            rc |= wd_buf_add(b, ":", 1);
            if (rc || put(x, b, depth + 1, 0) < 0)
                return -1;
        }
        return rc ? -1 : wd_buf_add(b, "}", 1);
    }
    pair stack[STACK_KEYS], *m;
    int n = sorted_pairs(v, stack, &m);
    if (n < 0)
        return -1;
    int rc = wd_buf_add(b, "{", 1);
    for (int i = 0; !rc && i < n; i++) {
        if (i)
            rc |= wd_buf_add(b, ",", 1);
        rc |= put_string(b, m[i].k, strlen(m[i].k));
        rc |= wd_buf_add(b, ":", 1);
        if (!rc)
            rc = put(m[i].v, b, depth + 1, 1);
    }
    if (m != stack)
        free(m);
    return rc ? -1 : wd_buf_add(b, "}", 1);
}

static int put(const json_t *v, wd_buf *b, int depth, int sorted)
{
    if (depth > MAX_DEPTH)
        return -1;
    char t[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: return put_object(v, b, depth, sorted);
    case JSON_ARRAY: {
        if (wd_buf_add(b, "[", 1) < 0)
            return -1;
        for (size_t i = 0, n = json_array_size(v); i < n; i++)
            if ((i && wd_buf_add(b, ",", 1) < 0) || put(json_array_get(v, i), b, depth + 1, sorted) < 0)
                return -1;
        return wd_buf_add(b, "]", 1);
    }
    case JSON_STRING: return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: { /* digits from the end, without printf */
        json_int_t i = json_integer_value(v);
        unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
        char *e = t + sizeof t, *d = e;
        do
            *--d = (char)('0' + u % 10);
        while ((u /= 10));
        if (i < 0)
            *--d = '-';
        return wd_buf_add(b, d, (size_t)(e - d));
    }
    case JSON_REAL: return put_real(b, json_real_value(v), sorted);
    case JSON_TRUE: return wd_buf_add(b, "true", 4);
    case JSON_FALSE: return wd_buf_add(b, "false", 5);
    case JSON_NULL: return wd_buf_add(b, "null", 4);
    }
    return -1;
}

static int sorted_pairs(const json_t *v, pair *stack, pair **out)
{
    size_t n = json_object_size(v), i = 0;
    pair *m = stack;
    *out = stack;
    if (n > STACK_KEYS && !(m = malloc(n * sizeof *m)))
        return -1;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (i == n)
            break;
        m[i++] = (pair){k, x};
    }
    n = i;                 /* what was filled is what is sorted */
    if (n <= STACK_KEYS) { /* records are small: insertion sort beats qsort's calls */
        for (size_t a = 1; a < n; a++)
            for (size_t c = a; c > 0 && key_cmp(m[c - 1].k, m[c].k) > 0; c--) {
                pair t = m[c];
                m[c] = m[c - 1];
                m[c - 1] = t;
            }
    } else {
        qsort(m, n, sizeof *m, cmp_pairs);
    }
    *out = m;
    return (int)n;
}

int wd_json_canon_members(const json_t *v, wd_buf *out, const char *const *skip, size_t *at)
{
    if (!json_is_object(v))
        return -1;
    pair stack[STACK_KEYS], *m;
    int n = sorted_pairs(v, stack, &m), rc = n < 0 ? -1 : 0;
    size_t j = 0;
    for (int i = 0; !rc && i < n; i++) {
        int c = 1;
        while (skip[j] && (c = strcmp(skip[j], m[i].k)) <= 0)
            at[j++] = out->len;
        if (c == 0)
            continue; /* a member the caller writes itself */
        rc |= wd_buf_add(out, ",", 1);
        rc |= put_string(out, m[i].k, strlen(m[i].k));
        rc |= wd_buf_add(out, ":", 1);
        if (!rc)
            rc = put(m[i].v, out, 1, 1);
    }
    for (; skip[j]; j++)
        at[j] = out->len;
    if (m != stack)
        free(m);
    return rc ? -1 : 0;
}

int wd_json_canon(const json_t *v, wd_buf *out)
{
    if (!v)
        return -1;
    return put(v, out, 0, 1);
}

int wd_json_compact(const json_t *v, wd_buf *out)
{
    if (!v)
        return -1;
    return put(v, out, 0, 0);
}

int wd_json_put_string(wd_buf *out, const char *s, size_t n) { return put_string(out, s, n); }

char *wd_json_compact_text(const json_t *v)
{
    wd_buf b = {0};
    if (wd_json_compact(v, &b) < 0) {
        wd_buf_free(&b);
        return NULL;
    }
    return b.p;
}
