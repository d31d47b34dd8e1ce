-- The audit log (docs/safety.md, Audit schema): fields, hash chain, tampering, redaction,
-- several processes appending one chain, and torn-line repair.
local T = require("warden.testing")
local core = T.core

local function lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

local function write_lines(path, ls)
  T.write(path, table.concat(ls, "\n") .. "\n")
end

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok and 0 or code
end

describe("audit records", function()
  it("always carry seq, timestamp, event, ids, success and the chain hashes", function()
    local _, _, audit = T.lab({ { "tool", "echo", { a = 1 } }, { "llm" } })
    local recs = T.records(audit)
    assert.is_true(#recs >= 4)
    for i, r in ipairs(recs) do
      for _, k in ipairs { "seq", "timestamp", "event", "run_id", "session_id", "user_id", "agent", "success",
                           "prev_hash", "hash" } do
        assert.is_not_nil(r[k], ("record %d lacks %s"):format(i, k))
      end
      assert.equal(i, r.seq)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", r.timestamp)
      assert.matches("^%x+$", r.hash)
      assert.equal(64, #r.hash)
    end
    assert.equal(("0"):rep(64), recs[1].prev_hash)
    assert.equal(recs[1].hash, recs[2].prev_hash)
    assert.equal("run_started", recs[1].event)
    assert.equal("run_finished", recs[#recs].event)
  end)

  it("describe tool calls: name, redacted args, result summary, cost, latency", function()
    local _, _, audit = T.lab({ { "tool", "costly", {} }, { "tool", "echo", { s = ("w"):rep(300) } } })
    local calls = T.events(audit, "tool_call")
    assert.equal("costly", calls[1].tool_name)
    assert.near(0.02, calls[1].cost_usd, 1e-12)
    assert.is_number(calls[1].latency_ms)
    assert.is_true(calls[2].tool_result_truncated)
    assert.equal(200, utf8.len(calls[2].tool_result_summary))
    assert.equal(0, calls[2].retry_count)
  end)

  it("describe LLM calls: model, tokens, cost, step", function()
    local _, _, audit = T.lab({ { "llm" } },
      { scenario = { { content = "x", usage = { input_tokens = 7, output_tokens = 3 } } } })
    local c = T.events(audit, "llm_call")[1]
    assert.equal("mock-model", c.model)
    assert.equal(7, c.input_tokens)
    assert.equal(3, c.output_tokens)
    assert.equal(1, c.agent_step)
    assert.near(7 / 1000 * 0.01 + 3 / 1000 * 0.03, c.cost_usd, 1e-12)
  end)
end)

describe("redaction", function()
  it("replaces values under secret-named keys", function()
    local _, _, audit = T.lab({ { "tool", "echo", { password = "hunter2", user_api_key = "k-1", nested = { Token = "t" },
                                                    input_tokens = 5 } } })
    local call = T.events(audit, "tool_call")[1]
    local text = T.encode(call)
    assert.not_matches("hunter2", text)
    assert.not_matches('"k%-1"', text)
    local args = call.tool_args
    assert.equal(5, args.input_tokens)
    assert.equal("[REDACTED]", args.password)
    assert.equal("[REDACTED]", args.user_api_key)
    assert.equal("[REDACTED]", args.nested.Token)
    assert.matches('"password":"%[REDACTED%]"', call.tool_result_summary)
  end)

  it("redacts the log's copy only: the agent gets its tool's result as returned", function()
    local _, steps, audit = T.lab({ { "tool", "echo", { password = "hunter2" } } })
    assert.equal("hunter2", steps[1].echo.password)
    assert.matches('"password":"%[REDACTED%]"', T.events(audit, "tool_call")[1].tool_result_summary)
  end)

  it("redacts card numbers, emails and bearer tokens inside any string", function()
    local _, _, audit = T.lab({ { "tool", "echo", {
      note = "card 4111 1111 1111 1111, mail bob@example.com, header Bearer abc.def.ghi" } },
      { "log", { said = "contact alice@example.org" } } })
    local text = T.read(audit)
    assert.not_matches("4111 1111", text)
    assert.not_matches("bob@example", text)
    assert.not_matches("abc%.def%.ghi", text)
    assert.not_matches("alice@example", text)
    assert.matches("%[REDACTED:credit_card%]", text)
    assert.matches("%[REDACTED:email%]", text)
    assert.matches("%[REDACTED:bearer_token%]", text)
  end)

  it("leaves numbers that fail the Luhn check alone", function()
    local _, _, audit = T.lab({ { "tool", "echo", { order = "order 1234 5678 9012 3456" } } })
    assert.matches("1234 5678 9012 3456", T.read(audit))
  end)

  it("redacts the query of the run too", function()
    local _, audit = T.run { agent = "spec/fixtures/eval", query = "return 'x' -- my password is in bob@example.com" }
    assert.not_matches("bob@example.com", T.read(audit))
  end)
end)

describe("audit verify", function()
  local function fresh()
    local _, _, audit = T.lab({ { "tool", "echo", { a = 1 } }, { "tool", "echo", { a = 2 } }, { "llm" } })
    assert.is_true((core.audit_verify(audit)))
    return audit, lines(audit)
  end

  -- a fresh log with its lines edited by `edit`, then verified
  local function tampered(edit)
    local audit, ls = fresh()
    edit(ls)
    write_lines(audit, ls)
    return core.audit_verify(audit)
  end

  it("passes an untouched log", function()
    local audit = fresh()
    local ok, msg, n = core.audit_verify(audit)
    assert.is_true(ok)
    assert.matches("intact", msg)
    assert.is_true(n >= 5)
  end)

  it("catches an edited line and names it", function()
    local ok, msg = tampered(function(ls) ls[3] = ls[3]:gsub('"success":true', '"success":false') end)
    assert.is_false(ok)
    assert.matches(":3: hash does not match", msg)
  end)

  it("catches a deleted line", function()
    local ok, msg = tampered(function(ls) table.remove(ls, 2) end)
    assert.is_false(ok)
    assert.matches(":2: chain broken", msg)
  end)

  it("catches reordered lines", function()
    local ok, msg = tampered(function(ls) ls[2], ls[3] = ls[3], ls[2] end)
    assert.is_false(ok)
    assert.matches(":2: chain broken", msg)
  end)

  it("catches an inserted line, even one with a valid-looking hash", function()
    local ok, msg = tampered(function(ls) table.insert(ls, 3, ls[2]) end)
    assert.is_false(ok)
    assert.matches(":3: chain broken", msg)
  end)

  it("catches a deleted first line", function()
    assert.is_false((tampered(function(ls) table.remove(ls, 1) end)))
  end)

  it("catches a line that is not JSON", function()
    local ok, msg = tampered(function(ls) ls[4] = "garbage" end)
    assert.is_false(ok)
    assert.matches(":4: not a JSON object", msg)
  end)

  it("is what `warden audit verify` runs: exit 0 intact, 1 tampered", function()
    local audit, ls = fresh()
    assert.equal(0, sh(T.bin .. " audit verify " .. audit .. " >/dev/null"))
    ls[2] = ls[2]:gsub('"event":"', '"event":"x')
    write_lines(audit, ls)
    assert.equal(1, sh(T.bin .. " audit verify " .. audit .. " >/dev/null"))
  end)
end)

describe("several writers", function()
  it("keeps one valid chain when 8 warden processes append to one log at once", function()
    local policy, audit = T.policy()
    local scen = T.scenario({ { content = "done" } })
    local plan = T.encode({ { "tool", "echo", { i = 1 } }, { "tool", "echo", { i = 2 } } })
    local cmds = {}
    for _ = 1, 8 do
      cmds[#cmds + 1] = (T.bin .. " run spec/fixtures/lab '%s' --user reader --policy %s --llm mock:%s >/dev/null &")
        :format(plan, policy, scen)
    end
    assert.equal(0, sh("(" .. table.concat(cmds, " ") .. " wait)"))
    local ok, msg, n = core.audit_verify(audit)
    assert.is_true(ok, msg)
    assert.equal(8 * 4, n) -- run_started, 2 tool_call, run_finished per run
    assert.equal(8, #T.events(audit, "run_finished"))
  end)

  it("keeps the chain across engines in one process", function()
    local policy, audit = T.policy()
    for _ = 1, 3 do T.run { agent = "spec/fixtures/lab", query = "[]", policy = policy, audit = audit } end
    local ok, msg = core.audit_verify(audit)
    assert.is_true(ok, msg)
    assert.equal(3, #T.events(audit, "run_started"))
  end)
end)

describe("torn last line", function()
  it("is cut off on the next write and kept in an audit_recovered record", function()
    local policy, audit = T.policy()
    T.run { agent = "spec/fixtures/lab", query = "[]", policy = policy, audit = audit }
    local f = io.open(audit, "a")
    f:write('{"seq":99,"event":"tool_ca')
    f:close()
    local ok = core.audit_verify(audit)
    assert.is_false(ok)
    T.run { agent = "spec/fixtures/lab", query = "[]", policy = policy, audit = audit }
    local ok2, msg = core.audit_verify(audit)
    assert.is_true(ok2, msg)
    local rec = T.events(audit, "audit_recovered")
    assert.equal(1, #rec)
    assert.equal('{"seq":99,"event":"tool_ca', rec[1].torn_fragment)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", rec[1].timestamp) -- every record has one (docs/safety.md, Audit schema)
  end)
end)

describe("audit query", function()
  it("filters by event, user and run", function()
    local res, _, audit = T.lab({ { "tool", "admin_tool", {} } })
    local h = io.popen(T.bin .. " audit query " .. audit .. " --event authorization_denied --run " .. res.run_id
      .. " 2>/dev/null")
    local out = h:read("a")
    h:close()
    local n = select(2, out:gsub("\n", ""))
    assert.equal(1, n)
    assert.matches('"tool_name":"admin_tool"', out)
  end)
end)
