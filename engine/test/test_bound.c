/* test_bound.c - record bounds (bound.h): the measured length is jansson's own, fields
** over the cap are cut on a UTF-8 boundary with their full length kept */
#include "bound.h"
#include "harness.h"

#include <stdlib.h>

static size_t dumped(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = s ? strlen(s) : 0;
    free(s);
    return n;
}

TEST(sizes_are_what_jansson_writes)
{
    const char *texts[] = {"",
                           "plain text of some length, more than eight bytes",
                           "q\"uo\\te",
                           "\x01\x02\t\n\r\x1f x",
                           "\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
                           "12345678\"12345678\x01",
                           NULL};
    for (int i = 0; texts[i]; i++) {
        json_t *s = json_string(texts[i]);
        REQUIRE(s);
        CHECK(wd_bound_size(s, (size_t)-1) == dumped(s));
        json_decref(s);
    }
    json_t *o = json_pack("{s:i,s:i,s:I,s:b,s:n,s:[s,i,{s:s}],s:{}}", "a", 0, "b", -12345, "c",
                          (json_int_t)-9223372036854775807LL - 1, "d", 1, "e", "f", "x\"y", 7, "g", "h\ni", "k");
    REQUIRE(o);
    CHECK(wd_bound_size(o, (size_t)-1) == dumped(o));
    json_decref(o);
}

TEST(a_field_over_the_cap_is_cut_and_its_length_kept)
{
    char *big = malloc(100001);
    REQUIRE(big);
    memset(big, 'x', 100000);
    big[100000] = '\0';
    json_t *rec = json_pack("{s:s,s:s,s:{s:s}}", "event", "agent_log", "small", "ok", "fields", "blob", big);
    REQUIRE(rec);
    int ncut = 0;
    size_t n = wd_bound_record(rec, 1024, NULL, 0, &ncut);
    CHECK(ncut == 1);
    const json_t *f = json_object_get(rec, "fields");
    CHECK(json_is_string(f) && json_string_length(f) <= 1022 && json_string_length(f) > 1000);
    CHECK(!strncmp(json_string_value(f), "{\"blob\":\"xxx", 12));
    CHECK(json_integer_value(json_object_get(json_object_get(rec, "truncated"), "fields")) == 100000 + 11);
    CHECK_STR(json_string_value(json_object_get(rec, "small")), "ok");
    CHECK(n >= dumped(rec) - 4 && n <= dumped(rec) + 64);
    json_decref(rec);
    free(big);
}

TEST(a_cut_never_splits_a_character)
{
    /* 2-byte characters: a cut at an odd length must step back to a boundary */
    char s[2001];
    for (int i = 0; i < 1000; i++) {
        s[2 * i] = (char)0xc3;
        s[2 * i + 1] = (char)0xa9;
    }
    s[2000] = '\0';
    json_t *rec = json_pack("{s:s}", "error", s);
    REQUIRE(rec);
    wd_bound_record(rec, 1025, NULL, 0, NULL);
    const char *e = json_string_value(json_object_get(rec, "error"));
    REQUIRE(e);
    CHECK(strlen(e) % 2 == 0);
    json_decref(rec);
}

TEST(the_big_field_has_its_own_cap)
{
    char big[5001];
    memset(big, 'r', 5000);
    big[5000] = '\0';
    json_t *rec = json_pack("{s:s,s:s}", "result", big, "error", big);
    REQUIRE(rec);
    int ncut = 0;
    wd_bound_record(rec, 1000, "result", 10000, &ncut);
    CHECK(ncut == 1);
    CHECK(json_string_length(json_object_get(rec, "result")) == 5000);
    CHECK(json_string_length(json_object_get(rec, "error")) < 1000);
    json_decref(rec);
}

int main(void)
{
    RUN(sizes_are_what_jansson_writes);
    RUN(a_field_over_the_cap_is_cut_and_its_length_kept);
    RUN(a_cut_never_splits_a_character);
    RUN(the_big_field_has_its_own_cap);
    DONE();
}
