-- react.lua: the ReAct loop (reason, act, observe). The engine counts LLM calls
-- natively and ends the run at max_iterations, so this loop needs no counter of its own.
local M = {}

local DEFAULT_PROMPT = "You are a careful assistant. Use the tools you are given when they help, "
  .. "and answer the user directly when you can."

local function encode(ctx, v)
  return ctx:_json(v) or '{"error":"tool result could not be encoded"}'
end

function M.run(agent, query, ctx)
  -- the agent's prompt first, whatever the conversation before the query holds (a
  -- client's own system messages come after it)
  local messages = { { role = "system", content = agent.system_prompt or DEFAULT_PROMPT } }
  for _, m in ipairs(ctx:history()) do messages[#messages + 1] = m end
  messages[#messages + 1] = { role = "user", content = query }
  while true do
    -- _loaded_tools: the run's tools, as ctx:tool_specs() lists them, sent by the engine
    -- straight from what it holds
    -- _output_schema: the run's output_schema (the agent's, or its client's), if any, holds
    -- the answer
    local resp, err = ctx:llm { messages = messages, _loaded_tools = true, model = agent.model,
                                temperature = agent.temperature, _output_schema = true }
    if not resp then
      return nil, err
    end
    local calls = resp.tool_calls or {}
    if #calls == 0 then
      return resp.content or ""
    end
    messages[#messages + 1] = { role = "assistant", content = resp.content, tool_calls = calls }
    for _, call in ipairs(calls) do
      local result = ctx:call_tool(call.name, call.arguments)
      messages[#messages + 1] = { role = "tool", tool_call_id = call.id, name = call.name,
                                  content = encode(ctx, result) }
    end
  end
end

return M
