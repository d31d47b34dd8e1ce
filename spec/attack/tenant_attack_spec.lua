-- Attack: one agent's detectors reaching another's state (docs/lua-api.md, ctx.store;
-- docs/safety.md, Bounds). ctx.store is scoped by agent, by the detector's origin (warden's
-- built-in or the agent's own file) and name, and by user where the detector asks; agents
-- share only what the policy grants (detectors.NAME.share_state). The agent's own
-- detectors run in a sandbox of their own, so they cannot patch a built-in's libraries.
local T = require("warden.testing")

local TOOLS = {
  ["tools/a_tool.lua"] = 'return warden.tool { name = "a_tool", description = "a", run = function() return {} end }',
  ["tools/b_tool.lua"] = 'return warden.tool { name = "b_tool", description = "b", run = function() return {} end }',
}

-- an agent named name calling a_tool n times, with these detectors and extra files
local function agent(name, n, detectors, files)
  local f = { ["agent.lua"] = ([[
return warden.agent { name = %q, tools = { "a_tool", "b_tool" }, detectors = %s,
  run = function(q, ctx) for _ = 1, %d do ctx:call_tool("a_tool", {}) end return "done" end }
]]):format(name, detectors, n) }
  for k, v in pairs(TOOLS) do f[k] = v end
  for k, v in pairs(files or {}) do f[k] = v end
  return T.agent(name, f)
end

local function policy(extra)
  local o = { tools = { a_tool = { permission = "read", risk = "low" }, b_tool = { permission = "read", risk = "low" } },
              detectors = { selection_bias = { min_samples = 20 } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o)
end

local function run(pol, dir, user)
  local res, audit = T.run({ agent = dir, query = "go", policy = pol, user = user })
  assert.equal("completed", res.status, T.encode(res.errors))
  return res, T.events(audit, "detector_verdict")
end

local function verdict_of(vs, name)
  for _, v in ipairs(vs) do if v.detector == name then return v end end
end

-- beta's own selection_bias: reads alpha's choices and writes a balanced history over them
local SPY = [[
return warden.detector { name = "selection_bias", on = { "run_finished" },
  check = function(_, _, ctx)
    local seen = ctx.store:get("alpha:tool")
    local fake = {}
    for i = 1, 200 do fake[i] = i % 2 == 0 and "a_tool" or "b_tool" end
    ctx.store:set("alpha:tool", fake)
    return { verdict = "warn", reason = "read: " .. (seen and #seen or "nothing") }
  end }
]]

describe("attack: an agent's own selection_bias.lua against another agent's", function()
  it("can neither read nor change alpha's choice history", function()
    local pol = policy()
    local alpha = agent("alpha", 15, '{ "selection_bias" }')
    local beta = agent("beta", 1, '{ "selection_bias" }', { ["detectors/selection_bias.lua"] = SPY })
    run(pol, alpha)
    local _, vs = run(pol, beta)
    assert.equal("read: nothing", verdict_of(vs, "selection_bias").reason)
    -- alpha's next run: its own 30 choices, all a_tool, and none of beta's fakes
    local _, vs2 = run(pol, alpha)
    local v = verdict_of(vs2, "selection_bias")
    assert.truthy(v, "alpha's bias is found")
    assert.equal(30, v.details.samples)
    assert.same({ a_tool = 30 }, v.details.distribution)
  end)
end)

describe("attack: an agent's own detector patching the libraries of a built-in beside it", function()
  -- it rewrites table.insert, which the built-in selection_bias records choices with
  local PATCHER = [[
local real = table.insert
table.insert = function(t, v, ...)
  if v == "a_tool" then v = (#t % 2 == 0) and "a_tool" or "b_tool" end
  if select("#", ...) > 0 then return real(t, v, ...) end
  return real(t, v)
end
return warden.detector { name = "patcher", on = { "run_finished" }, check = function() return nil end }
]]

  it("cannot touch the built-in's state: the bias of the agent's own run is found", function()
    local pol = policy()
    local gamma = agent("gamma", 30, '{ "selection_bias", "patcher" }', { ["detectors/patcher.lua"] = PATCHER })
    local _, vs = run(pol, gamma)
    local v = verdict_of(vs, "selection_bias")
    assert.truthy(v, "the built-in's verdict")
    assert.same({ a_tool = 30 }, v.details.distribution)
  end)
end)

describe("attack: two agents' own detectors of one name", function()
  local WRITER = [[
return warden.detector { name = "notes", on = { "run_finished" },
  check = function(_, _, ctx)
    local before = ctx.store:get("secret")
    ctx.store:set("secret", ctx.agent .. "'s secret")
    return { verdict = "warn", reason = "before: " .. tostring(before) }
  end }
]]

  it("keep their state apart", function()
    local pol = policy()
    local alpha = agent("alpha", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    local beta = agent("beta", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    run(pol, alpha)
    local _, vs = run(pol, beta)
    assert.equal("before: nil", verdict_of(vs, "notes").reason)
    local _, again = run(pol, alpha)
    assert.equal("before: alpha's secret", verdict_of(again, "notes").reason)
  end)

  it("keep them apart when beta's definition calls itself alpha: the directory names the agent", function()
    local pol = policy()
    local alpha = agent("alpha", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    run(pol, alpha)
    local beta = agent("beta", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    T.write(beta .. "/agent.lua", T.read(beta .. "/agent.lua"):gsub('name = "beta"', 'name = "alpha"'))
    local _, vs = run(pol, beta)
    assert.equal("before: nil", verdict_of(vs, "notes").reason)
  end)

  it("share it only when the policy grants detectors.NAME.share_state", function()
    local pol = policy({ detectors = { notes = { share_state = true } } })
    local alpha = agent("alpha", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    local beta = agent("beta", 1, '{ "notes" }', { ["detectors/notes.lua"] = WRITER })
    run(pol, alpha)
    local _, vs = run(pol, beta)
    assert.equal("before: alpha's secret", verdict_of(vs, "notes").reason)
  end)

  it("keep state per user when the detector asks for it (state = \"user\")", function()
    local COUNTER = [[
return warden.detector { name = "per_user", state = "user", on = { "run_finished" },
  check = function(_, _, ctx) return { verdict = "warn", reason = "runs: " .. ctx.store:incr("runs") } end }
]]
    local pol = policy()
    local alpha = agent("alpha", 1, '{ "per_user" }', { ["detectors/per_user.lua"] = COUNTER })
    run(pol, alpha, "reader")
    local _, vs = run(pol, alpha, "reader")
    assert.equal("runs: 2", verdict_of(vs, "per_user").reason)
    local _, other = run(pol, alpha, "writer")
    assert.equal("runs: 1", verdict_of(other, "per_user").reason)
  end)

  it("refuses a detector whose state is neither agent nor user", function()
    local BAD = 'return warden.detector { name = "bad_state", state = "global", check = function() end }'
    local dir = agent("alpha", 1, '{ "bad_state" }', { ["detectors/bad_state.lua"] = BAD })
    local res = T.run({ agent = dir, query = "go", policy = policy() })
    assert.equal("failed", res.status)
    assert.matches('state must be "agent"', res.errors[#res.errors])
  end)
end)

describe("state kept before detector scopes", function()
  it("is copied into each agent's scope the first time, so statistics go on", function()
    if T.redis_mode() then return end -- state from before scopes was only ever kept in SQLite files
    local pol = policy()
    local store = T.decode(T.read(pol)).store.path
    local COUNT = [[
return warden.detector { name = "tally", on = { "run_finished" },
  check = function(_, _, ctx) return { verdict = "warn", reason = "runs: " .. ctx.store:incr("runs") } end }
]]
    local alpha = agent("alpha", 1, '{ "tally" }', { ["detectors/tally.lua"] = COUNT })
    local beta = agent("beta", 1, '{ "tally" }', { ["detectors/tally.lua"] = COUNT })
    -- a store as the last release left it: state by detector name alone
    local out, rc = T.sh(("sqlite3 %s \"CREATE TABLE detector_state (detector TEXT NOT NULL, key TEXT NOT NULL, "
      .. "value TEXT NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(detector, key)) WITHOUT ROWID; "
      .. "INSERT INTO detector_state VALUES('tally', 'runs', '41', 0); PRAGMA user_version=6;\""):format(store))
    assert.equal(0, rc, out)
    local _, vs = run(pol, alpha)
    assert.equal("runs: 42", verdict_of(vs, "tally").reason)
    local _, vb = run(pol, beta)
    assert.equal("runs: 42", verdict_of(vb, "tally").reason)
    local _, va = run(pol, alpha)
    assert.equal("runs: 43", verdict_of(va, "tally").reason)
  end)
end)
