-- workflow.lua: Path B, direct function calling. Either a fixed sequence of tools
-- (`steps`), each fed the previous result, or one LLM choice of one tool (`choose`).
local M = {}

local function as_text(ctx, v)
  if type(v) == "string" then return v end
  if type(v) == "table" then
    if type(v.text) == "string" then return v.text end
    if type(v.result) == "string" then return v.result end
  end
  return ctx:_json(v) or tostring(v)
end

local function failed(v)
  return type(v) == "table" and v.error ~= nil
end

-- steps: "tool_name" (gets {input = previous}) or {tool = "name", args = function(state) ... end}
local function run_steps(spec, query, ctx)
  local state = { query = query, previous = query, results = {} }
  for i, step in ipairs(spec.steps) do
    local name, args = step, nil
    if type(step) == "table" then
      name = step.tool
      if type(step.args) == "function" then args = step.args(state) end
    end
    if args == nil then args = { input = state.previous } end
    local result = ctx:call_tool(name, args)
    if failed(result) then
      return nil, ("workflow step %d (%s) failed: %s"):format(i, name, tostring(result.error))
    end
    state.results[name] = result
    state.previous = result
  end
  return as_text(ctx, state.previous)
end

-- one LLM call chooses one tool from `choose`; no loop
local function run_choice(spec, query, ctx)
  local messages = {
    { role = "system", content = spec.system_prompt or "Pick the one tool that answers the request." },
    { role = "user", content = query },
  }
  local resp, err = ctx:llm { messages = messages, _loaded_tools = true, model = spec.model }
  if not resp then return nil, err end
  local call = resp.tool_calls and resp.tool_calls[1]
  if not call then return resp.content or "" end
  local result = ctx:call_tool(call.name, call.arguments)
  if failed(result) then
    return nil, ("tool %s failed: %s"):format(call.name, tostring(result.error))
  end
  return as_text(ctx, result)
end

function M.run(spec, query, ctx)
  if spec.steps then return run_steps(spec, query, ctx) end
  return run_choice(spec, query, ctx)
end

return M
