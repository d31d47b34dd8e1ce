-- loop: the same call again and again, A-B-A-B alternation, or no progress (docs/safety.md,
-- Detectors and the failure-mode catalogue). Settings (policy detectors.loop): identical_calls (3), alternating
-- (true), no_progress_window (5), verdict (halt). The file runs once per run: the
-- counts below are this run's, kept as the events come (no rescan of the history).
local D = require "warden.detect"

local seen = {}        -- call key -> times asked
local last = {}        -- the last four call keys and tools, newest last
local outcomes = {}    -- the last tool results' outcomes, newest last

local function keep(list, v, n)
  list[#list + 1] = v
  if #list > n then
    table.remove(list, 1)
  end
end

return warden.detector {
  name = "loop",
  failure_mode = "infinite_loop",
  on = { "tool_call", "tool_result" },
  check = function(event, _, ctx)
    local cfg = ctx.config
    local verdict = cfg.verdict or "halt"
    if event.type == "tool_call" then
      local key = D.call_key(event)
      local same = (seen[key] or 0) + 1
      seen[key] = same
      keep(last, { key = key, tool = event.tool }, 4)
      local limit = cfg.identical_calls or 3
      if limit > 0 and same >= limit then
        return { verdict = verdict, pattern = "identical_calls", count = same,
                 reason = string.format("tool '%s' called %d times with the same arguments", event.tool, same) }
      end
      if cfg.alternating ~= false and #last == 4 then
        local a, b = last[4].key, last[3].key
        if a ~= b and a == last[2].key and b == last[1].key then
          return { verdict = verdict, pattern = "alternating",
                   reason = string.format("alternating calls: %s, %s, %s, %s", last[1].tool, last[2].tool,
                                          last[3].tool, last[4].tool) }
        end
      end
      return nil
    end
    local window = cfg.no_progress_window or 5
    if window < 2 then
      return nil
    end
    keep(outcomes, event.success and D.canon(event.result) or ("error " .. tostring(event.error)), window)
    if #outcomes < window then
      return nil
    end
    for i = 1, window - 1 do
      if outcomes[i] ~= outcomes[window] then
        return nil
      end
    end
    return { verdict = verdict, pattern = "no_progress",
             reason = string.format("no progress: the last %d tool results were identical", window) }
  end,
}
