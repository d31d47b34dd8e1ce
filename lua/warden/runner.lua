-- runner.lua: the body of every run's agent coroutine. The engine passes the agent's
-- loaded chunk, the user's query and the run's ctx.
local agent_chunk, query, ctx = ...

local spec = agent_chunk()
if type(spec) ~= "table" or (spec.kind ~= "agent" and spec.kind ~= "workflow") then
  error("agent.lua must return warden.agent{...} or warden.workflow{...}", 0)
end
ctx:_configure(spec)

-- a session past the policy's caps: the agent's summarize hook may shorten it (it may ask
-- the model, as any of its calls would), before the agent sees it
if spec.summarize then
  local turns, over = ctx:_session()
  if over then ctx:_session_replace(spec.summarize(turns, ctx)) end
end

if spec.kind == "workflow" then
  return require("warden.workflow").run(spec, query, ctx)
end
if spec.run then
  return spec.run(query, ctx)
end
return require("warden.react").run(spec, query, ctx)
