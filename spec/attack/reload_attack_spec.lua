-- Attack: scripts saved while warden serve runs that compile but would fail every run:
-- an error at the top level, a schema typo, a wrong name, a top level that never
-- returns. Each is checked whole in a scratch sandbox before it is accepted, refused with
-- file:line and why, and runs go on with the previous version. `warden check` gives the
-- same answers offline, for CI.
local T = require("warden.testing")

local GOOD_TOOL = [[
return warden.tool { name = "greet_tool", description = "greets",
  parameters = { type = "object", properties = { who = { type = "string", minLength = 1 } } },
  run = function(args) return { text = "hello " .. tostring(args.who) } end }
]]

local AGENT = [[
return warden.agent { name = "greeter", tools = { "greet_tool" },
  run = function(q, ctx) local r = ctx:call_tool("greet_tool", { who = q }) return r.text or r.error end }
]]

local BAD = {
  { "a schema typo", GOOD_TOOL:gsub("minLength", "minLenght"), "tools/greet_tool.lua:2: .*unknown schema keyword 'minLenght'" },
  { "an error at its top level", "local x = nil\nlocal y = x.field\n" .. GOOD_TOOL, "tools/greet_tool.lua:2: attempt to index" },
  { "another tool's name", GOOD_TOOL:gsub('name = "greet_tool"', 'name = "greet_tool2"'),
    "tools/greet_tool.lua:1: .*declares a tool whose name is not 'greet_tool'" },
  { "a top level that never returns", "while true do end\n" .. GOOD_TOOL, "tools/greet_tool.lua:1: its top level was stopped" },
  { "no definition", "return 42\n", "must return warden.tool" },
  { "a syntax error", GOOD_TOOL:gsub("run = function", "run = fnction"), "tools/greet_tool.lua:3: " },
}

describe("attack: broken scripts saved while warden serve runs", function()
  local key, dir, audit, srv = "reload-key-1"
  setup(function()
    local pol
    pol, audit = T.policy({ users = { reader = { api_key_sha256 = T.sha256(key) } },
      tools = { greet_tool = { permission = "read", risk = "low" } } })
    dir = T.tmpfile("-agents")
    os.execute("mkdir -p " .. dir .. "/greeter/tools")
    T.write(dir .. "/greeter/agent.lua", AGENT)
    T.write(dir .. "/greeter/tools/greet_tool.lua", GOOD_TOOL)
    srv = T.serve({ policy = pol, agents = dir, workers = 1 })
  end)
  teardown(function() if srv then srv.stop() end end)

  local function greet()
    local code, res = srv.http("POST", "/v1/runs", key, { agent = "greeter", input = "you", wait = true })
    assert.equal(200, code)
    return res.result
  end

  for i, case in ipairs(BAD) do
    it("refuses " .. case[1] .. " with file:line and keeps serving the previous version", function()
      assert.equal("hello you", greet())
      T.write(dir .. "/greeter/tools/greet_tool.lua", case[2])
      local r = T.wait_for(function()
        local n = 0
        for _, ev in ipairs(T.events(audit, "policy_rejected")) do
          if ev.script then
            n = n + 1
            if n == i then return ev end
          end
        end
      end, "the rejection")
      assert.truthy(r.reason:match(case[3]), r.reason)
      for _ = 1, 3 do assert.equal("hello you", greet()) end
    end)
  end

  it("accepts a good edit after all that", function()
    T.write(dir .. "/greeter/tools/greet_tool.lua", GOOD_TOOL:gsub('"hello "', '"hi "'))
    T.wait_for(function() return greet() == "hi you" end, "the good edit")
  end)
end)

describe("attack: warden check, offline", function()
  it("answers each broken script with file:line and exit 2, a good tree with exit 0", function()
    for _, case in ipairs(BAD) do
      local dir = T.agent("checked", { ["agent.lua"] = AGENT, ["tools/greet_tool.lua"] = case[2] })
      local out, rc = T.sh(("%s check %s"):format(T.bin, dir))
      assert.equal(2, rc, out)
      assert.truthy(out:match(case[3]), out)
      T.write(dir .. "/tools/greet_tool.lua", GOOD_TOOL)
    end
    local good = T.agent("checked_ok", { ["agent.lua"] = AGENT, ["tools/greet_tool.lua"] = GOOD_TOOL })
    local out, rc = T.sh(("%s check %s agents"):format(T.bin, good))
    assert.equal(0, rc, out)
    assert.matches("with errors", out)
    local json, jrc = T.sh(("%s check %s --json"):format(T.bin, good))
    assert.equal(0, jrc)
    assert.same({ ok = true, scripts = 2, errors = {} }, T.decode(json))
  end)

  it("finds a listed tool or detector that has no script", function()
    local dir = T.agent("checked_lists", { ["agent.lua"] =
      'return warden.agent { name = "x", tools = { "nowhere" }, detectors = { "loop", "ghost" } }' })
    local out, rc = T.sh(("%s check %s"):format(T.bin, dir))
    assert.equal(2, rc)
    assert.truthy(out:match("agent%.lua:1: tools%[1%] 'nowhere': no script"), out)
  end)
end)
