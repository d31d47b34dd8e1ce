-- Attack: hostile model answers. Numbers that come from a provider (token counts) are
-- range-checked where they arrive: an answer claiming absurd usage fails its call as
-- malformed, is audited, and never becomes money that wraps the ledger. An answer asking
-- for thousands of tool calls gets the first defaults.max_tool_calls_per_answer.
local T = require("warden.testing")
local core = require("warden.core")

local srv = T.fakellm()

-- daily budget $0.10; each good call of the default mock model may cost ~$0.0302
local function policy(extra)
  local o = { tiers = { daily3 = { per_run_usd = 1, daily_usd = 0.1, monthly_usd = 10 } },
              users = { dave = { role = "read", tier = "daily3" } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  local path, audit = T.policy(o)
  return path, audit, T.store_of(path)
end

local GOOD = { content = "x", usage = { input_tokens = 10, output_tokens = 1000 } }

local function rows(store)
  local out = {}
  for _, row in ipairs(assert(core.ledger(store))) do out[#out + 1] = row end
  return out
end

local function assert_ledger_sane(store, limit)
  for _, row in ipairs(rows(store)) do
    assert.is_true(row.spent_usd >= 0, row.scope .. " " .. row.period .. " spent " .. row.spent_usd)
    assert.is_true(row.reserved_usd >= 0, row.scope .. " reserved " .. row.reserved_usd)
    if limit and row.scope == "user:dave" and row.period:match("^day:") then
      assert.is_true(row.spent_usd <= limit + 0.031, "spent " .. row.spent_usd)
    end
  end
end

-- the user's budget still refuses what it should: three good calls pass, the fourth does not
local function budget_still_holds(pol, audit, store)
  local results = {}
  for i = 1, 5 do
    results[i] = T.run { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave", policy = pol,
      audit = audit, llm = "mock:" .. T.scenario({ GOOD }) }
  end
  local done = 0
  for _, r in ipairs(results) do if r.status == "completed" then done = done + 1 end end
  assert.is_true(done <= 3, done .. " runs passed a budget of three calls")
  assert.equal("budget_exceeded", results[5].status)
  assert_ledger_sane(store, 0.1)
end

describe("attack: hostile token counts", function()
  for _, claim in ipairs({ "9e18", "9000000000000000000", "9223372036854775807", "1e300", "-5", "1.5",
                           '"12"', "100000001" }) do
    it("an OpenAI answer claiming " .. claim .. " input tokens fails its call as malformed", function()
      local pol, audit, store = policy({ models = { default = { provider = "openai", name = "gpt-test",
        base_url = srv.url("key=" .. T.key("tok") .. ",tokens=" .. claim:gsub('"', "%%22")),
        api_key_env = T.NONE, input_usd_per_1k = 0.01, output_usd_per_1k = 0.03, max_output_tokens = 1000 } },
        defaults = { retry = { max_retries = 0 } } })
      local res = T.run { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave", policy = pol,
        audit = audit, llm = false }
      assert.equal("completed", res.status)
      local steps = T.decode(res.result)
      assert.matches("malformed answer from the model: usage.input_tokens is", steps[1].llm_error)
      local call = T.events(audit, "llm_call")[1]
      assert.is_false(call.success)
      assert.matches("malformed answer", call.error)
      assert.is_true(res.cost_usd >= 0 and res.cost_usd < 0.05, "cost " .. res.cost_usd)
      assert_ledger_sane(store)
    end)
  end

  it("an Anthropic answer claiming 9e18 input tokens fails the same way", function()
    local pol, audit, store = policy({ models = { default = { provider = "anthropic", name = "claude-test",
      base_url = srv.url("key=" .. T.key("atok") .. ",tokens=9e18"), api_key_env = T.NONE,
      input_usd_per_1k = 0.01, output_usd_per_1k = 0.03, max_output_tokens = 1000 } },
      defaults = { retry = { max_retries = 0 } } })
    local res = T.run { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave", policy = pol,
      audit = audit, llm = false }
    assert.matches("malformed answer from the model: usage.input_tokens is 9", T.decode(res.result)[1].llm_error)
    assert_ledger_sane(store)
  end)

  it("a run whose answers claim 9e18 tokens leaves the ledger non-negative and the budget still refusing", function()
    local pol, audit, store = policy()
    for _ = 1, 3 do
      local res = T.run { agent = "spec/fixtures/lab", query = { { "llm" }, { "llm" } }, user = "dave",
        policy = pol, audit = audit,
        -- written by hand: cjson would write 9e+18, a float
        llm = "mock:" .. T.write(T.tmpfile(".yaml"),
          "- content: x\n  usage: {input_tokens: 9000000000000000000, output_tokens: 9000000000000000000}\n") }
      assert.is_true(res.cost_usd >= 0, "cost " .. res.cost_usd)
    end
    assert_ledger_sane(store)
    budget_still_holds(pol, audit, store)
  end)

  it("ctx:llm refuses a max_tokens no model has, which would make the reservation absurd", function()
    local res = T.lab({ { "llm", { messages = { { role = "user", content = "hi" } }, max_tokens = 1 << 62 } } })
    assert.equal("failed", res.status)
    assert.matches("max_tokens must be a whole number from 1 to 100000000", res.errors[1])
  end)
end)

describe("attack: an answer asking for thousands of tool calls", function()
  local function batch(n)
    local calls = {}
    for i = 1, n do calls[i] = { name = "search_documents", arguments = { query = "topic " .. i } } end
    return { tool_calls = calls, usage = { input_tokens = 10, output_tokens = 10 } }
  end

  it("gets the first defaults.max_tool_calls_per_answer (32); the rest are refused and audited", function()
    local res, audit = T.run { agent = "agents/research_assistant", query = "q", user = "reader",
      policy = "policies/default.yaml",
      policy_overrides = { users = { reader = { role = "read", tier = "free" } }, defaults = { max_iterations = 2 },
        detectors = { loop = { identical_calls = 0, alternating = false, no_progress_window = 0 } } },
      scenario = { batch(2000), { content = "done" } } }
    assert.equal(32, #T.events(audit, "tool_call"))
    local refused = T.events(audit, "tool_calls_refused")
    assert.equal(1, #refused)
    assert.equal(2000, refused[1].tool_calls_requested)
    assert.equal(1968, refused[1].tool_calls_refused)
    assert.matches("max_tool_calls_per_answer is 32", refused[1].reason)
    assert.is_true(res.execution_time_ms < 2000, res.execution_time_ms .. " ms")
  end)

  it("follows the policy's lower limit and tells a custom agent how many were refused", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[
        local ctx = ...
        local a = ctx:llm { messages = { { role = "user", content = "go" } } }
        return #a.tool_calls .. "/" .. tostring(a.refused_tool_calls)]],
      policy_overrides = { defaults = { max_tool_calls_per_answer = 3 } }, scenario = { batch(50) } }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("3/47", res.result)
  end)
end)
