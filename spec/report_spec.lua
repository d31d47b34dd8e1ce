-- warden report cost (issue 4): totals, by user, agent, model and tool, success rate,
-- cost per successful call, burn rate, budget use and its recommendations. Its
-- figures come from the audit log, so they must equal the log's own sums.
local T = require("warden.testing")
local core = require("warden.core")

local function report(policy, extra)
  local h = io.popen(("%s report cost --policy %s --json %s 2>&1"):format(T.bin, policy, extra or ""))
  local out = h:read("a")
  h:close()
  return T.decode(out)
end

-- the sums the report must agree with, straight from the log
local function sums(audit)
  local s = { total = 0, calls = 0, ok = 0, by_user = {}, by_model = {}, by_tool = {} }
  local function add(t, k, v) t[k] = (t[k] or 0) + v end
  for _, r in ipairs(T.records(audit)) do
    if r.event == "llm_call" or r.event == "tool_call" then
      s.total = s.total + r.cost_usd
      s.calls = s.calls + 1
      if r.success then s.ok = s.ok + 1 end
      add(s.by_user, r.user_id, r.cost_usd)
      if r.event == "llm_call" then add(s.by_model, r.model, r.cost_usd) else add(s.by_tool, r.tool_name, r.cost_usd) end
    end
  end
  return s
end

-- one log with two users, two models, a costly tool, a failed call and a failed run
local function workload()
  local policy, audit = T.policy()
  local scen = "mock:" .. T.scenario({
    { content = "a", usage = { input_tokens = 100, output_tokens = 50 } },
    { content = "b", usage = { input_tokens = 40, output_tokens = 10 } },
  })
  T.run_many({ policy = policy, audit = audit, llm = scen }, {
    { agent = "spec/fixtures/lab", user = "reader", query = { { "llm" }, { "tool", "costly", {} } } },
    { agent = "spec/fixtures/lab", user = "admin",
      query = { { "llm", { model = "big", messages = { { role = "user", content = "short?" } } } },
                { "llm", { model = "big", messages = { { role = "user", content = "again?" } } } } } },
    { agent = "spec/fixtures/lab", user = "reader", query = { { "tool", "raise", {} }, { "error", "boom" } } },
  })
  return policy, audit
end

describe("warden report cost", function()
  after_each(function() core.clock(nil) end)

  it("has totals, success rate and breakdowns equal to the sums in the audit log", function()
    local policy, audit = workload()
    local rep, s = report(policy), sums(audit)
    assert.is_true(s.total > 0)
    assert.near(s.total, rep.totals.cost_usd, 1e-9)
    assert.equal(s.calls, rep.totals.calls)
    assert.equal(s.ok, rep.totals.successful_calls)
    -- one success rate, of runs, and what it is
    assert.near(rep.totals.successful_runs / rep.totals.runs, rep.totals.success_rate, 1e-9)
    assert.equal(2, rep.totals.successful_runs)
    assert.equal(3, rep.totals.runs)
    assert.equal("runs that ended with success, of the runs that ended in the period", rep.totals.success_rate_is)
    local text = T.sh(("%s report cost %s --policy %s"):format(T.bin, audit, policy))
    assert.matches("success    66.7%% %(2 of 3 runs: runs that ended with success", text)
    assert.is_nil(text:find("of calls", 1, true), text) -- no second rate beside it
    assert.matches("4 of 5 calls succeeded, %$0%.070625 per successful call", text)
    assert.near(s.total / s.ok, rep.totals.cost_per_successful_call_usd, 1e-9)
    for k, v in pairs(s.by_user) do assert.near(v, rep.by_user[k].cost_usd, 1e-9) end
    for k, v in pairs(s.by_model) do assert.near(v, rep.by_model[k].cost_usd, 1e-9) end
    for k, v in pairs(s.by_tool) do assert.near(v, rep.by_tool[k].cost_usd, 1e-9) end
    assert.near(s.total, rep.by_agent.lab.cost_usd, 1e-9)
    assert.equal(3, rep.totals.runs)
    assert.equal(2, rep.totals.successful_runs)
    -- the ledger's global month holds the same spend
    local global
    for _, b in ipairs(rep.budgets) do if b.scope == "global" then global = b end end
    assert.near(s.total, global.spent_usd, 1e-9)
    assert.equal(10000, global.limit_usd)
    -- burn: everything happened in the last 24 hours
    assert.near(s.total / 24, rep.burn.hourly_usd, 1e-9)
    assert.near(s.total / 24 * 24 * 30, rep.burn.projected_month_usd, 1e-6)
  end)

  it("recommends the policy's cheapest model for simple calls, with what they would have cost", function()
    local policy = workload()
    local recs = table.concat(report(policy).recommendations, "\n")
    -- two calls to mock-big answered in 10-50 tokens ($0.26); at $0.01/$0.03 per 1k
    -- (the default and remote models) they cost $0.0032
    assert.matches("Use a cheaper model for simple calls: 2 of 2 calls to mock%-big answered in at most 100 tokens"
      .. " and cost %$0%.2600; on %a+ %([%w%-]+%) they would have cost %$0%.0032%.", recs)
  end)

  it("reports the runs that did not succeed and a high burn rate", function()
    local policy, audit = T.policy()
    local scen = "mock:" .. T.scenario({ { content = "a", usage = { input_tokens = 1000, output_tokens = 100 } } })
    local runs = {}
    for i = 1, 6 do
      runs[i] = { agent = "spec/fixtures/lab", user = "admin",
                  query = { { "llm", { model = "big", messages = { { role = "user", content = "x" } } } },
                            i <= 2 and { "log", {} } or { "error", "boom" } } }
    end
    T.run_many({ policy = policy, audit = audit, llm = scen }, runs)
    local recs = table.concat(report(policy).recommendations, "\n")
    -- 6 calls at $1.20 each, 4 of them in runs that failed: $28.80/day is $1.20/hour
    assert.matches("Success rate is 33%%: %$4%.8000 of %$7%.2000 went to runs that did not succeed", recs)
    assert.is_nil(recs:match("High burn"))
    T.run_many({ policy = policy, audit = audit, llm = scen }, runs)
    T.run_many({ policy = policy, audit = audit, llm = scen }, runs)
    T.run_many({ policy = policy, audit = audit, llm = scen }, runs)
    recs = table.concat(report(policy).recommendations, "\n")
    assert.matches("High burn rate: %$1%.20/hour %(%$864/month projected%)", recs)
  end)

  it("keeps to --since and --until", function()
    local policy, audit = T.policy()
    local one = { agent = "spec/fixtures/lab", user = "reader", query = { { "tool", "costly", {} } } }
    core.clock(1700000000000) -- 2023-11-14T22:13:20Z
    T.run_many({ policy = policy, audit = audit }, { one })
    core.advance_clock(2 * 24 * 3600 * 1000)
    T.run_many({ policy = policy, audit = audit }, { one, one })
    assert.near(0.06, report(policy).totals.cost_usd, 1e-9)
    assert.near(0.04, report(policy, "--since 2023-11-15").totals.cost_usd, 1e-9)
    assert.near(0.02, report(policy, "--until 2023-11-15").totals.cost_usd, 1e-9)
    assert.equal(0, report(policy, "--since 2023-11-15 --until 2023-11-16").totals.calls)
  end)

  it("says which audit log it cannot read", function()
    local h = io.popen(("%s report cost /nonexistent/log.jsonl --policy %s 2>&1; echo rc=$?"):format(T.bin, T.policy()))
    local out = h:read("a")
    h:close()
    assert.matches("cannot open the audit log /nonexistent/log.jsonl", out)
    assert.matches("rc=2", out)
  end)
end)

describe("money and durations as people read them", function()
  it("never shows a limit of $0.0001 as $0.00", function()
    -- a tier whose run limit is a hundredth of a cent: the first call does not fit
    local pol = T.policy({ tiers = { tiny = { per_run_usd = 0.0001 } }, users = { reader = { tier = "tiny" } } })
    local res = T.run { policy = pol, agent = "spec/fixtures/lab", query = { { "llm" } } }
    local why = table.concat(res.errors, "; ")
    assert.matches("of its %$0%.0001 left", why)
    assert.is_nil(why:find("$0.00 ", 1, true), why)
  end)

  it("says how long an approval has left in hours and minutes", function()
    local pol = T.policy({ approvals = { routes = { high = { "lead" } }, expiry = { high = "4h" } } })
    local run = T.start { agent = "spec/fixtures/lab", query = '[["tool","approval_tool",{"note":"x"}]]', policy = pol,
      llm = "mock:spec/fixtures/no_model.yaml" }
    local req = run.pending()
    local list = T.approvals(pol, "list")
    assert.matches("expires in 4 h 0 min; justification", list) -- rounded up to the second
    assert.matches("expires in 4 h 0 min", T.read(run.out .. ".err"))
    T.reject(run, req, "done looking")
    run.result()
  end)
end)
