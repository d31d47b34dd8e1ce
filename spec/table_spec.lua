-- The sandbox's table.insert/remove/move/sort (engine/sandbox/ltable.c): Lua's results, checked
-- differentially, and a step budget where Lua's versions loop in C without end.
local T = require("warden.testing")
local W = T.core.table

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function dump(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  local out = {}
  for _, k in ipairs(ks) do out[#out + 1] = tostring(k) .. "=" .. tostring(t[k]) end
  return table.concat(out, " ")
end

local function random_array(n)
  local t = {}
  for i = 1, n do t[i] = math.random(1, 20) end
  return t
end

describe("table functions in the sandbox", function()
  it("insert, remove and move agree with Lua's on random cases", function()
    math.randomseed(7)
    for _ = 1, 2000 do
      local n = math.random(0, 12)
      local base = random_array(n)
      local op = math.random(1, 3)
      local a, b = copy(base), copy(base)
      local args
      if op == 1 then
        args = math.random(1, 2) == 1 and { 99 } or { math.random(-1, n + 2), 99 }
        local r1 = { pcall(table.insert, a, table.unpack(args)) }
        local r2 = { pcall(W.insert, b, table.unpack(args)) }
        assert.equal(r1[1], r2[1], "insert " .. dump(base) .. " " .. dump(args))
      elseif op == 2 then
        args = math.random(1, 2) == 1 and {} or { math.random(-1, n + 2) }
        local r1 = { pcall(table.remove, a, table.unpack(args)) }
        local r2 = { pcall(W.remove, b, table.unpack(args)) }
        assert.equal(r1[1], r2[1])
        if r1[1] then assert.equal(r1[2], r2[2]) end
      else
        args = { math.random(-2, n + 2), math.random(-2, n + 2), math.random(-2, n + 4) }
        local r1 = pcall(table.move, a, table.unpack(args))
        local r2 = pcall(W.move, b, table.unpack(args))
        assert.equal(r1, r2)
      end
      assert.equal(dump(a), dump(b), "op " .. op .. " on " .. dump(base) .. " with " .. dump(args))
    end
  end)

  it("move copies into a second table", function()
    local src, d1, d2 = { 1, 2, 3 }, { 9, 9, 9, 9 }, { 9, 9, 9, 9 }
    table.move(src, 1, 3, 2, d1)
    W.move(src, 1, 3, 2, d2)
    assert.same(d1, d2)
  end)

  it("sort agrees with Lua's on random arrays, with and without a comparator", function()
    math.randomseed(11)
    for _ = 1, 500 do
      local base = random_array(math.random(0, 200))
      local a, b = copy(base), copy(base)
      table.sort(a)
      W.sort(b)
      assert.same(a, b)
      a, b = copy(base), copy(base)
      table.sort(a, function(x, y) return x > y end)
      W.sort(b, function(x, y) return x > y end)
      assert.same(a, b)
    end
    local words = { "pear", "apple", "fig", "kiwi", "banana" }
    W.sort(words)
    assert.same({ "apple", "banana", "fig", "kiwi", "pear" }, words)
    assert.is_false(pcall(W.sort, { 1, "x", 2 }))
  end)

  it("survives an inconsistent comparator without leaving the array", function()
    local t = random_array(100)
    W.sort(t, function() return true end)
    assert.equal(100, #t)
  end)

  local function attack(src)
    return T.run { agent = "spec/fixtures/eval", query = src,
                   policy_overrides = { defaults = { timeouts = { run_ms = 300 } } } }
  end

  it("stops table.move over 2^40 slots at the deadline", function()
    local res = attack("table.move({}, 1, 1 << 40, 1) return 'moved'")
    assert.equal("timeout", res.status)
    assert.is_true(res.execution_time_ms < 2000)
  end)

  it("stops insert, remove and sort on a table whose __len lies", function()
    local lie = "setmetatable({}, {__len = function() return 1 << 40 end, __index = rawlen, __newindex = rawequal})"
    for _, src in ipairs {
      "table.insert(" .. lie .. ", 1, 0)",
      "table.remove(" .. lie .. ", 1)",
      "table.sort(setmetatable({}, {__len = function() return (1 << 31) - 2 end, __index = rawlen, __newindex = rawequal}))",
    } do
      local res = attack(src .. " return 'done'")
      assert.equal("timeout", res.status, src)
    end
  end)

  it("is what scripts get as table.insert/remove/move/sort", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[
      local t = {3, 1, 2} table.sort(t) table.insert(t, 1, 0) table.remove(t) local m = table.move(t, 1, 3, 2, {})
      return table.concat(t, ",") .. ";" .. #m]] }
    assert.equal("0,1,2;4", res.result)
  end)
end)
