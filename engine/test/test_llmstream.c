/* test_llmstream.c - streamed answers (OpenAI chunks, Anthropic events) parsed as they
** arrive, fed in pieces of every size, and what a hostile stream cannot do */
#include "harness.h"
#include "llmstream.h"
#include "util.h"

#include <stdlib.h>

static const char OPENAI[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    ": a comment\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"search\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"function\":"
    "{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"{\\\"q\\\":\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"\\\"x\\\"}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":"
    "\"1}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}\n\n"
    "data: [DONE]\n\n";

static const char ANTHROPIC[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}"
    "\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\","
    "\"name\":\"lookup\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"id\\\": \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"4}\"}}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":25}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

typedef struct {
    wd_buf text;
    int tool_pieces;
    int stop_after; /* stop at this text piece (1-based); 0 never */
    int text_pieces;
} seen;

static int on_delta(void *ud, wd_delta_kind kind, const char *p, size_t n)
{
    seen *s = ud;
    if (kind == WD_DELTA_TOOL) {
        s->tool_pieces++;
        return 0;
    }
    if (s->stop_after && s->text_pieces + 1 >= s->stop_after)
        return 1;
    s->text_pieces++;
    wd_buf_add(&s->text, p, n);
    return 0;
}

/* feeds text in pieces of step bytes; the finished answer (caller frees) or NULL */
static json_t *feed(const char *provider, const char *text, size_t step, seen *sn, int *rc_out, char *err, size_t n)
{
    wd_llm_stream *s = wd_llm_stream_new(provider, 1 << 20, on_delta, sn);
    size_t len = strlen(text);
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += step)
        rc = wd_llm_stream_feed(s, text + at, len - at < step ? len - at : step, err, n);
    if (rc_out)
        *rc_out = rc;
    json_t *a = rc == 0 ? wd_llm_stream_finish(s, err, n) : NULL;
    long long in, out;
    int raw;
    wd_llm_stream_usage(s, &in, &out, &raw);
    if (a)
        json_object_set_new(a, "usage",
                            json_pack("{s:I,s:I,s:b}", "in", (json_int_t)in, "out", (json_int_t)out, "raw", raw));
    wd_llm_stream_free(s);
    return a;
}

TEST(openai_chunks_assemble_text_and_tool_calls_whatever_the_pieces)
{
    static const size_t steps[] = {1, 2, 7, 64, 100000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        seen sn = {0};
        char err[300] = "";
        json_t *a = feed("openai", OPENAI, steps[i], &sn, NULL, err, sizeof err);
        REQUIRE(a != NULL);
        CHECK_STR(json_string_value(json_object_get(a, "content")), "Hello");
        CHECK_STR(sn.text.p, "Hello");
        json_t *calls = json_object_get(a, "tool_calls");
        CHECK(json_array_size(calls) == 2);
        CHECK_STR(json_string_value(json_object_get(json_array_get(calls, 0), "id")), "c1");
        CHECK_STR(json_string_value(json_object_get(json_array_get(calls, 0), "name")), "search");
        CHECK_STR(json_string_value(json_object_get(json_array_get(calls, 0), "arguments")), "{\"q\":\"x\"}");
        CHECK_STR(json_string_value(json_object_get(json_array_get(calls, 1), "arguments")), "{\"a\":1}");
        CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "in")) == 12);
        CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "out")) == 7);
        CHECK(sn.tool_pieces == 6);
        json_decref(a);
        wd_buf_free(&sn.text);
    }
}

TEST(anthropic_events_assemble_text_and_tool_use)
{
    for (size_t step = 1; step <= 4096; step *= 8) {
        seen sn = {0};
        char err[300] = "";
        json_t *a = feed("anthropic", ANTHROPIC, step, &sn, NULL, err, sizeof err);
        REQUIRE(a != NULL);
        CHECK_STR(json_string_value(json_object_get(a, "content")), "Hi there");
        json_t *c = json_array_get(json_object_get(a, "tool_calls"), 0);
        CHECK_STR(json_string_value(json_object_get(c, "id")), "t1");
        CHECK_STR(json_string_value(json_object_get(c, "name")), "lookup");
        CHECK_STR(json_string_value(json_object_get(c, "arguments")), "{\"id\": 4}");
        CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "in")) == 30);
        CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "out")) == 25);
        json_decref(a);
        wd_buf_free(&sn.text);
    }
}

/* the callback stops the stream: the piece it refused is not in what was kept */
TEST(a_stream_stopped_by_its_reader_keeps_only_what_was_taken)
{
    seen sn = {0};
    sn.stop_after = 2;
    char err[300] = "";
    int rc = 0;
    json_t *a = feed("openai", OPENAI, 5, &sn, &rc, err, sizeof err);
    CHECK(a == NULL);
    CHECK(rc == 1);
    CHECK_STR(sn.text.p, "Hel");
    wd_buf_free(&sn.text);
}

/* a server that ignored stream: true and sent one document is read as that */
TEST(a_server_that_does_not_stream_is_read_whole)
{
    seen sn = {0};
    char err[300] = "";
    json_t *a = feed("openai",
                     "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"whole\"}}],"
                     "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}",
                     9, &sn, NULL, err, sizeof err);
    REQUIRE(a != NULL);
    CHECK_STR(json_string_value(json_object_get(a, "content")), "whole");
    CHECK(json_is_true(json_object_get(json_object_get(a, "usage"), "raw")));
    CHECK(json_integer_value(json_object_get(json_object_get(a, "usage"), "out")) == 1);
    CHECK(sn.text.p == NULL); /* the engine gives a whole answer's text itself */
    json_decref(a);
}

TEST(hostile_streams_fail_with_what_and_where)
{
    static const struct {
        const char *provider, *text, *want;
    } cases[] = {
        {"openai", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "ended before the answer did"},
        {"openai", "data: {not json\n\n", "event 1 of the stream is not a JSON object"},
        {"openai", "data: [1,2]\n\n", "event 1 of the stream is not a JSON object"},
        {"openai", "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", "reported an error: overloaded"},
        {"anthropic", "event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"Overloaded\"}}\n\n",
         "reported an error: Overloaded"},
        {"openai", "data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n", "delta.content is not text"},
        {"openai",
         "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":99999,\"function\":{\"name\":\"x\"}}]}}]}\n\n",
         "index is not a number from 0 to 1023"},
        {"openai",
         "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]},"
         "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
         "tool call 0 has no name"},
        {"openai", "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
         "neither text nor tool calls"},
        {"anthropic", "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\"}}\n\n",
         "index is not a number"},
        {"openai", "{\"choices\": 7}", "no choices[0].message"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seen sn = {0};
        char err[300] = "";
        json_t *a = feed(cases[i].provider, cases[i].text, 3, &sn, NULL, err, sizeof err);
        CHECK(a == NULL);
        if (!h_has(err, cases[i].want))
            fprintf(stderr, "  case %zu: %s\n", i, err);
        CHECK_HAS(err, cases[i].want);
        json_decref(a);
        wd_buf_free(&sn.text);
    }
}

/* an endless stream, or one endless line, is cut at the cap rather than kept */
TEST(a_stream_past_its_cap_is_refused)
{
    wd_llm_stream *s = wd_llm_stream_new("openai", 1000, NULL, NULL);
    char line[100], err[200] = "";
    memset(line, 'a', sizeof line);
    memcpy(line, "data: ", 6);
    int rc = 0, i;
    for (i = 0; i < 100 && rc == 0; i++)
        rc = wd_llm_stream_feed(s, line, sizeof line, err, sizeof err);
    CHECK(rc == -1);
    CHECK(i == 11);
    CHECK_HAS(err, "passed 1000 bytes");
    wd_llm_stream_free(s);
    wd_llm_stream_free(NULL);
}

int main(void)
{
    RUN(openai_chunks_assemble_text_and_tool_calls_whatever_the_pieces);
    RUN(anthropic_events_assemble_text_and_tool_use);
    RUN(a_stream_stopped_by_its_reader_keeps_only_what_was_taken);
    RUN(a_server_that_does_not_stream_is_read_whole);
    RUN(hostile_streams_fail_with_what_and_where);
    RUN(a_stream_past_its_cap_is_refused);
    DONE();
}
