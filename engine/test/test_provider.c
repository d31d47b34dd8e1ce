/* test_provider.c - the OpenAI and Anthropic wire formats both ways */
#include "harness.h"
#include "provider.h"

#include <stdlib.h>

static const char CALL[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"},"
    "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"search\",\"arguments\":{\"q\":\"x\"}},"
    "{\"id\":\"c2\",\"name\":\"search\",\"arguments\":{\"q\":\"y\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"name\":\"search\",\"content\":\"r1\"},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"name\":\"search\",\"content\":\"r2\"}],"
    "\"tools\":[{\"name\":\"search\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"}}],"
    "\"temperature\":0.5}";

static json_t *build(const char *provider, const char *env)
{
    wd_model m = {0};
    m.alias = "default";
    m.provider = (char *)provider;
    m.name = "m1";
    m.base_url = "http://127.0.0.1:1/v1/";
    m.api_key_env = (char *)env;
    json_t *call = json_loads(CALL, 0, NULL);
    wd_llm_request q;
    char err[200];
    int rc = wd_provider_request(&m, NULL, call, &q, err, sizeof err);
    json_decref(call);
    if (rc < 0)
        return json_pack("{s:s}", "error", err);
    json_t *body = json_loads(q.body, 0, NULL);
    json_object_set_new(body, "_url", json_string(q.url));
    json_t *h = json_array();
    for (size_t i = 0; i < q.nheaders; i++)
        json_array_append_new(h, json_string(q.headers[i]));
    json_object_set_new(body, "_headers", h);
    wd_provider_request_free(&q);
    return body;
}

TEST(openai_request)
{
    setenv("WD_TEST_KEY", "sk-test-123456", 1);
    json_t *b = build("openai", "WD_TEST_KEY");
    CHECK_STR(json_string_value(json_object_get(b, "_url")), "http://127.0.0.1:1/v1/chat/completions");
    CHECK_STR(json_string_value(json_array_get(json_object_get(b, "_headers"), 1)),
              "Authorization: Bearer sk-test-123456");
    json_t *msgs = json_object_get(b, "messages");
    CHECK(json_array_size(msgs) == 5);
    json_t *tc = json_array_get(json_object_get(json_array_get(msgs, 2), "tool_calls"), 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")), "{\"q\":\"x\"}");
    CHECK_STR(json_string_value(json_object_get(json_array_get(msgs, 3), "tool_call_id")), "c1");
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(b, "tools"), 0), "type")), "function");
    json_decref(b);
}

/* every odd shape a script can hand over, and the exact bytes that go out (written
** straight from the call: these are what the tree-building writer produced) */
static const char ODD_CALL[] =
    "{\"messages\":[{\"content\":\"no role \\u00e9\\n\\\"q\\\"\\\\ \\u0001\"},{\"role\":\"assista"
    "nt\",\"content\":\"thinking\",\"tool_calls\":[{\"name\":\"a\",\"arguments\":\"{\\\"raw\\\": "
    "1}\"},{\"id\":7,\"arguments\":null},{\"id\":\"x\"}]},{\"role\":\"tool\",\"content\":{\"k\":["
    "1,2.5,null,true]},\"tool_call_id\":5},{\"role\":\"user\",\"content\":null},{\"role\":\"user\""
    "},{\"role\":\"assistant\",\"content\":\"plain\",\"tool_calls\":[]},{\"role\":\"user\",\"cont"
    "ent\":[1,\"two\"]},{\"role\":42,\"content\":3.25}],\"tools\":[{\"name\":\"n\"},{\"descriptio"
    "n\":\"only d\",\"parameters\":{\"properties\":{\"a\":{\"type\":\"string\"}},\"type\":\"objec"
    "t\"}}],\"temperature\":1,\"max_tokens\":77}";
static const char ODD_BODY[] =
    "{\"model\":\"m\\\"1\",\"messages\":[{\"role\":\"user\",\"content\":\"no role é\\n\\\"q\\\"\\\\ "
    "\\u0001\"},{\"role\":\"assistant\",\"content\":\"thinking\",\"tool_calls\":[{\"id\":null,\"t"
    "ype\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"{\\\"raw\\\": 1}\"}},{\"id\""
    ":7,\"type\":\"function\",\"function\":{\"name\":null,\"arguments\":\"null\"}},{\"id\":\"x\","
    "\"type\":\"function\",\"function\":{\"name\":null,\"arguments\":\"{}\"}}]},{\"role\":\"tool\""
    ",\"content\":\"{\\\"k\\\":[1,2.5,null,true]}\",\"tool_call_id\":\"\"},{\"role\":\"user\",\"c"
    "ontent\":\"\"},{\"role\":\"user\",\"content\":\"\"},{\"role\":\"assistant\",\"content\":\"pl"
    "ain\"},{\"role\":\"user\",\"content\":\"[1,\\\"two\\\"]\"},{\"role\":\"user\",\"content\":\""
    "3.25\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"n\",\"description\":null"
    ",\"parameters\":{\"type\":\"object\"}}},{\"type\":\"function\",\"function\":{\"name\":null,\""
    "description\":\"only d\",\"parameters\":{\"properties\":{\"a\":{\"type\":\"string\"}},\"type"
    "\":\"object\"}}}],\"temperature\":1,\"max_tokens\":77}";

TEST(openai_body_bytes)
{
    wd_model m = {0};
    m.alias = "default";
    m.provider = "openai";
    m.name = "m\"1";
    m.base_url = "http://127.0.0.1:1/v1/";
    json_t *call = json_loads(ODD_CALL, 0, NULL);
    CHECK(call != NULL);
    wd_llm_request q;
    char err[200];
    CHECK(wd_provider_request(&m, NULL, call, &q, err, sizeof err) == 0);
    CHECK_STR(q.body, ODD_BODY);
    CHECK(q.body_len == strlen(ODD_BODY));
    if (strcmp(q.body, ODD_BODY))
        fprintf(stderr, "  got %s\n", q.body);
    wd_provider_request_free(&q);
    json_decref(call);
}

TEST(anthropic_request)
{
    json_t *b = build("anthropic", NULL);
    CHECK_STR(json_string_value(json_object_get(b, "_url")), "http://127.0.0.1:1/v1/messages");
    CHECK_STR(json_string_value(json_object_get(b, "system")), "be brief");
    json_t *msgs = json_object_get(b, "messages");
    CHECK(json_array_size(msgs) == 3); /* user, assistant, one user turn with both results */
    json_t *results = json_object_get(json_array_get(msgs, 2), "content");
    CHECK(json_array_size(results) == 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(results, 1), "tool_use_id")), "c2");
    json_t *use = json_array_get(json_object_get(json_array_get(msgs, 1), "content"), 0);
    CHECK_STR(json_string_value(json_object_get(use, "type")), "tool_use");
    CHECK_STR(json_string_value(json_object_get(json_object_get(use, "input"), "q")), "x");
    CHECK(json_object_get(json_array_get(json_object_get(b, "tools"), 0), "input_schema") != NULL);
    CHECK(json_integer_value(json_object_get(b, "max_tokens")) == 1024);
    json_decref(b);
}

TEST(missing_key_names_the_variable)
{
    unsetenv("WD_TEST_NOKEY");
    json_t *b = build("openai", "WD_TEST_NOKEY");
    CHECK_HAS(json_string_value(json_object_get(b, "error")), "WD_TEST_NOKEY");
    CHECK_HAS(json_string_value(json_object_get(b, "error")), "is not set");
    json_decref(b);
}

TEST(parse_answers)
{
    char err[200];
    const char *oa = "{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
                     "\"function\":{\"name\":\"t\",\"arguments\":\"{\\\"k\\\":1}\"}}]}}],"
                     "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}";
    json_t *a = wd_provider_parse("openai", oa, strlen(oa), err, sizeof err);
    CHECK(a && json_integer_value(json_object_get(json_object_get(a, "usage"), "input_tokens")) == 7);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "arguments")),
              "{\"k\":1}");
    json_decref(a);
    const char *an = "{\"content\":[{\"type\":\"text\",\"text\":\"hi \"},{\"type\":\"text\",\"text\":\"there\"}],"
                     "\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}";
    a = wd_provider_parse("anthropic", an, strlen(an), err, sizeof err);
    CHECK_STR(json_string_value(json_object_get(a, "content")), "hi there");
    json_decref(a);
    CHECK(wd_provider_parse("openai", "{\"choices\":[", 12, err, sizeof err) == NULL);
    CHECK_HAS(err, "not valid JSON");
    CHECK(wd_provider_parse("openai", "{\"choices\":[]}", 14, err, sizeof err) == NULL);
    CHECK_HAS(err, "choices[0].message");
    CHECK(wd_provider_parse("anthropic", "{\"content\":[]}", 14, err, sizeof err) == NULL);
    CHECK_HAS(err, "neither text nor tool calls");
}

/* found by fuzz_provider (engine/fuzz/corpus/provider/leak-no-arguments): a call without
** arguments got a new "{}" whose reference leaked; make asan's leak check holds it */
TEST(a_tool_call_without_arguments)
{
    char err[300];
    const char *oa = "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"echo\"}}]}}]}";
    json_t *a = wd_provider_parse("openai", oa, strlen(oa), err, sizeof err);
    CHECK(a != NULL);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "arguments")),
              "{}");
    json_decref(a);
    const char *an = "{\"content\":[{\"type\":\"tool_use\",\"name\":\"echo\"}]}";
    a = wd_provider_parse("anthropic", an, strlen(an), err, sizeof err);
    CHECK(a != NULL);
    CHECK(json_is_object(json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "arguments")));
    json_decref(a);
}

TEST(scrub_removes_the_key)
{
    setenv("WD_TEST_KEY", "sk-test-123456", 1);
    wd_model m = {0};
    m.api_key_env = "WD_TEST_KEY";
    char msg[200] = "Incorrect API key provided: sk-test-123456 (twice: sk-test-123456)";
    wd_provider_scrub(&m, msg);
    CHECK(strstr(msg, "sk-test-123456") == NULL);
    CHECK_HAS(msg, "[REDACTED]");
}

int main(void)
{
    RUN(openai_request);
    RUN(openai_body_bytes);
    RUN(anthropic_request);
    RUN(missing_key_names_the_variable);
    RUN(a_tool_call_without_arguments);
    RUN(parse_answers);
    RUN(scrub_removes_the_key);
    DONE();
}
