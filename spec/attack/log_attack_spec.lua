-- Attack: bytes a script or a model writes into the audit log. Every byte value, through
-- every field a script controls, is escaped so that the writer, `warden audit verify` and
-- the next process continuing the chain agree: the log stays intact.
local T = require("warden.testing")

-- s: all 256 byte values; each script below starts with it
local ALL = [[local all = {} for i = 0, 255 do all[#all + 1] = string.char(i) end local s = table.concat(all)
]]

local AGENT = ALL .. [[
return warden.agent { name = "bytes", tools = { "b", "approve_me" }, detectors = { "said" },
  run = function(query, ctx)
    ctx:log({ text = s, [s] = 1, nested = { s, { [s:sub(1, 40)] = s } } })
    for i = 0, 255 do ctx:log({ ["k" .. string.char(i)] = string.char(i) .. "x" .. string.char(i) }) end
    ctx:call_tool("b", { mode = "return", text = s, [s:sub(120)] = s })
    ctx:call_tool("b", { mode = "error" })
    ctx:call_tool("b", { mode = "nilmsg" })
    ctx:call_tool("b", { mode = "table_error" })
    ctx:call_tool(s, { x = s })
    ctx:call_tool("approve_me", { x = s }, { justification = s })
    if query:sub(1, 4) == "fail" then error(s) end
    return s .. query
  end }
]]

local TOOL = ALL .. [[
return warden.tool { name = "b", description = s, run = function(args)
  if args.mode == "error" then error(s) end
  if args.mode == "nilmsg" then return nil, s end
  if args.mode == "table_error" then error({ message = s }) end
  return { [s] = s, list = { s, s } }
end }
]]

local DETECTOR = ALL .. [[
return warden.detector { name = "said", on = { "tool_call", "log" },
  check = function(event) return { verdict = "warn", reason = s, [s] = s, seen = event.type } end }
]]

local function verify(audit)
  local out, rc = T.sh(T.bin .. " audit verify " .. audit)
  assert.equal(0, rc, out)
  assert.matches("intact", out)
  return out
end

describe("attack: every byte value through every field a script controls", function()
  local dir
  setup(function()
    dir = T.agent("bytes", { ["agent.lua"] = AGENT, ["tools/b.lua"] = TOOL,
      ["tools/approve_me.lua"] = (T.read("spec/fixtures/lab/tools/approval_tool.lua"):gsub('"approval_tool"', '"approve_me"')),
      ["detectors/said.lua"] = DETECTOR })
  end)

  local function policy(audit)
    return { audit = { path = audit },
      tools = { b = { permission = "read", risk = "low" },
                approve_me = { permission = "read", risk = "high", requires_approval = true } },
      approvals = { expiry = { low = "1s", normal = "1s", high = "1s", critical = "1s" } } }
  end

  it("writes a log that verifies intact, continued by later runs and another process", function()
    local audit = T.tmpfile(".jsonl")
    local res = T.run { agent = dir, query = "q\255\254 \"\\", policy_overrides = policy(audit), audit = audit }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    -- NUL and bytes that are not UTF-8 come back as \xNN: nothing after them is lost
    assert.equal(1, select(2, res.result:gsub("\\x00\1\2\3", "")), res.result)
    assert.truthy(res.result:find("\127\\x80\\x81", 1, true), res.result)
    assert.truthy(res.result:find("q\\xff\\xfe \"\\$"), res.result)
    verify(audit)
    -- a second engine continues the chain from the last line it reads back
    local res2 = T.run { agent = dir, query = "fail\0", policy_overrides = policy(audit), audit = audit }
    assert.equal("failed", res2.status)
    verify(audit)
    -- and another process (the command line)
    local pol = T.policy(policy(audit))
    local _, rc = T.sh(("%s run %s 'q' --policy %s --user reader"
      .. " --llm mock:spec/fixtures/no_model.yaml --json"):format(T.bin, dir, pol))
    assert.equal(0, rc)
    verify(audit)
    -- what each record holds comes back whole
    local seen = {}
    for _, r in ipairs(T.records(audit)) do seen[r.event] = (seen[r.event] or 0) + 1 end
    assert.is_true(seen.agent_log >= 3 * 257, tostring(seen.agent_log))
    assert.is_true(seen.detector_verdict >= 3, tostring(seen.detector_verdict))
    assert.is_true(seen.approval_requested >= 3, tostring(seen.approval_requested))
    local errs = {}
    for _, r in ipairs(T.events(audit, "tool_call")) do
      if r.error then errs[#errs + 1] = r.error end
    end
    assert.truthy(errs[1]:find("\\x00\1\2\3", 1, true), errs[1]) -- a tool's error() after its NUL
  end)

  it("detects a single changed byte among those records", function()
    local audit = T.tmpfile(".jsonl")
    T.run { agent = dir, query = "q", policy_overrides = policy(audit), audit = audit }
    verify(audit)
    local text = T.read(audit)
    local at = text:find("\\u0000", 1, true)
    T.write(audit, text:sub(1, at - 1) .. "\\u0001" .. text:sub(at + 6))
    local out, rc = T.sh(T.bin .. " audit verify " .. audit)
    assert.equal(1, rc, out)
    assert.matches(":%d+: hash does not match", out)
  end)
end)
