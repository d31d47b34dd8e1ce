-- The `warden` command (README.md, Command line): exit codes and output.
local T = require("warden.testing")

local function run(cmd)
  local out, rc = T.sh(cmd)
  return out .. "rc=" .. tostring(rc), rc -- some cases read the code from the text
end

describe("warden run", function()
  it("runs the research assistant and exits 0 on success", function()
    local policy = T.policy(nil, "policies/default.yaml")
    local out, rc = run(T.bin .. " run agents/research_assistant 'notes on AI safety?' --user alice --policy "
      .. policy .. " --llm mock:agents/research_assistant/scenarios/demo.yaml")
    assert.equal(0, rc, out)
    assert.matches("status: completed", out)
    assert.matches("audit log: ", out)
  end)

  it("refuses delete_document to a read-only user, audits it, and prints the refusal", function()
    local policy, audit = T.policy(nil, "policies/default.yaml")
    local out, rc = run(T.bin .. " run agents/research_assistant 'delete the old notes' --user bob --policy "
      .. policy .. " --llm mock:agents/research_assistant/scenarios/delete.yaml --json")
    local res = T.decode(out:gsub("rc=%d+%s*$", ""))
    assert.equal(0, rc) -- the agent answered: the run succeeded, the tool did not
    assert.is_false(res.tool_calls[1].success)
    assert.matches("requires the 'admin' role", res.tool_calls[1].result)
    local denied = T.events(audit, "authorization_denied")
    assert.equal(1, #denied)
    assert.equal("delete_document", denied[1].tool_name)
    assert.equal("bob", denied[1].user_id)
  end)

  it("exits 1 when the run ends without success, still printing the result", function()
    local policy = T.policy(nil, "policies/default.yaml")
    local scen = T.scenario({ { tool_calls = { { name = "search_documents", arguments = { query = "x" } } } } })
    local out, rc = run(T.bin .. " run agents/research_assistant loop --user bob --json --policy " .. policy ..
      " --llm mock:" .. scen)
    assert.equal(1, rc)
    assert.matches('"status": "halted"', out) -- the default policy's loop detector: the third identical call
  end)

  it("exits 2 on a usage error or a bad policy", function()
    local _, rc = run(T.bin .. " run")
    assert.equal(2, rc)
    local _, rc2 = run(T.bin .. " frobnicate")
    assert.equal(2, rc2)
    local bad = T.write(T.tmpfile(".yaml"), "defaults: {nope: 1}\n")
    local out, rc3 = run(T.bin .. " run agents/summarizer x --policy " .. bad)
    assert.equal(2, rc3)
    assert.matches("unknown key 'nope'", out)
  end)

  it("prints the whole result object with --json", function()
    local out = run(T.bin .. " run agents/summarizer 'A. B. C.' --user bob --json --policy " ..
      T.policy(nil, "policies/default.yaml"))
    local res = T.decode(out:gsub("rc=%d+%s*$", ""))
    assert.equal("completed", res.status)
    assert.equal("Summary: A. B.", res.result)
    assert.equal("summarizer", res.agent)
  end)
end)
