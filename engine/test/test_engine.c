/* test_engine.c - an engine's runs end with a result whatever they wait on when the
** engine is freed; a tool that returns nothing gives null (nothing is read past the
** coroutine's stack) */
#include "harness.h"
#include "engine.h"
#include "warden.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-engine-test.XXXXXX";
static char policy[300], audit_path[300], store_path[300];

typedef struct {
    int done;
    char status[32], first_error[200], tool_result[200];
} seen;

static void on_done(const json_t *res, void *ud)
{
    seen *s = ud;
    s->done++;
    snprintf(s->status, sizeof s->status, "%s", json_string_value(json_object_get(res, "status")));
    const char *e = json_string_value(json_array_get(json_object_get(res, "errors"), 0));
    snprintf(s->first_error, sizeof s->first_error, "%s", e ? e : "");
    const char *t = json_string_value(json_object_get(json_array_get(json_object_get(res, "tool_calls"), 0), "result"));
    snprintf(s->tool_result, sizeof s->tool_result, "%s", t ? t : "");
}

static wd_engine *engine(void)
{
    char err[600] = "";
    wd_engine_opts o = {policy, "mock:none", audit_path, store_path};
    wd_engine *e = wd_engine_new(&o, err, sizeof err);
    if (!e)
        fprintf(stderr, "  %s\n", err);
    return e;
}

/* a run asleep on a timer and one approval-free run still queued: both get a result */
TEST(freeing_an_engine_ends_every_run_with_a_result)
{
    wd_engine *e = engine();
    CHECK(e != NULL);
    if (!e)
        return;
    seen asleep = {0}, queued = {0};
    wd_run_opts a = {"spec/fixtures/lab", "[[\"sleep\", 60000]]", "reader", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    CHECK(wd_engine_submit(e, &a, on_done, &asleep) == 0);
    for (int i = 0; i < 5; i++) /* it starts and waits on its timer */
        event_base_loop(e->base, EVLOOP_NONBLOCK);
    CHECK(asleep.done == 0);
    wd_run_opts b = {"spec/fixtures/lab", "[]", "reader", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    CHECK(wd_engine_submit(e, &b, on_done, &queued) == 0);
    wd_engine_free(e);
    CHECK(asleep.done == 1);
    CHECK_STR(asleep.status, "failed");
    CHECK_STR(asleep.first_error, "engine stopped");
    CHECK(queued.done == 1);
}

TEST(a_tool_returning_nothing_gives_null)
{
    wd_engine *e = engine();
    CHECK(e != NULL);
    if (!e)
        return;
    seen s = {0};
    char agent[400];
    snprintf(agent, sizeof agent, "%s/quiet", dir);
    wd_run_opts o = {agent, "q", "reader", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 20; i++) {
        CHECK(wd_engine_submit(e, &o, on_done, &s) == 0);
        wd_engine_wait(e);
        CHECK_STR(s.status, "completed");
        CHECK_STR(s.tool_result, "null");
    }
    wd_engine_free(e);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(policy, sizeof policy, "%s/policy.yaml", dir);
    snprintf(audit_path, sizeof audit_path, "%s/audit.jsonl", dir);
    snprintf(store_path, sizeof store_path, "%s/state.db", dir);
    char cmd[1200], path[400];
    snprintf(cmd, sizeof cmd,
             "cp policies/test.yaml %s && sed -i 's/^tools:$/tools:\\n  quiet_tool: {permission: read}/' %s"
             " && mkdir -p %s/quiet/tools",
             policy, policy, dir);
    if (system(cmd) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/quiet/agent.lua", dir);
    write_file(path, "return warden.agent { name = \"quiet\", tools = { \"quiet_tool\" },\n"
                     "  run = function(q, ctx) local t = {} for i = 1, 50 do t[i] = { i } end\n"
                     "    ctx:call_tool(\"quiet_tool\", { list = t }) return \"done\" end }\n");
    snprintf(path, sizeof path, "%s/quiet/tools/quiet_tool.lua", dir);
    write_file(path, "return warden.tool { name = \"quiet_tool\", description = \"returns nothing\",\n"
                     "  run = function(args) local keep = { args, { 1, 2, 3 } } end }\n");
    RUN(freeing_an_engine_ends_every_run_with_a_result);
    RUN(a_tool_returning_nothing_gives_null);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    DONE();
}
