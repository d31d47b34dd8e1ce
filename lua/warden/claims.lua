-- claims.lua: the checkable parts of a text, for detectors such as grounding (require
-- "warden.claims"): sentences, numbers, named entities, content words.
local M = {}

local function canon_number(n)
  if n == math.floor(n) and n > -2^53 and n < 2^53 then
    return string.format("%d", n)
  end
  local short = string.format("%.15g", n)
  return tonumber(short) == n and short or string.format("%.17g", n)
end

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
    out[i] = n and canon_number(n) or tok
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

return M
