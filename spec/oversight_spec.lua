-- Human oversight beyond requires_approval (docs/safety.md, Autonomy levels and human-in-the-loop triggers):
-- autonomy levels per action category, approval by risk, and the human-in-the-loop
-- triggers (stated confidence, estimated cost, consecutive errors). A request nobody
-- answers expires after a second here, so each case sees what was asked and why.
local T = require("warden.testing")

local SECOND = { low = "1s", normal = "1s", high = "1s", critical = "1s" }

local function lab(plan, over)
  local o = { approvals = { expiry = SECOND } }
  for k, v in pairs(over or {}) do o[k] = v end
  return T.lab(plan, { policy_overrides = o })
end

local function requested(audit)
  return T.events(audit, "approval_requested")
end

describe("autonomy levels", function()
  local tools = { echo = { permission = "read", risk = "low", category = "deploy" } }

  it("levels 4 and 5 execute with no one asked", function()
    for _, level in ipairs({ 4, 5 }) do
      local res, steps, audit = lab({ { "tool", "echo", { x = 1 } } }, { tools = tools, autonomy = { deploy = level } })
      assert.equal("completed", res.status)
      assert.is_nil(steps[1].error)
      assert.equal(0, #requested(audit))
      assert.equal(0, #T.events(audit, "human_notified"))
    end
  end)

  it("level 3 executes and notifies: audited as human_notified", function()
    local res, steps, audit = lab({ { "tool", "echo", { x = 1 } } }, { tools = tools, autonomy = { deploy = 3 } })
    assert.equal("completed", res.status)
    assert.is_nil(steps[1].error)
    local n = T.events(audit, "human_notified")
    assert.equal(1, #n)
    assert.equal("echo", n[1].tool_name)
    assert.equal(3, n[1].autonomy_level)
    assert.equal(1, #T.events(audit, "tool_call"))
  end)

  it("level 2 waits for one approver, level 1 for two (senior approval)", function()
    for level, needed in pairs({ [2] = 1, [1] = 2 }) do
      local _, steps, audit = lab({ { "tool", "echo", { x = 1 } } }, { tools = tools, autonomy = { deploy = level } })
      local r = requested(audit)
      assert.equal(1, #r)
      assert.equal("autonomy", r[1].trigger)
      assert.equal(level, r[1].autonomy_level)
      assert.equal(needed, r[1].needed)
      assert.matches("expired", steps[1].error) -- nobody answered: the tool never ran
      assert.equal(0, #T.events(audit, "tool_call"))
    end
  end)

  it("level 0 never runs the tool: refused as unauthorized, nobody asked", function()
    local _, steps, audit = lab({ { "tool", "echo", { x = 1 } } }, { tools = tools, autonomy = { deploy = 0 } })
    assert.matches("autonomy level 0", steps[1].error)
    assert.equal(1, #T.events(audit, "authorization_denied"))
    assert.equal(0, #requested(audit))
    assert.equal(0, #T.events(audit, "tool_call"))
  end)

  it("rejects a level outside 0..5 in the policy, naming the key", function()
    local path = T.policy({ autonomy = { deploy = 7 } })
    local out, rc = T.sh(T.bin .. " policy check " .. path)
    assert.equal(2, rc)
    assert.matches("autonomy.deploy must be a level from 0 to 5", out)
  end)
end)

describe("approval by risk", function()
  it("a high-risk tool waits for a person by default (approvals.min_risk: high)", function()
    local tools = { echo = { permission = "read", risk = "high" } }
    local _, steps, audit = lab({ { "tool", "echo", {} } }, { tools = tools })
    assert.equal("risk", requested(audit)[1].trigger)
    assert.matches("expired", steps[1].error)
    -- min_risk: none lets it run
    local res, steps2, audit2 = lab({ { "tool", "echo", {} } }, { tools = tools, approvals = { min_risk = "none" } })
    assert.equal("completed", res.status)
    assert.is_nil(steps2[1].error)
    assert.equal(0, #requested(audit2))
  end)
end)

describe("human-in-the-loop triggers", function()
  it("asks when the agent's stated confidence is below hitl.confidence_below", function()
    local plan = { { "tool", "echo", { a = 1 }, { confidence = 0.9 } }, { "tool", "echo", { a = 2 }, { confidence = 0.4 } } }
    local _, steps, audit = lab(plan, { hitl = { confidence_below = 0.7 } })
    assert.is_nil(steps[1].error)
    assert.matches("expired", steps[2].error)
    local r = requested(audit)
    assert.equal(1, #r)
    assert.equal("low_confidence", r[1].trigger)
    assert.equal(0.4, r[1].confidence)
    -- a confidence that is not a number from 0 to 1 is refused, not ignored
    local _, bad = lab({ { "tool", "echo", {}, { confidence = 2 } } }, { hitl = { confidence_below = 0.7 } })
    assert.matches("confidence must be a number from 0 to 1", bad[1].error)
  end)

  it("asks when the call's estimated cost is above hitl.cost_above_usd", function()
    local plan = { { "tool", "echo", {} }, { "tool", "costly", {} } }
    local _, steps, audit = lab(plan, { hitl = { cost_above_usd = 0.01 } })
    assert.is_nil(steps[1].error)
    assert.matches("expired", steps[2].error)
    assert.equal("cost_threshold", requested(audit)[1].trigger)
  end)

  it("asks after hitl.consecutive_errors failed calls in a row; a success resets the count", function()
    local plan = { { "tool", "raise", {} }, { "tool", "echo", {} }, { "tool", "raise", {} }, { "tool", "raise", {} },
      { "tool", "echo", {} } }
    local _, steps, audit = lab(plan, { hitl = { consecutive_errors = 2 } })
    assert.is_nil(steps[2].error) -- one failure only: no trigger
    assert.matches("expired", steps[5].error)
    local r = requested(audit)
    assert.equal(1, #r)
    assert.equal("error_threshold", r[1].trigger)
    assert.equal(2, r[1].consecutive_errors)
  end)

  it("is off unless the policy sets it", function()
    local plan = { { "tool", "raise", {} }, { "tool", "raise", {} }, { "tool", "raise", {} }, { "tool", "costly", {},
      { confidence = 0.01 } } }
    local _, steps, audit = lab(plan)
    assert.is_nil(steps[4].error)
    assert.equal(0, #requested(audit))
  end)
end)
