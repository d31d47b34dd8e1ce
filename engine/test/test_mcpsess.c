/* test_mcpsess.c - the sessions of warden serve's /mcp (serve/mcpsess.c): bound to the
** user who opened them, forgotten when idle, capped per user and in all. */
#include "harness.h"
#include "mcpsess.h"

#include <string.h>

TEST(a_session_is_its_users_only)
{
    wd_mcp_sessions *ss = wd_mcpsess_new();
    char id[MCP_SESSION_ID_LEN + 1], other[MCP_SESSION_ID_LEN + 1], v[32];
    CHECK(wd_mcpsess_open(ss, "reader", "2025-06-18", id, 1000) == 0);
    CHECK(strlen(id) == MCP_SESSION_ID_LEN);
    CHECK(wd_mcpsess_open(ss, "reader", "2025-06-18", other, 1000) == 0);
    CHECK(strcmp(id, other) != 0); /* random, never reused */
    CHECK(wd_mcpsess_use(ss, id, "reader", v, sizeof v, 2000) == 1);
    CHECK_STR(v, "2025-06-18");
    CHECK(wd_mcpsess_use(ss, id, "writer", v, sizeof v, 2000) == 0); /* another key: unknown */
    CHECK(wd_mcpsess_close(ss, id, "writer") == 0);
    CHECK(wd_mcpsess_use(ss, id, "reader", v, sizeof v, 2000) == 1);
    CHECK(wd_mcpsess_close(ss, id, "reader") == 1);
    CHECK(wd_mcpsess_use(ss, id, "reader", v, sizeof v, 2000) == 0);
    CHECK(wd_mcpsess_use(ss, "", "reader", v, sizeof v, 2000) == 0);
    wd_mcpsess_free(ss);
}

TEST(an_idle_session_is_forgotten_and_use_keeps_one)
{
    wd_mcp_sessions *ss = wd_mcpsess_new();
    char a[MCP_SESSION_ID_LEN + 1], b[MCP_SESSION_ID_LEN + 1], v[32];
    CHECK(wd_mcpsess_open(ss, "u", "2025-11-25", a, 0) == 0);
    CHECK(wd_mcpsess_open(ss, "u", "2025-11-25", b, 0) == 0);
    CHECK(wd_mcpsess_use(ss, b, "u", v, sizeof v, MCP_SESSION_IDLE_MS - 1) == 1); /* b was used */
    CHECK(wd_mcpsess_use(ss, a, "u", v, sizeof v, MCP_SESSION_IDLE_MS + 1) == 0); /* a was not */
    CHECK(wd_mcpsess_use(ss, b, "u", v, sizeof v, MCP_SESSION_IDLE_MS + 1) == 1);
    char c[MCP_SESSION_ID_LEN + 1];
    CHECK(wd_mcpsess_open(ss, "u", "2025-11-25", c, MCP_SESSION_IDLE_MS + 2) == 0); /* sweeps a */
    CHECK(wd_mcpsess_count(ss) == 2);
    wd_mcpsess_free(ss);
}

TEST(a_user_at_its_cap_loses_its_least_recently_used)
{
    wd_mcp_sessions *ss = wd_mcpsess_new();
    char first[MCP_SESSION_ID_LEN + 1], id[MCP_SESSION_ID_LEN + 1], v[32];
    CHECK(wd_mcpsess_open(ss, "flood", "2025-06-18", first, 1) == 0);
    for (int i = 0; i < MCP_SESSIONS_USER + 10; i++)
        CHECK(wd_mcpsess_open(ss, "flood", "2025-06-18", id, 2 + i) == 0);
    CHECK(wd_mcpsess_count(ss) == MCP_SESSIONS_USER);
    CHECK(wd_mcpsess_use(ss, first, "flood", v, sizeof v, 1000) == 0);
    CHECK(wd_mcpsess_use(ss, id, "flood", v, sizeof v, 1000) == 1);
    /* another user is not held up by the flood */
    CHECK(wd_mcpsess_open(ss, "quiet", "2025-06-18", id, 1000) == 0);
    CHECK(wd_mcpsess_use(ss, id, "quiet", v, sizeof v, 1000) == 1);
    wd_mcpsess_free(ss);
}

TEST(the_server_refuses_sessions_past_its_cap)
{
    wd_mcp_sessions *ss = wd_mcpsess_new();
    char id[MCP_SESSION_ID_LEN + 1], user[32];
    int refused = 0;
    for (int i = 0; i < MCP_SESSIONS_MAX + 5; i++) {
        snprintf(user, sizeof user, "u%d", i);
        refused += wd_mcpsess_open(ss, user, "2025-06-18", id, 5) < 0;
    }
    CHECK(refused == 5);
    CHECK(wd_mcpsess_count(ss) == MCP_SESSIONS_MAX);
    wd_mcpsess_free(ss);
    wd_mcpsess_free(NULL);
}

int main(void)
{
    RUN(a_session_is_its_users_only);
    RUN(an_idle_session_is_forgotten_and_use_keeps_one);
    RUN(a_user_at_its_cap_loses_its_least_recently_used);
    RUN(the_server_refuses_sessions_past_its_cap);
    DONE();
}
