/* mock.h - the built-in mock provider's scenario (mock.c): a YAML list played one
** entry per LLM call. */
#ifndef WD_MOCK_H
#define WD_MOCK_H

#include <jansson.h>
#include <stddef.h>

typedef struct wd_mock wd_mock;

wd_mock *wd_mock_load(const char *path, char *err, size_t errlen); /* caller frees */
void wd_mock_free(wd_mock *m);                                     /* accepts NULL */
/* entry i (the last repeats); borrowed */
json_t *wd_mock_entry(const wd_mock *m, int i);

#endif
