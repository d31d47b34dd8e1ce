/* fuzz_provider.c - the OpenAI and Anthropic response parsers on any body: an answer in
** the normalized shape (tool_calls a list, usage with both counts) or an error naming
** what was wrong; the error-text reader likewise; and the same bytes as a streamed answer
** (llmstream.h), fed in pieces of every size the input's first byte picks. */
#include "fuzz.h"
#include "llmstream.h"
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

static int count_piece(void *ud, wd_delta_kind kind, const char *p, size_t len)
{
    (void)kind;
    (void)p;
    *(size_t *)ud += len;
    return 0;
}

static void stream(const char *provider, const char *body, size_t len)
{
    size_t given = 0, step = len ? (size_t)(unsigned char)body[0] % 17 + 1 : 1;
    wd_llm_stream *s = wd_llm_stream_new(provider, 1 << 16, count_piece, &given);
    char err[300] = "";
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += step)
        rc = wd_llm_stream_feed(s, body + at, len - at < step ? len - at : step, err, sizeof err);
    FUZZ_ASSERT(rc == 0 || err[0], "%s: a stream refused without a reason", provider);
    json_t *a = rc == 0 ? wd_llm_stream_finish(s, err, sizeof err) : NULL;
    if (rc == 0 && !a)
        FUZZ_ASSERT(err[0], "%s: a stream unfinished without a reason", provider);
    if (a) {
        FUZZ_ASSERT(json_is_array(json_object_get(a, "tool_calls")), "%s: streamed tool_calls not a list", provider);
        json_t *c = json_object_get(a, "content");
        FUZZ_ASSERT(!c || json_is_string(c), "%s: streamed content not text", provider);
    }
    long long in, out;
    int raw;
    wd_llm_stream_usage(s, &in, &out, &raw);
    FUZZ_ASSERT(in >= -2 && out >= -2, "%s: token counts below the markers", provider);
    json_decref(a);
    wd_llm_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream("openai", (const char *)data, size);
    stream("anthropic", (const char *)data, size);
    const char *body = (const char *)data;
    parse("openai", body, size);
    parse("anthropic", body, size);
    char why[240];
    wd_provider_error_text(body, size, why, sizeof why);
    FUZZ_ASSERT(strlen(why) < sizeof why, "error text overran");
    return 0;
}
