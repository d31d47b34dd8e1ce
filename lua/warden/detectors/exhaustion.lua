-- exhaustion: the run is near one of its limits: iterations, its cost limit or its run
-- time (docs/safety.md, failure modes: resource exhaustion). Settings: ratio (0.9), verdict (warn).
-- Each limit is reported once per run.
local warned = {}

return warden.detector {
  name = "exhaustion",
  failure_mode = "resource_exhaustion",
  on = { "llm_call", "tool_call", "tool_result" },
  check = function(event, _, ctx)
    local ratio = ctx.config.ratio or 0.9
    local lim = ctx.limits
    local checks = {
      { "iterations", event.step, lim.max_iterations, "%d of %d LLM calls" },
      { "cost", event.run_cost_usd, lim.cost_usd, "$%.4f of the run's $%.2f" },
      { "run_time", event.elapsed_ms, lim.run_ms, "%d of %d ms" },
    }
    for _, c in ipairs(checks) do
      local name, used, limit, fmt = c[1], c[2], c[3], c[4]
      if not warned[name] and limit and limit > 0 and used and used >= ratio * limit then
        warned[name] = true
        return { verdict = ctx.config.verdict or "warn", resource = name, used = used, limit = limit,
                 reason = string.format("%s at %d%% of its limit: " .. fmt, name,
                                        math.floor(used / limit * 100 + 0.5), used, limit) }
      end
    end
    return nil
  end,
}
