/* provider.h - the wire formats of LLM providers: OpenAI Chat Completions (and every
** compatible server: vLLM, llama.cpp's server, Ollama) and Anthropic Messages.
**
** The engine speaks one shape to agents: a call {messages, tools, temperature} where
** assistant messages carry tool_calls [{id, name, arguments}] and tool results are
** {role = "tool", tool_call_id, content}; an answer {content, tool_calls, usage =
** {input_tokens, output_tokens}}. This file translates both ways. */
#ifndef WD_PROVIDER_H
#define WD_PROVIDER_H

#include <jansson.h>
#include "policy.h"

typedef struct wd_llm_request {
    char *url;
    char *body;
    size_t body_len;
    char *headers[4]; /* "Name: value"; may hold the API key: wiped when freed */
    size_t nheaders;
} wd_llm_request;

/* builds the HTTP request for model m (base_url overrides the policy's when not NULL).
** 0, or -1 with err (never containing the key). Free with wd_provider_request_free. */
int wd_provider_request(const wd_model *m, const char *base_url, const json_t *call, wd_llm_request *out, char *err,
                        size_t errlen);
void wd_provider_request_free(wd_llm_request *q);
/* the endpoint a breaker guards: "llm:<url of the API>"; into out */
void wd_provider_endpoint(const wd_model *m, const char *base_url, char *out, size_t n);

/* the normalized answer; caller frees. NULL with err when the body is not a valid answer. */
json_t *wd_provider_parse(const char *provider, const char *body, size_t len, char *err, size_t errlen);
/* the provider's own explanation from an error body ("" when none), at most n-1 bytes */
void wd_provider_error_text(const char *body, size_t len, char *out, size_t n);
/* replaces the model's API key, wherever it appears in msg, by [REDACTED] */
void wd_provider_scrub(const wd_model *m, char *msg);

#endif
