/* test_mcp.c - MCP over stdio (runtime/jsonrpc.c, mcpconn.c, mcpsession.c): the line
** reader's caps, the handshake and tools of the official server-everything (installed by
** make deps in tools/npm), and servers that lie, crash, hang or leave children behind. */
#include "harness.h"
#include "jsonrpc.h"
#include "mcpconn.h"
#include "mcpsession.h"

#include <event2/event.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define EVERYTHING "tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

typedef struct {
    int kinds[3];
    char last_type[64];
} lines_t;

static void count_line(void *ud, int kind, json_t *msg, const char *why)
{
    lines_t *l = ud;
    (void)why;
    l->kinds[kind]++;
    if (msg)
        snprintf(l->last_type, sizeof l->last_type, "%s", json_string_value(json_object_get(msg, "method")));
}

TEST(test_lines_cut_and_capped)
{
    wd_rpc_reader r = {.max_line = 64};
    lines_t l = {{0}, ""};
    const char *a = "{\"jsonrpc\":\"2.0\",\"meth", *b = "od\":\"x\"}\r\n\nnot json\n[1]\n";
    CHECK(wd_rpc_feed(&r, a, strlen(a), count_line, &l) == 0);
    CHECK(l.kinds[WD_RPC_MESSAGE] == 0); /* half a line is nothing yet */
    CHECK(wd_rpc_feed(&r, b, strlen(b), count_line, &l) == 0);
    CHECK(l.kinds[WD_RPC_MESSAGE] == 1);
    CHECK_STR(l.last_type, "x");
    CHECK(l.kinds[WD_RPC_GARBAGE] == 2); /* "not json", and an array */
    char big[200];
    memset(big, 'x', sizeof big);
    CHECK(wd_rpc_feed(&r, big, sizeof big, count_line, &l) == 0);
    const char *c = "{}\n{\"jsonrpc\":\"2.0\",\"method\":\"y\"}\n";
    CHECK(wd_rpc_feed(&r, c, strlen(c), count_line, &l) == 0);
    CHECK(l.kinds[WD_RPC_TOO_LONG] == 1); /* dropped whole, and the next line is read */
    CHECK(l.kinds[WD_RPC_MESSAGE] == 2);
    wd_rpc_reader_free(&r);
}

typedef struct {
    int done;
    char error[600];
    json_t *result, *tools, *init;
    int exited;
    char how[200];
} waiter;

static void on_answer(void *ud, json_t *result, const char *error)
{
    waiter *w = ud;
    w->done = 1;
    snprintf(w->error, sizeof w->error, "%s", error ? error : "");
    w->result = json_incref(result);
}

static void on_ready(void *ud, json_t *init, json_t *tools, const char *error)
{
    waiter *w = ud;
    w->done = 1;
    snprintf(w->error, sizeof w->error, "%s", error ? error : "");
    w->init = json_incref(init);
    w->tools = json_incref(tools);
}

static void on_end(void *ud, const char *how)
{
    waiter *w = ud;
    w->exited = 1;
    snprintf(w->how, sizeof w->how, "%s", how);
}

/* the loop until *flag or ms pass; 1 when the flag was set */
static int loop_until(struct event_base *b, int *flag, long ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!*flag) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(b, &tick);
        event_base_dispatch(b);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            return 0;
    }
    return 1;
}

static void reset(waiter *w)
{
    json_decref(w->result);
    json_decref(w->tools);
    json_decref(w->init);
    memset(w, 0, sizeof *w);
}

/* a process that is gone, or a zombie nobody reaps (a container's init may not) */
static int dead(int pid)
{
    char path[64], st[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = '\0';
    const char *paren = strrchr(st, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static wd_mcp *sh(struct event_base *b, const char *script)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    wd_mcp_opts o = {.name = "fake", .argv = argv};
    char err[300];
    return wd_mcp_spawn(b, &o, err, sizeof err);
}

TEST(test_everything_handshake_tools_and_a_call)
{
    REQUIRE(access(EVERYTHING, R_OK) == 0 || (fprintf(stderr, "  %s missing: run make deps\n", EVERYTHING), 0));
    struct event_base *b = event_base_new();
    char *argv[] = {"node", EVERYTHING, "stdio", NULL};
    char *env[] = {"WARDEN_SPEC=1", NULL};
    wd_mcp_opts o = {.name = "everything", .argv = argv, .env = env};
    char err[300];
    wd_mcp *m = wd_mcp_spawn(b, &o, err, sizeof err);
    REQUIRE(m);
    waiter w = {0};
    CHECK(wd_mcp_session_start(m, 20000, on_ready, &w) == 0);
    CHECK(loop_until(b, &w.done, 30000));
    CHECK_STR(w.error, "");
    CHECK_STR(json_string_value(json_object_get(w.init, "protocolVersion")), "2025-06-18");
    int echo = 0;
    size_t i;
    json_t *t;
    json_array_foreach(w.tools, i, t) echo |= h_streq(json_string_value(json_object_get(t, "name")), "echo");
    CHECK(echo);
    CHECK(json_array_size(w.tools) >= 5);
    reset(&w);
    CHECK(wd_mcp_request(m, "tools/call",
                         json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments", "message", "hi there"), 10000,
                         on_answer, &w) > 0);
    CHECK(loop_until(b, &w.done, 15000));
    CHECK_STR(w.error, "");
    json_t *c0 = json_array_get(json_object_get(w.result, "content"), 0);
    CHECK_HAS(json_string_value(json_object_get(c0, "text")), "hi there");
    CHECK(wd_mcp_garbage(m) == 0);
    reset(&w);
    wd_mcp_free(m);
    event_base_free(b);
}

TEST(test_a_server_that_lies_or_speaks_another_protocol)
{
    struct event_base *b = event_base_new();
    wd_mcp *m = sh(b, "read l; echo 'not json at all'; echo '[1,2]';"
                      "echo '{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}';"
                      "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"1999-01-01\"}}'; sleep 5");
    REQUIRE(m);
    waiter w = {0};
    CHECK(wd_mcp_session_start(m, 5000, on_ready, &w) == 0);
    CHECK(loop_until(b, &w.done, 5000));
    CHECK_HAS(w.error, "initialize: the server speaks protocol 1999-01-01, warden 2025-06-18");
    CHECK(wd_mcp_garbage(m) == 3); /* two lines that are no message, an answer to nothing asked */
    reset(&w);
    wd_mcp_free(m);
    event_base_free(b);
}

TEST(test_a_server_that_dies)
{
    struct event_base *b = event_base_new();
    wd_mcp *m = sh(b, "read l; echo 'something went wrong' >&2; exit 3");
    REQUIRE(m);
    waiter w = {0}, end = {0};
    wd_mcp_on(m, NULL, on_end, &end);
    CHECK(wd_mcp_request(m, "initialize", NULL, 5000, on_answer, &w) > 0);
    CHECK(loop_until(b, &end.exited, 5000));
    CHECK(w.done);
    CHECK_STR(w.error, "mcp server fake exited with status 3: something went wrong"); /* its last words */
    CHECK_STR(end.how, "mcp server fake exited with status 3: something went wrong");
    CHECK_HAS(wd_mcp_stderr(m), "something went wrong");
    CHECK(!wd_mcp_running(m));
    CHECK(wd_mcp_request(m, "tools/list", NULL, 1000, on_answer, &w) == -1); /* it has ended */
    reset(&w);
    wd_mcp_free(m);
    /* a command that does not exist: its exit and its stderr say so */
    char *argv[] = {"/no/such/server", NULL};
    wd_mcp_opts o = {.name = "ghost", .argv = argv};
    char err[300];
    m = wd_mcp_spawn(b, &o, err, sizeof err);
    REQUIRE(m);
    wd_mcp_on(m, NULL, on_end, &end);
    end.exited = 0;
    CHECK(loop_until(b, &end.exited, 5000));
    CHECK_HAS(end.how, "mcp server ghost exited with status 127: ");
    CHECK_HAS(wd_mcp_stderr(m), "cannot run /no/such/server: No such file or directory");
    wd_mcp_free(m);
    event_base_free(b);
}

TEST(test_a_server_that_hangs_is_timed_out_and_its_group_ended)
{
    struct event_base *b = event_base_new();
    char pidfile[] = "/tmp/warden-mcp-child.XXXXXX";
    int fd = mkstemp(pidfile);
    REQUIRE(fd >= 0);
    close(fd);
    char script[300];
    snprintf(script, sizeof script, "sleep 100 & echo $! > %s; while :; do sleep 1; done", pidfile);
    wd_mcp *m = sh(b, script);
    REQUIRE(m);
    waiter w = {0};
    CHECK(wd_mcp_request(m, "tools/call", NULL, 200, on_answer, &w) > 0);
    CHECK(loop_until(b, &w.done, 3000));
    CHECK_STR(w.error, "timed out after 200 ms");
    int child = 0;
    for (int i = 0; i < 200 && !child; i++) {
        FILE *f = fopen(pidfile, "r");
        if (f && fscanf(f, "%d", &child) != 1)
            child = 0;
        if (f)
            fclose(f);
        if (!child)
            usleep(10000);
    }
    REQUIRE(child > 0);
    CHECK(kill(child, 0) == 0);
    wd_mcp_free(m); /* the server and the child it left in its group */
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = dead(child);
        if (!gone)
            usleep(10000);
    }
    CHECK(gone);
    unlink(pidfile);
    reset(&w);
    event_base_free(b);
}

int main(void)
{
    RUN(test_lines_cut_and_capped);
    RUN(test_everything_handshake_tools_and_a_call);
    RUN(test_a_server_that_lies_or_speaks_another_protocol);
    RUN(test_a_server_that_dies);
    RUN(test_a_server_that_hangs_is_timed_out_and_its_group_ended);
    DONE();
}
