-- Attack: log volume a script grows (docs/safety.md, Bounds). Every field of a record
-- that a script, a model or a detector fills is cut at defaults.max_audit_field_bytes with
-- its full length kept in `truncated`; a run stops at defaults.max_tool_calls tool calls,
-- and at defaults.max_audit_records records or defaults.max_audit_bytes bytes of log,
-- whatever its script catches.
local T = require("warden.testing")

-- an agent whose run is the Lua given, with the lab's cheap tool and its own detectors
local function agent(run, files)
  local f = { ["agent.lua"] = ([[
return warden.agent { name = "vol", tools = { "noop" }, detectors = %s,
  run = function(q, ctx) %s end }
]]):format(files and files.detectors or "{}", run),
    ["tools/noop.lua"] = 'return warden.tool { name = "noop", description = "nothing", run = function() return {} end }' }
  for k, v in pairs(files or {}) do if k ~= "detectors" then f[k] = v end end
  return T.agent("vol", f)
end

local function run(run_lua, overrides, files)
  local o = { tools = { noop = { permission = "read", risk = "low" } } }
  for k, v in pairs(overrides or {}) do o[k] = v end
  return T.run({ agent = agent(run_lua, files), query = "go", policy_overrides = o })
end

-- the bytes of the run's lines in the log
local function run_bytes(audit, run_id)
  local n, records = 0, 0
  for line in io.lines(audit) do
    if line:find(run_id, 1, true) then
      n = n + #line + 1
      records = records + 1
    end
  end
  return n, records
end

describe("attack: one huge field", function()
  it("cuts an 8 MB ctx:log to 64 KiB, counts its length and says so; the run goes on", function()
    local res, audit = run('ctx:log({ blob = ("x"):rep(8 * 1024 * 1024) }) return "logged"')
    assert.equal("completed", res.status)
    assert.equal("logged", res.result)
    local log = T.events(audit, "agent_log")[1]
    assert.equal("string", type(log.fields))
    assert.is_true(#log.fields <= 64 * 1024 and #log.fields > 60 * 1024, #log.fields)
    assert.equal('{"blob":"xxx', log.fields:sub(1, 12))
    assert.equal(8 * 1024 * 1024 + 11, log.truncated.fields)
    local bytes = run_bytes(audit, res.run_id)
    assert.is_true(bytes < 200 * 1024, bytes)
  end)

  it("cuts a detector verdict's 4 MB details the same way", function()
    local det = [[
return warden.detector { name = "loud", on = { "tool_call" },
  check = function() return { verdict = "warn", reason = "loud", blob = ("d"):rep(4 * 1024 * 1024) } end }
]]
    local res, audit = run('ctx:call_tool("noop", {}) return "ok"', nil,
      { detectors = '{ "loud" }', ["detectors/loud.lua"] = det })
    assert.equal("completed", res.status)
    local v = T.events(audit, "detector_verdict")[1]
    assert.equal("loud", v.detector)
    assert.is_true(#v.details <= 64 * 1024, #v.details)
    assert.is_true(v.truncated.details > 4 * 1024 * 1024, v.truncated.details)
  end)

  it("cuts a field at a UTF-8 character, never inside one", function()
    local res, audit = run('ctx:log({ s = ("é"):rep(40000) }) return "ok"')
    assert.equal("completed", res.status)
    local log = T.events(audit, "agent_log")[1]
    assert.truthy(utf8.len(log.fields), "valid UTF-8")
  end)
end)

describe("attack: a run that loops", function()
  it("stops a loop of cheap tool calls at defaults.max_tool_calls, even under pcall", function()
    local res, audit = run([[
      while true do pcall(ctx.call_tool, ctx, "noop", {}) end ]], { defaults = { max_tool_calls = 200 } })
    assert.equal("max_iterations", res.status)
    assert.matches("tool call limit: the run asked for more than 200 tool calls %(defaults.max_tool_calls%)",
      res.errors[#res.errors])
    assert.equal(200, #T.events(audit, "tool_call"))
    assert.equal(1, #T.events(audit, "run_finished"))
  end)

  it("stops a loop of ctx:log at defaults.max_audit_records and writes no more than that", function()
    local res, audit = run([[
      local i = 0
      while true do i = i + 1; pcall(ctx.log, ctx, { i = i }) end ]], { defaults = { max_audit_records = 500 } })
    assert.equal("failed", res.status)
    assert.matches("audit limit: the run wrote %d+ records", res.errors[#res.errors])
    local _, records = run_bytes(audit, res.run_id)
    assert.is_true(records <= 500, records)
    local fin = T.events(audit, "run_finished")[1]
    assert.equal(records, fin.audit_records)
  end)

  it("stops a run writing large records at defaults.max_audit_bytes: its lines stay within it", function()
    local res, audit = run([[
      local s = ("y"):rep(60000)
      for i = 1, 1000 do ctx:log({ i = i, s = s }) end
      return "never" ]], { defaults = { max_audit_bytes = 1048576, max_audit_field_bytes = 65536 } })
    assert.equal("failed", res.status)
    assert.matches("audit limit", res.errors[#res.errors])
    local bytes = run_bytes(audit, res.run_id)
    assert.is_true(bytes <= 1048576, bytes)
    assert.is_true(bytes > 900 * 1024, bytes)
  end)

  it("keeps the whole result in run_finished while the run has room, and cuts it past that", function()
    local res, audit = run('return ("r"):rep(3 * 1024 * 1024)')
    assert.equal("completed", res.status)
    assert.equal(3 * 1024 * 1024, #T.events(audit, "run_finished")[1].final_answer)
    res, audit = run('return ("r"):rep(3 * 1024 * 1024)', { defaults = { max_audit_bytes = 1048576 } })
    assert.equal("completed", res.status)
    local fin = T.events(audit, "run_finished")[1]
    assert.is_true(#fin.final_answer < 1048576, #fin.final_answer)
    assert.equal(3 * 1024 * 1024 + 2, fin.truncated.final_answer)
    assert.is_true(run_bytes(audit, res.run_id) <= 1048576)
  end)

  it("refuses a policy whose field cap is over a quarter of the run's log", function()
    local ok, errs = require("warden.core").policy_check(T.policy({ defaults = {
      max_audit_bytes = 1048576, max_audit_field_bytes = 1048576 } }))
    assert.is_false(ok)
    assert.matches("max_audit_field_bytes %(1048576%) must be at most a quarter", table.concat(errs, "\n"))
  end)
end)
