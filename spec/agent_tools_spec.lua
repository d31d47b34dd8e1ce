-- Agents as tools (docs/lua-api.md, Agents as tools): an agent lists "agent:NAME", the
-- model calls agent__NAME like any tool, and NAME runs as a sub-run of the same user,
-- under its own tools and the policy's checks, inside its parent's cost limit; cycles and
-- chains too deep are refused at load. Models are spec/support/fakellm.c over HTTP.
local T = require("warden.testing")

local srv = T.fakellm()

-- an agents directory: name -> its agent.lua
local function agents(files)
  local dir = T.tmpfile("-agents")
  os.execute("mkdir -p " .. dir)
  for name, text in pairs(files) do
    os.execute(("mkdir -p %s/%s"):format(dir, name))
    T.write(("%s/%s/agent.lua"):format(dir, name), text)
  end
  return dir
end

-- the parent's model hands the task on `calls` times, then answers; the child's answers
-- "done" (100 input and 20 output tokens: $0.02 at $1 per 1,000 output tokens)
local function policy(key, calls, per_run, extra)
  local o = {
    models = {
      default = { provider = "openai", name = "front-model", api_key_env = T.NONE,
                  base_url = srv.url(("key=%s-front,calls=%d,tool=agent__billing,args=%s"):format(key, calls,
                    "%7B%22input%22:%22refund%20order%207%22%7D")),
                  input_usd_per_1k = 0, output_usd_per_1k = 0 },
      cheap = { provider = "openai", name = "billing-model", base_url = srv.url("key=" .. key .. "-billing"),
                input_usd_per_1k = 0, output_usd_per_1k = 1, max_output_tokens = 20 },
    },
    tools = { agent__billing = { permission = "read", risk = "low", timeout_ms = 10000 } },
    tiers = { t = { per_run_usd = per_run } },
    users = { reader = { role = "read", tier = "t" } },
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o)
end

local FRONT = 'return warden.agent { name = "front", model = "default", tools = { "agent:billing" } }\n'
local BILLING = 'return warden.agent { name = "billing", model = "cheap" }\n'

describe("agents as tools", function()
  it("runs the other agent as a sub-run whose spend joins the parent's, audited with parent_run_id", function()
    local key = T.key("handoff")
    local dir = agents({ front = FRONT, billing = BILLING })
    local res, audit = T.run { agent = dir .. "/front", query = "refund order 7", llm = false,
                               policy = policy(key, 1, 1) }
    assert.equal("completed", res.status, T.encode(res.errors))
    assert.equal("agent__billing", res.tool_calls[1].name)
    assert.is_true(res.tool_calls[1].success)
    assert.equal('"done"', res.tool_calls[1].result) -- the child's answer, as the tool's result
    assert.near(0.02, res.cost_usd, 1e-9) -- the child's call, in the parent's cost
    assert.equal(3, res.steps_taken) -- the parent's two LLM calls and the child's one
    local started = T.events(audit, "run_started")
    assert.equal(2, #started)
    local parent = started[1].parent_run_id == nil and started[1] or started[2]
    local child = started[1].parent_run_id and started[1] or started[2]
    assert.equal(parent.run_id, child.parent_run_id)
    assert.equal("billing", child.agent_id or child.agent)
    assert.equal("refund order 7", child.query)
    assert.equal(1, srv.requests(key .. "-billing"))
  end)

  it("gives a sub-run only what its parent's per-run budget has left", function()
    local key = T.key("cap")
    local dir = agents({ front = FRONT, billing = BILLING })
    -- $0.03 a run: the first sub-run spends $0.02; the second may spend $0.01, and its
    -- call's worst case ($0.02) does not fit
    local res = T.run { agent = dir .. "/front", query = "refund twice", llm = false, policy = policy(key, 2, 0.03) }
    assert.equal("completed", res.status, T.encode(res.errors))
    assert.is_true(res.tool_calls[1].success)
    assert.is_false(res.tool_calls[2].success)
    assert.matches("budget_exceeded", res.tool_calls[2].result, 1, true)
    assert.matches("the run has $0.01 of its $0.01 left (a sub-run: what its parent's run had left)",
                   res.tool_calls[2].result, 1, true)
    assert.near(0.02, res.cost_usd, 1e-9)
    assert.equal(1, srv.requests(key .. "-billing")) -- the second call was never sent
  end)

  it("ends a sub-run by its parent's deadline", function()
    local key = T.key("slow")
    local dir = agents({ front = FRONT, billing = BILLING })
    local pol = policy(key, 1, 1, { defaults = { timeouts = { run_ms = 600 } } })
    local doc = T.load_yaml(pol)
    doc.models.cheap.base_url = srv.url("key=" .. key .. "-billing,delay=5000")
    T.write(pol, T.encode(doc))
    local t0 = os.time()
    local res, audit = T.run { agent = dir .. "/front", query = "q", llm = false, policy = pol }
    assert.equal("timeout", res.status)
    assert.is_true(os.time() - t0 <= 3)
    local ends = T.events(audit, "run_finished")
    assert.equal(2, #ends)
    -- the sub-run ends by its own deadline (its parent's), or is ended as its parent's
    -- call is: whichever timer the loop reads first
    for _, e in ipairs(ends) do assert.is_true(e.reason == "timeout" or e.reason == "killed", e.reason) end
  end)

  it("is a tool like any: without a rule of the policy the model cannot call it", function()
    local key = T.key("norule")
    local dir = agents({ front = FRONT, billing = BILLING })
    local pol = policy(key, 1, 1, { tools = { echo = { permission = "read", risk = "low" } } })
    local res = T.run { agent = dir .. "/front", query = "q", llm = false, policy = pol }
    assert.is_false(res.tool_calls[1].success)
    assert.equal(0, srv.requests(key .. "-billing"))
  end)

  it("refuses a cycle of handoffs at load", function()
    local dir = agents({
      front = FRONT,
      billing = 'return warden.agent { name = "billing", model = "cheap", tools = { "agent:front" } }\n',
    })
    local res = T.run { agent = dir .. "/front", query = "q", llm = false, policy = policy(T.key("cycle"), 1, 1) }
    assert.equal("failed", res.status)
    assert.matches("agent handoffs make a cycle: front -> billing -> front", res.errors[#res.errors], 1, true)
    local self = agents({ front = 'return warden.agent { name = "front", tools = { "agent:front" } }\n' })
    local pol = policy(T.key("self"), 1, 1, { tools = { agent__front = { permission = "read", risk = "low" } } })
    res = T.run { agent = self .. "/front", query = "q", llm = false, policy = pol }
    assert.matches("agent handoffs make a cycle: front -> front", res.errors[#res.errors], 1, true)
  end)

  it("refuses handoffs nested deeper than three", function()
    local files = {}
    local names = { "a", "b", "c", "d", "e" }
    for i, n in ipairs(names) do
      local next = names[i + 1]
      files[n] = ('return warden.agent { name = "%s"%s }\n'):format(n,
        next and (', tools = { "agent:%s" }'):format(next) or "")
    end
    local dir = agents(files)
    local pol = policy(T.key("deep"), 1, 1, { tools = { agent__b = { permission = "read", risk = "low" } } })
    local res = T.run { agent = dir .. "/a", query = "q", llm = false, policy = pol }
    assert.equal("failed", res.status)
    assert.matches("agent handoffs nest deeper than 3: a -> b -> c -> d -> e", res.errors[#res.errors], 1, true)
  end)

  it("takes no path for an agent's name", function()
    local dir = agents({ front = 'return warden.agent { name = "front", tools = { "agent:../../etc/x" } }\n' })
    local pol = policy(T.key("path"), 1, 1, { tools = { ["agent__*"] = { permission = "read", risk = "low" } } })
    local res = T.run { agent = dir .. "/front", query = "q", llm = false, policy = pol }
    assert.equal("failed", res.status)
    assert.matches("'agent__../../etc/x' is not a valid tool name", res.errors[#res.errors], 1, true)
  end)

  it("says which agent it cannot find", function()
    local dir = agents({ front = FRONT })
    local res = T.run { agent = dir .. "/front", query = "q", llm = false, policy = policy(T.key("none"), 1, 1) }
    assert.equal("failed", res.status)
    assert.matches("tool 'agent__billing': no agent billing beside front", res.errors[#res.errors], 1, true)
  end)
end)
