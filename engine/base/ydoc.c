/* ydoc.c - libyaml events into a bounded node tree. */
#include "ydoc.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    wd_ynode *stack[WD_YDOC_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    wd_ynode *root;
} builder;

/* caller frees with wd_ydoc_free */
static wd_ynode *node_new(wd_ykind k, const yaml_mark_t *m)
{
    wd_ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = k;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

void wd_ydoc_free(wd_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        wd_ydoc_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static int node_push(wd_ynode *parent, wd_ynode *kid)
{
    if ((parent->n & (parent->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = parent->n ? parent->n * 2 : 4;
        wd_ynode **k = realloc(parent->kids, cap * sizeof *k);
        if (!k)
            return -1;
        parent->kids = k;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

/* takes ownership of n; attaches it to the open collection or makes it the root */
static int attach(builder *b, wd_ynode *n)
{
    if (b->depth == 0) {
        if (b->root) { /* a second document: refused before it gets here */
            wd_ydoc_free(n);
            return -1;
        }
        b->root = n;
        return 0;
    }
    if (node_push(b->stack[b->depth - 1], n) < 0) {
        wd_ydoc_free(n);
        return -1;
    }
    return 0;
}

/* a scalar event as a node attached where it belongs; 0, or -1 with err */
static int on_scalar(builder *b, const yaml_event_t *ev, char *err, size_t errlen)
{
    const yaml_mark_t *m = &ev->start_mark;
    if (ev->data.scalar.length > WD_YDOC_MAX_SCALAR) {
        wd_errf(err, errlen, "%d:%d: scalar of %zu bytes; the limit is %u", (int)m->line + 1, (int)m->column + 1,
                ev->data.scalar.length, WD_YDOC_MAX_SCALAR);
        return -1;
    }
    if (++b->nodes > WD_YDOC_MAX_NODES) {
        wd_errf(err, errlen, "%d:%d: more than %d nodes", (int)m->line + 1, (int)m->column + 1, WD_YDOC_MAX_NODES);
        return -1;
    }
    wd_ynode *n = node_new(WD_Y_SCALAR, m);
    if (n) {
        /* all the bytes: a "\0" escape puts a NUL inside the value, and len counts past it */
        n->len = ev->data.scalar.length;
        if ((n->str = malloc(n->len + 1))) {
            memcpy(n->str, ev->data.scalar.value, n->len);
            n->str[n->len] = '\0';
        }
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!n->str) {
            wd_ydoc_free(n);
            n = NULL;
        }
    }
    if (!n || attach(b, n) < 0) {
        wd_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* a sequence or mapping starts: a node attached and entered; 0, or -1 with err */
static int on_start(builder *b, const yaml_event_t *ev, char *err, size_t errlen)
{
    const yaml_mark_t *m = &ev->start_mark;
    int seq = ev->type == YAML_SEQUENCE_START_EVENT;
    if (b->depth > 0 && b->stack[b->depth - 1]->kind == WD_Y_MAP && b->stack[b->depth - 1]->n % 2 == 0) {
        /* a mapping's key: every reader of these trees takes keys as text */
        wd_errf(err, errlen, "%d:%d: a key must be a plain name, not a %s", (int)m->line + 1, (int)m->column + 1,
                seq ? "list" : "mapping");
        return -1;
    }
    if (b->depth >= WD_YDOC_MAX_DEPTH) {
        wd_errf(err, errlen, "%d:%d: nesting deeper than %d levels", (int)m->line + 1, (int)m->column + 1,
                WD_YDOC_MAX_DEPTH);
        return -1;
    }
    if (++b->nodes > WD_YDOC_MAX_NODES) {
        wd_errf(err, errlen, "%d:%d: more than %d nodes", (int)m->line + 1, (int)m->column + 1, WD_YDOC_MAX_NODES);
        return -1;
    }
    wd_ynode *n = node_new(seq ? WD_Y_SEQ : WD_Y_MAP, m);
    if (!n || attach(b, n) < 0) {
        wd_errf(err, errlen, "out of memory");
        return -1;
    }
    b->stack[b->depth++] = n;
    return 0;
}

/* one parser event into the tree: 0 go on, 1 the stream ended, -1 refused (err says why) */
static int on_event(builder *b, const yaml_event_t *ev, int *docs, char *err, size_t errlen)
{
    const yaml_mark_t *m = &ev->start_mark;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1) {
            wd_errf(err, errlen, "%d:%d: only one YAML document is allowed per file", (int)m->line + 1,
                    (int)m->column + 1);
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        wd_errf(err, errlen, "%d:%d: aliases (*%s) are not allowed; write the value out", (int)m->line + 1,
                (int)m->column + 1, (const char *)ev->data.alias.anchor);
        return -1;
    case YAML_SCALAR_EVENT: return on_scalar(b, ev, err, errlen);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: return on_start(b, ev, err, errlen);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0) /* libyaml pairs them; nothing here trusts that it does */
            b->depth--;
        return 0;
    default: return 0;
    }
}

wd_ynode *wd_ydoc_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    builder b;
    memset(&b, 0, sizeof b);
    int docs = 0, rc = 0;
    if (len > WD_YDOC_MAX_BYTES) {
        wd_errf(err, errlen, "1:1: file is %zu bytes; the limit is %u", len, WD_YDOC_MAX_BYTES);
        return NULL;
    }
    if (!yaml_parser_initialize(&p)) {
        wd_errf(err, errlen, "1:1: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&p, &ev)) {
            wd_errf(err, errlen, "%d:%d: %s%s%s", (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1,
                    p.problem ? p.problem : "syntax error", p.context ? " " : "", p.context ? p.context : "");
            rc = -1;
            break;
        }
        rc = on_event(&b, &ev, &docs, err, errlen);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc < 0) {
        wd_ydoc_free(b.root);
        return NULL;
    }
    if (!b.root) {
        yaml_mark_t m = {0, 0, 0};
        b.root = node_new(WD_Y_MAP, &m);
        if (!b.root) {
            wd_errf(err, errlen, "1:1: out of memory");
            return NULL;
        }
    }
    return b.root;
}

int wd_ydoc_is_null(const wd_ynode *n)
{
    if (!n || n->kind != WD_Y_SCALAR || !n->plain)
        return 0;
    return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") || !strcmp(n->str, "Null") ||
           !strcmp(n->str, "NULL");
}

int wd_ydoc_bool(const wd_ynode *n, int *out)
{
    if (!n || n->kind != WD_Y_SCALAR || !n->plain)
        return -1;
    if (!strcmp(n->str, "true") || !strcmp(n->str, "True") || !strcmp(n->str, "TRUE")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(n->str, "false") || !strcmp(n->str, "False") || !strcmp(n->str, "FALSE")) {
        *out = 0;
        return 0;
    }
    return -1;
}

int wd_ydoc_int(const wd_ynode *n, long long *out)
{
    if (!n || n->kind != WD_Y_SCALAR || !n->plain || !n->len)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(n->str, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int wd_ydoc_number(const wd_ynode *n, double *out)
{
    if (!n || n->kind != WD_Y_SCALAR || !n->plain || !n->len)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    if (errno || *end || !isfinite(v) || (n->str[0] == '0' && (n->str[1] == 'x' || n->str[1] == 'X')))
        return -1;
    *out = v;
    return 0;
}

wd_ynode *wd_ydoc_get(const wd_ynode *map, const char *key)
{
    if (!map || map->kind != WD_Y_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (map->kids[i]->kind == WD_Y_SCALAR && !strcmp(map->kids[i]->str, key))
            return map->kids[i + 1];
    return NULL;
}

json_t *wd_ydoc_to_json(const wd_ynode *n)
{
    json_t *j = NULL;
    switch (n->kind) {
    case WD_Y_SCALAR: {
        long long iv;
        double dv;
        int bv;
        if (wd_ydoc_is_null(n))
            return json_null();
        if (wd_ydoc_bool(n, &bv) == 0)
            return json_boolean(bv);
        if (wd_ydoc_int(n, &iv) == 0)
            return json_integer(iv);
        if (wd_ydoc_number(n, &dv) == 0)
            return json_real(dv);
        j = json_stringn(n->str, n->len);
        return j ? j : json_string("");
    }
    case WD_Y_SEQ:
        j = json_array();
        for (size_t i = 0; j && i < n->n; i++)
            if (json_array_append_new(j, wd_ydoc_to_json(n->kids[i])) < 0) {
                json_decref(j);
                return NULL;
            }
        return j;
    case WD_Y_MAP:
        j = json_object();
        for (size_t i = 0; j && i + 1 < n->n; i += 2) {
            const wd_ynode *k = n->kids[i];
            if (k->kind != WD_Y_SCALAR)
                continue;
            if (json_object_set_new(j, k->str, wd_ydoc_to_json(n->kids[i + 1])) < 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    }
    return NULL;
}

const wd_ynode *wd_ydoc_find_nul(const wd_ynode *n)
{
    if (!n)
        return NULL;
    if (n->kind == WD_Y_SCALAR)
        return n->str && strlen(n->str) != n->len ? n : NULL;
    for (size_t i = 0; i < n->n; i++) {
        const wd_ynode *f = wd_ydoc_find_nul(n->kids[i]);
        if (f)
            return f;
    }
    return NULL;
}
