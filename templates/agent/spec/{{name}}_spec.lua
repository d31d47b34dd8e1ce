-- {{name}}'s specs: `warden test {{name}}` runs them. warden.testing runs the agent in
-- the real engine, with a mock model, under a policy made for the spec.
local T = require("warden.testing")
local DIR = T.agent_dir() -- the directory holding agent.lua

describe("{{name}}", function()
  -- warden's test policy, with this agent's fragment (policy.yaml) added
  local policy = T.policy(T.load_yaml(DIR .. "/policy.yaml"))

  it("answers hello", function()
    local res = T.run { agent = DIR, query = "hi", policy = policy, llm = "mock:" .. DIR .. "/scenarios/hello.yaml" }
    assert.is_true(res.success, res.result)
    assert.matches("Hello", res.result)
  end)

  it("greets through its tool", function()
    local res, audit = T.run {
      agent = DIR, query = "greet Ada", policy = policy,
      scenario = T.script():call("greet", { name = "Ada" }):say("Hello, Ada!"),
    }
    assert.is_true(res.success, res.result)
    assert.equal("greet", res.tool_calls[1].name)
    assert.is_true(res.tool_calls[1].success)
    assert.equal("Hello, Ada!", T.decode(res.tool_calls[1].result).greeting)
    assert.equal(1, #T.events(audit, "tool_call"))
  end)

  it("may not call the tool under a policy that does not list it", function()
    local res = T.run {
      agent = DIR, query = "greet Ada",
      scenario = T.script():call("greet", { name = "Ada" }):say("I could not."),
    }
    assert.is_false(res.tool_calls[1].success)
  end)

  it("waits for a person before a risky tool, and runs it once approved", function()
    local pol = T.policy {
      tools = { greet = { permission = "read", risk = "high", category = "write", requires_approval = true } },
      approvals = { routes = { high = { "lead" } } },
    }
    local run = T.start { agent = DIR, query = "greet Ada", policy = pol, user = "reader",
      scenario = T.script():call("greet", { name = "Ada" }):say("Hello, Ada!") }
    local req = run.pending() -- waits for the request to appear
    assert.equal("greet", req.tool)
    T.approve(run, req) -- by its first approver; T.reject(run, req, "why") says no
    assert.equal("completed", run.result().status)
  end)

  it("refuses arguments its tool does not accept", function()
    local res = T.run {
      agent = DIR, query = "greet", policy = policy,
      scenario = T.script():call("greet", { name = "" }):say("No name."),
    }
    assert.is_false(res.tool_calls[1].success)
  end)
end)
