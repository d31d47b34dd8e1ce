/* bound.h - what one audit record may hold (docs/safety.md, Bounds). Every field a script,
** a model, a client or a detector fills (tool arguments, ctx:log fields, a verdict's
** details, an error, a query, a result) is measured as the JSON text it will be written
** as; one longer than the cap is cut to its first bytes (a string's own text, or the JSON
** text of anything else, on a UTF-8 boundary) and named in the record's `truncated`
** object with its full length, so the log says what was there and how much. */
#ifndef WD_BOUND_H
#define WD_BOUND_H

#include <jansson.h>
#include <stddef.h>

/* the length of v as compact JSON text (jansson's, without ensure_ascii), counted no
** further than past stop: a result above stop only says "more than stop" */
size_t wd_bound_size(const json_t *v, size_t stop);
/* Cuts rec's fields over cap (one named big may have big_cap instead; NULL: none) and
** records what it cut under "truncated". Returns the record's length as JSON text, as
** bounded, and how many fields it cut in *ncut (may be NULL). */
size_t wd_bound_record(json_t *rec, size_t cap, const char *big, size_t big_cap, int *ncut);

#endif
