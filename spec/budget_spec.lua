-- Budgets (docs/safety.md, issue 4): each LLM call's worst case is reserved against
-- the run's limit, the user's daily and monthly budgets and the global one before it is
-- sent; the ledger lives in the state store, so concurrent runs, a second process, a
-- restart and a kill -9 all see the same spend.
local T = require("warden.testing")
local core = require("warden.core")

local DAY = 24 * 3600 * 1000

-- a user whose daily budget fits three calls of the default model: each call may cost
-- its input (a few tokens at $0.01/1k) plus 1,000 output tokens at $0.03/1k, ~$0.0302,
-- and costs $0.0301 (10 input and 1,000 output tokens)
local function daily3_policy(extra)
  local o = { tiers = { daily3 = { per_run_usd = 1, daily_usd = 0.1, monthly_usd = 10 } },
              users = { dave = { role = "read", tier = "daily3" } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  local path, audit = T.policy(o)
  return path, audit, T.store_of(path), T.load_yaml(path).store
end

local CALL = { content = "x", usage = { input_tokens = 10, output_tokens = 1000 } }
local COST = 10 / 1000 * 0.01 + 1000 / 1000 * 0.03

local function scenario(delay_ms)
  local e = { content = CALL.content, usage = CALL.usage, delay_ms = delay_ms }
  return "mock:" .. T.scenario({ e })
end

local ledger_row = T.ledger_row

local function sum_costs(audit)
  local total = 0
  for _, r in ipairs(T.records(audit)) do
    if (r.event == "llm_call" or r.event == "tool_call") and r.cost_usd then total = total + r.cost_usd end
  end
  return total
end

describe("user budgets", function()
  after_each(function() core.clock(nil) end)

  it("lets 8 parallel runs of one user spend no more than the daily budget plus one call's estimate", function()
    local policy, audit, store = daily3_policy()
    local runs = {}
    for i = 1, 8 do runs[i] = { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave" } end
    local results = T.run_many({ policy = policy, llm = scenario(200), audit = audit }, runs)
    local done, refused, spent = 0, 0, 0
    for _, res in ipairs(results) do
      spent = spent + res.cost_usd
      if res.status == "completed" then done = done + 1 end
      if res.status == "budget_exceeded" then
        refused = refused + 1
        assert.equal("Processing budget exhausted for this request.", res.result)
        assert.matches("budget: user dave's daily budget of %$0%.10", res.errors[1])
      end
    end
    assert.equal(3, done)
    assert.equal(5, refused)
    assert.is_true(spent <= 0.1 + 0.0302 + 1e-9, "spent " .. spent)
    -- every refusal is audited with the budget it hit; nothing refused reached the model
    local ex = T.events(audit, "budget_exceeded")
    assert.equal(5, #ex)
    assert.equal("user:dave", ex[1].budget_scope)
    assert.matches("^day:%d%d%d%d%-%d%d%-%d%d$", ex[1].budget_period)
    assert.equal(3, #T.events(audit, "llm_call"))
    -- the ledger holds what was spent, and nothing stays reserved
    local row = ledger_row(store, "user:dave", "day:")
    assert.near(3 * COST, row.spent_usd, 1e-9)
    assert.equal(0, row.reserved_usd)
    assert.near(sum_costs(audit), row.spent_usd, 1e-9)
  end)

  it("is seen by a second process, which refuses the call that no longer fits", function()
    local policy, audit, store = daily3_policy()
    local runs = {}
    for i = 1, 3 do runs[i] = { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave" } end
    T.run_many({ policy = policy, llm = scenario(0), audit = audit }, runs)
    local out, rc = T.sh(("%s run spec/fixtures/lab '[[\"llm\"]]' --user dave --policy %s --llm %s --json")
      :format(T.bin, policy, scenario(0)))
    assert.equal(1, rc, out)
    local res = T.decode(out)
    assert.equal("budget_exceeded", res.status)
    assert.matches("has %$0%.0097 left %(%$0%.0903 spent, %$0%.00 held", res.errors[1])
    assert.near(3 * COST, ledger_row(store, "user:dave", "day:").spent_usd, 1e-9)
  end)

  it("tells the agent what its user's budgets and the global one have left (ctx:budget)", function()
    local policy, audit = daily3_policy()
    local res = T.run_many({ policy = policy, llm = scenario(0), audit = audit },
      { { agent = "spec/fixtures/lab", query = { { "budget" }, { "llm" }, { "budget" } }, user = "dave" } })[1]
    assert.equal("completed", res.status)
    local out = T.decode(res.result)
    assert.near(0.1, out[1].user_daily_remaining_usd, 1e-9)
    assert.near(10, out[1].user_monthly_remaining_usd, 1e-9)
    assert.near(10000, out[1].global_monthly_remaining_usd, 1e-9)
    -- what the call cost is gone; the room the engine leased for more calls is not
    assert.near(0.1 - COST, out[3].user_daily_remaining_usd, 1e-9)
    assert.near(10 - COST, out[3].user_monthly_remaining_usd, 1e-9)
    assert.near(1 - COST, out[3].remaining_usd, 1e-9)
    -- no limit, no field
    local free = T.policy({ users = { ann = { role = "read" } }, budget = { global_monthly_usd = 0 } })
    res = T.run_many({ policy = free, llm = scenario(0), audit = T.tmpfile(".jsonl") },
      { { agent = "spec/fixtures/lab", query = { { "budget" } }, user = "ann" } })[1]
    out = T.decode(res.result)
    assert.is_nil(out[1].user_daily_remaining_usd)
    assert.is_nil(out[1].global_monthly_remaining_usd)
    assert.near(1, out[1].remaining_usd, 1e-9)
  end)

  it("refuses a run at its start once the budget is spent, and opens again the next day", function()
    local policy, audit, store, section = daily3_policy({ tiers = { daily3 = { daily_usd = 0.05 } } })
    core.clock(os.time() * 1000)
    local one = { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave" }
    assert.equal("completed", T.run_many({ policy = policy, llm = scenario(0), audit = audit }, { one })[1].status)
    -- $0.0301 spent of $0.05: the next call's worst case does not fit
    local res = T.run_many({ policy = policy, llm = scenario(0), audit = audit }, { one })[1]
    assert.equal("budget_exceeded", res.status)
    assert.equal(1, res.steps_taken)
    -- spent in full: refused before the agent runs at all
    local p2 = daily3_policy({ tiers = { daily3 = { daily_usd = 0.03 } }, store = section })
    res = T.run_many({ policy = p2, llm = scenario(0), audit = audit }, { one })[1]
    assert.equal("budget_exceeded", res.status)
    assert.equal(0, res.steps_taken)
    assert.matches("is spent", res.errors[1])
    core.advance_clock(DAY)
    res = T.run_many({ policy = policy, llm = scenario(0), audit = audit }, { one })[1]
    assert.equal("completed", res.status)
    -- a new day's row; the month keeps counting
    assert.near(COST, ledger_row(store, "user:dave", "day:").spent_usd, 1e-9)
    assert.near(2 * COST, ledger_row(store, "user:dave", "month:").spent_usd, 1e-9)
  end)

  it("audits one budget_warning per budget and period when spend crosses warn_ratio", function()
    local policy, audit = daily3_policy({ budget = { warn_ratio = 0.5 } })
    local runs = {}
    for i = 1, 3 do runs[i] = { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave" } end
    T.run_many({ policy = policy, llm = scenario(0), audit = audit }, runs)
    T.run_many({ policy = policy, llm = scenario(0), audit = audit }, { runs[1] })
    local warned = {}
    for _, w in ipairs(T.events(audit, "budget_warning")) do
      if w.budget_scope == "user:dave" then warned[#warned + 1] = w end
    end
    -- the daily budget ($0.10) crossed half at the second call; the monthly one ($10)
    -- never; the per-run limit ($1) never
    assert.equal(1, #warned)
    assert.matches("^day:", warned[1].budget_period)
    assert.matches("user dave's daily budget: %$0%.0%d+ of %$0%.10 spent", warned[1].reason)
  end)

  it("audits the warning when the spend that crosses it waits in a lease grown for the next call", function()
    -- one run, two calls: the first call's $0.0301 waits in memory while the second
    -- call grows the lease, and is written by the flush after (with the second's, if
    -- no flush fell between them), past the warning line at 25% of $0.10
    local policy, audit = daily3_policy({ budget = { warn_ratio = 0.25 } })
    T.run_many({ policy = policy, llm = scenario(0), audit = audit },
      { { agent = "spec/fixtures/lab", query = { { "llm" }, { "llm" } }, user = "dave" } })
    local warned = {}
    for _, w in ipairs(T.events(audit, "budget_warning")) do
      if w.budget_scope == "user:dave" and w.budget_period:match("^day:") then warned[#warned + 1] = w end
    end
    assert.equal(1, #warned)
    local spent = warned[1].reason:match("user dave's daily budget: %$(0%.%d+) of %$0%.10 spent")
    assert.is_truthy(spent == "0.0301" or spent == "0.0602", warned[1].reason)
  end)

  it("returns what a lease holds beyond its calls once the engine has no call to make", function()
    -- $1 of daily budget per $0.03 call: the first call leases room for many more
    local policy, _, store = daily3_policy({ tiers = { big = { per_run_usd = 1, daily_usd = 100 } },
                                             users = { dave = { role = "read", tier = "big" } } })
    local scen = "mock:" .. T.scenario({ CALL })
    local h = io.popen(("%s run spec/fixtures/lab '[[\"llm\"],[\"sleep\",10000]]' --user dave --policy %s"
      .. " --llm %s >/dev/null 2>&1 & echo $!"):format(T.bin, policy, scen))
    local pid = h:read("l")
    h:close()
    local row
    for _ = 1, 50 do -- while the run sleeps, the idle engine gives the room back
      row = ledger_row(store, "user:dave", "day:")
      if row and row.spent_usd > 0 and row.reserved_usd == 0 then break end
      os.execute("sleep 0.02")
    end
    os.execute("kill " .. pid)
    assert.is_truthy(row, "the run never called the model")
    assert.near(COST, row.spent_usd, 1e-9)
    assert.equal(0, row.reserved_usd)
  end)

  it("keeps committed spend across a kill -9 and releases the killed call's reservation at the next start",
    function()
    -- on Redis a dead host's leases come back when its liveness key expires (store.lease)
    local policy, audit, store = daily3_policy(T.redis_mode() and { store = T.fresh_store({ lease = "1s" }) } or nil)
    local scen = "mock:" .. T.scenario({ CALL, { content = "y", delay_ms = 30000, usage = CALL.usage } })
    local h = io.popen(("%s run spec/fixtures/lab '[[\"llm\"],[\"llm\"]]' --user dave --policy %s --llm %s"
      .. " >/dev/null 2>&1 & echo $!"):format(T.bin, policy, scen))
    local pid = h:read("l")
    h:close()
    local row
    for _ = 1, 300 do -- the first call spent, the second reserved and waiting
      row = ledger_row(store, "user:dave", "day:")
      if row and row.spent_usd > 0 and row.reserved_usd > 0 then break end
      os.execute("sleep 0.02")
    end
    assert.is_true(row.spent_usd > 0 and row.reserved_usd > 0, "the run never reached its second call")
    os.execute("kill -9 " .. pid)
    os.execute(T.redis_mode() and "sleep 1.1" or "sleep 0.1")
    -- the next start (any engine or command opening the store) releases the dead
    -- process's reservation; what it spent stays
    local res = T.run_many({ policy = policy, llm = scenario(0), audit = T.tmpfile(".jsonl") },
      { { agent = "spec/fixtures/lab", query = { { "llm" } }, user = "dave" } })[1]
    assert.equal("completed", res.status)
    row = ledger_row(store, "user:dave", "day:")
    assert.near(2 * COST, row.spent_usd, 1e-9)
    assert.equal(0, row.reserved_usd)
    assert.is_true(#T.events(audit, "llm_call") >= 1)
  end)
end)

describe("the worst case of an LLM call", function()
  it("is bounded by what the call asks for: max_tokens, else the model's max_output_tokens, sent", function()
    local srv = T.fakellm()
    local key = T.key("bound")
    local policy = T.policy({ models = { default = { provider = "openai", name = "gpt-test",
      base_url = srv.url("key=" .. key), max_output_tokens = 123 } } })
    local msgs = { { role = "user", content = "hi" } }
    T.lab({ { "llm", { messages = msgs } }, { "llm", { messages = msgs, max_tokens = 7 } } },
      { llm = false, policy = policy })
    assert.same({ 123, 7 }, srv.max_tokens(key))
    -- the 7 came through JSON as 7.0; 7.5 is no number of tokens
    local res = T.lab({ { "llm", { messages = msgs, max_tokens = 7.5 } } }, { llm = false, policy = policy })
    assert.equal("failed", res.status)
    assert.matches("max_tokens must be a whole number from 1 to 100000000", res.errors[1])
    assert.equal(2, srv.requests(key))
  end)

  it("ends the run before the call is sent when it does not fit", function()
    local srv = T.fakellm()
    local key = T.key("nofit")
    -- reader's run limit is $1.00: 40,000 output tokens at $0.03/1k may cost $1.20
    local policy = T.policy({ models = { default = { provider = "openai", name = "gpt-test",
      base_url = srv.url("key=" .. key), max_output_tokens = 40000 } } })
    local res = T.lab({ { "llm" } }, { llm = false, policy = policy })
    assert.equal("budget_exceeded", res.status)
    assert.equal(0, srv.requests(key))
  end)
end)

describe("tool costs", function()
  it("are reserved and counted like LLM calls: a tool that does not fit is refused, the run goes on", function()
    local policy, audit, store = daily3_policy({ tiers = { daily3 = { daily_usd = 0.05 } } })
    local res = T.run_many({ policy = policy, audit = audit }, { { agent = "spec/fixtures/lab", user = "dave",
      query = { { "tool", "costly", {} }, { "tool", "costly", {} }, { "tool", "costly", {} } } } })[1]
    assert.equal("completed", res.status)
    local steps = T.decode(res.result)
    assert.is_nil(steps[1].error)
    assert.is_nil(steps[2].error)
    assert.matches("budget: user dave's daily budget of %$0%.05", steps[3].error)
    assert.near(0.04, res.cost_usd, 1e-9)
    assert.near(0.04, ledger_row(store, "user:dave", "day:").spent_usd, 1e-9)
    local ex = T.events(audit, "budget_exceeded")
    assert.equal(1, #ex)
    assert.equal("costly", ex[1].tool_name)
  end)
end)
