-- Approvals (docs/safety.md, Approvals): a tool call that needs
-- a person's decision waits in the state store; `warden approvals` decides it from
-- another process; the clock expires and escalates it; a dead run abandons it.
local T = require("warden.testing")

local HOUR = 3600 * 1000

local function policy(extra)
  local o = { approvals = { routes = { high = { "lead", "director" }, critical = { "director", "vp" } } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  local path, audit = T.policy(o)
  return path, audit
end


local approvals, pending = T.approvals, T.pending

local PLAN = '[["tool","approval_tool",{"note":"x"}]]'

describe("approval workflow", function()
  it("runs the tool once an approver approves, and the run completes", function()
    local pol, audit = policy()
    local _, out = T.start_lab(pol, PLAN)
    local req = pending(pol)
    assert.equal("approval_tool", req.tool)
    assert.equal("reader", req.user_id)
    assert.equal("high", req.risk)
    assert.same({ "lead", "director" }, req.approvers)
    assert.is_true(req.expires_ms - req.created_ms == HOUR) -- high urgency: 1h
    assert.is_truthy(T.read(out .. ".err"):find("waiting for approval of tool 'approval_tool' (request " .. req.id
      .. ", high risk, expires in 1 h 0 min): warden approvals approve " .. req.id .. " --key-file APPROVER_KEY", 1, true))
    -- only a listed approver decides (mallory proves who she is: she is not one)
    local msg, rc = approvals(pol, "approve " .. req.id .. " --by mallory")
    assert.equal(1, rc)
    assert.matches("mallory may not decide", msg)
    -- the approver's key file proves who decides
    local keyf = T.write(T.tmpfile(".key"), "key-lead\n")
    msg, rc = T.sh(("%s approvals approve %s --key-file %s --policy %s"):format(T.bin, req.id, keyf, pol))
    assert.equal(0, rc, msg)
    local res = T.result_of(out)
    assert.equal("completed", res.status)
    assert.is_true(res.tool_calls[1].success)
    local granted = T.events(audit, "approval_granted")
    assert.equal(1, #granted)
    assert.same({ "lead" }, granted[1].approved_by)
    assert.equal("api_key", granted[1].decided_via)
    assert.equal(1, #T.events(audit, "approval_requested"))
    assert.equal(1, #T.events(audit, "tool_call"))
  end)

  it("does not run a rejected tool; the agent gets the reason and the run ends with a result", function()
    local pol, audit = policy()
    local _, out = T.start_lab(pol, PLAN)
    local req = pending(pol)
    local msg, rc = approvals(pol, "reject " .. req.id .. " --by director --reason 'not on a Friday'")
    assert.equal(0, rc, msg)
    local res = T.result_of(out)
    assert.equal("completed", res.status) -- the lab agent goes on after a refused tool
    local steps = T.decode(res.result)
    assert.equal("tool 'approval_tool' was rejected by director: not on a Friday", steps[1].error)
    assert.is_false(res.tool_calls[1].success)
    assert.equal(0, #T.events(audit, "tool_call"))
    local rej = T.events(audit, "approval_rejected")
    assert.equal(1, #rej)
    assert.equal("director", rej[1].decided_by)
    -- decided once: a second decision is refused
    msg, rc = approvals(pol, "approve " .. req.id .. " --by lead")
    assert.equal(1, rc)
    assert.matches("is rejected already", msg)
  end)

  it("expires a request nobody decides (injected clock) and tells the agent", function()
    local pol, audit = policy()
    local _, out = T.start_lab(pol, PLAN)
    local req = pending(pol)
    -- anyone looking after the expiry settles it: here a listing two hours on
    approvals(pol, "list", req.created_ms + 2 * HOUR)
    local res = T.result_of(out)
    local steps = T.decode(res.result)
    assert.matches("approval of tool 'approval_tool' expired: no decision before it expired", steps[1].error)
    assert.equal(1, #T.events(audit, "approval_expired"))
    assert.equal(0, #T.events(audit, "tool_call"))
    local msg, rc = approvals(pol, "approve " .. req.id .. " --by lead")
    assert.equal(1, rc)
    assert.matches("is expired already", msg)
  end)

  it("audits one escalation at escalate_at of the time, and the request can still be approved", function()
    local pol, audit = policy()
    local _, out = T.start_lab(pol, PLAN)
    local req = pending(pol)
    approvals(pol, "list", req.created_ms + HOUR / 2 + 1000) -- past half of the hour
    approvals(pol, "list", req.created_ms + HOUR / 2 + 2000)
    for _ = 1, 100 do
      if #T.events(audit, "approval_escalated") > 0 then break end
      os.execute("sleep 0.02")
    end
    approvals(pol, "approve " .. req.id .. " --by lead")
    assert.equal("completed", T.result_of(out).status)
    local esc = T.events(audit, "approval_escalated")
    assert.equal(1, #esc)
    assert.matches("escalated", esc[1].reason)
    assert.equal(1, #T.events(audit, "approval_granted"))
  end)

  it("needs two different approvers for a critical tool", function()
    local pol, audit = policy({ tools = { approval_tool = { risk = "critical" } } })
    local _, out = T.start_lab(pol, PLAN)
    local req = pending(pol)
    assert.equal(2, req.approvals_needed)
    local msg, rc = approvals(pol, "approve " .. req.id .. " --by director")
    assert.equal(0, rc, msg)
    assert.matches("approval 1 of 2 recorded", msg)
    msg, rc = approvals(pol, "approve " .. req.id .. " --by director")
    assert.equal(1, rc)
    assert.matches("director has approved request .* already", msg)
    os.execute("sleep 0.3")
    assert.is_nil(T.read(out):match("}%s*$"), "the tool ran on one approval")
    approvals(pol, "approve " .. req.id .. " --by vp")
    assert.equal("completed", T.result_of(out).status)
    assert.same({ "director", "vp" }, T.events(audit, "approval_granted")[1].approved_by)
  end)

  it("marks a request abandoned when the process of its run is gone", function()
    -- on Redis a process is gone when its liveness key expires (store.lease)
    local pol = policy(T.redis_mode() and { store = T.fresh_store({ lease = "1s" }) } or nil)
    local pid = T.start_lab(pol, PLAN)
    local req = pending(pol)
    os.execute("kill -9 " .. pid)
    os.execute(T.redis_mode() and "sleep 1.1" or "sleep 0.1")
    local l = T.decode((approvals(pol, "list --all --json")))
    assert.equal(req.id, l[1].id)
    assert.equal("abandoned", l[1].status)
    assert.equal(0, #T.decode((approvals(pol, "list --json"))))
  end)
end)
