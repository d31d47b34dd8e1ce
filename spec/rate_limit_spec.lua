-- Rate limits (docs/safety.md, issue 4): requests_per_hour per user (by tier) at run
-- start and rate_limit_per_hour per tool and user, each a sliding hour kept in the
-- state store; a refusal says when to retry.
local T = require("warden.testing")
local core = require("warden.core")

local HOUR = 3600 * 1000

describe("user rate limit", function()
  after_each(function() core.clock(nil) end)

  it("refuses the 101st request in an hour as rate_limited, with when to retry, and admits it an hour later",
    function()
    local policy, audit = T.policy() -- reader: tier free, 100 requests per hour
    core.clock(os.time() * 1000)
    local runs = {}
    for i = 1, 100 do runs[i] = { agent = "spec/fixtures/lab", query = { { "log", { i = i } } } } end
    for _, res in ipairs(T.run_many({ policy = policy, audit = audit }, runs)) do
      assert.equal("completed", res.status)
    end
    core.advance_clock(10 * 60 * 1000)
    local res = T.run_many({ policy = policy, audit = audit }, { runs[1] })[1]
    assert.equal("rate_limited", res.status)
    assert.is_false(res.success)
    assert.equal("Too many requests right now. Please try again later.", res.result)
    assert.matches("rate limit: user reader %(tier free%): 100 requests in the last hour %(limit 100 per hour%);"
      .. " retry in 3%d%d%d s", res.errors[1])
    assert.is_true(res.retry_after_ms > 49 * 60 * 1000 and res.retry_after_ms <= 50 * 60 * 1000, res.retry_after_ms)
    local ev = T.events(audit, "rate_limited")
    assert.equal(1, #ev)
    assert.equal("reader", ev[1].user_id)
    assert.equal(res.retry_after_ms, ev[1].retry_after_ms)
    -- the window slides: an hour after the first hundred, room again
    core.advance_clock(HOUR - 10 * 60 * 1000 + 1000)
    assert.equal("completed", T.run_many({ policy = policy, audit = audit }, { runs[1] })[1].status)
  end)

  it("counts every process's requests: a second process sees the first's", function()
    local policy = T.policy({ tiers = { free = { requests_per_hour = 2 } } })
    local one = { agent = "spec/fixtures/lab", query = { { "log", {} } } }
    T.run_many({ policy = policy }, { one, one })
    local h = io.popen(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm mock:%s --json 2>&1")
      :format(T.bin, policy, T.scenario({ { content = "done" } })))
    local out = h:read("a")
    h:close()
    assert.equal("rate_limited", T.decode(out).status)
  end)

  it("does not limit a tier without requests_per_hour", function()
    local policy = T.policy({ tiers = { free = { requests_per_hour = 0 } } })
    local runs = {}
    for i = 1, 150 do runs[i] = { agent = "spec/fixtures/lab", query = { { "log", {} } } } end
    for _, res in ipairs(T.run_many({ policy = policy }, runs)) do assert.equal("completed", res.status) end
  end)
end)

describe("tool rate limit", function()
  it("refuses a tool past rate_limit_per_hour for the user with {error, retry_after_ms}; the run goes on",
    function()
    local policy = T.policy({ tools = { echo = { rate_limit_per_hour = 2 } } })
    local plan = { { "tool", "echo", { a = 1 } }, { "tool", "echo", { a = 2 } }, { "tool", "echo", { a = 3 } } }
    local res, steps, audit = T.lab(plan, { policy = policy })
    assert.equal("completed", res.status)
    assert.equal(1, steps[1].echo.a)
    assert.equal(2, steps[2].echo.a)
    assert.matches("rate limit: tool 'echo' for user reader: 2 requests in the last hour %(limit 2 per hour%)",
      steps[3].error)
    assert.is_true(steps[3].retry_after_ms > 3590 * 1000)
    local ev = T.events(audit, "rate_limited")
    assert.equal(1, #ev)
    assert.equal("echo", ev[1].tool_name)
    assert.same({ a = 3 }, ev[1].tool_args)
    -- another user has a window of its own
    local _, other = T.lab(plan, { policy = policy, user = "writer" })
    assert.equal(2, other[2].echo.a)
  end)
end)
