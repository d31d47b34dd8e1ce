/* bound.c - caps on the fields of an audit record (see bound.h) */
#include "bound.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048 /* jansson's own: no record is deeper */

/* what one byte adds when jansson escapes it: \" \\ \b \f \n \r \t one, other controls five */
static size_t escape_extra(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
        return 1;
    return c < 0x20 ? 5 : 0; /* \u00XX */
}

/* ** A string's length as JSON text. Most text has nothing to escape: eight bytes at a
** time are tested for a control byte, a quote or a backslash (the classic "has a zero
** byte" and "has a byte less than n" word tricks), and only a word holding one is looked
** at byte by byte. Every record of the log passes here. */
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static size_t string_size(const char *s, size_t n)
{
    size_t extra = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
        uint64_t special = ((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b);
        if (!(special & HIGHS))
            continue;
        for (size_t k = 0; k < 8; k++)
            extra += escape_extra((unsigned char)s[i + k]);
    }
    for (; i < n; i++)
        extra += escape_extra((unsigned char)s[i]);
    return n + extra + 2;
}

static size_t digits(json_int_t v)
{
    size_t n = v < 0 ? 2 : 1;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    while (u >= 10) {
        u /= 10;
        n++;
    }
    return n;
}

static size_t size_of(const json_t *v, size_t stop, int depth)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return string_size(json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return digits(json_integer_value(v));
    case JSON_REAL: return 24;
    case JSON_TRUE: return 4;
    case JSON_FALSE: return 5;
    case JSON_NULL: return 4;
    case JSON_ARRAY: {
        size_t n = json_array_size(v), total = 2 + (n ? n - 1 : 0);
        for (size_t i = 0; i < n && total <= stop; i++)
            total += depth < MAX_DEPTH ? size_of(json_array_get(v, i), stop - total, depth + 1) : 4;
        return total;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v), total = 2 + (n ? n - 1 : 0);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (total > stop)
                break;
            total += string_size(k, strlen(k)) + 1;
            total += depth < MAX_DEPTH ? size_of(x, stop - (total < stop ? total : stop), depth + 1) : 4;
        }
        return total;
    }
    }
    return 4;
}

size_t wd_bound_size(const json_t *v, size_t stop) { return v ? size_of(v, stop, 0) : 4; }

/* the longest prefix of s, at most n bytes, that ends on a UTF-8 character boundary */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

typedef struct prefix {
    char *p;
    size_t len, cap;
} prefix;

/* json_dump_callback's sink: keeps the first cap bytes, then stops the dump */
static int keep(const char *buf, size_t n, void *ud)
{
    prefix *x = ud;
    size_t room = x->cap - x->len, k = n < room ? n : room;
    memcpy(x->p + x->len, buf, k);
    x->len += k;
    return x->len < x->cap ? 0 : -1;
}

/* a string of at most cap bytes of v's text; NULL out of memory */
static json_t *cut(const json_t *v, size_t cap)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        return json_stringn_nocheck(s, n <= cap ? n : utf8_cut(s, cap));
    }
    prefix x = {malloc(cap + 1), 0, cap + 1};
    if (!x.p)
        return NULL;
    json_dump_callback(v, keep, &x, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    size_t n = x.len <= cap ? x.len : utf8_cut(x.p, cap);
    json_t *s = json_stringn_nocheck(x.p, n);
    free(x.p);
    return s;
}

size_t wd_bound_record(json_t *rec, size_t cap, const char *big, size_t big_cap, int *ncut)
{
    size_t total = 2;
    int n = 0;
    const char *k;
    json_t *v;
    void *tmp;
    json_t *marks = NULL;
    json_object_foreach_safe(rec, tmp, k, v)
    {
        size_t c = big && !strcmp(k, big) ? big_cap : cap;
        size_t sz = size_of(v, c, 0);
        if (sz > c) {
            size_t full = size_of(v, SIZE_MAX, 0);
            json_t *s = cut(v, c > 2 ? c - 2 : 0);
            if (!marks)
                marks = json_object();
            json_object_set_new(marks, k, json_integer((json_int_t)full));
            json_object_set_new(rec, k, s ? s : json_null()); /* v is gone from here on */
            sz = c;
            n++;
        }
        total += string_size(k, strlen(k)) + 2 + sz;
    }
    if (marks) {
        total += 16 + size_of(marks, SIZE_MAX, 0);
        json_object_set_new(rec, "truncated", marks);
    }
    if (ncut)
        *ncut = n;
    return total;
}
