-- mcp_loop: calls server-everything's echo through warden's pipeline, the number of
-- times its query says (engine/bench/bench_mcp.c times each call)
return warden.agent {
  name = "mcp_loop",
  tools = { "every__echo" },
  run = function(query, ctx)
    for i = 1, tonumber(query) do
      local r = ctx:call_tool("every__echo", { message = "bench " .. i })
      if type(r) ~= "table" or r.error then error("call " .. i .. ": " .. tostring(r and r.error)) end
    end
    return "done"
  end,
}
