-- misuse: arguments the schema cannot see are nonsense ("", "undefined", "null"...), and
-- calls to one tool that keep failing (docs/safety.md, failure modes: tool misuse). Settings:
-- placeholders (a list of texts), failures (3), verdict (warn).
local D = require "warden.detect"

local DEFAULT = { "", "undefined", "null", "none", "nil", "nan", "[object object]", "<unknown>" }

-- the first string argument that is a placeholder, as a path and its text
local function placeholder(v, set, path, depth)
  if type(v) == "string" then
    local t = v:gsub("^%s+", ""):gsub("%s+$", ""):lower()
    if set[t] then
      return path, v
    end
  elseif type(v) == "table" and depth < 10 then
    for k, x in pairs(v) do
      local p, s = placeholder(x, set, path == "" and tostring(k) or path .. "." .. tostring(k), depth + 1)
      if p then
        return p, s
      end
    end
  end
  return nil
end

return warden.detector {
  name = "misuse",
  failure_mode = "tool_misuse",
  on = { "tool_call", "tool_result" },
  check = function(event, history, ctx)
    local cfg = ctx.config
    local verdict = cfg.verdict or "warn"
    if event.type == "tool_call" then
      local set = {}
      for _, p in ipairs(cfg.placeholders or DEFAULT) do
        set[tostring(p):lower()] = true
      end
      local path, text = placeholder(event.args, set, "", 0)
      if path then
        return { verdict = verdict, pattern = "placeholder_argument", argument = path,
                 reason = string.format("tool '%s': argument '%s' is %q, a placeholder, not a value",
                                        event.tool, path, text) }
      end
      return nil
    end
    if event.success then
      return nil
    end
    local limit = cfg.failures or 3
    local failed = 0
    local results = D.of_type(history, "tool_result")
    for i = #results, 1, -1 do
      local r = results[i]
      if r.tool == event.tool then
        if r.success then
          break
        end
        failed = failed + 1
      end
    end
    if limit > 0 and failed >= limit and failed % limit == 0 then
      return { verdict = verdict, pattern = "repeated_failures", failures = failed,
               reason = string.format("tool '%s' failed %d times in a row (last: %s)", event.tool, failed,
                                      tostring(event.error)) }
    end
    return nil
  end,
}
