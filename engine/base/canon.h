/* canon.h - canonical JSON text, the form the audit chain hashes. */
#ifndef WD_CANON_H
#define WD_CANON_H

#include <jansson.h>
#include "util.h"

/* Appends v as compact JSON with object keys sorted bytewise and reals printed with 15
** significant digits: byte for byte what json_dumps gives with WD_AUDIT_JSON_FLAGS
** (so logs written by either verify with either), without building sorted copies or
** walking strings one code point at a time. 0, or -1 when out of memory or nested
** deeper than 2,048 levels. */
int wd_json_canon(const json_t *v, wd_buf *out);
/* v as compact JSON in its own member order, reals with 17 significant digits: what
** json_dumps gives with JSON_COMPACT, byte for byte, at a fraction of its cost (request
** bodies). 0, or -1 as above. */
int wd_json_compact(const json_t *v, wd_buf *out);
/* s (n bytes) as a JSON string, escaped as the writers above escape; 0 or -1 */
int wd_json_put_string(wd_buf *out, const char *s, size_t n);
/* the same as a string; caller frees. NULL when v is NULL or out of memory */
char *wd_json_compact_text(const json_t *v);
/* The members of object v, each written as ',"key":value' in canonical order, leaving
** out the keys named in skip (sorted, NULL-terminated); at[i] gets the offset in out
** where a member named skip[i] belongs. 0, or -1 (not an object, out of memory). */
int wd_json_canon_members(const json_t *v, wd_buf *out, const char *const *skip, size_t *at);

#endif
