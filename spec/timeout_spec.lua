-- Timeouts are loop timers: a server that never answers or trickles is cut off at the
-- deadline (within 10%), and the user reads the documented message.
local T = require("warden.testing")

local srv = T.fakellm()

local function remote(opts, timeouts, retry)
  return { models = { default = { provider = "openai", name = "gpt-test", base_url = srv.url(opts) } },
           defaults = { timeouts = timeouts, retry = retry or { max_retries = 0 } } }
end

local function within(ms, got)
  assert.is_true(got >= ms and got <= ms * 1.1, ("%d ms is not within 10%% of %d ms"):format(got, ms))
end

describe("LLM read timeout", function()
  it("waits for a slow server that answers within llm_read_ms", function()
    local key = T.key("delay")
    local _, steps, audit = T.lab({ { "llm" } }, { llm = false,
      policy_overrides = remote("key=" .. key .. ",delay=200", { llm_read_ms = 500 }) })
    assert.equal("done", steps[1].content)
    local lat = T.events(audit, "llm_call")[1].latency_ms
    assert.is_true(lat >= 200 and lat < 450, lat .. " ms")
  end)

  it("is measured against a test server whose delay is on time: never short, at most a millisecond long", function()
    local key = T.key("ontime")
    local _, _, audit = T.lab({ { "llm" }, { "llm" }, { "llm" }, { "llm" }, { "llm" } }, { llm = false,
      policy_overrides = remote("key=" .. key .. ",delay=50", { llm_read_ms = 500 }) })
    local lats = {}
    for i, e in ipairs(T.events(audit, "llm_call")) do lats[i] = e.latency_ms end
    assert.equal(5, #lats)
    table.sort(lats)
    assert.is_true(lats[1] >= 50, lats[1] .. " ms")
    -- the kernel's coarse clock made it 52-55; under AddressSanitizer warden's own side of
    -- the call takes a millisecond or two more (52 ms seen in CI)
    local slack = (os.getenv("WARDEN_BUILD") or ""):match("asan") and 3 or 1
    assert.is_true(lats[3] <= 50 + slack, "median " .. lats[3] .. " ms")
  end)

  it("cuts off a server that accepts and never answers, at llm_read_ms", function()
    local key = T.key("hang")
    local _, steps, audit = T.lab({ { "llm" } }, { llm = false,
      policy_overrides = remote("key=" .. key .. ",mode=hang", { llm_read_ms = 500 }) })
    assert.matches("read timed out after 500 ms", steps[1].llm_error)
    within(500, T.events(audit, "llm_call")[1].latency_ms)
  end)

  it("cuts off a server that trickles one byte a second", function()
    local key = T.key("trickle")
    local _, steps, audit = T.lab({ { "llm" } }, { llm = false,
      policy_overrides = remote("key=" .. key .. ",mode=trickle", { llm_read_ms = 1500 }) })
    assert.matches("read timed out after 1500 ms", steps[1].llm_error)
    within(1500, T.events(audit, "llm_call")[1].latency_ms)
  end)

  it("retries a timeout as transient, and the run ends as a timeout with the documented message", function()
    local key = T.key("hang2")
    local res, audit = T.run { agent = "agents/research_assistant", query = "q", user = "reader", llm = false,
      policy = "policies/default.yaml",
      policy_overrides = { users = { reader = { role = "read", tier = "free" } },
        models = { default = { base_url = srv.url("key=" .. key .. ",mode=hang"), api_key_env = T.NONE } },
        defaults = { timeouts = { llm_read_ms = 200 }, retry = { max_retries = 1, base_ms = 10, max_ms = 10, jitter_ms = 0 } } } }
    assert.equal("timeout", res.status)
    assert.matches("^Taking longer than expected", res.result)
    assert.matches("read timed out after 200 ms", res.errors[1])
    assert.equal(2, srv.requests(key))
    local calls = T.events(audit, "llm_call")
    assert.equal(2, #calls)
    assert.matches("^transient: retry 1 of 1", calls[1].reason)
    assert.equal(1, calls[2].retry_count)
    assert.equal("timeout", T.events(audit, "run_finished")[1].reason)
  end)
end)

describe("run timeout", function()
  it("ends the whole run at run_ms, cancelling the call in flight", function()
    local key = T.key("runms")
    local res, audit = T.run { agent = "spec/fixtures/lab", query = { { "llm" } }, llm = false,
      policy_overrides = remote("key=" .. key .. ",mode=hang", { llm_read_ms = 5000, run_ms = 400 }) }
    assert.equal("timeout", res.status)
    assert.matches("^Taking longer than expected", res.result)
    within(400, res.execution_time_ms)
    assert.equal(1, #T.events(audit, "run_finished"))
  end)
end)

describe("tool HTTP timeout", function()
  it("gives ctx:http the timeout_ms it asks for, never more than the tool's", function()
    local key = T.key("toolhang")
    local _, steps, audit = T.lab({ { "tool", "fetch", { url = srv.url("key=" .. key .. ",mode=hang") .. "/x",
                                                           timeout_ms = 300 } } },
      { policy_overrides = { defaults = { retry = { max_retries = 0 } } } })
    assert.matches("read timed out after 300 ms", steps[1].error)
    within(300, T.events(audit, "http_request")[1].latency_ms)
  end)

  it("stops a request still running when the tool's own deadline comes", function()
    local key = T.key("tooldl")
    local _, steps, audit = T.lab({ { "tool", "fetch", { url = srv.url("key=" .. key .. ",mode=hang") .. "/x" } } },
      { policy_overrides = { tools = { fetch = { timeout_ms = 250 } }, defaults = { retry = { max_retries = 0 } } } })
    assert.matches("tool 'fetch' timed out after 250 ms", steps[1].error)
    within(250, T.events(audit, "tool_call")[1].latency_ms)
  end)
end)
