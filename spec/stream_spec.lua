-- Answers streamed from providers (docs/lua-api.md, ctx:llm stream): OpenAI chunks and
-- Anthropic events read as they arrive from spec/support/fakellm.c over real HTTP,
-- llm_read_ms as the wait for each piece, and the budget held mid-stream.
local T = require("warden.testing")

local srv = T.fakellm()

local HI = { { role = "user", content = "hi" } }

local function remote(opts, provider, extra)
  local o = { models = { default = { provider = provider or "openai", name = "gpt-test", base_url = srv.url(opts),
                                     input_usd_per_1k = 0.01, output_usd_per_1k = 0.03 } },
              defaults = { retry = { max_retries = 3, base_ms = 10, max_ms = 40, jitter_ms = 0 } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  o.models.default.api_key_env = T.NONE
  return o
end

-- one streamed ctx:llm call of the lab agent: its result, steps and audit log
local function ask(opts, provider, extra, run)
  local o = { llm = false, policy_overrides = remote(opts, provider, extra) }
  for k, v in pairs(run or {}) do o[k] = v end
  return T.lab({ { "llm", { messages = HI, stream = true } } }, o)
end

local ledger_row = T.ledger_row

describe("streamed answers from providers", function()
  for _, provider in ipairs({ "openai", "anthropic" }) do
    it("reads " .. provider .. "'s stream into the whole answer with the provider's usage", function()
      local key = T.key("s" .. provider)
      local res, steps, audit = ask("key=" .. key .. ",words=5,gap=5", provider)
      assert.equal("completed", res.status)
      assert.equal("001 002 003 004 005 ", steps[1].content)
      assert.equal(100, steps[1].usage.input_tokens)
      assert.equal(5, steps[1].usage.output_tokens)
      assert.equal(1, srv.requests(key))
      local call = T.events(audit, "llm_call")[1]
      assert.equal(5, call.output_tokens)
      assert.equal("001 002 003 004 005 ", call.model_text)
      assert.same({ input_tokens = 100, output_tokens = 5 }, res.usage)
    end)

    it("assembles a tool call streamed in pieces by " .. provider, function()
      local key = T.key("st" .. provider)
      local _, steps = ask("key=" .. key .. ",calls=1,tool=echo,args=%7B%22query%22:%22streamed%22%7D", provider)
      local call = steps[1].tool_calls[1]
      assert.equal("echo", call.name)
      assert.same({ query = "streamed" }, call.arguments)
    end)
  end

  it("counts the output itself when the provider reports no usage", function()
    local key = T.key("nousage")
    local _, steps = ask("key=" .. key .. ",words=7,nousage=1")
    assert.equal(7, steps[1].usage.output_tokens) -- a piece of four bytes is a token
    assert.is_true(steps[1].usage.input_tokens > 0) -- estimated from the request's size
  end)

  it("is not streamed unless asked (or listened to): the provider gets no stream flag", function()
    local key = T.key("plain")
    local _, steps = T.lab({ { "llm" } }, { llm = false, policy_overrides = remote("key=" .. key .. ",words=3") })
    assert.equal("done", steps[1].content) -- fakellm's whole answer, not its stream
  end)

  it("refuses a stream flag that is not a boolean", function()
    local res = T.lab({ { "llm", { messages = HI, stream = "yes" } } },
      { llm = false, policy_overrides = remote("key=" .. T.key("bad")) })
    assert.equal("failed", res.status)
    assert.matches("ctx:llm: stream must be true or false", res.errors[#res.errors])
  end)
end)

describe("llm_read_ms on a stream", function()
  local function timeouts(extra)
    extra = extra or {}
    extra.defaults = { timeouts = { llm_read_ms = 300 }, retry = { max_retries = 3, base_ms = 10, max_ms = 40,
                                                                     jitter_ms = 0 } }
    return extra
  end

  it("is the wait for each piece, not for the whole answer", function()
    local key = T.key("slow")
    -- 8 events 100 ms apart: 800 ms in all, never 300 ms without a word
    local res, steps = ask("key=" .. key .. ",words=6,gap=100", "openai", timeouts())
    assert.equal("completed", res.status)
    assert.equal("001 002 003 004 005 006 ", steps[1].content)
  end)

  it("cuts a stream that falls silent; what came is paid for and not asked again", function()
    local key = T.key("stall")
    local res, steps, audit = ask("key=" .. key .. ",words=6,stall=3", "openai", timeouts())
    assert.equal("completed", res.status)
    assert.matches("read timed out: no data for 300 ms", steps[1].llm_error)
    assert.equal(1, srv.requests(key)) -- two words were given: a retry would give them twice
    local call = T.events(audit, "llm_call")[1]
    assert.equal(2, call.output_tokens)
    assert.is_true(call.cost_usd > 0)
    assert.equal(2, res.usage.output_tokens)
  end)

  it("retries a stream that fell silent before its first word", function()
    local key = T.key("stall0")
    local _, steps = ask("key=" .. key .. ",words=6,stall=1", "openai", timeouts())
    assert.matches("no data for 300 ms", steps[1].llm_error)
    assert.equal(4, srv.requests(key))
  end)
end)

describe("the budget mid-stream", function()
  -- a token of output costs $0.001 and input is free: what is spent counts the tokens
  local function priced(extra)
    extra.models = nil
    return extra
  end

  local function tight(opts, tier)
    local o = remote(opts, "openai", priced({ tiers = { tight = tier }, users = { tom = { role = "read", tier = "tight" } } }))
    o.models.default.input_usd_per_1k = 0
    o.models.default.output_usd_per_1k = 1
    return o
  end

  it("cuts a stream at the user's daily budget: the ledger holds exactly the tokens delivered", function()
    local key = T.key("cut")
    local pol = T.policy(tight("key=" .. key .. ",words=30", { per_run_usd = 1, daily_usd = 0.0105 }))
    local res, audit = T.run { agent = "spec/fixtures/lab", query = { { "llm", { messages = HI, stream = true } } },
                               user = "tom", llm = false, policy = pol }
    assert.equal("budget_exceeded", res.status)
    assert.matches("cut at 10 output tokens: user tom's daily budget had %$0%.0105 left",
                   res.errors[#res.errors])
    assert.near(0.010, res.cost_usd, 1e-9)
    assert.equal(10, res.usage.output_tokens)
    local store = T.store_of(pol)
    assert.near(0.010, ledger_row(store, "user:tom", "day:").spent_usd, 1e-12)
    assert.near(0, ledger_row(store, "user:tom", "day:").reserved_usd or 0, 1e-12)
    local call = T.events(audit, "llm_call")[1]
    assert.equal("budget", call.reason)
    assert.equal(10, call.output_tokens)
    assert.equal("001 002 003 004 005 006 007 008 009 010 ", call.model_text)
    local over = T.events(audit, "budget_exceeded")
    assert.equal(1, #over)
    assert.equal("user:tom", over[1].budget_scope)
    assert.matches("^day:", over[1].budget_period)
    local out, rc = T.sh(("%s audit verify %s --policy %s"):format(T.bin, audit, pol))
    assert.equal(0, rc, out)
  end)

  it("cuts at the run's cost limit too", function()
    local key = T.key("cutrun")
    local res = ask(nil, nil, nil, { user = "tom",
      policy_overrides = tight("key=" .. key .. ",words=30", { per_run_usd = 0.0055 }) })
    assert.equal("budget_exceeded", res.status)
    assert.matches("cut at 5 output tokens: the run's cost limit had", res.errors[#res.errors])
    assert.near(0.005, res.cost_usd, 1e-9)
  end)

  it("refuses a call whose input alone does not fit, as before", function()
    local key = T.key("nofit")
    local o = tight("key=" .. key .. ",words=30", { per_run_usd = 0.0000001 })
    o.models.default.input_usd_per_1k = 1
    local res = ask(nil, nil, nil, { user = "tom", policy_overrides = o })
    assert.equal("budget_exceeded", res.status)
    assert.matches("cost limit: this call may cost up to", res.errors[#res.errors])
    assert.equal(0, srv.requests(key))
  end)
end)

describe("warden run --stream", function()
  it("prints the answer as it comes, once", function()
    local key = T.key("cli")
    local pol = T.policy(remote("key=" .. key .. ",words=4,gap=20", "openai",
      { users = { reader = { role = "read" } } }))
    local out, rc = T.sh(("%s run agents/research_assistant 'hi' --user reader --policy %s --stream")
      :format(T.bin, pol))
    assert.equal(0, rc, out)
    assert.matches("^001 002 003 004 \n\nstatus: completed", out)
    local _, n = out:gsub("001 002", "")
    assert.equal(1, n)
  end)
end)
