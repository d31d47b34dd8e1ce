/* ydoc.h - a YAML document as a tree of nodes that remember their line and column.
** Built with libyaml's event parser. Aliases are refused (billion laughs, cycles) and
** bytes, depth, scalar length and node count are capped (docs/safety.md). */
#ifndef WD_YDOC_H
#define WD_YDOC_H

#include <stddef.h>
#include <jansson.h>

#define WD_YDOC_MAX_BYTES  (1u << 20)
#define WD_YDOC_MAX_DEPTH  32
#define WD_YDOC_MAX_SCALAR (64u * 1024u)
#define WD_YDOC_MAX_NODES  100000

typedef enum { WD_Y_SCALAR, WD_Y_SEQ, WD_Y_MAP } wd_ykind;

typedef struct wd_ynode {
    wd_ykind kind;
    int line, col;    /* 1-based */
    const char *file; /* not owned; set by the loader that knows it (may be NULL) */
    int plain;        /* scalar was unquoted (so it may be a number, bool or null) */
    char *str;        /* scalar text */
    size_t len;
    struct wd_ynode **kids; /* seq: items; map: key, value, key, value ... */
    size_t n;               /* number of entries in kids */
} wd_ynode;

/* caller frees with wd_ydoc_free. NULL on error with "line:col: message" in err.
** Mapping keys are scalars (a list or mapping as a key is an error). An empty document
** gives an empty map. */
wd_ynode *wd_ydoc_parse(const char *buf, size_t len, char *err, size_t errlen);
void wd_ydoc_free(wd_ynode *n);

/* scalar helpers: 0 on success */
int wd_ydoc_is_null(const wd_ynode *n);
int wd_ydoc_bool(const wd_ynode *n, int *out);
int wd_ydoc_int(const wd_ynode *n, long long *out);
int wd_ydoc_number(const wd_ynode *n, double *out);

/* a map's value by key, or NULL */
wd_ynode *wd_ydoc_get(const wd_ynode *map, const char *key);

/* caller owns the result: the node as JSON (plain scalars typed), NULL on OOM */
json_t *wd_ydoc_to_json(const wd_ynode *n);
/* the first scalar under n holding a NUL byte (C strings would stop there), or NULL */
const wd_ynode *wd_ydoc_find_nul(const wd_ynode *n);

#endif
