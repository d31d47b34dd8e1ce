-- `warden report compliance` (docs/safety.md, Compliance report): its figures are
-- the audit log's. The spec writes a log with violations of each severity, refused
-- calls, approvals granted, rejected and expired, redacted secrets and a kill, then
-- counts the log itself and compares.
local T = require("warden.testing")

local function report(pol, extra)
  local out, rc = T.sh(("%s report compliance --json --policy %s %s"):format(T.bin, pol, extra or ""))
  assert.equal(0, rc, out)
  return T.decode(out)
end

describe("compliance report", function()
  local pol, audit
  setup(function()
    pol, audit = T.policy({ approvals = { expiry = { high = "1s" }, routes = { high = { "lead" } } } })
    local function lab(plan, user)
      T.lab(plan, { policy = pol, audit = audit, user = user })
    end
    lab({ { "tool", "guarded", { cmd = "rm -rf /" } }, { "tool", "read_file", { path = "../../etc/passwd" } },
          { "tool", "echo", { note = "mail me at bob@example.com" } } })
    lab({ { "tool", "admin_tool", {} }, { "tool", "write_tool", {} }, { "tool", "undeclared", {} } })
    lab({ { "tool", "approval_tool", { n = 1 } } }) -- nobody answers: expired after 1 s
    for _, decision in ipairs({ "approve %s --by lead", "reject %s --by lead --reason no" }) do
      local _, out = T.start_lab(pol, '[["tool","approval_tool",{"n":2}]]')
      local req
      for _ = 1, 300 do
        req = T.decode((T.sh(("%s approvals list --json --policy %s"):format(T.bin, pol))))[1]
        if req then break end
        os.execute("sleep 0.02")
      end
      T.approvals(pol, decision:format(req.id))
      T.result_of(out)
    end
    T.sh(("%s kill lab --by ops --policy %s && %s revive lab --by ops --policy %s"):format(T.bin, pol, T.bin, pol))
  end)

  it("counts what the audit log holds, event by event", function()
    local recs = T.records(audit)
    local rep = report(pol)
    assert.equal(#recs, rep.records)
    local events, sev, unauth, sens, waits = {}, {}, {}, 0, {}
    for _, r in ipairs(recs) do
      events[r.event] = (events[r.event] or 0) + 1
      if r.event == "guardrail_violation" then sev[r.severity] = (sev[r.severity] or 0) + 1 end
      if r.event == "authorization_denied" then unauth[r.user_id] = (unauth[r.user_id] or 0) + 1 end
      if r.sensitive_data then sens = sens + 1 end
      if r.wait_ms then waits[r.event] = math.max(waits[r.event] or 0, r.wait_ms) end
    end
    assert.same(events, rep.events)
    assert.same(sev, rep.violations.by_severity)
    assert.same({ critical = 1, high = 1 }, rep.violations.by_severity) -- forbidden pattern, resource outside
    assert.equal(events.guardrail_violation, rep.violations.total)
    assert.same(unauth, rep.unauthorized.by_user)
    assert.equal(3, rep.unauthorized.by_user.reader) -- admin_tool, write_tool, undeclared
    assert.equal(sens, rep.sensitive_data.records)
    assert.is_true(sens >= 1) -- the email in echo's arguments
    local a = rep.approvals
    assert.same({ 3, 1, 1, 1 }, { a.requested, a.granted, a.rejected, a.expired })
    assert.equal(waits.approval_granted, a.time_to_decision.granted.max_ms)
    assert.equal(waits.approval_rejected, a.time_to_decision.rejected.max_ms)
    assert.is_true(a.time_to_decision.expired.max_ms >= 1000)
    assert.same({ kill = 1, revive = 1 }, rep.kill_switch)
    assert.is_true(rep.chain.intact)
    assert.equal(#recs, rep.chain.records_checked)
  end)

  it("keeps to --since/--until, and reports a tampered chain", function()
    assert.equal(0, report(pol, "--since 2999-01-01").records)
    assert.equal(0, report(pol, "--until 2000-01-01").records)
    local text = T.read(audit)
    T.write(audit, (text:gsub('"user_id":"reader"', '"user_id":"mallory"', 1)))
    local rep = report(pol)
    assert.is_false(rep.chain.intact)
    assert.equal("tampered", rep.chain.status)
    local plain = T.sh(("%s report compliance --policy %s"):format(T.bin, pol))
    assert.matches("audit chain    tampered", plain)
    assert.matches("violations     2 guardrail violations %(unauthorized attempts are not among them: %d+, below%)", plain)
    assert.equal("guardrail_violation records; unauthorized attempts (authorization_denied) are counted apart, "
      .. "under unauthorized", rep.violations.counts)
  end)
end)
