-- The sandbox's own pattern matcher (engine/sandbox/lmatch.c): the same answers as Lua's
-- string library, checked differentially, and a step budget Lua's lacks.
local T = require("warden.testing")
local P = T.core.pattern

local pack = table.pack

local function same(a, b)
  if a.n ~= b.n then return false end
  for i = 1, a.n do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function show(t)
  local out = {}
  for i = 1, t.n do out[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or tostring(t[i]) end
  return "{" .. table.concat(out, ", ") .. "}"
end

-- both succeed with equal results, or both fail
local function compare(label, f, g, ...)
  local a = pack(pcall(f, ...))
  local b = pack(pcall(g, ...))
  if a[1] ~= b[1] then
    return false, ("%s: stock %s vs ours %s"):format(label, show(a), show(b))
  end
  if a[1] and not same(a, b) then
    return false, ("%s: stock %s vs ours %s"):format(label, show(a), show(b))
  end
  return true
end

local TOKENS = { "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%A", "[ab]", "[^a]", "[a-c]", "[%d.]", "[]a]",
  "*", "+", "-", "?", "(", ")", "()", "%1", "%b()", "%f[%w]", "^", "$", "%", "[", "x", " ", "1", "%.", "[^%s]" }
local SUBJECT = { "a", "b", "c", "1", "2", " ", ".", "(", ")", "x", "ab", "abc" }

-- lo..hi pieces drawn from `from`, joined
local function random_text(rng, from, lo, hi)
  local out = {}
  for i = 1, rng(lo, hi) do out[i] = from[rng(1, #from)] end
  return table.concat(out)
end

local function random_pattern(rng) return random_text(rng, TOKENS, 1, 6) end
local function random_subject(rng) return random_text(rng, SUBJECT, 0, 12) end

local function gmatch_list(gm, s, p, init)
  local out = {}
  for a, b in gm(s, p, init) do
    out[#out + 1] = tostring(a) .. "|" .. tostring(b)
    if #out > 100 then break end
  end
  return table.concat(out, ",")
end

describe("pattern matching in the sandbox", function()
  it("agrees with Lua's string library on 4000 random patterns and subjects", function()
    math.randomseed(20261121)
    local rng = math.random
    local failures = {}
    for _ = 1, 4000 do
      local p, s = random_pattern(rng), random_subject(rng)
      local init = rng(-3, 4)
      local checks = {
        { "find", string.find, P.find, s, p, init },
        { "find plain", string.find, P.find, s, p, init, true },
        { "match", string.match, P.match, s, p, init },
        { "gsub", string.gsub, P.gsub, s, p, "<%0>" },
        { "gsub n", string.gsub, P.gsub, s, p, "#", 2 },
        { "gsub fn", string.gsub, P.gsub, s, p, function(x) return x and ("[" .. tostring(x) .. "]") end },
        { "gsub table", string.gsub, P.gsub, s, p, { a = "A", ["1"] = false } },
        { "gmatch", function(...) return gmatch_list(string.gmatch, ...) end,
                    function(...) return gmatch_list(P.gmatch, ...) end, s, p, init },
      }
      for _, c in ipairs(checks) do
        local ok, why = compare(c[1] .. " " .. ("%q %q"):format(s, p), table.unpack(c, 2))
        if not ok then failures[#failures + 1] = why end
      end
      if #failures > 5 then break end
    end
    assert.same({}, failures)
  end)

  it("handles the idioms scripts use", function()
    assert.equal("trim", P.match("  trim  ", "^%s*(.-)%s*$"))
    assert.equal("a=1;b=2", table.concat({ P.match("a=1;b=2", "^(.-)$") }, ""))
    assert.same({ "the (quick) fox", 2 }, { P.gsub("THE (quick) FOX", "%f[%a]%u+", string.lower) })
    assert.equal("[[a]]", P.match("x = [[a]] y", "%b[]"))
    assert.same({ 2, 3 }, { P.find("a.b.", ".b", 1, true) })
    assert.equal("2026", P.match("on 2026-11-21", "(%d%d%d%d)%-"))
  end)

  it("knows %z and %Z as Lua 5.4 does (deprecated, still there): found by fuzz_lmatch", function()
    for _, c in ipairs({ { "abc", "()%Z" }, { "a\0b", "%z" }, { "a\0b", "[%z]" }, { "\0\0x", "%Z+" } }) do
      assert.same({ string.find(c[1], c[2]) }, { P.find(c[1], c[2]) })
    end
  end)

  it("is what scripts get as string.find, match, gmatch and gsub", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[
      return tostring(string.find == ("").find) .. ":" .. ("k=v"):gsub("(%w)=(%w)", "%2=%1")]] }
    assert.equal("true:v=k", res.result)
  end)

  it("stops a pathological pattern at the run's deadline instead of stalling the engine", function()
    local res = T.run { agent = "spec/fixtures/eval",
      policy_overrides = { defaults = { timeouts = { run_ms = 300 } } },
      query = [[return tostring(string.find(string.rep("a", 200000), ".-.-.-b"))]] }
    assert.equal("timeout", res.status)
    assert.is_true(res.execution_time_ms < 2000)
  end)

  it("cannot be caught by pcall once the deadline has passed", function()
    local res = T.run { agent = "spec/fixtures/eval",
      policy_overrides = { defaults = { timeouts = { run_ms = 300 } } },
      query = [[local s = string.rep("a", 100000)
        while true do pcall(string.find, s, ".-.-.-b") end]] }
    assert.equal("timeout", res.status)
  end)

  it("keeps a tool's pathological pattern to the tool's timeout, and the run goes on", function()
    local res, steps = T.lab({ { "tool", "redos", {} }, { "tool", "echo", { after = 1 } } })
    assert.equal("completed", res.status)
    assert.matches("timed out after 300 ms", steps[1].error)
    assert.equal(1, steps[2].echo.after)
    assert.is_true(res.execution_time_ms < 2000)
  end)
end)
