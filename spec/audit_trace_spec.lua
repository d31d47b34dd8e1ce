-- The reasoning trace (docs/safety.md, Audit schema): what the model said and asked for,
-- the final answer, the agent's and the policy's versions, what each tool call touched,
-- a script error's traceback (in the log, never in the answer), secrets redacted by their
-- shape wherever they appear, and `warden audit trace RUN_ID` telling a run as a story.
local T = require("warden.testing")

local TOOLS = {
  ["tools/explode.lua"] = [[
local function deeper(path) error("cannot open " .. path) end
return warden.tool { name = "explode", description = "fails",
  parameters = { type = "object", properties = { path = { type = "string" } } },
  run = function(args) deeper(args.path) end }]],
  ["tools/keeper.lua"] = [[
return warden.tool { name = "keeper", description = "writes",
  parameters = { type = "object", properties = { path = { type = "string" } } },
  run = function(args) return { wrote = args.path, note = "api_key=sk-abcdefghijklmnopqrstuvwx" } end }]],
  ["data/notes.txt"] = "notes\n",
}

local function agent(tools)
  local files = { ["agent.lua"] = ([[
return warden.agent { name = "tracer", model = "default", tools = { %s }, max_iterations = 5 }]]):format(tools) }
  for k, v in pairs(TOOLS) do files[k] = v end
  return T.agent("tracer", files)
end

local POLICY = { tools = {
  explode = { permission = "read", risk = "low", category = "read" },
  keeper = { permission = "read", risk = "low", category = "write" },
} }

local SAID = "Let me look. Logging in with password: hunter2 as AKIAIOSFODNN7EXAMPLE."

local function traced_run(extra)
  local pol, audit = T.policy(POLICY)
  local dir = agent('"explode", "keeper"')
  local res = T.run({ agent = dir, policy = pol, audit = audit, query = "what is in the notes? token=abc123xyz",
    scenario = extra or {
      { content = SAID, tool_calls = { { name = "explode", arguments = { path = "data/notes.txt" } } } },
      { tool_calls = { { name = "keeper", arguments = { path = "data/out.txt" } } } },
      { content = "The notes say: notes. (my passwd=swordfish)" },
    } })
  return res, audit, pol, dir
end

describe("the reasoning trace", function()
  it("keeps what the model said, the calls it asked for and the final answer, secrets redacted", function()
    local res, audit = traced_run()
    assert.equal("completed", res.status)
    local llm = T.events(audit, "llm_call")
    assert.equal(3, #llm)
    assert.equal("Let me look. Logging in with password: [REDACTED:secret] as [REDACTED:provider_key].",
      llm[1].model_text)
    assert.equal(#SAID, llm[1].model_text_bytes)
    assert.equal(2, llm[1].sensitive_data)
    assert.same({ { name = "explode", arguments = { path = "data/notes.txt" } } }, llm[1].tool_calls)
    local fin = T.events(audit, "run_finished")[1]
    -- a value runs to the next space, quote or bracket: the ")" goes with it
    assert.equal("The notes say: notes. (my passwd=[REDACTED:secret]", fin.final_answer)
    assert.is_nil(fin.result)
    local start = T.events(audit, "run_started")[1]
    assert.equal("what is in the notes? token=[REDACTED:secret]", start.query)
    -- nothing of the secrets anywhere in the file, sealed or not
    local raw = T.read(audit)
    for _, secret in ipairs({ "hunter2", "AKIAIOSFODNN7EXAMPLE", "swordfish", "abc123xyz", "sk-abcdefghij" }) do
      assert.is_nil(raw:find(secret, 1, true), secret)
    end
  end)

  it("puts a tool's traceback in the log and only its message in the answer", function()
    local res, audit = traced_run()
    local call = T.events(audit, "tool_call")[1]
    assert.equal("explode", call.tool_name)
    assert.is_false(call.success)
    assert.matches("stack traceback:", call.traceback)
    assert.matches("explode%.lua:1: in %a+ 'deeper'", call.traceback)
    assert.matches("cannot open data/notes.txt", call.error)
    assert.is_nil(res.tool_calls[1].result:find("traceback", 1, true))
    assert.is_nil(T.encode(res):find("stack traceback", 1, true))
  end)

  it("puts the agent's own traceback in run_finished, not in the result", function()
    local pol, audit = T.policy(POLICY)
    local dir = T.agent("crasher", { ["agent.lua"] = [[
local function inner() local t = nil; local v = t.field; return v end
return warden.agent { name = "crasher", tools = {}, run = function() local v = inner(); return v end }]] })
    local res = T.run({ agent = dir, policy = pol, audit = audit, query = "go" })
    assert.equal("failed", res.status)
    local fin = T.events(audit, "run_finished")[1]
    assert.matches("stack traceback:", fin.traceback)
    assert.matches("agent%.lua:1: in %a+ 'inner'", fin.traceback)
    assert.is_nil(T.encode(res):find("stack traceback", 1, true))
  end)

  it("names what each call read or changed, by its category and canonical paths", function()
    local _, audit, _, dir = traced_run()
    local calls = T.events(audit, "tool_call")
    local real = T.sh("realpath " .. dir):gsub("%s+$", "")
    assert.same({ real .. "/data/notes.txt" }, calls[1].data_accessed)
    assert.same({}, calls[1].data_modified) -- category read
    assert.same({ real .. "/data/out.txt" }, calls[2].data_modified) -- category write
    assert.same({ real .. "/data/out.txt" }, calls[2].data_accessed)
    -- the result's secret is redacted before the summary, and counted
    assert.matches("api_key=%[REDACTED:secret%]", calls[2].tool_result_summary)
    assert.is_true(calls[2].sensitive_data >= 1)
  end)

  it("records the agent's version and the policy's, and the version follows the scripts", function()
    local pol, audit = T.policy(POLICY)
    local dir = agent('"explode"')
    local function version()
      T.run({ agent = dir, policy = pol, audit = audit, query = "go", scenario = { { content = "done" } } })
      local s = T.events(audit, "run_started")
      return s[#s].agent_version, s[#s]
    end
    local v1, start = version()
    assert.matches("^%x+$", v1)
    assert.equal(64, #v1)
    assert.equal(1, start.policy_generation)
    assert.equal(T.sha256(T.read(pol)), start.policy_sha256)
    assert.equal(v1, (version()))
    T.write(dir .. "/tools/explode.lua", TOOLS["tools/explode.lua"] .. "\n-- edited\n")
    local v2 = version()
    assert.are_not.equal(v1, v2)
    os.execute("mkdir -p " .. dir .. "/prompts")
    T.write(dir .. "/prompts/system.txt", "be brief")
    assert.are_not.equal(v2, (version()))
  end)

  it("cuts a long answer in the record and keeps its length", function()
    local long = ("word "):rep(3000) -- 15,000 bytes
    local pol, audit = T.policy(POLICY)
    T.run({ agent = agent('"explode"'), policy = pol, audit = audit, query = "go",
      scenario = { { content = long } } })
    local llm = T.events(audit, "llm_call")[1]
    assert.equal(4000, utf8.len(llm.model_text))
    assert.equal(#long, llm.model_text_bytes)
  end)
end)

describe("warden audit trace", function()
  it("tells one run as a story: the question, each step, what the model said, the answer", function()
    local res, audit, pol = traced_run()
    local out, rc = T.sh(("%s audit trace %s %s --policy %s"):format(T.bin, res.run_id, audit, pol))
    assert.equal(0, rc, out)
    assert.matches("run " .. res.run_id .. " started: agent tracer, user reader", out, 1, true)
    assert.matches("asked: what is in the notes%? token=%[REDACTED:secret%]", out)
    assert.matches("said: Let me look%. Logging in with password: %[REDACTED:secret%]", out)
    assert.matches("asked for explode: {\"path\":\"data/notes.txt\"}", out, 1, true)
    assert.matches("tool explode: failed", out, 1, true)
    assert.matches("stack traceback:", out, 1, true)
    assert.matches("tool keeper: ok", out, 1, true)
    assert.matches("changed: %[\"/", out)
    assert.matches("final answer: The notes say: notes%.", out)
    assert.matches("run finished: completed after 3 steps", out, 1, true)
    assert.is_nil(out:find("hunter2", 1, true))
  end)

  it("says so, and exits 2, for a run the log does not hold", function()
    local _, audit, pol = traced_run()
    local out, rc = T.sh(("%s audit trace no-such-run %s --policy %s"):format(T.bin, audit, pol))
    assert.equal(2, rc)
    assert.matches("no records of run no%-such%-run", out)
  end)
end)

describe("attack: secrets in free text", function()
  local SHAPES = {
    { "password: hunter2", "password: [REDACTED:secret]" },
    { 'config {"password":"hunter2"}', 'config {"password":"[REDACTED:secret]"}' },
    { "PASSWORD = 'hunter2'", "PASSWORD = '[REDACTED:secret]'" },
    { "client_secret=abcd1234efgh", "client_secret=[REDACTED:secret]" },
    { "Authorization: Bearer abcdefghijklmnop", "Authorization: [REDACTED:bearer_token]" },
    { "aws AKIAIOSFODNN7EXAMPLE key", "aws [REDACTED:provider_key] key" },
    { "gh ghp_" .. ("a"):rep(36), "gh [REDACTED:provider_key]" },
    { "slack xoxb-1234567890-abcdef", "slack [REDACTED:provider_key]" },
    { "stripe sk_live_" .. ("4"):rep(24), "stripe [REDACTED:provider_key]" },
    { "anthropic sk-ant-" .. ("x"):rep(30), "anthropic [REDACTED:provider_key]" },
    { "google AIza" .. ("B"):rep(35), "google [REDACTED:provider_key]" },
    { "jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "jwt [REDACTED:provider_key]" },
    { "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- after",
      "[REDACTED:private_key] after" },
    { "-----BEGIN PRIVATE KEY-----\nMIIE cut short", "[REDACTED:private_key]" },
  }

  it("redacts every usual shape in what the model says", function()
    local steps = {}
    for _, s in ipairs(SHAPES) do steps[#steps + 1] = s[1] end
    local pol, audit = T.policy(POLICY)
    T.run({ agent = agent('"explode"'), policy = pol, audit = audit, query = "go",
      scenario = { { content = table.concat(steps, "\n") } } })
    local text = T.events(audit, "llm_call")[1].model_text
    local want = {}
    for _, s in ipairs(SHAPES) do want[#want + 1] = s[2] end
    assert.equal(table.concat(want, "\n"), text)
  end)

  it("leaves ordinary words alone", function()
    local plain = "input_tokens: 5, max_tokens=100, the password policy, tokens used, secretary"
    local pol, audit = T.policy(POLICY)
    T.run({ agent = agent('"explode"'), policy = pol, audit = audit, query = "go",
      scenario = { { content = plain } } })
    assert.equal(plain, T.events(audit, "llm_call")[1].model_text)
  end)

  it("redacts a long secret-looking answer, and a tool's result of most of a megabyte", function()
    local hostile = "password=" .. ("x"):rep(30000) .. " and " .. ("password: "):rep(2500)
    local pol, audit = T.policy(POLICY)
    local files = { ["tools/keeper.lua"] = [[
return warden.tool { name = "keeper", description = "big", run = function()
  return { v = "password=" .. ("y"):rep(800 * 1024) .. " " .. ("token: "):rep(10000) } end }]] }
    local dir = agent('"keeper"')
    T.write(dir .. "/tools/keeper.lua", files["tools/keeper.lua"])
    local res = T.run({ agent = dir, policy = pol, audit = audit, query = "go", user = "admin",
      scenario = { { content = hostile, tool_calls = { { name = "keeper", arguments = {} } } }, { content = "ok" } } })
    assert.equal("completed", res.status)
    local llm = T.events(audit, "llm_call")[1]
    assert.matches("^password=%[REDACTED:secret%] and ", llm.model_text)
    assert.equal(#hostile, llm.model_text_bytes)
    local call = T.events(audit, "tool_call")[1]
    assert.matches('^{"v":"password=%[REDACTED:secret%] token: ', call.tool_result_summary)
    assert.is_true(call.sensitive_data >= 1)
    assert.is_nil(T.read(audit):find("yyyyyyyy", 1, true))
    assert.is_true(require("warden.core").audit_verify(audit))
  end)
end)

describe("attack: text a pattern cannot finish reading", function()
  it("redacts from where PCRE2 gave up to the end, rather than leaving the rest in the clear", function()
    -- a policy's own pattern that backtracks without end on this text: PCRE2 stops at
    -- its match limit, and what it had not read may hold what the pattern looks for
    local pol, audit = T.policy({ audit = { redact_patterns = { "re:(a|aa)+$" } } })
    local res = T.run({ agent = agent('"explode"'), policy = pol, audit = audit, query = "go",
      scenario = { { content = "secret-ish " .. ("a"):rep(30000) .. "b" } } })
    assert.equal("completed", res.status)
    local text = T.events(audit, "llm_call")[1].model_text
    assert.equal("[REDACTED:unreadable]", text)
  end)
end)

describe("attack: an agent directory that fights its version", function()
  it("hashes what it can read and runs: a FIFO, a device, an oversized file are no reason to hang", function()
    local dir = agent('"explode"')
    os.execute(("mkdir -p %s/prompts && mkfifo %s/prompts/pipe.txt && ln -s /dev/zero %s/tools/zero.lua")
      :format(dir, dir, dir))
    local pol, audit = T.policy(POLICY)
    local t0 = require("warden.core").clock()
    local res = T.run({ agent = dir, policy = pol, audit = audit, query = "go", scenario = { { content = "done" } } })
    assert.equal("completed", res.status)
    assert.matches("^%x+$", T.events(audit, "run_started")[1].agent_version)
    -- a prompt over 4 MiB cannot be hashed: the version says so, the run goes on
    T.write(dir .. "/prompts/huge.txt", ("x"):rep(5 * 1024 * 1024))
    res = T.run({ agent = dir, policy = pol, audit = audit, query = "go", scenario = { { content = "done" } } })
    assert.equal("completed", res.status)
    local starts = T.events(audit, "run_started")
    assert.equal("unreadable", starts[#starts].agent_version)
    assert.is_true(require("warden.core").clock() - t0 < 5000)
  end)
end)

describe("attack: the trace on an operator's terminal", function()
  it("shows escape sequences a model or a tool wrote as text, never as bytes", function()
    local pol, audit = T.policy(POLICY)
    local esc = "\27]0;pwned\7\27[2J\27[1A hidden\r\nline two\0tail"
    local dir = agent('"keeper"')
    T.write(dir .. "/tools/keeper.lua", [[
return warden.tool { name = "keeper", description = "hostile", run = function()
  error("\27[31mred\27[0m")
end }]])
    local res = T.run({ agent = dir, policy = pol, audit = audit, query = "go\27[5m",
      scenario = { { content = esc, tool_calls = { { name = "keeper", arguments = { path = "\27[2J" } } } },
        { content = "done" } } })
    local out, rc = T.sh(("%s audit trace %s %s --policy %s"):format(T.bin, res.run_id, audit, pol))
    assert.equal(0, rc, out)
    assert.is_nil(out:find("\27", 1, true), "an escape byte reached the terminal")
    assert.is_nil(out:find("\r", 1, true))
    assert.is_nil(out:find("\7", 1, true))
    assert.matches("said: \\x1b]0;pwned\\x07\\x1b[2J", out, 1, true)
    assert.matches("\\x1b[31mred", out, 1, true)
  end)
end)
