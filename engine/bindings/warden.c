/* warden.c - the engine put together (wd_engine_new, warden.h): the runtime made with the
** hooks of the layers above it, the kinds of operation (ops/) and the detectors and Lua
** bindings (bindings/). The one place that names them all. */
#include "detect.h"
#include "exec.h"
#include "mcpcall.h"
#include "agentcall.h"
#include "fetch.h"
#include "llm.h"
#include "lua_warden.h"
#include "pipeline.h"

static const wd_engine_hooks HOOKS = {
    .ops =
        {
            [OP_TOOL] = &wd_op_tool,
            [OP_APPROVAL] = &wd_op_approval,
            [OP_HTTP] = &wd_op_http,
            [OP_EXEC] = &wd_op_exec,
            [OP_MCP] = &wd_op_mcp,
            [OP_AGENT] = &wd_op_agent,
            [OP_LLM] = &wd_op_llm,
            [OP_SLEEP] = &wd_op_sleep,
            [OP_STORE] = &wd_op_store,
            [OP_END] = &wd_op_end,
        },
    .open_warden = wd_lua_open_warden,
    .push_ctx = wd_lua_push_ctx,
    .observe = wd_detect_event,
    .answer = wd_detect_answer,
    .drain = wd_detect_drain,
    .finish = wd_detect_finish,
    .free_detect = wd_detect_free,
};

wd_engine *wd_engine_new(const wd_engine_opts *o, char *err, size_t errlen)
{
    return wd_engine_create(o, &HOOKS, err, errlen);
}
