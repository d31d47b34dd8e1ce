-- The response cache (issue 4): an exact match on the model, its endpoint and what the
-- call sends, for temperature 0 unless the policy says otherwise; a hit costs nothing,
-- reaches no server, and is audited with what it saved.
local T = require("warden.testing")
local core = require("warden.core")

local srv = T.fakellm()

-- one policy (one store) whose default model is the fake server under key
local function cached_policy(key, cache)
  return T.policy({ models = { default = { provider = "openai", name = "gpt-test", base_url = srv.url("key=" .. key),
                                           max_output_tokens = 100 } },
                    cache = cache or { enabled = true, ttl = "10m" } })
end

local function ask(policy, temperature, content)
  return T.lab({ { "llm", { messages = { { role = "user", content = content or "what is 2+2?" } },
                            temperature = temperature } } }, { llm = false, policy = policy })
end

-- fakellm reports 100 input and 20 output tokens; test.yaml's default prices them
local COST = 100 / 1000 * 0.01 + 20 / 1000 * 0.03

describe("response cache", function()
  after_each(function() core.clock(nil) end)

  it("answers a repeated temperature-0 call without a request, at no cost, and audits the saving", function()
    local key = T.key("cache")
    local policy = cached_policy(key)
    local r1, s1, a1 = ask(policy, 0)
    local r2, s2, a2 = ask(policy, 0)
    assert.equal(1, srv.requests(key))
    assert.equal(s1[1].content, s2[1].content)
    assert.near(COST, r1.cost_usd, 1e-12)
    assert.equal(0, r2.cost_usd)
    local miss, hit = T.events(a1, "llm_call")[1], T.events(a2, "llm_call")[1]
    assert.is_nil(miss.cache_hit)
    assert.is_true(hit.cache_hit)
    assert.equal(0, hit.cost_usd)
    assert.near(COST, hit.saved_usd, 1e-12)
    -- a different question is a different entry
    ask(policy, 0, "what is 3+3?")
    assert.equal(2, srv.requests(key))
  end)

  it("leaves calls with a temperature above 0 alone unless any_temperature is set", function()
    local key = T.key("warm")
    local policy = cached_policy(key)
    ask(policy, 0.7)
    ask(policy, 0.7)
    assert.equal(2, srv.requests(key))
    local key2 = T.key("anyt")
    local p2 = cached_policy(key2, { enabled = true, any_temperature = true })
    ask(p2, 0.7)
    ask(p2, 0.7)
    assert.equal(1, srv.requests(key2))
  end)

  it("is off unless the policy enables it", function()
    local key = T.key("off")
    local policy = cached_policy(key, T.NONE)
    ask(policy, 0)
    ask(policy, 0)
    assert.equal(2, srv.requests(key))
  end)

  it("forgets an answer after its ttl", function()
    local key = T.key("ttl")
    local policy = cached_policy(key)
    core.clock(os.time() * 1000)
    ask(policy, 0)
    core.advance_clock(9 * 60 * 1000)
    ask(policy, 0)
    assert.equal(1, srv.requests(key))
    core.advance_clock(2 * 60 * 1000)
    ask(policy, 0)
    assert.equal(2, srv.requests(key))
  end)

  it("rejects a policy with a cache key it does not know", function()
    local path = T.policy({ cache = { enabled = true, size = 10 } })
    local ok, errs = core.policy_check(path)
    assert.is_false(ok)
    assert.matches("cache", table.concat(errs, "\n"))
  end)
end)
