-- Retries: transient failures (timeouts, network errors, 5xx, 429) are retried with
-- exponential backoff and jitter, honouring Retry-After; other 4xx never are. Waiting
-- is a loop timer, so other runs go on.
local T = require("warden.testing")

local srv = T.fakellm()

local function remote(opts, retry)
  return { models = { default = { provider = "openai", name = "gpt-test", base_url = srv.url(opts) } },
           defaults = { retry = retry or { max_retries = 3, base_ms = 10, max_ms = 40, jitter_ms = 0 } } }
end

local function lab(opts, retry)
  return T.lab({ { "llm" } }, { llm = false, policy_overrides = remote(opts, retry) })
end

describe("LLM retries", function()
  it("retries 5xx and counts the retries in the audit", function()
    local key = T.key("r503")
    local _, steps, audit = lab("key=" .. key .. ",fail=2,status=503")
    assert.equal("done", steps[1].content)
    assert.equal(3, srv.requests(key))
    local calls = T.events(audit, "llm_call")
    assert.equal(3, #calls)
    assert.is_false(calls[1].success)
    assert.matches("HTTP 503", calls[1].error)
    assert.matches("^transient: retry 1 of 3", calls[1].reason)
    assert.is_true(calls[3].success)
    assert.equal(2, calls[3].retry_count)
  end)

  it("gives up after max_retries with the last error", function()
    local key = T.key("r500")
    local _, steps, audit = lab("key=" .. key .. ",mode=status,status=500")
    assert.matches("HTTP 500 from openai: injected failure 4", steps[1].llm_error)
    assert.equal(4, srv.requests(key))
    assert.equal(3, T.events(audit, "llm_call")[4].retry_count)
  end)

  for _, status in ipairs({ 400, 401, 403, 404, 422 }) do
    it("never retries a " .. status, function()
      local key = T.key("r" .. status)
      local _, steps = lab("key=" .. key .. ",mode=status,status=" .. status)
      assert.matches("HTTP " .. status, steps[1].llm_error)
      assert.equal(1, srv.requests(key))
    end)
  end

  it("backs off exponentially from base_ms doubling to max_ms", function()
    local key = T.key("backoff")
    local t0 = os.time()
    local res, _, audit = lab("key=" .. key .. ",mode=status,status=502",
      { max_retries = 3, base_ms = 100, max_ms = 250, jitter_ms = 0 })
    local waits = {}
    for i, c in ipairs(T.events(audit, "llm_call")) do
      if i < 4 then waits[i] = tonumber(c.reason:match("in (%d+) ms")) end
    end
    assert.same({ 100, 200, 250 }, waits)
    assert.is_true(res.execution_time_ms >= 550 and res.execution_time_ms < 1500)
    assert.is_true(os.time() - t0 < 3)
  end)

  it("adds 0 to jitter_ms of jitter", function()
    local key = T.key("jitter")
    local _, _, audit = lab("key=" .. key .. ",mode=status,status=503",
      { max_retries = 3, base_ms = 10, max_ms = 10, jitter_ms = 30 })
    for i, c in ipairs(T.events(audit, "llm_call")) do
      if i < 4 then
        local w = tonumber(c.reason:match("in (%d+) ms"))
        assert.is_true(w >= 10 and w <= 40, "wait " .. w)
      end
    end
  end)

  it("honours Retry-After in seconds on a 429", function()
    local key = T.key("r429")
    local res, steps, audit = lab("key=" .. key .. ",fail=1,status=429,retry_after=1",
      { max_retries = 3, base_ms = 10, max_ms = 5000, jitter_ms = 0 })
    assert.equal("done", steps[1].content)
    assert.matches("in 1000 ms", T.events(audit, "llm_call")[1].reason)
    assert.is_true(res.execution_time_ms >= 1000)
  end)

  it("honours Retry-After as an HTTP date", function()
    local key = T.key("rdate")
    local _, steps, audit = lab("key=" .. key .. ",fail=1,status=429,retry_date=2",
      { max_retries = 3, base_ms = 10, max_ms = 5000, jitter_ms = 0 })
    assert.equal("done", steps[1].content)
    local w = tonumber(T.events(audit, "llm_call")[1].reason:match("in (%d+) ms"))
    assert.is_true(w > 500 and w <= 2000, "wait " .. w) -- whole seconds on the wire
  end)

  it("caps Retry-After at max_ms", function()
    local key = T.key("rcap")
    local res, steps, audit = lab("key=" .. key .. ",fail=1,status=503,retry_after=30",
      { max_retries = 3, base_ms = 10, max_ms = 200, jitter_ms = 0 })
    assert.equal("done", steps[1].content)
    assert.matches("in 200 ms", T.events(audit, "llm_call")[1].reason)
    assert.is_true(res.execution_time_ms < 2000)
  end)

  it("waits on a loop timer: other runs go on meanwhile", function()
    local slow, fast = T.key("slow"), T.key("fast")
    local policy = T.policy({ models = {
      default = { provider = "openai", name = "gpt-test",
                  base_url = srv.url("key=" .. slow .. ",fail=1,status=503,retry_after=1") },
      big = { provider = "openai", name = "gpt-fast", base_url = srv.url("key=" .. fast) } },
      defaults = { retry = { max_retries = 3, base_ms = 10, max_ms = 5000, jitter_ms = 0 } } })
    local results = T.run_many({ policy = policy, llm = false }, {
      { agent = "spec/fixtures/lab", query = { { "llm" } } },
      { agent = "spec/fixtures/lab", query = { { "llm", { model = "big", messages = { { role = "user", content = "x" } } } } } },
    })
    assert.is_true(results[1].execution_time_ms >= 1000)
    assert.equal("completed", results[2].status)
    assert.is_true(results[2].execution_time_ms < 500, results[2].execution_time_ms .. " ms")
  end)
end)

describe("mock scenario retries", function()
  it("plays the next entry on a retry and honours retry_after_ms", function()
    local _, steps, audit = T.lab({ { "llm" } }, {
      scenario = { { error = { status = 429, retry_after_ms = 300 } }, { error = { status = 503 } }, { content = "ok" } },
      policy_overrides = { defaults = { retry = { max_retries = 3, base_ms = 10, max_ms = 5000, jitter_ms = 0 } } } })
    assert.equal("ok", steps[1].content)
    local calls = T.events(audit, "llm_call")
    assert.equal(3, #calls)
    assert.matches("in 300 ms", calls[1].reason)
    assert.matches("in 20 ms", calls[2].reason)
    assert.equal(2, calls[3].retry_count)
  end)
end)

describe("tool retries", function()
  it("retries ctx:http on 5xx and returns the final answer as a value", function()
    local key = T.key("tool503")
    local _, steps, audit = T.lab({ { "tool", "fetch", { url = srv.url("key=" .. key .. ",fail=2,status=503") .. "/x" } } })
    assert.equal(200, steps[1].status)
    assert.equal(3, srv.requests(key))
    local reqs = T.events(audit, "http_request")
    assert.equal(3, #reqs)
    assert.equal(2, reqs[3].retry_count)
  end)

  it("returns a 404 at once, as a response", function()
    local key = T.key("tool404")
    local _, steps = T.lab({ { "tool", "fetch", { url = srv.url("key=" .. key .. ",mode=status,status=404") .. "/x" } } })
    assert.equal(404, steps[1].status)
    assert.equal(1, srv.requests(key))
  end)
end)
