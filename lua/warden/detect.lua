-- detect.lua: helpers for detectors (require "warden.detect"): a canonical text of a
-- value, the history's tool calls. Claims are in warden.claims, tests in warden.stats,
-- so a detector loads (every run) only what it uses.
local M = {}

local floor = math.floor

-- canonical text of a JSON-like value: keys sorted, 1 and 1.0 alike; equal values give
-- equal texts, so calls can be compared by their arguments
local function canon(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t == "number" then
    if v == floor(v) and v > -2^53 and v < 2^53 then
      return string.format("%d", v)
    end
    local short = string.format("%.15g", v) -- the shortest text that reads back as v
    return tonumber(short) == v and short or string.format("%.17g", v)
  elseif t ~= "table" then
    return tostring(v)
  end
  if depth > 20 then
    return "{...}"
  end
  local keys, n = {}, 0
  for k in pairs(v) do
    n = n + 1
    keys[n] = k
  end
  if n == #v then
    local out = {}
    for i = 1, n do
      out[i] = canon(v[i], depth + 1)
    end
    return "[" .. table.concat(out, ",") .. "]"
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for i, k in ipairs(keys) do
    out[i] = string.format("%q", tostring(k)) .. ":" .. canon(v[k], depth + 1)
  end
  return "{" .. table.concat(out, ",") .. "}"
end
M.canon = canon

-- the key of a tool call: its name and canonical arguments
function M.call_key(ev)
  return tostring(ev.tool) .. " " .. canon(ev.args)
end

-- the events of one type in the history, oldest first
function M.of_type(history, kind)
  local out = {}
  for _, ev in ipairs(history) do
    if ev.type == kind then
      out[#out + 1] = ev
    end
  end
  return out
end

-- every string and number in a value, joined by spaces (what a source says)
local function flatten(v, out, depth)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
  elseif t == "number" then
    out[#out + 1] = canon(v)
  elseif t == "table" and depth < 20 then
    for k, x in pairs(v) do
      if type(k) == "string" then
        out[#out + 1] = k
      end
      flatten(x, out, depth + 1)
    end
  end
  return out
end

function M.text_of(v)
  return table.concat(flatten(v, {}, 0), " ")
end

return M
