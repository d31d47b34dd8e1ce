/* llmstream.h - an LLM answer streamed as server-sent events, parsed as it arrives:
** OpenAI Chat Completions chunks (text, and tool-call deltas assembled by their index)
** and Anthropic Messages events (text and input_json deltas by content block). Each
** piece goes to a callback as it comes, which may stop the stream there; the answer is
** assembled in the engine's normalized shape (provider.h). A server that ignores the
** request to stream and answers with one JSON document is read as that. */
#ifndef WD_LLMSTREAM_H
#define WD_LLMSTREAM_H

#include <jansson.h>
#include <stddef.h>

typedef struct wd_llm_stream wd_llm_stream;

typedef enum { WD_DELTA_TEXT, WD_DELTA_TOOL } wd_delta_kind;

/* a piece of the answer as it comes (text, or a tool call's name or arguments): 0 goes
** on; nonzero stops the stream before the piece, which is not part of the answer */
typedef int (*wd_llm_delta_fn)(void *ud, wd_delta_kind kind, const char *p, size_t len);

/* caller frees; NULL out of memory. max_bytes caps what the stream may send in all */
wd_llm_stream *wd_llm_stream_new(const char *provider, size_t max_bytes, wd_llm_delta_fn fn, void *ud);
/* accepts NULL */
void wd_llm_stream_free(wd_llm_stream *s);
/* 0 go on; 1 the callback stopped it; -1 malformed, too large, or the provider reported
** an error in the stream (err says which, naming the event) */
int wd_llm_stream_feed(wd_llm_stream *s, const char *p, size_t n, char *err, size_t errlen);
/* The answer, normalized, without usage (wd_llm_stream_usage): {content?, tool_calls}.
** NULL with err when the stream ended before the provider said the answer was whole,
** or the answer is not one. Caller frees. */
json_t *wd_llm_stream_finish(wd_llm_stream *s, char *err, size_t errlen);
/* the token counts the provider reported (its last word on each), -1 each when it gave
** none; *raw 1 when the server answered with one document instead of a stream */
void wd_llm_stream_usage(const wd_llm_stream *s, long long *in, long long *out, int *raw);

/* the text taken so far (NULL none), borrowed until the next feed */
const char *wd_llm_stream_text(const wd_llm_stream *s, size_t *len);

#endif
