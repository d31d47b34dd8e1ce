-- Attack: scripts that try to outlive their deadline. Each pattern spreads its work so
-- that no count hook period is ever reached on one thread, hides it in C functions that
-- loop without returning to Lua, or in handlers Lua runs for it (__close, message
-- handlers). The run must end `timeout` within 50 ms of run_ms, a tool at its
-- timeout_ms, a detector at its check limit, and a server's worker must go on serving.
local T = require("warden.testing")

-- the attack as the eval agent's query, under run_ms
local function attack(src, run_ms)
  return T.run { agent = "spec/fixtures/eval", query = src,
    policy_overrides = { defaults = { timeouts = { run_ms = run_ms } } } }
end

local function ends_in_time(src, run_ms)
  local res = attack(src, run_ms)
  assert.equal("timeout", res.status, tostring(res.errors[1]))
  assert.is_true(res.execution_time_ms < run_ms + 50,
    ("ended after %d ms, run_ms %d"):format(res.execution_time_ms, run_ms))
  return res
end

-- a coroutine doing a little work and yielding, resumed in a loop (the first break)
local PING = [[
local co = coroutine.create(function()
  while true do local x = 0 for i = 1, 50 do x = x + i end coroutine.yield() end
end)
while true do coroutine.resume(co) end]]

local PATTERNS = {
  ["a wrapped coroutine called in a loop"] = [[
    local f = coroutine.wrap(function() while true do for _ = 1, 50 do end coroutine.yield() end end)
    while true do f() end]],
  ["resumes inside pcall"] = [[
    local co = coroutine.create(function() while true do for _ = 1, 50 do end coroutine.yield() end end)
    while true do pcall(coroutine.resume, co) end]],
  ["a fresh coroutine for every bit of work"] = [[
    while true do coroutine.resume(coroutine.create(function() for _ = 1, 100 do end end)) end]],
  ["coroutines nested twenty deep, each resumed under pcall"] = [[
    local function mk(d)
      if d == 0 then return coroutine.wrap(function() while true do coroutine.yield(1) end end) end
      local inner = mk(d - 1)
      return coroutine.wrap(function() while true do pcall(inner) coroutine.yield() end end)
    end
    local f = mk(20)
    while true do pcall(f) end]],
  ["an endless __close run by coroutine.close"] = [[
    local co = coroutine.create(function()
      local x <close> = setmetatable({}, { __close = function() while true do end end })
      coroutine.yield()
    end)
    coroutine.resume(co)
    coroutine.close(co)
    return "escaped"]],
  ["short __close handlers run by coroutine.close in a loop"] = [[
    while true do
      local co = coroutine.create(function()
        local x <close> = setmetatable({}, { __close = function() for _ = 1, 100 do end end })
        coroutine.yield()
      end)
      coroutine.resume(co)
      coroutine.close(co)
    end]],
  ["an endless __close of a wrapped coroutine that errors inside pcall"] = [[
    local f = coroutine.wrap(function()
      local x <close> = setmetatable({}, { __close = function() while true do end end })
      error("boom")
    end)
    pcall(f)
    return "escaped"]],
  ["work in xpcall's message handler"] = [[
    while true do
      xpcall(error, function() coroutine.wrap(function() for _ = 1, 10 do end end)() return 1 end)
    end]],
  ["an __index metamethod doing the loop"] = [[
    local t = setmetatable({}, { __index = function(_, k) return k end })
    local i = 0
    while true do i = t[i] + 1 end]],
  ["table.concat reading through table.concat as __index"] = [[
    local t = setmetatable({}, { __index = table.concat })
    return #table.concat(t, "", 1, 1e15)]],
  ["table.unpack reading through a C __index, again and again"] = [[
    local t = setmetatable({}, { __index = table.concat })
    while true do select("#", table.unpack(t, 1, 100000)) end]],
}

describe("attack: scripts that outlive their deadline", function()
  it("a coroutine resumed in a loop ends `timeout` under 1.1 s at run_ms 1000", function()
    ends_in_time(PING, 1000)
  end)

  for name, src in pairs(PATTERNS) do
    it("stops " .. name, function() ends_in_time(src, 300) end)
  end

  -- Arming the hook walks every frame of the stack (Lua 5.4 marks each for it), and the
  -- watchdog re-armed a thread every 2 ms even when it was armed already: a recursion a
  -- few hundred thousand frames deep spent its slices walking its own stack, and a 1 s
  -- deadline held it for 5 to 60 s.
  it("stops an endless recursion in time, however deep its stack grows", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[local function f() return 1 + f() end return f()]],
      policy_overrides = { defaults = { timeouts = { run_ms = 1000 }, sandbox = { memory_mb = 1024 } } } }
    assert.is_true(res.status == "timeout" or (res.status == "failed" and res.errors[1]:match("stack overflow") ~= nil),
      res.status .. ": " .. tostring(res.errors[1]))
    assert.is_true(res.execution_time_ms < 1000 + 250, ("ended after %d ms"):format(res.execution_time_ms))
  end)

  it("string.rep of an empty string a quadrillion times answers at once; real repetitions are exact", function()
    local res = attack([[return #string.rep("", 1e15) .. #("").rep("", 1e15, "") .. "," .. string.rep("ab", 3, "-")
      .. "," .. string.rep("x", 1) .. "," .. string.rep("xy", 0) .. "," .. #string.rep("abc", 1000, ",")
      .. "," .. string.rep("", 3, "+") .. "," .. tostring(pcall(string.rep, "xx", math.maxinteger))]], 1000)
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("00,ab-ab-ab,x,," .. (3 * 1000 + 999) .. ",++,false", res.result)
    assert.is_true(res.execution_time_ms < 50, res.execution_time_ms .. " ms")
  end)

  it("load compiles a huge source in pieces and stops at the deadline", function()
    local res = attack([[
      local parts = {}
      for i = 1, 20000 do parts[i] = "local a" .. i .. " = " .. i .. " + 1 " end
      local body = table.concat(parts, "\n")
      while true do load(body) end]], 300)
    assert.equal("timeout", res.status)
    assert.is_true(res.execution_time_ms < 350, res.execution_time_ms .. " ms")
  end)

  it("the instruction limit holds across coroutines too", function()
    local res = T.run { agent = "spec/fixtures/eval", query = PING,
      policy_overrides = { defaults = { timeouts = { run_ms = 20000 }, sandbox = { instructions_per_call = 2000000 } } } }
    assert.equal("failed", res.status)
    assert.matches("instruction limit exceeded", res.errors[1])
    assert.is_true(res.execution_time_ms < 2000, res.execution_time_ms .. " ms")
  end)
end)

local SPIN_TOOL = [[
return warden.tool { name = "spin", description = "resumes a yielding coroutine forever",
  run = function()
    local co = coroutine.create(function() while true do for _ = 1, 50 do end coroutine.yield() end end)
    while true do coroutine.resume(co) end
  end }
]]

local SPIN_DETECTOR = [[
return warden.detector { name = "spin", on = { "tool_call" },
  check = function()
    local f = coroutine.wrap(function() while true do for _ = 1, 50 do end coroutine.yield() end end)
    while true do pcall(f) end
  end }
]]

local AGENT = [[
return warden.agent { name = "spinner", tools = { "spin", "echo" },
  run = function(query, ctx)
    if query == "tool" then
      local r = ctx:call_tool("spin", {})
      return "tool: " .. tostring(r.error)
    end
    local r = ctx:call_tool("echo", { text = "hi" })
    return "echo: " .. tostring(r.echo and r.echo.text)
  end }
]]

describe("attack: the same in a tool and in a detector", function()
  local dir
  setup(function()
    dir = T.agent("spinner", { ["agent.lua"] = AGENT, ["tools/spin.lua"] = SPIN_TOOL,
      ["tools/echo.lua"] = T.read("spec/fixtures/lab/tools/echo.lua"), ["detectors/spin.lua"] = SPIN_DETECTOR })
  end)

  it("a tool stops at its timeout_ms and the agent goes on", function()
    local res, audit = T.run { agent = dir, query = "tool", policy_overrides = {
      tools = { spin = { permission = "read", risk = "low", timeout_ms = 300 } },
      defaults = { timeouts = { run_ms = 1000 } } } }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("tool: tool 'spin' timed out after 300 ms", res.result)
    local call = T.events(audit, "tool_call")[1]
    assert.is_true(call.latency_ms >= 300 and call.latency_ms < 350, call.latency_ms .. " ms")
  end)

  it("a detector stops at its check limit, is switched off, and the run goes on", function()
    local res, audit = T.run { agent = dir, query = "echo", policy_overrides = {
      detectors = { spin = { enforce = true } }, defaults = { timeouts = { run_ms = 1000 } } } }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("echo: hi", res.result)
    local err = T.events(audit, "detector_error")[1]
    assert.equal("spin", err.detector)
    assert.matches("^stopped: it ran longer than 100 ms", err.error)
    assert.is_true(res.execution_time_ms < 400, res.execution_time_ms .. " ms")
  end)
end)

describe("attack: a spinning run in warden serve", function()
  it("leaves a one-worker server answering others, ends `timeout`, and the server stops on SIGTERM", function()
    local key = "spin-key-1"
    local pol = T.policy({ users = { reader = { api_key_sha256 = T.sha256(key) } },
      defaults = { timeouts = { run_ms = 1000 } } })
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/eval %s/eval"):format(agents, os.getenv("PWD"), agents))
    local srv = T.serve({ policy = pol, agents = agents, workers = 1 })
    local ok, err = pcall(function()
      local code, body = srv.http("POST", "/v1/runs", key, { agent = "eval", input = PING })
      assert.equal(202, code)
      local id = body.run_id
      -- the one worker also runs the spinning script: others are still answered meanwhile
      local t0 = os.time()
      local c2, quick = srv.http("POST", "/v1/runs", key, { agent = "eval", input = "return 'quick'", wait = true })
      assert.equal(200, c2)
      assert.equal("quick", quick.result)
      assert.equal(200, (srv.http("GET", "/healthz")))
      local run = T.wait_for(function()
        local _, b = srv.http("GET", "/v1/runs/" .. id, key)
        return b.status ~= "running" and b.status ~= "queued" and b
      end, "the spinning run to end")
      assert.equal("timeout", run.status)
      assert.is_true(run.result.execution_time_ms < 1100, run.result.execution_time_ms .. " ms")
      assert.is_true(os.time() - t0 < 5)
    end)
    -- another spinning run in flight when SIGTERM comes: the server still stops
    srv.http("POST", "/v1/runs", key, { agent = "eval", input = PING })
    assert.equal(0, srv.stop())
    assert(ok, err)
  end)
end)
