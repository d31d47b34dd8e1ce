-- runner.lua: the body of every run's agent coroutine. The engine passes the agent's
-- loaded chunk, the user's query and the run's ctx.
local agent_chunk, query, ctx = ...

local spec = agent_chunk()
if type(spec) ~= "table" or (spec.kind ~= "agent" and spec.kind ~= "workflow") then
  error("agent.lua must return warden.agent{...} or warden.workflow{...}", 0)
end
ctx:_configure(spec)

if spec.kind == "workflow" then
  return require("warden.workflow").run(spec, query, ctx)
end
if spec.run then
  return spec.run(query, ctx)
end
return require("warden.react").run(spec, query, ctx)
