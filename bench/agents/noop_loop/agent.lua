-- The benchmark agent: calls the no-op tool N times (N is the query).
return warden.agent {
  name = "noop_loop",
  tools = { "noop" },
  run = function(query, ctx)
    local n = tonumber(query) or 1000
    for _ = 1, n do
      ctx:call_tool("noop", { query = "benchmark", max_results = 5 })
    end
    return "ok"
  end,
}
