/* fuzz_schema.c - the JSON Schema compiler and validator: the input is a schema and an
** instance (JSON texts split at the first NUL byte). A schema compiles or says why;
** an instance validates or says why; nothing crashes or hangs. */
#include "fuzz.h"
#include "schema.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *sep = memchr(text, '\0', size);
    size_t slen = sep ? (size_t)(sep - text) : size;
    json_t *s = json_loadb(text, slen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!s)
        return 0;
    char err[600];
    wd_schema *c = wd_schema_compile(s, err, sizeof err);
    FUZZ_ASSERT(c || err[0], "a schema refused without a reason");
    if (c) {
        json_t *inst = sep ? json_loadb(sep + 1, size - slen - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
        json_t *v = inst ? inst : json_object();
        err[0] = '\0';
        if (wd_schema_validate(c, v, err, sizeof err) < 0)
            FUZZ_ASSERT(err[0], "an instance refused without a reason");
        wd_schema_is_path_prop(c, "path");
        json_decref(v);
    }
    wd_schema_free(c);
    json_decref(s);
    return 0;
}
