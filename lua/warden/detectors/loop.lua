-- loop: the same call again and again, A-B-A-B alternation, or no progress (seed 003
-- section 3.1). Settings (policy detectors.loop): identical_calls (3), alternating
-- (true), no_progress_window (5), verdict (halt).
local D = require "warden.detect"

return warden.detector {
  name = "loop",
  failure_mode = "infinite_loop",
  on = { "tool_call", "tool_result" },
  check = function(event, history, ctx)
    local cfg = ctx.config
    local verdict = cfg.verdict or "halt"
    if event.type == "tool_call" then
      local calls = D.of_type(history, "tool_call")
      local key = D.call_key(event)
      local limit = cfg.identical_calls or 3
      local same = 0
      for _, c in ipairs(calls) do
        if D.call_key(c) == key then
          same = same + 1
        end
      end
      if limit > 0 and same >= limit then
        return { verdict = verdict, pattern = "identical_calls", count = same,
                 reason = string.format("tool '%s' called %d times with the same arguments", event.tool, same) }
      end
      local n = #calls
      if cfg.alternating ~= false and n >= 4 then
        local a, b = D.call_key(calls[n]), D.call_key(calls[n - 1])
        if a ~= b and a == D.call_key(calls[n - 2]) and b == D.call_key(calls[n - 3]) then
          return { verdict = verdict, pattern = "alternating",
                   reason = string.format("alternating calls: %s, %s, %s, %s", calls[n - 3].tool,
                                          calls[n - 2].tool, calls[n - 1].tool, calls[n].tool) }
        end
      end
      return nil
    end
    local window = cfg.no_progress_window or 5
    local results = D.of_type(history, "tool_result")
    local n = #results
    if window < 2 or n < window then
      return nil
    end
    local function outcome(r)
      return r.success and D.canon(r.result) or ("error " .. tostring(r.error))
    end
    local first = outcome(results[n])
    for i = n - window + 1, n - 1 do
      if outcome(results[i]) ~= first then
        return nil
      end
    end
    return { verdict = verdict, pattern = "no_progress",
             reason = string.format("no progress: the last %d tool results were identical", window) }
  end,
}
