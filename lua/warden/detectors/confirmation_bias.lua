-- confirmation_bias: the evidence a run gathered mostly supports its hypothesis (docs/safety.md,
-- Detectors and the failure-mode catalogue). Evidence is what agents tag: a tool result or a ctx:log{} with a boolean
-- supports_hypothesis (and, optionally, hypothesis = "..."). Judged when the run ends.
-- Settings: max_confirming (0.8), min_evidence (3), verdict (warn).
local confirming, disconfirming, hypothesis = 0, 0, nil

local function tally(t)
  if type(t) ~= "table" or type(t.supports_hypothesis) ~= "boolean" then
    return
  end
  if t.supports_hypothesis then
    confirming = confirming + 1
  else
    disconfirming = disconfirming + 1
  end
  if type(t.hypothesis) == "string" then
    hypothesis = t.hypothesis
  end
end

return warden.detector {
  name = "confirmation_bias",
  failure_mode = "confirmation_bias",
  on = { "tool_result", "log", "run_finished" },
  check = function(event, _, ctx)
    if event.type == "tool_result" then
      tally(event.result)
      return nil
    elseif event.type == "log" then
      tally(event.fields)
      return nil
    end
    local total = confirming + disconfirming
    local cfg = ctx.config
    local max = cfg.max_confirming or 0.8
    if total == 0 or total < (cfg.min_evidence or 3) then
      return nil
    end
    local rate = confirming / total
    if rate > max then
      return { verdict = cfg.verdict or "warn", confirming = confirming, disconfirming = disconfirming,
               confirming_rate = rate, threshold = max, hypothesis = hypothesis,
               reason = string.format("%d of %d pieces of evidence support the hypothesis%s (%.0f%%, above %.0f%%): "
                                      .. "look for evidence against it", confirming, total,
                                      hypothesis and (" '" .. hypothesis .. "'") or "", rate * 100, max * 100) }
    end
    return nil
  end,
}
