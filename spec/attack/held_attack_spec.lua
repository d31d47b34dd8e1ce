-- Attack: the classes of attack that held when warden was first attacked from outside,
-- kept in the suite from the attacker's side so that they keep holding: sandbox escapes,
-- resource bombs, hostile tool results, log tampering, concurrent writers, kill -9 in the
-- middle of writing, hostile HTTP clients, and budgets under 20 runs at once.
local T = require("warden.testing")
local core = require("warden.core")

local function attack(src, extra)
  local o = { agent = "spec/fixtures/eval", query = src }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.run(o)
end

local function verify(audit)
  local ok, msg, n = core.audit_verify(audit)
  return ok, msg, n
end

describe("attack: sandbox escapes", function()
  it("finds no way out to the host's libraries, bytecode or the engine's globals", function()
    local res = attack([[
      local found = {}
      local function try(name, f) local ok, v = pcall(f) if ok and v ~= nil then found[#found + 1] = name end end
      try("io", function() return io end)
      try("os.execute", function() return os.execute end)
      try("debug", function() return debug end)
      try("package", function() return package end)
      try("string.dump", function() return ("").dump end)
      try("rawget io", function() return rawget(_G, "io") end)
      try("string metatable", function() return getmetatable("").__index end)
      try("load binary", function() return load("\27LuaT", "x", "b") end)
      try("load env escape", function() return load("return io")() end)
      try("require outside", function() return require("..x") end)
      try("require core", function() return require("warden.core") end)
      try("cjson setters", function() return require("cjson").decode_max_depth end)
      try("coroutine thread globals", function() return getmetatable(coroutine.running()) end)
      return table.concat(found, ",")]])
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("", res.result)
  end)

  it("an error object whose __tostring loops forever is read raw: the run ends at once", function()
    local res = attack([[error(setmetatable({}, { __tostring = function() while true do end end }))]],
      { policy_overrides = { defaults = { timeouts = { run_ms = 5000 } } } })
    assert.equal("failed", res.status)
    assert.equal("(error object is a table)", res.errors[1])
    assert.is_true(res.execution_time_ms < 500, res.execution_time_ms .. " ms")
  end)

  it("a finalizer to run after the limits cannot be set", function()
    local res = attack([[return tostring(pcall(setmetatable, {}, { __gc = function() while true do end end }))]])
    assert.equal("false", res.result)
  end)
end)

describe("attack: resource bombs", function()
  it("a memory bomb ends the run failed even when pcall catches the error", function()
    local res = attack([[
      local ok = pcall(function() local t = {} while true do t[#t + 1] = ("x"):rep(4096) .. #t end end)
      return "survived " .. tostring(ok)]])
    assert.equal("failed", res.status)
    assert.matches("memory limit exceeded", res.errors[1])
  end)

  it("doubling a string, a million coroutines and endless recursion are stopped", function()
    for _, src in ipairs({
      [[local s = "x" while true do s = s .. s end]],
      [[local t = {} for i = 1, 1e7 do t[i] = coroutine.create(function() end) end]],
      [[local function f() return 1 + f() end return f()]],
    }) do
      local res = attack(src, { policy_overrides = { defaults = { timeouts = { run_ms = 3000 } } } })
      assert.equal("failed", res.status, src)
      assert.truthy(res.errors[1]:match("memory limit exceeded") or res.errors[1]:match("stack overflow"),
        res.errors[1])
    end
  end)

  it("a tool's bomb fails the tool alone, and the agent goes on", function()
    local res, steps = T.lab({ { "tool", "mem_bomb", {} }, { "tool", "echo", { after = 1 } } })
    assert.equal("completed", res.status)
    assert.matches("memory limit", steps[1].error)
    assert.same({ after = 1 }, steps[2].echo)
  end)
end)

local HOSTILE_TOOL = [[
return warden.tool { name = "hostile", description = "returns what JSON cannot hold",
  run = function(args)
    local m = args.mode
    if m == "cycle" then local t = {} t.self = t return t end
    if m == "function" then return { f = print } end
    if m == "nan" then return { v = 0 / 0 } end
    if m == "deep" then local t = {} local c = t for _ = 1, 200 do c.x = {} c = c.x end return t end
    if m == "huge" then return { s = ("x"):rep(3 * 1024 * 1024) } end
    if m == "thread" then return { co = coroutine.create(print) } end
    if m == "sly" then
      return setmetatable({}, { __index = function() while true do end end,
                                __pairs = function() while true do end end })
    end
    return { ok = true }
  end }
]]

describe("attack: hostile tool results", function()
  it("refuses what is not JSON, never loops in the engine, and the run and its log go on", function()
    local dir = T.agent("hostile_results", {
      ["agent.lua"] = [[return warden.agent { name = "h", tools = { "hostile" }, run = function(q, ctx)
        local out = {}
        for _, m in ipairs({ "cycle", "function", "nan", "deep", "huge", "thread", "sly", "fine" }) do
          local r = ctx:call_tool("hostile", { mode = m })
          out[#out + 1] = m .. "=" .. (r.error and "refused" or "ok")
        end
        return table.concat(out, " ") end }]],
      ["tools/hostile.lua"] = HOSTILE_TOOL })
    local res, audit = T.run { agent = dir, query = "q", policy_overrides = {
      tools = { hostile = { permission = "read", risk = "low" } }, defaults = { timeouts = { run_ms = 5000 } } } }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("cycle=refused function=refused nan=refused deep=refused huge=refused thread=refused sly=ok fine=ok",
      res.result)
    assert.is_true(res.execution_time_ms < 2000, res.execution_time_ms .. " ms")
    assert.is_true((verify(audit)))
  end)
end)

describe("attack: log tampering", function()
  local function fresh()
    local _, _, audit = T.lab({ { "tool", "echo", { a = 1 } }, { "tool", "echo", { a = 2 } }, { "log", { n = 3 } } })
    assert.is_true((verify(audit)))
    local ls = {}
    for l in io.lines(audit) do ls[#ls + 1] = l end
    return audit, ls
  end

  local function rewritten(edit)
    local audit, ls = fresh()
    edit(ls)
    T.write(audit, table.concat(ls, "\n") .. "\n")
    return verify(audit)
  end

  it("finds a changed number, a renumbered seq hiding a deletion, and a duplicated line", function()
    local ok, msg = rewritten(function(ls) ls[2] = ls[2]:gsub('"a":1', '"a":7') end)
    assert.is_false(ok)
    assert.matches(":2: ", msg)
    ok, msg = rewritten(function(ls)
      table.remove(ls, 2)
      for i = 2, #ls do ls[i] = ls[i]:gsub('"seq":(%d+)', function(n) return '"seq":' .. (n - 1) end) end
    end)
    assert.is_false(ok)
    assert.matches(":2: ", msg)
    ok = rewritten(function(ls) ls[#ls + 1] = ls[#ls] end)
    assert.is_false(ok)
  end)

  it("finds a line cut in the middle, and the next writer recovers it on the record", function()
    local audit, ls = fresh()
    T.write(audit, table.concat(ls, "\n") .. "\n" .. ls[2]:sub(1, 40))
    assert.is_false((verify(audit)))
    T.run { agent = "spec/fixtures/lab", query = "[]", audit = audit,
      policy_overrides = { audit = { path = audit } } }
    assert.is_true((verify(audit)))
    assert.equal(1, #T.events(audit, "audit_recovered"))
  end)
end)

describe("attack: concurrent writers", function()
  it("six processes appending at once leave one intact chain with every record", function()
    local pol, audit = T.policy()
    local plan = T.encode({ { "log", { a = 1 } }, { "tool", "echo", { b = 2 } }, { "log", { c = 3 } } })
    local cmds = {}
    for _ = 1, 6 do
      cmds[#cmds + 1] = ("%s run spec/fixtures/lab '%s' --user reader --policy %s"
        .. " --llm mock:spec/fixtures/no_model.yaml >/dev/null &")
        :format(T.bin, plan, pol)
    end
    os.execute("(" .. table.concat(cmds, " ") .. " wait)")
    local ok, msg, n = verify(audit)
    assert.is_true(ok, msg)
    assert.equal(6 * 5, n)
    local seqs = {}
    for _, r in ipairs(T.records(audit)) do seqs[#seqs + 1] = r.seq end
    for i, s in ipairs(seqs) do assert.equal(i, s) end
  end)
end)

describe("attack: kill -9 in the middle of writing", function()
  it("leaves a log the next writer makes whole again, with what was torn on the record", function()
    -- room for the run to write until it is killed: at the default 10,000 records it
    -- would be stopped (audit limit) and finish first on a fast machine
    local pol, audit = T.policy({ audit = { fsync = "none" },
                                  defaults = { max_audit_records = 100000000, max_audit_bytes = 17179869184 } })
    local src = T.write(T.tmpfile(".lua"),
      'local ctx = ... for i = 1, 1e7 do ctx:log({ i = i, pad = ("p"):rep(100) }) end return "done"')
    local pidf = T.tmpfile(".pid")
    os.execute(("sh -c '%s run spec/fixtures/eval \"$(cat %s)\" --user reader --policy %s"
      .. " --llm mock:spec/fixtures/no_model.yaml" ..
      " >/dev/null 2>&1 & echo $! > %s'"):format(T.bin, src, pol, pidf))
    T.wait_for(function() local s = T.read(audit) return s and #s > 200000 end, "the log to grow")
    os.execute("kill -9 " .. T.read(pidf):match("%d+"))
    os.execute("sleep 0.1")
    T.run { agent = "spec/fixtures/lab", query = "[]", audit = audit, policy = pol }
    local ok, msg = verify(audit)
    assert.is_true(ok, msg)
    assert.equal(1, #T.events(audit, "run_finished")) -- only the second run finished
  end)
end)

describe("attack: hostile HTTP clients", function()
  local key = "http-attack-key"
  local srv
  setup(function()
    local pol = T.policy({ users = { reader = { api_key_sha256 = T.sha256(key) } } })
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, os.getenv("PWD"), agents))
    srv = T.serve({ policy = pol, agents = agents, workers = 1 })
  end)
  teardown(function() if srv then srv.stop() end end)

  it("answers malformed, oversized and misdirected requests with the right refusal", function()
    assert.equal(401, (srv.http("GET", "/v1/runs", "wrong\1key")))
    local code, body = srv.http("POST", "/v1/runs", key, '{"agent": "lab", "input": ')
    assert.equal(400, code)
    assert.matches("invalid JSON at line 1, column", body.error)
    code, body = srv.http("POST", "/v1/runs", key, { agent = "lab", input = "[]", admin = true })
    assert.equal(400, code)
    assert.matches("unknown field 'admin'", body.error)
    for _, name in ipairs({ "../lab", "lab/../lab", ".", "lab\0x", ("a"):rep(300) }) do
      code = srv.http("POST", "/v1/runs", key, T.encode({ agent = name, input = "[]" }))
      assert.is_true(code == 404 or code == 400, name .. " gave " .. code)
    end
    local big = T.write(T.tmpfile(".json"), '{"agent":"lab","input":"' .. ("x"):rep(2 * 1024 * 1024) .. '"}')
    code = tonumber((T.sh(("%s -s -o /dev/null -w '%%{http_code}' -H 'Authorization: Bearer %s' --data-binary @%s %s/v1/runs")
      :format(T.curl, key, big, srv.url))))
    assert.equal(413, code)
  end)

  it("routes by the whole path: no route answers a stranger, ids are taken whole, roles hold", function()
    -- a stranger learns nothing about which API paths exist: a key first
    for _, path in ipairs({ "/v1/nothing", "/v1/runs/x/nothing", "/v1/approvals/x/approve", "/metrics" }) do
      assert.equal(401, (srv.http("GET", path)), path)
    end
    assert.equal(404, (srv.http("GET", "/v1/nothing", key)))
    local _, run = srv.http("POST", "/v1/runs", key, { agent = "lab", input = "[]", wait = true })
    local id = run.run_id
    assert.equal(200, (srv.http("GET", "/v1/runs/" .. id, key)))
    -- the id is the whole segment: longer, shorter, empty or followed by more is no run
    for _, path in ipairs({ "/v1/runs/" .. id .. "x", "/v1/runs/" .. id:sub(1, 35), "/v1/runs/",
                            "/v1/runs//events", "/v1/runs/" .. id .. "/events/x", "/v1/runs/" .. id .. "/",
                            "/v1/runs/" .. ("a"):rep(300) }) do
      assert.equal(404, (srv.http("GET", path, key)), path)
    end
    -- a decision takes POST; the reset of a breaker the top role; other methods 405
    assert.equal(404, (srv.http("GET", "/v1/approvals/" .. id .. "/approve", key)))
    local code, body = srv.http("POST", "/v1/breakers/tool:echo/reset", key)
    assert.equal(403, code)
    assert.matches("needs the 'admin' role", body.error)
    assert.equal(405, (srv.http("PUT", "/v1/runs", key)))
    assert.equal(200, (srv.http("GET", "/healthz")))
  end)

  it("a client that sends half a request and waits does not hold the worker from others", function()
    local h = io.popen(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%s; printf \"POST /v1/runs HTTP/1.1\\r\\n" ..
      "Host: x\\r\\nContent-Length: 100\\r\\n\\r\\n{\" >&3; sleep 3' 2>/dev/null"):format(srv.port), "r")
    local t0 = os.time()
    for _ = 1, 5 do
      local code, res = srv.http("POST", "/v1/runs", key, { agent = "lab", input = "[]", wait = true })
      assert.equal(200, code)
      assert.equal("completed", res.status)
    end
    assert.is_true(os.time() - t0 <= 2)
    h:close()
  end)
end)

describe("attack: budgets under 20 runs at once", function()
  it("20 parallel runs of one user spend no more than the daily budget and one call's estimate", function()
    local pol, audit = T.policy({ tiers = { daily = { per_run_usd = 1, daily_usd = 0.1, monthly_usd = 10 } },
      users = { dana = { role = "read", tier = "daily" } } })
    local runs = {}
    for i = 1, 20 do runs[i] = { agent = "spec/fixtures/lab", query = { { "llm" }, { "llm" } }, user = "dana" } end
    local results = T.run_many({ policy = pol, audit = audit,
      llm = "mock:" .. T.scenario({ { content = "x", usage = { input_tokens = 10, output_tokens = 1000 }, delay_ms = 50 } }) },
      runs)
    local spent, refused = 0, 0
    for _, r in ipairs(results) do
      spent = spent + r.cost_usd
      if r.status == "budget_exceeded" then refused = refused + 1 end
    end
    assert.is_true(spent <= 0.1 + 0.0302 + 1e-9, "spent " .. spent)
    assert.is_true(refused >= 15, refused .. " refused")
    for _, row in ipairs(core.ledger(T.store_of(pol))) do
      if row.scope == "user:dana" then assert.is_true(row.spent_usd <= 0.1 + 0.0302 + 1e-9) end
    end
  end)
end)
