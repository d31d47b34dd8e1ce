/* schema.c - compiled JSON Schema validation with JSON-pointer messages. */
#include "schema.h"
#include "rx.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ANY = 127 };

struct wd_schema {
    unsigned types;
    size_t nprops;
    char **prop_names;
    wd_schema **props;
    char **required;
    size_t nrequired;
    int additional; /* 1 allowed (default), 0 forbidden, 2 schema */
    wd_schema *additional_schema;
    json_t *enum_;  /* array or NULL */
    json_t *const_; /* value or NULL */
    int has_min, has_max, has_xmin, has_xmax;
    double min, max, xmin, xmax;
    long long min_len, max_len; /* -1 unset */
    wd_rx *pattern;
    wd_schema *items;
    long long min_items, max_items; /* -1 unset */
    json_t *default_;
    int is_path; /* format: path */
};

void wd_schema_free(wd_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nprops; i++) {
        free(s->prop_names[i]);
        wd_schema_free(s->props[i]);
    }
    free(s->prop_names);
    free(s->props);
    for (size_t i = 0; i < s->nrequired; i++)
        free(s->required[i]);
    free(s->required);
    wd_schema_free(s->additional_schema);
    json_decref(s->enum_);
    json_decref(s->const_);
    wd_rx_free(s->pattern);
    wd_schema_free(s->items);
    json_decref(s->default_);
    free(s);
}

static unsigned type_bit(const char *t)
{
    if (!strcmp(t, "null"))
        return T_NULL;
    if (!strcmp(t, "boolean"))
        return T_BOOL;
    if (!strcmp(t, "integer"))
        return T_INT;
    if (!strcmp(t, "number"))
        return T_NUM | T_INT;
    if (!strcmp(t, "string"))
        return T_STR;
    if (!strcmp(t, "array"))
        return T_ARR;
    if (!strcmp(t, "object"))
        return T_OBJ;
    return 0;
}

static int get_count(json_t *v, long long *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    /* within what a long long holds: 5e20 as a count was undefined behaviour (fuzz_schema) */
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9.0e18 &&
        floor(json_real_value(v)) == json_real_value(v)) {
        *out = (long long)json_real_value(v);
        return 0;
    }
    return -1;
}

/* caller frees with wd_schema_free; NULL with "pointer: why" in err */
static wd_schema *compile(json_t *j, const char *at, int depth, char *err, size_t errlen)
{
    if (depth > 32) {
        wd_errf(err, errlen, "%s: schema nested too deeply", at);
        return NULL;
    }
    if (!json_is_object(j)) {
        wd_errf(err, errlen, "%s: a schema must be a table/object", *at ? at : "/");
        return NULL;
    }
    wd_schema *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->types = T_ANY;
    s->additional = 1;
    s->min_len = s->max_len = s->min_items = s->max_items = -1;
    const char *key;
    json_t *v;
    char sub[512];
    json_object_foreach(j, key, v)
    {
        if (!strcmp(key, "type")) {
            s->types = 0;
            if (json_is_string(v)) {
                s->types = type_bit(json_string_value(v));
            } else if (json_is_array(v)) {
                size_t i;
                json_t *t;
                json_array_foreach(v, i, t)
                {
                    unsigned b = json_is_string(t) ? type_bit(json_string_value(t)) : 0;
                    if (!b) {
                        s->types = 0;
                        break;
                    }
                    s->types |= b;
                }
            }
            if (!s->types) {
                wd_errf(err, errlen, "%s/type: use null, boolean, integer, number, string, array or object", at);
                goto fail;
            }
        } else if (!strcmp(key, "properties")) {
            if (!json_is_object(v)) {
                wd_errf(err, errlen, "%s/properties: must be a table of schemas", at);
                goto fail;
            }
            size_t n = json_object_size(v);
            s->prop_names = calloc(n + 1, sizeof *s->prop_names);
            s->props = calloc(n + 1, sizeof *s->props);
            if (!s->prop_names || !s->props)
                goto oom;
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv)
            {
                snprintf(sub, sizeof sub, "%s/properties/%s", at, pk);
                wd_schema *ps = compile(pv, sub, depth + 1, err, errlen);
                if (!ps)
                    goto fail;
                s->prop_names[s->nprops] = wd_strdup(pk);
                s->props[s->nprops++] = ps;
            }
        } else if (!strcmp(key, "required")) {
            size_t i;
            json_t *r;
            if (!json_is_array(v)) {
                wd_errf(err, errlen, "%s/required: must be a list of property names", at);
                goto fail;
            }
            s->required = calloc(json_array_size(v) + 1, sizeof *s->required);
            if (!s->required)
                goto oom;
            json_array_foreach(v, i, r)
            {
                if (!json_is_string(r)) {
                    wd_errf(err, errlen, "%s/required/%zu: must be a property name", at, i);
                    goto fail;
                }
                s->required[s->nrequired++] = wd_strdup(json_string_value(r));
            }
        } else if (!strcmp(key, "additionalProperties")) {
            if (json_is_boolean(v)) {
                s->additional = json_is_true(v);
            } else {
                snprintf(sub, sizeof sub, "%s/additionalProperties", at);
                if (!(s->additional_schema = compile(v, sub, depth + 1, err, errlen)))
                    goto fail;
                s->additional = 2;
            }
        } else if (!strcmp(key, "enum")) {
            if (!json_is_array(v) || !json_array_size(v)) {
                wd_errf(err, errlen, "%s/enum: must be a non-empty list", at);
                goto fail;
            }
            s->enum_ = json_incref(v);
        } else if (!strcmp(key, "const")) {
            s->const_ = json_incref(v);
        } else if (!strcmp(key, "minimum") || !strcmp(key, "maximum") || !strcmp(key, "exclusiveMinimum") ||
                   !strcmp(key, "exclusiveMaximum")) {
            if (!json_is_number(v)) {
                wd_errf(err, errlen, "%s/%s: must be a number", at, key);
                goto fail;
            }
            double d = json_number_value(v);
            if (!strcmp(key, "minimum"))
                s->has_min = 1, s->min = d;
            else if (!strcmp(key, "maximum"))
                s->has_max = 1, s->max = d;
            else if (!strcmp(key, "exclusiveMinimum"))
                s->has_xmin = 1, s->xmin = d;
            else
                s->has_xmax = 1, s->xmax = d;
        } else if (!strcmp(key, "minLength") || !strcmp(key, "maxLength") || !strcmp(key, "minItems") ||
                   !strcmp(key, "maxItems")) {
            long long c;
            if (get_count(v, &c) < 0) {
                wd_errf(err, errlen, "%s/%s: must be a whole number >= 0", at, key);
                goto fail;
            }
            if (!strcmp(key, "minLength"))
                s->min_len = c;
            else if (!strcmp(key, "maxLength"))
                s->max_len = c;
            else if (!strcmp(key, "minItems"))
                s->min_items = c;
            else
                s->max_items = c;
        } else if (!strcmp(key, "pattern")) {
            char e[200];
            if (!json_is_string(v)) {
                wd_errf(err, errlen, "%s/pattern: must be a string", at);
                goto fail;
            }
            if (!(s->pattern = wd_rx_compile(json_string_value(v), 0, e, sizeof e))) {
                wd_errf(err, errlen, "%s/pattern: %s", at, e);
                goto fail;
            }
        } else if (!strcmp(key, "items")) {
            snprintf(sub, sizeof sub, "%s/items", at);
            if (!(s->items = compile(v, sub, depth + 1, err, errlen)))
                goto fail;
        } else if (!strcmp(key, "default")) {
            s->default_ = json_deep_copy(v);
        } else if (!strcmp(key, "format")) {
            s->is_path = json_is_string(v) && !strcmp(json_string_value(v), "path");
        } else if (!strcmp(key, "title") || !strcmp(key, "description") || !strcmp(key, "examples") ||
                   !strcmp(key, "$comment")) {
            /* annotations */
        } else {
            wd_errf(err, errlen, "%s: unknown schema keyword '%s'", *at ? at : "/", key);
            goto fail;
        }
    }
    return s;
oom:
    wd_errf(err, errlen, "out of memory");
fail:
    wd_schema_free(s);
    return NULL;
}

wd_schema *wd_schema_compile(json_t *schema, char *err, size_t errlen) { return compile(schema, "", 0, err, errlen); }

int wd_schema_is_path_prop(const wd_schema *s, const char *name)
{
    for (size_t i = 0; s && i < s->nprops; i++)
        if (!strcmp(s->prop_names[i], name))
            return s->props[i]->is_path;
    return 0;
}

typedef struct {
    wd_buf msg;
    int count;
} vctx;

#define MAX_REPORTED 8

static void fail(vctx *c, const char *ptr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(vctx *c, const char *ptr, const char *fmt, ...)
{
    if (c->count++ >= MAX_REPORTED)
        return;
    va_list ap;
    wd_buf_addf(&c->msg, "%s%s: ", c->msg.len ? "; " : "", *ptr ? ptr : "/");
    va_start(ap, fmt);
    wd_buf_vaddf(&c->msg, fmt, ap);
    va_end(ap);
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static void type_list(unsigned t, char *out, size_t n)
{
    static const struct {
        unsigned b;
        const char *name;
    } names[] = {{T_NULL, "null"},  {T_BOOL, "boolean"}, {T_INT | T_NUM, "number"}, {T_INT, "integer"},
                 {T_STR, "string"}, {T_ARR, "array"},    {T_OBJ, "object"}};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if ((t & names[i].b) != names[i].b)
            continue;
        t &= ~names[i].b;
        if (out[0])
            strncat(out, " or ", n - strlen(out) - 1);
        strncat(out, names[i].name, n - strlen(out) - 1);
    }
}

/* JSON pointer escaping of one token */
static void ptr_join(char *out, size_t n, const char *base, const char *tok)
{
    size_t l = strlen(base);
    snprintf(out, n, "%s/", base);
    for (const char *p = tok; *p && l + 3 < n - 1; p++) {
        size_t cur = strlen(out);
        if (*p == '~')
            snprintf(out + cur, n - cur, "~0");
        else if (*p == '/')
            snprintf(out + cur, n - cur, "~1");
        else {
            out[cur] = *p;
            out[cur + 1] = '\0';
        }
        l = strlen(out);
    }
}

static void validate(const wd_schema *s, json_t *v, const char *ptr, vctx *c, json_t *parent, const char *pkey);

static void validate(const wd_schema *s, json_t *v, const char *ptr, vctx *c, json_t *parent, const char *pkey)
{
    char sub[512];
    unsigned have;
    switch (json_typeof(v)) {
    case JSON_OBJECT: have = T_OBJ; break;
    case JSON_ARRAY: have = T_ARR; break;
    case JSON_STRING: have = T_STR; break;
    case JSON_INTEGER: have = T_INT; break;
    case JSON_REAL: {
        double d = json_real_value(v);
        have = (floor(d) == d && fabs(d) < 9.007199254740992e15) ? T_INT : T_NUM;
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE: have = T_BOOL; break;
    default: have = T_NULL;
    }
    if (!(s->types & have) && !(have == T_INT && (s->types & T_NUM))) {
        char want[80];
        type_list(s->types, want, sizeof want);
        fail(c, ptr, "must be %s, not %s", want, type_name(v));
        return;
    }
    /* a float with an integral value where only integers are allowed becomes an integer */
    if (have == T_INT && json_is_real(v) && !(s->types & T_NUM) && parent) {
        json_t *iv = json_integer((json_int_t)json_real_value(v));
        if (iv) {
            if (json_is_object(parent))
                json_object_set_new(parent, pkey, iv);
            else
                json_array_set_new(parent, (size_t)(uintptr_t)pkey, iv);
            v = iv;
        }
    }
    if (s->const_ && !json_equal(s->const_, v))
        fail(c, ptr, "must be %s", json_is_string(s->const_) ? json_string_value(s->const_) : "the constant value");
    if (s->enum_) {
        size_t i;
        json_t *e;
        int ok = 0;
        json_array_foreach(s->enum_, i, e) if (json_equal(e, v)) ok = 1;
        if (!ok) {
            char *list = json_dumps(s->enum_, JSON_COMPACT);
            fail(c, ptr, "must be one of %s", list ? list : "the allowed values");
            free(list);
        }
    }
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (s->has_min && d < s->min)
            fail(c, ptr, "must be >= %g", s->min);
        if (s->has_max && d > s->max)
            fail(c, ptr, "must be <= %g", s->max);
        if (s->has_xmin && d <= s->xmin)
            fail(c, ptr, "must be > %g", s->xmin);
        if (s->has_xmax && d >= s->xmax)
            fail(c, ptr, "must be < %g", s->xmax);
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v), json_string_length(v));
        if (s->min_len >= 0 && n < (size_t)s->min_len)
            fail(c, ptr, "must be at least %lld characters", s->min_len);
        if (s->max_len >= 0 && n > (size_t)s->max_len)
            fail(c, ptr, "must be at most %lld characters", s->max_len);
        if (s->pattern && wd_rx_match(s->pattern, json_string_value(v), json_string_length(v)) != 1)
            fail(c, ptr, "must match the pattern %s", wd_rx_source(s->pattern));
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (s->min_items >= 0 && n < (size_t)s->min_items)
            fail(c, ptr, "must have at least %lld items", s->min_items);
        if (s->max_items >= 0 && n > (size_t)s->max_items)
            fail(c, ptr, "must have at most %lld items", s->max_items);
        if (s->items)
            for (size_t i = 0; i < n; i++) {
                snprintf(sub, sizeof sub, "%s/%zu", ptr, i);
                validate(s->items, json_array_get(v, i), sub, c, v, (const char *)(uintptr_t)i);
            }
    }
    if (json_is_object(v)) {
        for (size_t i = 0; i < s->nprops; i++) {
            json_t *pv = json_object_get(v, s->prop_names[i]);
            if (!pv && s->props[i]->default_) {
                json_object_set_new(v, s->prop_names[i], json_deep_copy(s->props[i]->default_));
                continue; /* defaults are trusted as written by the tool's author */
            }
            if (pv) {
                ptr_join(sub, sizeof sub, ptr, s->prop_names[i]);
                validate(s->props[i], pv, sub, c, v, s->prop_names[i]);
            }
        }
        for (size_t i = 0; i < s->nrequired; i++)
            if (!json_object_get(v, s->required[i])) {
                ptr_join(sub, sizeof sub, ptr, s->required[i]);
                fail(c, sub, "is required");
            }
        if (s->additional != 1) {
            const char *k;
            json_t *kv;
            json_object_foreach(v, k, kv)
            {
                int declared = 0;
                for (size_t i = 0; i < s->nprops && !declared; i++)
                    declared = !strcmp(s->prop_names[i], k);
                if (declared)
                    continue;
                ptr_join(sub, sizeof sub, ptr, k);
                if (s->additional == 0)
                    fail(c, sub, "is not an allowed property");
                else
                    validate(s->additional_schema, kv, sub, c, v, k);
            }
        }
    }
}

int wd_schema_validate(const wd_schema *s, json_t *value, char *err, size_t errlen)
{
    vctx c = {{0}, 0};
    validate(s, value, "", &c, NULL, NULL);
    if (!c.count)
        return 0;
    if (c.count > MAX_REPORTED)
        wd_buf_addf(&c.msg, "; and %d more", c.count - MAX_REPORTED);
    wd_strlcpy(err, c.msg.p ? c.msg.p : "invalid", errlen);
    wd_buf_free(&c.msg);
    return -1;
}
