-- selection_bias: an agent that favours some options over the others, across runs
-- (docs/safety.md, Detectors and the failure-mode catalogue). Choices are the tools a run calls (options: the agent's tools) and
-- what agents tag with ctx:log{decision = "vendor", choice = "b", options = {"a", "b",
-- "c"}}. When a run ends its choices join the last `window` of that decision in the
-- state store, and once `min_samples` are there a chi-square test against a uniform
-- choice is made; p below `alpha` is reported. Settings: min_samples (100), window (200),
-- alpha (0.01), options ({decision = {...}}), verdict (warn).
local S = require "warden.stats"

local choices, options = {}, {}

local function note(decision, choice, opts)
  choices[decision] = choices[decision] or {}
  table.insert(choices[decision], choice)
  if type(opts) == "table" and #opts > 0 then
    options[decision] = opts
  end
end

return warden.detector {
  name = "selection_bias",
  failure_mode = "selection_bias",
  on = { "tool_call", "log", "run_finished" },
  check = function(event, _, ctx)
    if event.type == "tool_call" then
      note("tool", event.tool, ctx.tools)
      return nil
    elseif event.type == "log" then
      local f = event.fields
      if type(f) == "table" and type(f.choice) == "string" then
        note(type(f.decision) == "string" and f.decision or "choice", f.choice, f.options)
      end
      return nil
    end
    local cfg = ctx.config
    local window = cfg.window or 200
    local found
    for decision, list in pairs(choices) do
      local key = ctx.agent .. ":" .. decision
      local n, err = ctx.store:extend(key, list, window)
      if not n then
        error(err, 0)
      end
      local recent = ctx.store:get(key) or {}
      if #recent >= (cfg.min_samples or 100) then
        local counts, opts, known = {}, {}, {}
        local configured = type(cfg.options) == "table" and cfg.options[decision]
        for _, o in ipairs(configured or options[decision] or {}) do
          if not known[o] then
            known[o] = true
            opts[#opts + 1] = o
          end
        end
        for _, c in ipairs(recent) do
          counts[c] = (counts[c] or 0) + 1
          if not known[c] then
            known[c] = true
            opts[#opts + 1] = c
          end
        end
        table.sort(opts)
        local stat, df, p, expected = S.chi_square_uniform(counts, opts)
        if df >= 1 and p < (cfg.alpha or 0.01) and (not found or p < found.p_value) then
          local over, under = {}, {}
          for _, o in ipairs(opts) do
            local c = counts[o] or 0
            if c > expected * 1.5 then
              over[#over + 1] = o
            elseif c < expected * 0.5 then
              under[#under + 1] = o
            end
          end
          found = { verdict = cfg.verdict or "warn", decision = decision, chi_square = stat, df = df, p_value = p,
                    samples = #recent, distribution = counts, expected = expected, overused = over,
                    underused = under,
                    reason = string.format("selection bias in '%s': chi-square %.1f with %d degrees of freedom, "
                                           .. "p = %.3g over the last %d choices; overused: %s; underused: %s",
                                           decision, stat, df, p, #recent, table.concat(over, ", "),
                                           #under > 0 and table.concat(under, ", ") or "none") }
        end
      end
    end
    return found
  end,
}
