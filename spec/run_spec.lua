-- Whole runs: the ReAct loop, fixed workflows, native limits and the result object.
local T = require("warden.testing")

local RA = "agents/research_assistant"

local function search(q)
  return { tool_calls = { { name = "search_documents", arguments = { query = q } } },
           usage = { input_tokens = 100, output_tokens = 10 } }
end

describe("ReAct agent", function()
  it("reasons, acts, observes and answers when the model calls no tool", function()
    local res = T.run { agent = RA, query = "safety?", user = "reader",
      policy = "policies/default.yaml", policy_overrides = { users = { reader = { role = "read", tier = "free" } },
                                                             audit = { fsync = "none" } },
      scenario = { search("AI safety"), { content = "Answer.", usage = { input_tokens = 200, output_tokens = 20 } } } }
    assert.equal("completed", res.status)
    assert.is_true(res.success)
    assert.equal("Answer.", res.result)
    assert.equal(2, res.steps_taken)
    assert.equal(1, #res.tool_calls)
    assert.equal("search_documents", res.tool_calls[1].name)
    assert.is_true(res.tool_calls[1].success)
  end)

  it("keeps the conversation history across steps", function()
    local _, audit = T.run { agent = RA, query = "q", user = "reader", policy = "policies/default.yaml",
      policy_overrides = { users = { reader = { role = "read", tier = "free" } } },
      scenario = { search("a"), search("b"), { content = "done" } } }
    local calls = T.events(audit, "llm_call")
    assert.equal(3, #calls)
    -- system + user, then + assistant + tool per step
    assert.same({ 2, 4, 6 }, { calls[1].message_count, calls[2].message_count, calls[3].message_count })
  end)

  it("stops at max_iterations when the model never stops calling tools", function()
    local res, audit = T.run { agent = RA, query = "Keep searching forever", user = "reader",
      policy = "policies/default.yaml", policy_overrides = { users = { reader = { role = "read", tier = "free" } },
        -- the loop detector told to let repetition through: the iteration cap is the last line
        detectors = { loop = { identical_calls = 0, alternating = false, no_progress_window = 0 } } },
      scenario = { search("again") } }
    assert.equal("max_iterations", res.status)
    assert.is_false(res.success)
    assert.equal(5, res.steps_taken)
    assert.matches("couldn't complete", res.result:lower())
    assert.matches("max_iterations", res.errors[1])
    assert.equal(5, #T.events(audit, "llm_call"))
  end)

  it("lets the agent lower max_iterations but never raise it above the policy", function()
    local res = T.lab({ { "llm" }, { "llm" }, { "llm" } },
      { policy_overrides = { defaults = { max_iterations = 2 } } })
    assert.equal("max_iterations", res.status)
    assert.equal(2, res.steps_taken)
  end)

  it("counts iterations natively, so a custom loop that ignores errors is stopped", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[local ctx = ...
      while true do pcall(ctx.llm, ctx, { messages = {} }) end]] }
    assert.equal("max_iterations", res.status)
    assert.equal(5, res.steps_taken)
  end)

  it("ends the run when the model fails and gives the user a graceful message", function()
    local res = T.lab({ { "llm" } }, { scenario = { { error = { status = 503 } } } })
    assert.equal("completed", res.status) -- the lab reports the error value it got
    local res2 = T.run { agent = RA, query = "q", user = "reader", policy = "policies/default.yaml",
      policy_overrides = { users = { reader = { role = "read", tier = "free" } },
                           defaults = { retry = { base_ms = 1, max_ms = 2, jitter_ms = 0 } } },
      scenario = { { error = { status = 503 } } } }
    assert.equal("failed", res2.status)
    assert.matches("^Encountered an issue", res2.result)
    assert.matches("HTTP 503", res2.errors[1])
    assert.not_matches("traceback", res2.result)
  end)

  it("times out an LLM call longer than llm_read_ms", function()
    local res, steps = T.lab({ { "llm" } }, { scenario = { { delay_ms = 5000, content = "late" } },
      policy_overrides = { defaults = { retry = { max_retries = 0 } } } })
    assert.matches("timed out after 2000 ms", steps[1].llm_error)
    assert.is_true(res.execution_time_ms >= 1900 and res.execution_time_ms < 4000)
  end)

  it("waits out a delay shorter than llm_read_ms", function()
    local _, steps = T.lab({ { "llm" } }, { scenario = { { delay_ms = 30, content = "on time" } } })
    assert.equal("on time", steps[1].content)
  end)

  it("plays the mock scenario from the start for every run and repeats the last entry", function()
    local _, steps = T.lab({ { "llm" }, { "llm" }, { "llm" } },
      { scenario = { { content = "one" }, { content = "two" } } })
    assert.same({ "one", "two", "two" }, { steps[1].content, steps[2].content, steps[3].content })
  end)

  it("hands junk tool arguments from the model to validation, not to the tool", function()
    local res = T.run { agent = RA, query = "q", user = "reader", policy = "policies/default.yaml",
      policy_overrides = { users = { reader = { role = "read", tier = "free" } } },
      scenario = { { tool_calls = { { name = "search_documents", arguments = "{not json" } } }, { content = "ok" } } }
    assert.equal("completed", res.status)
    assert.is_false(res.tool_calls[1].success)
    assert.matches("not valid JSON", res.tool_calls[1].result)
  end)
end)

describe("the engine's JSON text for scripts (ctx:_json)", function()
  it("renders a tool result as the model sees it in the ReAct loop, and refuses what JSON cannot hold", function()
    local dir = T.agent("jsoner", { ["agent.lua"] = [[return warden.agent { name = "jsoner", run = function(_, ctx)
      local ok = ctx:_json({ rows = { 1, 2.5, "a\"b/c" }, none = {}, flag = true })
      local bad, err = ctx:_json({ f = print })
      return ok .. " | " .. tostring(bad) .. " | " .. err
    end }]] })
    local res = T.run { agent = dir, query = "x", scenario = { { content = "unused" } } }
    assert.equal("completed", res.status)
    local text, rest = res.result:match("^(.-) | (.*)$")
    assert.same({ rows = { 1, 2.5, 'a"b/c' }, none = {}, flag = true }, require("cjson").decode(text))
    assert.matches('"a\\"b/c"', text, 1, true)
    assert.matches("^nil | /f: ", rest)
  end)
end)

describe("the model's answer", function()
  it("reaches the agent whole, NUL bytes included", function()
    local dir = T.agent("nul_reader", { ["agent.lua"] = [[return warden.agent { name = "nul_reader",
      run = function(_, ctx)
        local r = ctx:llm { messages = { { role = "user", content = "x" } } }
        return #r.content .. ":" .. r.content:byte(2)
      end }]] })
    local res = T.run { agent = dir, query = "x", scenario = { { content = "a\0b" } } }
    assert.equal("completed", res.status)
    assert.equal("3:0", res.result)
  end)
end)

describe("run limits", function()
  it("ends a run that takes longer than run_ms with status timeout", function()
    local res, _, audit = T.lab({ { "sleep", 5000 } }, { policy_overrides = { defaults = { timeouts = { run_ms = 300 } } } })
    assert.equal("timeout", res.status)
    assert.is_false(res.success)
    assert.is_true(res.execution_time_ms >= 290 and res.execution_time_ms < 2000)
    local fin = T.events(audit, "run_finished")
    assert.equal("timeout", fin[1].reason)
  end)

  it("ends the run as budget_exceeded when the next call's worst case does not fit the per-run limit", function()
    local res, _, audit = T.lab({ { "llm" }, { "llm" }, { "llm" } }, { user = "cheap",
      scenario = { { content = "x", usage = { input_tokens = 1000, output_tokens = 1000 } } } })
    -- each call costs 1000/1000*0.01 + 1000/1000*0.03 = $0.04 and may cost up to its
    -- 1,000 output tokens ($0.03) and its input: the second does not fit the tiny
    -- tier's $0.05 beside the first, so it is never sent
    assert.equal("budget_exceeded", res.status)
    assert.equal(2, res.steps_taken)
    assert.near(0.04, res.cost_usd, 1e-9)
    assert.equal("Processing budget exhausted for this request.", res.result)
    local ex = T.events(audit, "budget_exceeded")
    assert.equal(1, #ex)
    assert.equal("run", ex[1].budget_scope)
    assert.matches("cost limit: this call may cost up to %$0%.03", ex[1].reason)
    assert.equal(1, #T.events(audit, "llm_call"))
  end)

  it("computes cost natively from token usage and the model's prices", function()
    local res, steps = T.lab({ { "llm", { model = "big", messages = {} } } },
      { user = "admin", scenario = { { content = "x", usage = { input_tokens = 500, output_tokens = 250 } } } })
    assert.near(0.5 + 0.5, steps[1].cost_usd, 1e-9)
    assert.near(1.0, res.cost_usd, 1e-9)
    assert.equal("mock-big", steps[1].model)
  end)

  it("exposes the run's budget to scripts", function()
    local _, steps = T.lab({ { "budget" } })
    assert.equal(1, steps[1].per_run_usd)
    assert.equal(5, steps[1].max_iterations)
  end)
end)

describe("result object", function()
  it("has every field of the result object (README.md, The result of a run)", function()
    local res = T.lab({ { "tool", "echo", { a = 1 } } })
    for _, k in ipairs { "run_id", "session_id", "agent", "user_id", "status", "success", "result", "cost_usd",
                         "steps_taken", "usage", "tool_calls", "errors", "execution_time_ms" } do
      assert.is_not_nil(res[k], k)
    end
    assert.equal("lab", res.agent)
    assert.equal("reader", res.user_id)
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", res.run_id)
  end)

  it("counts the tokens of every answer the run was given in usage", function()
    local res = T.run { agent = "spec/fixtures/lab", query = '[["llm"], ["llm"]]',
      scenario = T.script():say("a"):usage(120, 7):say("b"):usage(30, 5) }
    assert.equal("completed", res.status, T.encode(res))
    assert.same({ input_tokens = 150, output_tokens = 12 }, res.usage)
    local none = T.lab({ { "tool", "echo", { a = 1 } } })
    assert.same({ input_tokens = 0, output_tokens = 0 }, none.usage)
  end)

  it("never shows a script error to the user, but keeps it in errors and the audit log", function()
    local res, _, audit = T.lab({ { "error", "secret internal detail at line 3" } })
    assert.equal("failed", res.status)
    assert.matches("^Encountered an issue", res.result)
    assert.matches("secret internal detail", res.errors[1])
    local fin = T.events(audit, "run_finished")[1]
    assert.matches("internal detail", fin.error)
  end)

  it("fails a run whose agent file is broken, with a result", function()
    local dir = T.agent("broken", { ["agent.lua"] = "return warden.agent { name = " })
    local res = T.run { agent = dir, query = "x" }
    assert.equal("failed", res.status)
    assert.matches("agent.lua", res.errors[1])
  end)

  it("fails a run whose agent does not exist, with a result", function()
    local res = T.run { agent = "agents/nope", query = "x" }
    assert.equal("failed", res.status)
    assert.matches("not found", res.errors[1])
  end)

  it("fails a run whose agent file returns something else", function()
    local dir = T.agent("wrong", { ["agent.lua"] = "return 42" })
    local res = T.run { agent = dir, query = "x" }
    assert.equal("failed", res.status)
    assert.matches("must return warden.agent", res.errors[1])
  end)

  it("refuses a malformed tool definition with a clear message", function()
    local dir = T.agent("badtool", { ["agent.lua"] = 'return warden.agent { name = "b", tools = { "echo" } }',
                                     ["tools/echo.lua"] = 'return warden.tool { name = "echo" }' })
    local res = T.run { agent = dir, query = "x" }
    assert.equal("failed", res.status)
    assert.matches("'run' must be a function", res.errors[1])
  end)

  it("lists the loaded tools for the model, and takes them by name or as a table, not both", function()
    local dir = T.agent("specs", {
      ["agent.lua"] = [[
return warden.agent { name = "specs", tools = { "echo" }, run = function(_, ctx)
  local s = ctx:tool_specs()
  local ok, err = pcall(ctx.llm, ctx, { messages = { { role = "user", content = "x" } }, tools = s,
                                        _loaded_tools = true })
  return ctx:_json({ n = #s, name = s[1].name, description = s[1].description,
                     required = s[1].parameters.required[1], ok = ok, err = tostring(err) })
end }]],
      ["tools/echo.lua"] = [[
return warden.tool { name = "echo", description = "Says it back",
  parameters = { type = "object", required = { "text" }, properties = { text = { type = "string" } } },
  run = function(args) return args end }]] })
    local res = T.run { agent = dir, query = "x" }
    assert.equal("completed", res.status)
    local out = T.decode(res.result)
    assert.same({ 1, "echo", "Says it back", "text", false },
                { out.n, out.name, out.description, out.required, out.ok })
    assert.matches("tools and _loaded_tools together", out.err)
  end)
end)

describe("workflow agent (Path B)", function()
  it("runs a fixed sequence, each step fed the previous result, with no LLM call", function()
    local res, audit = T.run { agent = "agents/summarizer", user = "bob", policy = "policies/default.yaml",
      query = "One. Two. Three." }
    assert.equal("completed", res.status)
    assert.equal("Summary: One. Two.", res.result)
    assert.equal(0, res.steps_taken)
    assert.same({ "extract_text", "summarize", "format" },
      { res.tool_calls[1].name, res.tool_calls[2].name, res.tool_calls[3].name })
    assert.equal(0, #T.events(audit, "llm_call"))
  end)

  it("stops the workflow at a failed step", function()
    local res = T.run { agent = "agents/summarizer", user = "bob", policy = "policies/default.yaml", query = "" }
    assert.equal("failed", res.status)
    assert.matches("step 1 %(extract_text%) failed", res.errors[1])
  end)

  it("makes a single LLM choice of one tool, no loop", function()
    local dir = T.agent("chooser",
      { ["agent.lua"] = 'return warden.workflow { name = "chooser", choose = { "echo", "noop" } }' })
    os.execute("ln -sfn " .. os.getenv("PWD") .. "/spec/fixtures/lab/tools " .. T.tmpdir() .. "/tools")
    local res, audit = T.run { agent = dir, query = "x",
      scenario = { { tool_calls = { { name = "echo", arguments = { said = "hi" } } } }, { content = "never" } } }
    assert.equal("completed", res.status)
    assert.equal('{"echo":{"said":"hi"}}', res.result)
    assert.equal(1, res.steps_taken)
    assert.equal(1, #T.events(audit, "llm_call"))
  end)
end)
