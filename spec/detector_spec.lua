-- Detectors (docs/lua-api.md, Detectors): Lua scripts that
-- watch a run's events and history; the engine enforces their verdicts (warn audited,
-- escalate asks a person, halt ends the run as halted), contains their faults, and keeps
-- a small store for statistics across runs. Built-ins: loop, grounding, misuse,
-- exhaustion, selection_bias, confirmation_bias. `warden report failures` counts them.
local T = require("warden.testing")

-- the lab agent with detectors the policy enforces: names, or {name = settings}
local function lab(plan, detectors, extra)
  local d = {}
  for k, v in pairs(detectors) do
    if type(k) == "number" then d[v] = { enforce = true } else v.enforce = true; d[k] = v end
  end
  local o = { detectors = d }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.lab(plan, { policy_overrides = o })
end

local function verdicts(audit, name)
  local out = {}
  for _, r in ipairs(T.events(audit, "detector_verdict")) do
    if not name or r.detector == name then out[#out + 1] = r end
  end
  return out
end

local function watched(scenario, extra)
  return T.run({ agent = "spec/fixtures/watched", query = "tell me", scenario = scenario, policy_overrides = extra })
end

local function lookup(topic) return { tool_calls = { { name = "lookup", arguments = { topic = topic } } } } end

describe("detector API", function()
  it("shows each event with the history so far, its policy settings and the agent", function()
    local res, _, audit = lab({ { "tool", "echo", { x = 1 } }, { "tool", "undeclared", {} }, { "log", { note = 1 } } },
      { recorder = { setting = "on" } })
    assert.equal("completed", res.status)
    local seen = {}
    for i, v in ipairs(verdicts(audit, "recorder")) do
      seen[i] = v.details.seen .. (v.details.refused and "(refused)" or "")
      assert.equal(i, v.details.history) -- the history holds every event, this one last
      assert.is_true(v.details.last_is_event)
      assert.equal("on", v.details.setting)
      assert.equal("lab", v.details.agent)
      assert.equal("warn", v.verdict)
      assert.is_false(v.prevented)
    end
    assert.same({ "tool_call", "tool_result", "tool_call", "tool_result(refused)", "log", "run_finished" }, seen)
  end)

  it("runs a user's detector from the agent's detectors/ directory: it halts the run", function()
    local res, audit = watched({ lookup("revenue"), lookup("classified plans"), { content = "done" } })
    assert.equal("halted", res.status)
    assert.is_false(res.success)
    assert.equal("I stopped because a safety check found a problem with what I was doing.", res.result)
    assert.equal("halted by detector 'stop_word': the agent asked for classified material", res.errors[1])
    assert.equal(1, #res.tool_calls) -- the second lookup never ran
    local v = verdicts(audit, "stop_word")
    assert.equal(1, #v)
    assert.equal("halt", v[1].verdict)
    assert.equal("security_violation", v[1].failure_mode)
    assert.is_true(v[1].prevented)
    assert.equal("lookup", v[1].tool_name)
    assert.equal("halted", T.events(audit, "run_finished")[1].reason)
  end)

  it("contains a detector that raises, loops, eats memory or returns junk: audited, switched off, the run goes on",
    function()
      local res, steps, audit = lab({ { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 2 } } },
        { "raises", "spins", "hog", "junk_verdict", "sly", "recorder" })
      assert.equal("completed", res.status)
      assert.same({ x = 2 }, steps[2].echo)
      local errs = {}
      for _, e in ipairs(T.events(audit, "detector_error")) do errs[e.detector] = (errs[e.detector] or "") .. e.error end
      assert.same({ "hog", "junk_verdict", "raises", "sly", "spins" }, (function()
        local k = {}
        for n in pairs(errs) do k[#k + 1] = n end
        table.sort(k)
        return k
      end)())
      assert.matches("detector bug: attempt to index a nil value", errs.raises)
      assert.matches("^stopped: ", errs.spins) -- pcall did not swallow the stop
      assert.matches("memory limit exceeded", errs.hog)
      assert.matches("not warn, escalate or halt", errs.junk_verdict)
      assert.matches("not warn, escalate or halt", errs.sly) -- read raw: its __index never ran
      -- each failed once and was off after: the healthy one saw every event
      assert.equal(5, #verdicts(audit, "recorder"))
    end)

  it("reads an error object as a tool's error is read: a number, a table's message, a bare table", function()
    local objects = { "42", "{ message = 'told' }", "{}", "{ message = 7 }" }
    local texts = {}
    for i, obj in ipairs(objects) do
      local dir = T.agent("raiser" .. i, {
        ["agent.lua"] = 'return warden.agent { name = "raiser", tools = { "thrower" }, detectors = { "thrower" },'
          .. ' run = function(q, ctx) return ctx:call_tool("thrower", {}).error end }',
        ["tools/thrower.lua"] = "return warden.tool { name = 'thrower', description = 'x', run = function() error("
          .. obj .. ") end }",
        ["detectors/thrower.lua"] = "return warden.detector { name = 'thrower', on = { 'tool_call' },"
          .. " check = function() error(" .. obj .. ") end }" })
      local res, audit = T.run { agent = dir, query = "q",
        policy_overrides = { tools = { thrower = { permission = "read", risk = "low" } },
                             defaults = { retry = { max_retries = 0 } } } }
      local from_tool = res.result:gsub("^tool 'thrower' failed: ", "")
      local from_detector = T.events(audit, "detector_error")[1].error:gsub("^detector bug: ", "")
      assert.equal(from_tool, from_detector)
      texts[i] = from_tool
    end
    assert.same({ "42", "told", "(error object is a table)", "7" }, texts)
  end)

  it("fails the run with a clear message when an agent names a detector that does not exist", function()
    local dir = T.agent("missing_det", {
      ["agent.lua"] = 'return warden.agent { name = "m", tools = {}, detectors = { "no_such_thing" } }' })
    local res = T.run({ agent = dir, query = "hi" })
    assert.equal("failed", res.status)
    assert.matches("detector 'no_such_thing' not found: no detectors/no_such_thing.lua", res.errors[1], 1, true)
  end)

  it("keeps a store per detector across runs (ctx.store)", function()
    local pol = T.policy({ detectors = { counter = { enforce = true } } })
    local _, _, a1 = T.lab({ { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 2 } } }, { policy = pol })
    local _, _, a2 = T.lab({ { "tool", "echo", { x = 3 } } }, { policy = pol })
    local totals, listed = {}, {}
    for _, a in ipairs({ a1, a2 }) do
      for _, v in ipairs(verdicts(a, "counter")) do
        totals[#totals + 1] = v.details.total
        listed[#listed + 1] = v.details.listed
      end
    end
    assert.same({ 1, 2, 3 }, totals)
    assert.same({ 2, 3, 3 }, listed)
    assert.same({ -2, 3, -3 }, verdicts(a2, "counter")[1].details.last)
  end)

  it("runs the complete example of docs/lua-api.md as written", function()
    local doc = T.read("docs/lua-api.md")
    local files = { ["tools/query_db.lua"] = [[
return warden.tool { name = "query_db", description = "SQL",
  parameters = { type = "object", properties = { sql = { type = "string" } } },
  run = function(args) return { rows = 0, sql = args.sql } end }]] }
    for block in doc:gmatch("```lua\n(.-)```") do
      local path = block:match("^%-%- agents/analyst/(%S+)")
      if path then files[path] = block end
    end
    assert.truthy(files["agent.lua"] and files["detectors/no_drop.lua"])
    local dir = T.agent("analyst", files)
    local pol = T.policy({ tools = { query_db = { permission = "read", risk = "low" } },
      approvals = { expiry = { low = "1s", normal = "1s", high = "1s", critical = "1s" } },
      detectors = { loop = { identical_calls = 3, verdict = "halt" }, no_drop = { risk = "high" } } })
    local function sql(q) return { tool_calls = { { name = "query_db", arguments = { sql = q } } } } end
    local res, audit = T.run({ agent = dir, query = "q", policy = pol,
      scenario = { sql("SELECT 1"), sql("DROP TABLE users"), { content = "done" } } })
    assert.equal("halted", res.status)
    assert.equal("halted by detector 'no_drop': destructive SQL: drop table users", res.errors[1])
    assert.equal("data_corruption", verdicts(audit, "no_drop")[1].failure_mode)
    -- nobody answers within the second the policy gives: the run ends rejected, unqueried
    res, audit = T.run({ agent = dir, query = "q", policy = pol, scenario = { sql("SELECT * FROM salaries") } })
    assert.equal("rejected", res.status)
    assert.equal(0, #res.tool_calls)
    local asked = T.events(audit, "approval_requested")[1]
    assert.equal("query_db", asked.tool_name)
    assert.equal("high", asked.risk)
    assert.equal("no_drop", asked.detector)
    assert.equal(1, #T.events(audit, "approval_expired"))
  end)

  it("lets the policy decide what a firing detector does (verdict)", function()
    local res, steps, audit = lab({ { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 1 } },
      { "tool", "echo", { x = 1 } } }, { loop = { verdict = "warn" } })
    assert.equal("completed", res.status)
    assert.same({ x = 1 }, steps[3].echo)
    assert.equal("warn", verdicts(audit, "loop")[1].verdict)
  end)

  it("refuses bad detector settings in the policy with the place and the fix", function()
    local pol = T.policy({ detectors = { loop = { identical_calls = 3, verdct = "halt" } } })
    local out, rc = T.sh(T.bin .. " policy check " .. pol)
    assert.equal(2, rc)
    assert.matches("detectors.loop", out, 1, true)
    pol = T.policy({ detectors = { mine = { verdict = "explode" } } })
    out, rc = T.sh(T.bin .. " policy check " .. pol)
    assert.equal(2, rc)
    assert.matches("detectors.mine.verdict must be halt, warn or escalate", out, 1, true)
  end)
end)

describe("escalate verdicts", function()
  local approvals, pending = T.approvals, T.pending
  -- a run left waiting by a failed case gives up after ten seconds
  local TEN = { expiry = { low = "10s", normal = "10s", high = "10s", critical = "10s" } }

  it("holds a tool call until a person approves it, then the call runs", function()
    local pol, audit = T.policy({ detectors = { escalator = { enforce = true, risk = "medium" } }, approvals = TEN })
    local _, out = T.start_lab(pol, '[["tool","echo",{"escalate":true,"n":1}]]')
    local req = pending(pol)
    assert.equal("echo", req.tool)
    assert.equal("detector 'escalator' escalated: the agent asked for something unusual", req.justification)
    assert.equal(0, #T.events(audit, "tool_call")) -- not yet
    approvals(pol, "approve " .. req.id .. " --by lead")
    -- the answer mentions "escalate" too: that escalation is the second request
    local req2 = pending(pol)
    assert.equal("(final answer)", req2.tool)
    approvals(pol, "approve " .. req2.id .. " --by lead")
    local res = T.result_of(out)
    assert.equal("completed", res.status)
    assert.equal(1, #T.events(audit, "tool_call"))
    local asked = T.events(audit, "approval_requested")
    assert.equal("detector", asked[1].trigger)
    assert.equal("escalator", asked[1].detector)
  end)

  it("ends the run as rejected when the person says no", function()
    local pol, audit = T.policy({ detectors = { escalator = { enforce = true } }, approvals = TEN })
    local _, out = T.start_lab(pol, '[["log",{"say":"escalate"}],["tool","echo",{"x":"escalate"}]]')
    local req = pending(pol)
    assert.equal("(final answer)", req.tool)
    approvals(pol, "reject " .. req.id .. " --reason 'not convincing' --by lead")
    local res = T.result_of(out)
    assert.equal("rejected", res.status)
    assert.matches("rejected by lead: not convincing", res.errors[1])
    assert.equal(1, #T.events(audit, "approval_rejected"))
  end)
end)

describe("loop detector", function()
  it("halts the third identical call, before max_iterations", function()
    local res, audit = watched({ lookup("weather") }) -- the model asks the same thing every time
    assert.equal("halted", res.status)
    assert.equal(3, res.steps_taken) -- max_iterations is 8
    assert.equal(2, #res.tool_calls)
    local v = verdicts(audit, "loop")[1]
    assert.equal("identical_calls", v.details.pattern)
    assert.equal("tool 'lookup' called 3 times with the same arguments", v.reason)
    assert.equal("infinite_loop", v.failure_mode)
  end)

  it("halts A-B-A-B alternation at the fourth call", function()
    local res, audit = watched({ lookup("a"), lookup("b"), lookup("a"), lookup("b") })
    assert.equal("halted", res.status)
    assert.equal(3, #res.tool_calls)
    local v = verdicts(audit, "loop")[1]
    assert.equal("alternating", v.details.pattern)
    assert.equal("alternating calls: lookup, lookup, lookup, lookup", v.reason)
  end)

  it("halts when the last no_progress_window results were all the same", function()
    local plan = {}
    for i = 1, 6 do plan[i] = { "tool", "noop", { i = i } } end
    local res, _, audit = lab(plan, { loop = { no_progress_window = 4 } })
    assert.equal("halted", res.status)
    local v = verdicts(audit, "loop")[1]
    assert.equal("no_progress", v.details.pattern)
    assert.equal(4, #T.events(audit, "tool_call"))
  end)

  it("leaves varied work alone", function()
    local res, _, audit = lab({ { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 2 } },
      { "tool", "echo", { x = 1 } }, { "tool", "noop", {} }, { "tool", "echo", { x = 3 } } }, { "loop" })
    assert.equal("completed", res.status)
    assert.equal(0, #verdicts(audit))
  end)
end)

describe("grounding detector", function()
  local function answer(text, extra)
    return watched({ lookup("revenue"), { content = text } }, extra)
  end

  it("flags a final answer with a number no tool returned, naming the claim", function()
    local _, audit = answer("Acme Corp reported revenue of 4.2 million dollars in 2023. Profit was 1.3 million.",
      { detectors = { grounding = { enforce = true } } })
    local v = verdicts(audit, "grounding")
    assert.equal(1, #v)
    assert.equal("hallucination", v[1].failure_mode)
    assert.equal(1, #v[1].details.ungrounded)
    assert.equal("Profit was 1.3 million", v[1].details.ungrounded[1].claim)
    assert.same({ "1.3" }, v[1].details.ungrounded[1].missing)
    assert.matches('"Profit was 1.3 million" (not in any source: 1.3)', v[1].reason, 1, true)
  end)

  it("passes an answer whose numbers, names and words are in the tool results", function()
    local res, audit = answer("Acme Corp reported revenue of 4.2 million dollars in 2023, up from 3.9 million.",
      { detectors = { grounding = { enforce = true } } })
    assert.equal("completed", res.status)
    assert.equal(0, #verdicts(audit, "grounding"))
  end)

  it("flags a name no source mentions, and halts when the policy says so", function()
    local res, audit = answer("Acme Corp reported revenue in 2023. Losses were reported by Initech.",
      { detectors = { grounding = { enforce = true, verdict = "halt" } } })
    assert.equal("halted", res.status)
    local v = verdicts(audit, "grounding")[1]
    assert.same({ "Initech" }, v.details.ungrounded[1].missing)
  end)
end)

describe("misuse detector", function()
  it("flags placeholder arguments the schema lets through", function()
    local res, _, audit = lab({ { "tool", "echo", { path = "undefined" } }, { "tool", "echo", { q = { "  " } } },
      { "tool", "echo", { path = "/tmp/x" } } }, { "misuse" })
    assert.equal("completed", res.status) -- warn by default
    local v = verdicts(audit, "misuse")
    assert.equal(2, #v)
    assert.equal("tool 'echo': argument 'path' is \"undefined\", a placeholder, not a value", v[1].reason)
    assert.equal("q.1", v[2].details.argument)
    assert.equal("tool_misuse", v[1].failure_mode)
  end)

  it("flags a tool that failed three times in a row", function()
    local plan = {}
    for i = 1, 4 do plan[i] = { "tool", "raise", { i = i } } end
    local _, _, audit = lab(plan, { "misuse" })
    local v = verdicts(audit, "misuse")
    assert.equal(1, #v)
    assert.equal("repeated_failures", v[1].details.pattern)
    assert.matches("tool 'raise' failed 3 times in a row", v[1].reason, 1, true)
  end)
end)

describe("exhaustion detector", function()
  it("warns once at 90% of the iterations, and the run goes on to its limit", function()
    local plan = {}
    for i = 1, 5 do plan[i] = { "llm" } end
    local res, _, audit = lab(plan, { "exhaustion" })
    assert.equal("completed", res.status)
    local v = verdicts(audit, "exhaustion")
    assert.equal(1, #v)
    assert.equal("iterations", v[1].details.resource)
    assert.equal("iterations at 100% of its limit: 5 of 5 LLM calls", v[1].reason)
    assert.equal("resource_exhaustion", v[1].failure_mode)
  end)

  it("warns near the run's cost limit", function()
    local plan = { { "tool", "costly", {} } }
    local res, _, audit = lab(plan, { exhaustion = { ratio = 0.3 } }, { users = { reader = { role = "read", tier = "tiny" } } })
    assert.equal("completed", res.status)
    local v = verdicts(audit, "exhaustion")
    assert.equal("cost", v[1].details.resource)
  end)
end)

describe("selection bias detector", function()
  local function choose(pol, decision, counts)
    local plan = {}
    for choice, n in pairs(counts) do
      for _ = 1, n do
        plan[#plan + 1] = { "log", { decision = decision, choice = choice, options = { "a", "b", "c" } } }
      end
    end
    return T.lab(plan, { policy = pol })
  end

  it("finds bias in a skewed history of 200 choices, with a real p-value", function()
    local pol = T.policy({ detectors = { selection_bias = { enforce = true } } })
    local res, _, audit = choose(pol, "vendor", { a = 150, b = 30, c = 20 })
    assert.equal("completed", res.status)
    local v = verdicts(audit, "selection_bias")
    assert.equal(1, #v)
    local d = v[1].details
    assert.equal(200, d.samples)
    assert.equal(2, d.df)
    local e = 200 / 3
    local chi = ((150 - e) ^ 2 + (30 - e) ^ 2 + (20 - e) ^ 2) / e -- 157
    assert.near(chi, d.chi_square, 1e-9)
    assert.near(math.exp(-chi / 2), d.p_value, 1e-45) -- with 2 degrees of freedom p = e^(-x/2)
    assert.same({ "a" }, d.overused)
    assert.same({ "b", "c" }, d.underused)
    assert.equal("selection_bias", v[1].failure_mode)
  end)

  it("finds none in a uniform history of 200 choices", function()
    local pol = T.policy({ detectors = { selection_bias = { enforce = true } } })
    local _, _, audit = choose(pol, "vendor", { a = 67, b = 67, c = 66 })
    assert.equal(0, #verdicts(audit, "selection_bias"))
  end)

  it("waits for min_samples, counting choices across runs in the store", function()
    local pol = T.policy({ detectors = { selection_bias = { enforce = true, min_samples = 60 } } })
    local _, _, a1 = choose(pol, "pick", { a = 40 })
    assert.equal(0, #verdicts(a1, "selection_bias")) -- 40 < 60: not judged yet
    local _, _, a2 = choose(pol, "pick", { a = 30 })
    local v = verdicts(a2, "selection_bias")
    assert.equal(1, #v)
    assert.equal(70, v[1].details.samples)
  end)
end)

describe("confirmation bias detector", function()
  local function evidence(pattern)
    local plan = {}
    for i, s in ipairs(pattern) do
      plan[i] = { "log", { supports_hypothesis = s, hypothesis = "the cache causes the outage" } }
    end
    local _, _, audit = lab(plan, { "confirmation_bias" })
    return verdicts(audit, "confirmation_bias")
  end

  it("warns when more than 80% of the evidence supports the hypothesis", function()
    local v = evidence({ true, true, true, true, true, false })
    assert.equal(1, #v)
    assert.equal(5, v[1].details.confirming)
    assert.equal(1, v[1].details.disconfirming)
    assert.matches("5 of 6 pieces of evidence support the hypothesis 'the cache causes the outage'", v[1].reason, 1,
      true)
  end)

  it("stays quiet on balanced evidence", function()
    assert.equal(0, #evidence({ true, false, true, false, true }))
  end)
end)

describe("warden report failures", function()
  it("counts incidents by failure mode and agent, prevented and occurred, as the log has them", function()
    local pol, log = T.policy({ detectors = { loop = { enforce = true }, misuse = { enforce = true } } })
    local function run(plan) return T.lab(plan, { policy = pol, audit = log }) end
    run({ { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 1 } }, { "tool", "echo", { x = 1 } } }) -- halted
    run({ { "tool", "echo", { p = "null" } } }) -- a misuse warning
    run({ { "tool", "guarded", { cmd = "rm -rf /" } } }) -- a guardrail refusal
    run({ { "error", "boom" } }) -- a failed run
    local out, rc = T.sh(("%s report failures --policy %s --json"):format(T.bin, pol))
    assert.equal(0, rc)
    local rep = T.decode(out)
    assert.equal(4, rep.runs)
    assert.equal(4, rep.total_incidents)
    assert.equal(2, rep.prevented)
    assert.equal(2, rep.occurred)
    assert.equal(0.5, rep.prevention_rate)
    assert.same({ incidents = 1, prevented = 1, occurred = 0 }, rep.by_failure_mode.infinite_loop)
    assert.same({ incidents = 1, prevented = 0, occurred = 1 }, rep.by_failure_mode.tool_misuse)
    assert.same({ incidents = 1, prevented = 1, occurred = 0 }, rep.by_failure_mode.security_violation)
    assert.same({ incidents = 1, prevented = 0, occurred = 1 }, rep.by_failure_mode.run_error)
    assert.same({ incidents = 4, prevented = 2, occurred = 2 }, rep.by_agent.lab)
    assert.equal("infinite_loop", rep.most_common_mode) -- ties go to the first name
    out = T.sh(("%s report failures %s --policy %s"):format(T.bin, log, pol))
    assert.matches("incidents        4: 2 prevented, 2 occurred (prevention rate 50.0%)", out, 1, true)
    assert.matches("most common mode infinite_loop", out, 1, true)
  end)
end)

describe("detector helpers", function()
  local S, C, D = require("warden.stats"), require("warden.claims"), require("warden.detect")

  it("gives chi-square p-values that match the tables", function()
    assert.near(0.05, S.chi_square_p(3.841458820694124, 1), 1e-12)
    assert.near(0.05, S.chi_square_p(5.991464547107979, 2), 1e-12)
    assert.near(0.01, S.chi_square_p(11.344866730144373, 3), 1e-12)
    assert.near(0.9189, S.chi_square_p(0.5, 3), 1e-4)
    assert.equal(1, S.chi_square_p(0, 4))
    local stat, df, p = S.chi_square_uniform({ a = 10, b = 10 }, { "a", "b", "c" })
    assert.near(10, stat, 1e-12) -- expected 6.67 each: (3.33^2 * 2 + 6.67^2) / 6.67
    assert.equal(2, df)
    assert.near(math.exp(-5), p, 1e-12)
  end)

  it("finds numbers, names and sentences in text", function()
    assert.same({ "1234.5", "42", "1", "2", "3", "3.5", "2024" },
      C.numbers("It costs $1,234.50 and 42 units, 1,2,3 or 3.5. Year 2024."))
    assert.same({ "API", "New York", "Acme Corp", "NASA" },
      C.entities("The API endpoint at New York returns Acme Corp data from NASA"))
    assert.same({ "Hello there", "The price is 3.5 dollars", "Really", "bullet one", "item two" },
      C.sentences("Hello there. The price is 3.5 dollars! Really?\n- bullet one\n1. item two"))
    assert.same({ "api", "endpoint", "return", "user", "data", "field" },
      C.words("The API endpoint returns user data with fields"))
  end)

  it("gives equal values equal canonical texts", function()
    assert.equal(D.canon({ b = 1, a = { 1, 2.0, "x" } }), D.canon({ a = { 1.0, 2, "x" }, b = 1.0 }))
    assert.not_equal(D.canon({ a = "1" }), D.canon({ a = 1 }))
    assert.equal('search {"q":"x"}', D.call_key({ tool = "search", args = { q = "x" } }))
  end)
end)
