/* guard.c - forbidden patterns and resource confinement. */
#include "guard.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int scan(const wd_rxlist *fl, json_t *v, wd_buf *ptr, char *err, size_t errlen, int depth)
{
    if (depth > 64)
        return 0;
    if (json_is_string(v)) {
        for (size_t i = 0; i < fl->n; i++) {
            int m = wd_rx_match(fl->v[i], json_string_value(v), json_string_length(v));
            if (m != 0) { /* an error while matching is treated as a hit: fail closed */
                wd_errf(err, errlen, "%s: matches forbidden pattern '%s'", ptr->len ? ptr->p : "/",
                        wd_rx_source(fl->v[i]));
                return -1;
            }
        }
        return 0;
    }
    size_t mark = ptr->len;
    if (json_is_object(v)) {
        const char *k;
        json_t *kv;
        json_object_foreach(v, k, kv)
        {
            for (size_t i = 0; i < fl->n; i++)
                if (wd_rx_match(fl->v[i], k, strlen(k)) != 0) {
                    wd_errf(err, errlen, "%s/%s: key matches forbidden pattern '%s'", ptr->len ? ptr->p : "", k,
                            wd_rx_source(fl->v[i]));
                    return -1;
                }
            wd_buf_addf(ptr, "/%s", k);
            int rc = scan(fl, kv, ptr, err, errlen, depth + 1);
            ptr->len = mark;
            if (ptr->p)
                ptr->p[mark] = '\0';
            if (rc)
                return rc;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *iv;
        json_array_foreach(v, i, iv)
        {
            wd_buf_addf(ptr, "/%zu", i);
            int rc = scan(fl, iv, ptr, err, errlen, depth + 1);
            ptr->len = mark;
            if (ptr->p)
                ptr->p[mark] = '\0';
            if (rc)
                return rc;
        }
    }
    return 0;
}

static const wd_rx *first_match(const wd_rxlist *fl, const char *s)
{
    for (size_t i = 0; s && i < fl->n; i++)
        if (wd_rx_match(fl->v[i], s, strlen(s)) != 0) /* an error counts as a hit */
            return fl->v[i];
    return NULL;
}

const wd_rx *wd_guard_path_forbidden(const wd_rxlist *fl, const char *base, const char *raw, const char *canon)
{
    if (!fl || !fl->n)
        return NULL;
    const wd_rx *hit = first_match(fl, raw);
    if (hit || !canon)
        return hit;
    if ((hit = first_match(fl, canon)))
        return hit;
    char *b = realpath(base ? base : ".", NULL);
    size_t l = b ? strlen(b) : 0;
    if (b && !strncmp(canon, b, l) && canon[l] == '/')
        hit = first_match(fl, canon + l + 1);
    free(b);
    return hit;
}

int wd_guard_patterns(const wd_rxlist *forbidden, const wd_schema *schema, const char *base, json_t *args, char *err,
                      size_t errlen)
{
    if (!forbidden || !forbidden->n)
        return 0;
    wd_buf ptr = {0};
    int rc = scan(forbidden, args, &ptr, err, errlen, 0);
    wd_buf_free(&ptr);
    const char *k;
    json_t *v;
    if (rc == 0 && json_is_object(args))
        json_object_foreach(args, k, v)
        {
            if (!json_is_string(v) || !wd_guard_is_path_arg(k, schema))
                continue;
            char *c = wd_guard_canon(base, json_string_value(v));
            const wd_rx *hit = wd_guard_path_forbidden(forbidden, base, NULL, c);
            if (hit) {
                wd_errf(err, errlen, "/%s: path '%s' is '%s', which matches forbidden pattern '%s'", k,
                        json_string_value(v), c, wd_rx_source(hit));
                rc = -1;
            }
            free(c);
            if (rc)
                break;
        }
    return rc;
}

/* lexical normalization of an absolute path: removes ., .., and repeated slashes */
static void normalize(char *p)
{
    char *out = p, *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        if (!*in)
            break;
        char *seg = in;
        while (*in && *in != '/')
            in++;
        size_t l = (size_t)(in - seg);
        if (l == 1 && seg[0] == '.')
            continue;
        if (l == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, l);
        out += l;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

char *wd_guard_canon(const char *base, const char *path)
{
    char *full = NULL;
    if (!path || !*path || strlen(path) > PATH_MAX || memchr(path, '\0', strlen(path) + 1) != path + strlen(path))
        return NULL;
    if (path[0] == '/') {
        full = strdup(path);
    } else {
        char *b = realpath(base ? base : ".", NULL);
        if (!b)
            return NULL;
        if (asprintf(&full, "%s/%s", b, path) < 0)
            full = NULL;
        free(b);
    }
    if (!full)
        return NULL;
    normalize(full);
    /* resolve the longest prefix that exists: symlinks inside it are followed */
    size_t len = strlen(full);
    for (size_t cut = len; cut > 0; cut--) {
        if (cut != len && full[cut] != '/')
            continue;
        char save = full[cut];
        full[cut] = '\0';
        char *r = realpath(cut ? full : "/", NULL);
        full[cut] = save;
        if (!r)
            continue;
        char *res = NULL;
        if (asprintf(&res, "%s%s", r, full + cut) < 0)
            res = NULL;
        free(r);
        free(full);
        if (res)
            normalize(res);
        return res;
    }
    return full;
}

int wd_guard_path_allowed(const wd_strlist *roots, const char *base, const char *canon)
{
    for (size_t i = 0; roots && i < roots->n; i++) {
        char *r = wd_guard_canon(base, roots->v[i]);
        if (!r)
            continue;
        size_t l = strlen(r);
        int ok = !strncmp(canon, r, l) && (canon[l] == '\0' || canon[l] == '/' || (l == 1 && r[0] == '/'));
        free(r);
        if (ok)
            return 1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int wd_guard_is_path_arg(const char *name, const wd_schema *schema)
{
    static const char *const names[] = {"path", "file", "filename", "filepath", "dir", "directory", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i]))
            return 1;
    if (ends_with(name, "_path") || ends_with(name, "_file") || ends_with(name, "_dir"))
        return 1;
    return wd_schema_is_path_prop(schema, name);
}

int wd_guard_resources(const wd_tool_policy *tp, const wd_schema *schema, const char *base, json_t *args, char *err,
                       size_t errlen)
{
    if (!tp->allowed_resources.n || !json_is_object(args))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(args, k, v)
    {
        if (!wd_guard_is_path_arg(k, schema))
            continue;
        /* a path, or a list of them (read_multiple_files's paths) */
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(one)) {
                wd_errf(err, errlen, "/%s: a path must be a string, or a list of strings", k);
                return -1;
            }
            char *c = wd_guard_canon(base, json_string_value(one));
            int ok = c && wd_guard_path_allowed(&tp->allowed_resources, base, c);
            free(c);
            if (!ok) {
                wd_errf(err, errlen, "/%s: path '%s' is outside the allowed resources", k, json_string_value(one));
                return -1;
            }
        }
    }
    return 0;
}

json_t *wd_guard_touched(const wd_schema *schema, const char *base, const json_t *args)
{
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v)
    {
        if (!wd_guard_is_path_arg(k, schema))
            continue;
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
            char *c = json_is_string(one) ? wd_guard_canon(base, json_string_value(one)) : NULL;
            if (c)
                json_array_append_new(out, json_string(c));
            free(c);
        }
    }
    return out;
}
