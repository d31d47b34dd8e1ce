/* schema.h - the JSON Schema subset tools declare for their arguments, compiled once.
** Keywords: type, properties, required, additionalProperties, enum, const, minimum,
** maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern (PCRE2),
** items, minItems, maxItems, default; title, description, format, examples and
** $comment are accepted as annotations. Any other keyword is a compile error. */
#ifndef WD_SCHEMA_H
#define WD_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

typedef struct wd_schema wd_schema;

/* caller frees with wd_schema_free; NULL with "where: what" in err */
wd_schema *wd_schema_compile(json_t *schema, char *err, size_t errlen);
void wd_schema_free(wd_schema *s);

/* Validate value in place: missing properties with a default are filled in and whole
** floats become integers where the schema says integer. 0 valid; -1 with messages such
** as "/max_results: must be <= 50" (several joined by "; ") in err. */
int wd_schema_validate(const wd_schema *s, json_t *value, char *err, size_t errlen);

/* 1 when the property at the top level is declared with format "path" */
int wd_schema_is_path_prop(const wd_schema *s, const char *name);

#endif
