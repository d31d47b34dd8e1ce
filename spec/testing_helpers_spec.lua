-- warden.testing for users' specs (docs/testing.md): clear errors, the scenario
-- builder, the fake clock, and T.approve / T.reject for a pending approval request.
local T = require("warden.testing")

local APPROVAL = { approvals = { routes = { high = { "lead", "director" } } } }
local PLAN = '[["tool","approval_tool",{"note":"x"}]]'

describe("warden.testing", function()
  it("builds scenarios turn by turn", function()
    local s = T.script():call("a", { x = 1 }):usage(10, 2):say("done"):build()
    assert.same({ { tool_calls = { { name = "a", arguments = { x = 1 } } }, usage = { input_tokens = 10,
      output_tokens = 2 } }, { content = "done" } }, s)
    local both = T.script():together():call("a"):call("b"):say("ok"):build()
    assert.equal(2, #both[1].tool_calls)
    local res = T.run { agent = "agents/research_assistant", user = "reader",
      scenario = T.script():call("summarize", { text = "One. Two. Three.", max_sentences = 1 }):say("One.") }
    assert.is_true(res.success, res.result)
    assert.equal("summarize", res.tool_calls[1].name)
  end)

  it("says what is wrong instead of failing an assertion deep inside", function()
    -- a missing agent is the engine's to report: a failed run with a result that says so
    local res = T.run { agent = "no/such/agent", query = "hi" }
    assert.equal("failed", res.status)
    assert.matches("agent no/such/agent not found", res.errors[1])
    local ok, err = pcall(T.load_yaml, "/no/such/policy.yaml")
    assert.is_false(ok)
    assert.matches("cannot read /no/such/policy.yaml", err)
    -- no base policy: in a directory without one and a home without one
    local dir = T.tmpdir() .. "/nobase"
    os.execute("mkdir -p " .. dir)
    local lpath = os.getenv("PWD") .. "/lua/?.lua"
    local cpath = os.getenv("PWD") .. "/" .. T.build .. "/lua/?.so"
    local out = T.sh(("cd %s && WARDEN_HOME=%s lua5.4"
      .. " -e 'package.path=%q..\";\"..package.path; package.cpath=%q..\";\"..package.cpath'"
      .. " -e 'local T = require(\"warden.testing\"); print(select(2, pcall(T.policy)))'"):format(dir, dir, lpath, cpath))
    assert.matches("no base policy: neither %./policies/test%.yaml nor " .. dir:gsub("%p", "%%%0")
      .. "/policies/test%.yaml exists", out)
  end)

  it("approves a pending request from inside the spec", function()
    local run = T.start { agent = "spec/fixtures/lab", query = PLAN, policy_overrides = APPROVAL,
      llm = "mock:spec/fixtures/no_model.yaml" }
    local req = run.pending()
    assert.equal("approval_tool", req.tool)
    assert.matches("approved", T.approve(run, req))
    local res = run.result()
    assert.equal("completed", res.status)
    assert.is_true(res.tool_calls[1].success)
    local granted = T.events(run.audit, "approval_granted")
    assert.same({ "lead" }, granted[1].approved_by)
  end)

  it("rejects a pending request from inside the spec, with a reason the agent is told", function()
    local run = T.start { agent = "spec/fixtures/lab", query = PLAN, policy_overrides = APPROVAL,
      llm = "mock:spec/fixtures/no_model.yaml" }
    T.reject(run, run.pending().id, "not today", "director")
    local res = run.result()
    assert.equal("completed", res.status)
    local steps = T.decode(res.result)
    assert.equal("tool 'approval_tool' was rejected by director: not today", steps[1].error)
    -- a decision on a request that is no longer pending is an error that says so
    local ok, err = pcall(T.approve, run, "00000000-0000-0000-0000-000000000000")
    assert.is_false(ok)
    assert.matches("no pending approval request", err)
  end)

  it("starts a redis-server of the spec's own and stops it", function()
    local r = T.redis()
    assert.equal("OK", r.cli("SET", "warden:spec", "it's here"))
    assert.equal("it's here", r.cli("GET", "warden:spec"))
    local r2 = T.redis()
    assert.are_not.equal(r.port, r2.port)
    assert.equal("", r2.cli("GET", "warden:spec")) -- its own data
    r.stop()
    r2.stop()
    assert.is_not.equal("PONG", r.cli("ping"))
  end)

  it("runs on a fake clock", function()
    local when = 1893456000000 -- 2030-01-01
    assert.is_true(T.clock(when) - when < 1000) -- it runs on from when it was set
    assert.is_true(T.advance(5000) - (when + 5000) < 1000)
    local _, audit = T.run { agent = "spec/fixtures/lab", query = "[]", user = "reader" }
    T.clock(nil)
    assert.matches("^2030%-01%-01T00:00:05", T.events(audit, "run_started")[1].timestamp)
    assert.is_true(T.clock() < when)
  end)
end)
