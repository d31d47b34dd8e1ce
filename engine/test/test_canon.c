/* test_canon.c - wd_json_canon against jansson's json_dumps with the audit flags:
** the chain hashes this text, so one byte of difference breaks every old log. */
#include "harness.h"
#include "audit.h"
#include "canon.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t put_utf8(char *p, unsigned cp)
{
    if (cp < 0x80)
        return p[0] = (char)cp, 1;
    if (cp < 0x800)
        return p[0] = (char)(0xC0 | cp >> 6), p[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return p[0] = (char)(0xE0 | cp >> 12), p[1] = (char)(0x80 | ((cp >> 6) & 63)), p[2] = (char)(0x80 | (cp & 63)),
               3;
    return p[0] = (char)(0xF0 | cp >> 18), p[1] = (char)(0x80 | ((cp >> 12) & 63)),
           p[2] = (char)(0x80 | ((cp >> 6) & 63)), p[3] = (char)(0x80 | (cp & 63)), 4;
}

/* valid UTF-8 with the awkward parts: controls, NUL, quotes, backslash, slash, DEL,
** U+2028, astral planes */
static json_t *rand_string(int key, char *out, size_t *outlen)
{
    static const unsigned pick[] = {0,    1,    8,      9,      10,      12,  13,  31,  '"', '\\', '/', 0x7F,
                                    0x80, 0xE9, 0x2028, 0xFFFD, 0x1F600, 'a', 'z', 'A', ' ', '_',  '0'};
    char buf[256];
    size_t n = 0, len = rnd() % 24;
    for (size_t i = 0; i < len; i++) {
        unsigned cp = rnd() % 3 ? (unsigned)(0x20 + rnd() % 95) : pick[rnd() % (sizeof pick / sizeof *pick)];
        if (key && cp == 0)
            cp = 'k';
        n += put_utf8(buf + n, cp);
    }
    buf[n] = '\0';
    if (out) {
        memcpy(out, buf, n + 1);
        *outlen = n;
        return NULL;
    }
    return json_stringn(buf, n);
}

static double rand_real(void)
{
    switch (rnd() % 8) {
    case 0: return (double)(int64_t)(rnd() % 2000000) - 1000000.0;       /* integral: gets ".0" */
    case 1: return ldexp((double)(rnd() % 1000000), -(int)(rnd() % 80)); /* tiny: e-05 .. */
    case 2: return ldexp((double)(rnd() % 1000000), (int)(rnd() % 200)); /* huge: e+20 .. */
    case 3: return -0.0;
    case 4: return DBL_MIN * (double)(rnd() % 10 + 1);
    case 5: return DBL_MAX / (double)(rnd() % 10 + 1);
    default: return ((double)(int64_t)rnd()) / 1e9;
    }
}

static json_t *rand_value(int depth)
{
    int kind = (int)(rnd() % (depth > 4 ? 6 : 8));
    switch (kind) {
    case 0: return json_null();
    case 1: return json_boolean(rnd() & 1);
    case 2: return json_integer((json_int_t)rnd() >> (rnd() % 64));
    case 3: return json_real(rand_real());
    case 4:
    case 5: return rand_string(0, NULL, NULL);
    case 6: {
        json_t *a = json_array();
        for (int i = (int)(rnd() % 5); i > 0; i--)
            json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(rnd() % 40); i > 0; i--) { /* past 16 keys: the qsort path */
            char k[256];
            size_t kl;
            rand_string(1, k, &kl);
            json_object_set_new(o, k, rand_value(depth + 1));
        }
        return o;
    }
    }
}

TEST(matches_jansson_on_random_records)
{
    int differ = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *rec = json_object();
        json_object_set_new(rec, "event", json_string("tool_call"));
        json_object_set_new(rec, "v", rand_value(0));
        json_object_set_new(rec, "w", rand_value(0));
        char *want = json_dumps(rec, WD_AUDIT_JSON_FLAGS);
        wd_buf got = {0};
        int rc = wd_json_canon(rec, &got);
        if (rc || !want || strcmp(want, got.p)) {
            if (!differ++)
                fprintf(stderr, "  jansson: %s\n  canon:   %s\n", want, got.p);
        }
        free(want);
        wd_buf_free(&got);
        json_decref(rec);
    }
    CHECK(differ == 0);
}

TEST(edge_values)
{
    json_t *rec = json_pack("{s:f,s:f,s:f,s:I,s:I,s:s#,s:{},s:[]}", "a", 1e-5, "b", 1e20, "c", 0.1, "d",
                            (json_int_t)INT64_MIN, "e", (json_int_t)INT64_MAX, "f", "x\0y", (int)3, "g", "h");
    wd_buf got = {0};
    CHECK(wd_json_canon(rec, &got) == 0);
    CHECK_STR(got.p, "{\"a\":1e-5,\"b\":1e20,\"c\":0.1,\"d\":-9223372036854775808,\"e\":9223372036854775807,"
                     "\"f\":\"x\\u0000y\",\"g\":{},\"h\":[]}");
    char *want = json_dumps(rec, WD_AUDIT_JSON_FLAGS);
    CHECK_STR(got.p, want);
    free(want);
    wd_buf_free(&got);
    json_decref(rec);
}

TEST(refuses_absurd_depth)
{
    json_t *v = json_array(), *top = v;
    for (int i = 0; i < 3000; i++) {
        json_t *a = json_array();
        json_array_append_new(v, a);
        v = a;
    }
    wd_buf got = {0};
    CHECK(wd_json_canon(top, &got) == -1);
    wd_buf_free(&got);
    json_decref(top);
}

/* request bodies: json_dumps(JSON_COMPACT), member order and 17 digits kept */
TEST(compact_matches_jansson)
{
    int differ = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *v = rand_value(0);
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        wd_buf got = {0};
        int rc = wd_json_compact(v, &got);
        if (rc || !want || strcmp(want, got.p)) {
            if (!differ++)
                fprintf(stderr, "  jansson: %s\n  compact: %s\n", want, got.p);
        }
        free(want);
        wd_buf_free(&got);
        json_decref(v);
    }
    CHECK(differ == 0);
}

/* the audit log renders a record's members at append time and puts prev_hash and seq
** in their places at flush: the result must be the canonical text of the whole record */
TEST(members_with_chain_keys_put_back_match_the_whole)
{
    static const char *const skip[] = {"hash", "prev_hash", "seq", NULL};
    int differ = 0;
    for (int i = 0; i < 5000; i++) {
        json_t *rec = rand_value(0);
        if (!json_is_object(rec)) {
            json_decref(rec);
            rec = json_object();
        }
        if (rnd() % 2) /* keys that sort around the chain's own */
            json_object_set_new(rec, "reason", json_string("r"));
        if (rnd() % 2)
            json_object_set_new(rec, "agent", json_string("a"));
        if (rnd() % 2)
            json_object_set_new(rec, "timestamp", json_string("t"));
        if (rnd() % 3 == 0)
            json_object_set_new(rec, "seq", json_string("stale: the writer's own wins"));
        json_object_del(rec, "hash");
        wd_buf m = {0}, got = {0};
        size_t at[3];
        CHECK(wd_json_canon_members(rec, &m, skip, at) == 0);
        CHECK(at[0] <= at[1] && at[1] <= at[2] && at[2] <= m.len);
        wd_buf_add(&got, m.p, at[1]);
        wd_buf_adds(&got, ",\"prev_hash\":\"h\"");
        wd_buf_add(&got, m.p + at[1], at[2] - at[1]);
        wd_buf_adds(&got, ",\"seq\":7");
        wd_buf_add(&got, m.p + at[2], m.len - at[2]);
        wd_buf_adds(&got, "}");
        got.p[0] = '{';
        json_object_set_new(rec, "prev_hash", json_string("h"));
        json_object_set_new(rec, "seq", json_integer(7));
        char *want = json_dumps(rec, WD_AUDIT_JSON_FLAGS);
        if (!want || strcmp(want, got.p)) {
            if (!differ++)
                fprintf(stderr, "  jansson: %s\n  members: %s\n", want, got.p);
        }
        free(want);
        wd_buf_free(&m);
        wd_buf_free(&got);
        json_decref(rec);
    }
    CHECK(differ == 0);
    json_t *arr = json_array();
    wd_buf m = {0};
    size_t at[3];
    CHECK(wd_json_canon_members(arr, &m, skip, at) == -1);
    json_decref(arr);
    wd_buf_free(&m);
}

int main(void)
{
    RUN(matches_jansson_on_random_records);
    RUN(edge_values);
    RUN(refuses_absurd_depth);
    RUN(members_with_chain_keys_put_back_match_the_whole);
    RUN(compact_matches_jansson);
    DONE();
}
