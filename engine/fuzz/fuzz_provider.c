/* fuzz_provider.c - the OpenAI and Anthropic response parsers on any body: an answer in
** the normalized shape (tool_calls a list, usage with both counts) or an error naming
** what was wrong; the error-text reader likewise. */
#include "fuzz.h"
#include "provider.h"

#include <string.h>

static void parse(const char *provider, const char *body, size_t len)
{
    char err[300] = "";
    json_t *a = wd_provider_parse(provider, body, len, err, sizeof err);
    if (!a) {
        FUZZ_ASSERT(err[0], "%s: no answer and no error", provider);
        return;
    }
    FUZZ_ASSERT(json_is_array(json_object_get(a, "tool_calls")), "%s: tool_calls is not a list", provider);
    json_t *u = json_object_get(a, "usage");
    FUZZ_ASSERT(json_object_get(u, "input_tokens") && json_object_get(u, "output_tokens"), "%s: usage incomplete",
                provider);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(a, "tool_calls"), i, c)
        FUZZ_ASSERT(json_is_string(json_object_get(c, "name")), "%s: a tool call without a name", provider);
    json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    parse("openai", body, size);
    parse("anthropic", body, size);
    char why[240];
    wd_provider_error_text(body, size, why, sizeof why);
    FUZZ_ASSERT(strlen(why) < sizeof why, "error text overran");
    return 0;
}
