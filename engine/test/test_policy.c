/* test_policy.c - loader errors with positions, defaults, references, limits */
#include "harness.h"
#include "policy.h"

static wd_perrors pe;

static wd_policy *load(const char *y)
{
    wd_perrors_free(&pe);
    return wd_policy_load_text(y, strlen(y), "p.yaml", &pe);
}

static int has(const char *needle)
{
    for (size_t i = 0; i < pe.n; i++)
        if (strstr(pe.v[i], needle))
            return 1;
    return 0;
}

TEST(defaults_of_the_seed)
{
    wd_policy *p = load("version: 1\n");
    REQUIRE(p != NULL);
    CHECK(p->max_iterations == 5);
    CHECK(p->llm_read_ms == 30000 && p->tool_ms == 5000 && p->run_ms == 120000);
    CHECK(p->max_retries == 3 && p->retry_base_ms == 1000 && p->retry_max_ms == 8000 && p->retry_jitter_ms == 500);
    CHECK(p->breaker_failure_threshold == 5 && p->breaker_open_ms == 60000 && p->breaker_half_open_probes == 1);
    CHECK(p->memory_mb == 64);
    CHECK(p->roles.n == 3);
    CHECK(p->expiry_ms[3] == 15 * 60000);
    wd_policy_unref(p);
}

TEST(tool_patterns)
{
    wd_policy *p = load("tools:\n  'files__*': {permission: read, risk: low}\n"
                        "  'files__write*': {permission: admin, risk: high, requires_approval: true}\n"
                        "  files__write_file: {permission: write}\n  '*__delete': {permission: admin}\n"
                        "  'a*b*c': {permission: read, category: write}\n");
    REQUIRE(p != NULL);
    CHECK_STR(wd_policy_tool(p, "files__read_text_file")->name, "files__*");
    CHECK_STR(wd_policy_tool(p, "files__write_many")->name, "files__write*");     /* the most specific */
    CHECK_STR(wd_policy_tool(p, "files__write_file")->name, "files__write_file"); /* its own rule first */
    /* both match; "*__delete" names 8 characters, "files__*" 7: the more specific wins */
    CHECK_STR(wd_policy_tool(p, "files__delete")->name, "*__delete");
    CHECK_STR(wd_policy_tool(p, "db__delete")->name, "*__delete");
    CHECK_STR(wd_policy_tool(p, "aXXbYYc")->name, "a*b*c");
    CHECK(wd_policy_tool(p, "abX") == NULL);
    CHECK(wd_policy_tool(p, "files_read") == NULL); /* one underscore: not files__ */
    CHECK(wd_policy_tool(p, "other") == NULL);
    wd_policy_unref(p);
    CHECK(load("tools:\n  '**': {permission: read}\n") == NULL);
    CHECK(has("a pattern must name some characters besides '*'"));
}

TEST(references_and_roles)
{
    wd_policy *p = load("roles: [read, write, admin]\nusers:\n  a: {role: admin}\n  b: {role: read}\n"
                        "tools:\n  t: {permission: write, timeout_ms: 2s}\n");
    CHECK(p != NULL);
    CHECK(wd_policy_user(p, "a")->role == 2);
    CHECK(wd_policy_tool(p, "t")->permission == 1);
    CHECK(wd_policy_tool(p, "t")->timeout_ms == 2000);
    CHECK(wd_policy_tool(p, "nope") == NULL);
    wd_policy_unref(p);
}

TEST(errors_with_positions)
{
    CHECK(load("users:\n  a: {role: king}\n") == NULL);
    CHECK(has("p.yaml:2:13: users.a.role 'king' is not in roles"));
    CHECK(load("defaults:\n  timeouts: {run_ms: 0}\n") == NULL);
    CHECK(has("p.yaml:2:22: defaults.timeouts.run_ms is 0 ms"));
    CHECK(load("toolz: {}\n") == NULL);
    CHECK(has("p.yaml:1:1: unknown key 'toolz' in the policy; did you mean 'tools'?"));
    CHECK(load("a: &x 1\nb: *x\n") == NULL);
    CHECK(has("aliases"));
}

TEST(durations)
{
    CHECK(wd_policy_duration("90s") == 90000);
    CHECK(wd_policy_duration("15m") == 900000);
    CHECK(wd_policy_duration("4h") == 14400000);
    CHECK(wd_policy_duration("250") == 250);
    CHECK(wd_policy_duration("1.5s") == 1500);
    CHECK(wd_policy_duration("soon") == -1);
    CHECK(wd_policy_duration("-1s") == -1);
    /* found by fuzz_policy_gen: NaN reached a conversion to an integer (UBSan stops it) */
    CHECK(wd_policy_duration("nan") == -1);
    CHECK(wd_policy_duration("nans") == -1);
    CHECK(wd_policy_duration("inf") == -1);
    CHECK(wd_policy_duration("1e300h") == -1);
}

/* a "\0" escape: the value would be cut at the NUL by every C string use (a forbidden
** pattern "rm\0x" would become "rm"), so the loader refuses it with its position */
TEST(nul_inside_a_value_is_refused)
{
    CHECK(load("version: 1\ntools:\n  t: {permission: read, forbidden_patterns: [\"rm\\0-rf\"]}\n") == NULL);
    CHECK(has("p.yaml:3:"));
    CHECK(has("NUL byte"));
}

TEST(refcount)
{
    wd_policy *p = load("version: 1\n");
    CHECK(wd_policy_ref(p) == p);
    wd_policy_unref(p);
    CHECK(p->refs == 1);
    wd_policy_unref(p);
    wd_policy_unref(NULL);
}

int main(void)
{
    RUN(defaults_of_the_seed);
    RUN(tool_patterns);
    RUN(references_and_roles);
    RUN(errors_with_positions);
    RUN(durations);
    RUN(nul_inside_a_value_is_refused);
    RUN(refcount);
    wd_perrors_free(&pe);
    DONE();
}
