/* guard.h - guardrails on tool arguments: forbidden patterns over every string and
** allowed resources over path arguments, canonicalized so ../ and symlinks cannot escape. */
#ifndef WD_GUARD_H
#define WD_GUARD_H

#include <stddef.h>
#include <jansson.h>
#include "policy.h"
#include "schema.h"

/* 0 clean; -1 with "/query: matches forbidden pattern 'secret'" in err. Every string is
** matched as given; a path argument (wd_guard_is_path_arg) also in the forms the file
** operation uses (wd_guard_path_forbidden). */
int wd_guard_patterns(const wd_rxlist *forbidden, const wd_schema *schema, const char *base, json_t *args, char *err,
                      size_t errlen);

/* The pattern of fl that a path matches in any of its forms, or NULL: as given (raw), its
** canonical absolute form (canon, from wd_guard_canon; NULL when it has none), and that
** form relative to base when it lies inside. What is matched is what is read: a trailing
** "/", "/.", "//" or a "dir/../dir" detour changes the raw form, never the canonical one. */
const wd_rx *wd_guard_path_forbidden(const wd_rxlist *fl, const char *base, const char *raw, const char *canon);

/* Canonical absolute form of path, relative to base when not absolute: the longest
** existing prefix resolved with realpath (symlinks followed), the rest normalized
** lexically. Caller frees; NULL on error. */
char *wd_guard_canon(const char *base, const char *path);

/* 1 when canon (already canonical) lies inside one of roots (resolved against base) */
int wd_guard_path_allowed(const wd_strlist *roots, const char *base, const char *canon);

/* 1 for argument names that hold paths: path, file, filename, filepath, dir, directory,
** *_path, *_file, *_dir, or declared with format "path" in the schema */
int wd_guard_is_path_arg(const char *name, const wd_schema *schema);

/* checks every path argument of args against the tool's allowed_resources; 0 ok */
int wd_guard_resources(const wd_tool_policy *tp, const wd_schema *schema, const char *base, json_t *args, char *err,
                       size_t errlen);

/* caller owns: the canonical forms of args' path arguments (what a call touches), [] none */
json_t *wd_guard_touched(const wd_schema *schema, const char *base, const json_t *args);

#endif
