-- A run that ends while it waits leaves nothing held (docs/architecture.md, One lifecycle
-- for operations): when a run ends, every kind of operation cancels what it holds before
-- run_finished is written (wd_run_end walks the kinds in the engine's hooks). Freeing the
-- run afterwards is too late for what other runs and people see: an approval still
-- pending could be granted for a run that is gone, a breaker's probe slot still taken
-- would keep the tool refused.
local T = require("warden.testing")

local function cli(pol, args) return T.sh(("%s %s --policy %s"):format(T.bin, args, pol)) end

describe("a run ended while it waits", function()
  it("cancels its approval request: no approver can let the tool run afterwards", function()
    local pol, audit = T.policy({ approvals = { routes = { high = { "lead" } } } })
    local _, out = T.start_lab(pol, '[["tool","approval_tool",{"note":"x"}]]')
    local req = T.pending(pol)
    local msg, rc = cli(pol, "kill lab --reason test --by ops")
    assert.equal(0, rc, msg)
    assert.equal("killed", T.result_of(out).status)
    local l = T.decode((T.approvals(pol, "list --all --json")))
    assert.equal(req.id, l[1].id)
    assert.equal("cancelled", l[1].status)
    assert.matches("the run ended first", l[1].reason or l[1].decision_reason or T.read(audit))
    msg, rc = T.approvals(pol, "approve " .. req.id .. " --by lead")
    assert.equal(1, rc)
    assert.matches("cancelled", msg)
    assert.equal(0, #T.events(audit, "tool_call"))
  end)

  it("gives back a breaker's probe slot: the next run's call probes the tool again", function()
    -- a probe whose process died holds its slot for open_ms at most: the last run comes
    -- well within it
    local pol, audit = T.policy({ defaults = { breaker = { failure_threshold = 1, open_ms = 3000,
                                                           half_open_probes = 1 } } })
    -- the tool fails once: its breaker opens
    local res, _, first = T.lab('[["tool","stall",{"fail":true}]]', { policy = pol })
    assert.equal("completed", res.status)
    assert.equal(1, #T.events(first, "breaker_opened"))
    os.execute("sleep 3.1")
    -- the probe runs and waits; its run is killed meanwhile
    local _, out = T.start_lab(pol, '[["tool","stall",{"ms":5000}]]')
    T.wait_for(function() return #T.events(audit, "breaker_half_open") > 0 end, "the probe")
    os.execute("sleep 0.1")
    local msg, rc = cli(pol, "kill lab --reason test --by ops")
    assert.equal(0, rc, msg)
    assert.equal("killed", T.result_of(out).status)
    msg, rc = cli(pol, "revive lab --by ops")
    assert.equal(0, rc, msg)
    -- the slot is free: this call is the probe, it succeeds and closes the breaker
    local steps, last
    res, steps, last = T.lab('[["tool","stall",{}]]', { policy = pol })
    assert.equal("completed", res.status)
    assert.is_true(steps[1].ok, res.result)
    assert.equal(1, #T.events(last, "breaker_closed"))
  end)
end)
