-- detect.lua: helpers for detectors (require "warden.detect"): a canonical text of a
-- value, the history's tool calls, claims and their checkable parts, chi-square tests.
local M = {}

local floor, huge = math.floor, math.huge

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

-- ---- claims -------------------------------------------------------------------------

local STOP = {}
for w in ([[a an the and or but if then else of to in on at by for with from as is are was were be been
  being it its this that these those there here i we you he she they them his her our your their my me us
  not no yes do does did done can could will would should may might must have has had about into over
  under than so such also very just only more most some any each all both which who whom whose what when
  where why how based according however found results result shows show following here's let"s i'm it's]]):gmatch("%S+") do
  STOP[w] = true
end
M.STOP = STOP

-- a word's plain form: lower case, a plural or verb ending gone
local function stem(w)
  w = w:lower()
  if #w > 4 and w:sub(-3) == "ies" then
    return w:sub(1, -4) .. "y"
  elseif #w > 4 and w:sub(-3) == "ing" then
    return w:sub(1, -4)
  elseif #w > 3 and w:sub(-2) == "ed" then
    return w:sub(1, -3)
  elseif #w > 3 and w:sub(-2) == "es" then
    return w:sub(1, -3)
  elseif #w > 3 and w:sub(-1) == "s" and w:sub(-2) ~= "ss" then
    return w:sub(1, -2)
  end
  return w
end
M.stem = stem

-- the content words of a text, stemmed, in order
function M.words(text)
  local out = {}
  for w in text:gmatch("[%a][%w_']*") do
    local l = w:lower()
    if #l >= 3 and not STOP[l] then
      out[#out + 1] = stem(l)
    end
  end
  return out
end

-- numbers in a text, normalised: "1,234.50" and "1234.5" are both "1234.5"; "1,2,3" is
-- three numbers
local function grouped(int)
  local parts = {}
  for part in int:gmatch("[^,]+") do
    parts[#parts + 1] = part
  end
  if #parts < 2 or #parts[1] > 3 then
    return false
  end
  for i = 2, #parts do
    if #parts[i] ~= 3 then
      return false
    end
  end
  return true
end

function M.numbers(text)
  local out = {}
  for tok in text:gmatch("%d[%d,%.]*") do
    tok = tok:gsub("[,%.]+$", "")
    local int, frac = tok:match("^([%d,]+)(%.?%d*)$")
    if int and grouped(int) then
      out[#out + 1] = int:gsub(",", "") .. frac
    else
      for part in tok:gmatch("[^,]+") do
        out[#out + 1] = part
      end
    end
  end
  for i, tok in ipairs(out) do
    local n = tonumber(tok)
    out[i] = n and canon(n) or tok
  end
  return out
end

-- named entities: runs of capitalised words and acronyms, not counting a sentence's
-- first word when it is a plain capitalised word
function M.entities(sentence)
  local out, cur = {}, {}
  local first = true
  local function flush()
    if #cur > 0 then
      out[#out + 1] = table.concat(cur, " ")
      cur = {}
    end
  end
  for w in sentence:gmatch("[%w_%-']+") do
    local acronym = #w >= 2 and w:match("^%u[%u%d%-]+$")
    local cap = w:match("^%u%l") or w:match("^%u[%l%d]*%u")
    if (acronym or cap) and not STOP[w:lower()] and not (first and cap and not acronym) then
      cur[#cur + 1] = w
    else
      flush()
    end
    first = false
  end
  flush()
  return out
end

-- the sentences of a text (., ! or ? before a space or the end; line breaks; bullets)
function M.sentences(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("^%s*[%-%*•]%s*", ""):gsub("^%s*%d+[%.%)]%s+", "")
    local start = 1
    while true do
      local s, e = line:find("[%.!%?]+%s+", start)
      local piece = line:sub(start, s and s - 1 or #line)
      piece = piece:gsub("^%s+", ""):gsub("[%s%.!%?]+$", "")
      if piece ~= "" then
        out[#out + 1] = piece
      end
      if not s then
        break
      end
      start = e + 1
    end
  end
  return out
end

-- ---- statistics ---------------------------------------------------------------------

local LANCZOS = { 0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7 }

local function log_gamma(x)
  if x < 0.5 then
    return math.log(math.pi / math.abs(math.sin(math.pi * x))) - log_gamma(1 - x)
  end
  x = x - 1
  local a, t = LANCZOS[1], x + 7.5
  for i = 1, 8 do
    a = a + LANCZOS[i + 1] / (x + i)
  end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end
M.log_gamma = log_gamma

-- Q(a, x): the regularised upper incomplete gamma function (a series below a + 1, a
-- continued fraction above)
local function gamma_q(a, x)
  if x <= 0 then
    return 1
  end
  local lead = -x + a * math.log(x) - log_gamma(a)
  if x < a + 1 then
    local ap, sum = a, 1 / a
    local del = sum
    for _ = 1, 10000 do
      ap = ap + 1
      del = del * x / ap
      sum = sum + del
      if math.abs(del) < math.abs(sum) * 1e-15 then
        break
      end
    end
    return math.max(0, 1 - sum * math.exp(lead))
  end
  local tiny = 1e-300
  local b = x + 1 - a
  local c, d = 1 / tiny, 1 / b
  local h = d
  for i = 1, 10000 do
    local an = -i * (i - a)
    b = b + 2
    d = an * d + b
    if math.abs(d) < tiny then d = tiny end
    c = b + an / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < 1e-15 then
      break
    end
  end
  return math.min(1, math.exp(lead) * h)
end
M.gamma_q = gamma_q

-- the chance of a chi-square statistic this large or larger with df degrees of freedom
function M.chi_square_p(stat, df)
  if df < 1 then
    return 1
  end
  if stat == huge then
    return 0
  end
  return gamma_q(df / 2, stat / 2)
end

-- Pearson's test of counts {option = n} against a uniform choice among options (a
-- list; options never chosen count 0). Returns stat, df, p, expected.
function M.chi_square_uniform(counts, options)
  local n, k = 0, #options
  for _, o in ipairs(options) do
    n = n + (counts[o] or 0)
  end
  if k < 2 or n == 0 then
    return 0, 0, 1, 0
  end
  local e = n / k
  local stat = 0
  for _, o in ipairs(options) do
    local d = (counts[o] or 0) - e
    stat = stat + d * d / e
  end
  return stat, k - 1, M.chi_square_p(stat, k - 1), e
end

return M
