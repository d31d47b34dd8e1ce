-- call_tool.lua: the body of a run that calls one tool for a client of warden serve's
-- /mcp. The engine passes the tool's name, its arguments and the run's ctx; the tool is
-- the run's whole allow-list, and its call goes through the pipeline as any agent's.
-- The run's output is what the call returned ({error = "..."} when refused or failed:
-- the result's tool_calls[1].success tells which).
local tool, args, ctx = ...

ctx:_configure({ kind = "agent", name = "mcp", tools = { tool } })
return ctx:call_tool(tool, args)
