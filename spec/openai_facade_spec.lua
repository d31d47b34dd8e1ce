-- warden serve as OpenAI's API (docs/openai.md): the official `openai` client (installed by
-- make deps in tools/npm), pointed at warden by base URL and key only, runs governed agents
-- through /v1/chat/completions and lists them through /v1/models.
local T = require("warden.testing")
local json = require("cjson")
local core = require("warden.core")

local ROOT = os.getenv("PWD")
local CLIENT = ROOT .. "/spec/fixtures/openai/client.mjs"
local KEYS = { reader = "reader-key-1", admin = "admin-key-3", poor = "poor-key-4" }

local FRAMEWORKS = ROOT .. "/spec/fixtures/openai/frameworks.mjs"

-- LangChain and the OpenAI Agents SDK, given the base URL and the key only
local function frameworks(srv, key, ops)
  local out = T.sh(("env -u LD_PRELOAD node %s %s/v1 '%s' '%s'"):format(FRAMEWORKS, srv.url, key, json.encode(ops)))
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    local ok, v = pcall(json.decode, line)
    if ok and type(v) == "table" then lines[#lines + 1] = v end
  end
  return lines, out
end

local function client(srv, key, ops)
  local out = T.sh(("env -u LD_PRELOAD node %s %s/v1 '%s' '%s'"):format(CLIENT, srv.url, key or "",
    json.encode(ops)))
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    local ok, v = pcall(json.decode, line)
    if ok then lines[#lines + 1] = v end
  end
  return lines
end

describe("warden serve as OpenAI's chat completions", function()
  local srv, audit
  setup(function()
    local o = { users = { poor = { role = "read", tier = "tiny" } },
      tiers = { tiny = { per_run_usd = 0.0000001 } } }
    for user, key in pairs(KEYS) do
      o.users[user] = o.users[user] or {}
      o.users[user].api_key_sha256 = T.sha256(key)
    end
    local pol
    pol, audit = T.policy(o)
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s/helper && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, ROOT, agents))
    T.write(agents .. "/helper/agent.lua",
      'return warden.agent { name = "helper", model = "default", system_prompt = "You are the helper." }\n')
    srv = T.serve({ policy = pol, agents = agents,
      llm = "mock:" .. T.scenario({ { content = "4", usage = { input_tokens = 12, output_tokens = 3 } } }) })
  end)
  teardown(function() if srv then srv.stop() end end)

  it("answers chat.completions.create with the agent's answer, its usage, run id and cost", function()
    local lines = client(srv, KEYS.reader, { { op = "chat", body = { model = "helper", messages = {
      { role = "system", content = "Answer briefly." },
      { role = "user", content = "what is 2 + 2?" },
      { role = "assistant", content = "Let me think." },
      { role = "user", content = { { type = "text", text = "so, what is it?" } } },
    } } } })
    local r = lines[1]
    assert.truthy(r.result, T.encode(lines))
    assert.equal("chat.completion", r.result.object)
    assert.equal("helper", r.result.model)
    assert.equal("4", r.result.choices[1].message.content)
    assert.equal("assistant", r.result.choices[1].message.role)
    assert.equal("stop", r.result.choices[1].finish_reason)
    assert.same({ prompt_tokens = 12, completion_tokens = 3, total_tokens = 15 }, {
      prompt_tokens = r.result.usage.prompt_tokens, completion_tokens = r.result.usage.completion_tokens,
      total_tokens = r.result.usage.total_tokens })
    assert.equal("chatcmpl-" .. r.run_id, r.result.id)
    assert.is_true(tonumber(r.cost) > 0)
    -- the run, as the log has it: the user's, the agent's prompt first, the client's
    -- three earlier messages, then its question
    local got = T.wait_for(function()
      local s, c
      for _, rec in ipairs(T.records(audit)) do
        if rec.run_id == r.run_id and rec.event == "run_started" then s = rec end
        if rec.run_id == r.run_id and rec.event == "llm_call" then c = rec end
      end
      return s and c and { s, c }
    end, "the run's records")
    local started, call = got[1], got[2]
    assert.equal("reader", started.user_id)
    assert.equal("so, what is it?", started.query)
    assert.equal(5, call.message_count)
  end)

  it("answers responses.create, from text or from messages with instructions", function()
    local lines = client(srv, KEYS.reader, {
      { op = "responses", body = { model = "helper", input = "what is 2 + 2?" } },
      { op = "responses", body = { model = "helper", instructions = "Answer briefly.", input = {
        { role = "user", content = "what is 2 + 2?" },
        { type = "message", role = "assistant", content = { { type = "output_text", text = "Let me think." } } },
        { role = "user", content = { { type = "input_text", text = "so?" } } } } } },
      { op = "responses", body = { model = "helper", input = { { type = "function_call_output", call_id = "1",
        output = "x" } } } },
      { op = "responses", body = { model = "helper", input = "x", previous_response_id = "resp_1" } },
    })
    local a = lines[1]
    assert.truthy(a.result, T.encode(lines))
    assert.equal("response", a.result.object)
    assert.equal("completed", a.result.status)
    assert.equal("4", a.output_text) -- the client's own convenience, from output
    assert.equal("resp_" .. a.run_id, a.result.id)
    assert.equal(15, a.result.usage.total_tokens)
    local b = lines[2]
    assert.equal("4", b.output_text, T.encode(b))
    local call = T.wait_for(function()
      for _, rec in ipairs(T.records(audit)) do
        if rec.run_id == b.run_id and rec.event == "llm_call" then return rec end
      end
    end, "the second run's llm_call")
    assert.equal(5, call.message_count) -- the agent's prompt, instructions, two earlier, the question
    assert.equal("BadRequestError", lines[3].error.class)
    assert.matches("input[0] is a function_call_output", lines[3].error.message, 1, true)
    assert.matches("previous_response_id", lines[4].error.message, 1, true)
  end)

  it("holds the answer to the client's response_format", function()
    local lines = client(srv, KEYS.reader, {
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "2 + 2?" } },
        response_format = { type = "json_schema", json_schema = { name = "n", schema = { type = "integer" } } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "2 + 2?" } },
        response_format = { type = "json_schema", json_schema = { name = "s", schema = { type = "string" } } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "2 + 2?" } },
        response_format = { type = "json_schema", json_schema = { name = "x",
          schema = { type = "object", oneOf = { { type = "object" } } } } } } },
      { op = "responses", body = { model = "helper", input = "2 + 2?",
        text = { format = { type = "json_schema", name = "n", schema = { type = "integer" } } } } },
    })
    assert.equal("4", lines[1].result and lines[1].result.choices[1].message.content, T.encode(lines[1]))
    assert.equal("InternalServerError", lines[2].error.class, T.encode(lines[2]))
    assert.matches("structured output: the answer does not fit its JSON Schema", lines[2].error.message, 1, true)
    assert.equal("BadRequestError", lines[3].error.class)
    assert.matches("response_format.json_schema.schema: ", lines[3].error.message, 1, true)
    assert.matches("oneOf", lines[3].error.message, 1, true)
    assert.equal("4", lines[4].output_text, T.encode(lines[4]))
  end)

  it("carries a session's turns with x-warden-session, and refuses it to another user's key", function()
    local H = { ["x-warden-session"] = "conv-1" }
    local lines = client(srv, KEYS.reader, {
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "first" } } }, headers = H },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "second" } } }, headers = H },
    })
    local second = lines[2]
    assert.truthy(second.run_id, T.encode(lines))
    local call = T.wait_for(function()
      for _, rec in ipairs(T.records(audit)) do
        if rec.run_id == second.run_id and rec.event == "llm_call" then return rec end
      end
    end, "the second run's llm_call")
    assert.equal(4, call.message_count) -- the agent's prompt, the first turn's two, the new question
    lines = client(srv, KEYS.admin, { { op = "chat", headers = H,
      body = { model = "helper", messages = { { role = "user", content = "mine now?" } } } } })
    assert.equal("PermissionDeniedError", lines[1].error.class, T.encode(lines))
    assert.equal(403, lines[1].error.status)
    assert.matches("belongs to another user", lines[1].error.message, 1, true)
  end)

  it("serves LangChain's ChatOpenAI and the OpenAI Agents SDK as their model", function()
    local lines, out = frameworks(srv, KEYS.reader, {
      { op = "lc_invoke", model = "helper", input = "what is 2 + 2?" },
      { op = "lc_stream", model = "helper", input = "what is 2 + 2?" },
      { op = "agents_run", model = "helper", input = "what is 2 + 2?" },
      { op = "agents_stream", model = "helper", input = "what is 2 + 2?" },
    })
    assert.equal(4, #lines, out)
    assert.equal("4", lines[1].text, out)
    assert.equal(15, lines[1].usage.total_tokens)
    assert.equal("4", lines[2].text, out)
    assert.equal("4", lines[3].text, out)
    assert.equal("4", lines[4].final, out)
  end)

  it("lists the agents as models", function()
    local lines = client(srv, KEYS.reader, { { op = "models" } })
    local ids = {}
    for _, m in ipairs(lines[1].result or {}) do ids[m.id] = m.object end
    assert.equal("model", ids.helper, T.encode(lines))
    assert.equal("model", ids.lab)
  end)

  it("refuses as OpenAI does: the client's own error classes", function()
    local lines = client(srv, "not-a-key", { { op = "chat", body = { model = "helper",
      messages = { { role = "user", content = "hi" } } } } })
    assert.equal("AuthenticationError", lines[1].error.class, T.encode(lines))
    assert.equal(401, lines[1].error.status)
    lines = client(srv, KEYS.reader, {
      { op = "chat", body = { model = "nobody", messages = { { role = "user", content = "hi" } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "hi" },
        { role = "tool", content = "x", tool_call_id = "1" } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "hi" } },
        tools = { { type = "function", ["function"] = { name = "f", parameters = { type = "object" } } } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "hi" } }, bogus = 1 } },
    })
    assert.equal("NotFoundError", lines[1].error.class)
    assert.matches("The model 'nobody' does not exist", lines[1].error.message, 1, true)
    assert.equal("BadRequestError", lines[2].error.class)
    assert.matches("messages[1] has a role warden does not take", lines[2].error.message, 1, true)
    assert.equal("invalid_request_error", lines[2].error.type)
    assert.equal("BadRequestError", lines[3].error.class)
    assert.matches("tools: the agent's tools are warden's own", lines[3].error.message, 1, true)
    assert.matches("unknown field 'bogus'", lines[4].error.message, 1, true)
    -- conversations that are not ones warden takes, each refused naming the message
    local many = {}
    for i = 1, 1001 do many[i] = { role = "user", content = "x" } end
    lines = client(srv, KEYS.reader, {
      { op = "chat", body = { model = "helper", messages = many } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = {
        { type = "image_url", image_url = { url = "http://127.0.0.1:1/x.png" } } } } } } },
      { op = "chat", body = { model = "helper", messages = { { role = "user", content = "hi" },
        { role = "assistant", content = "hello" } } } },
      { op = "chat", body = { model = "helper", messages = {} } },
    })
    assert.matches("messages: a list of 1 to 1000 messages", lines[1].error.message, 1, true)
    assert.matches("messages[0] content must be text", lines[2].error.message, 1, true)
    assert.matches("messages[1] is the last, and must be the user's", lines[3].error.message, 1, true)
    assert.matches("messages: a list of 1 to 1000", lines[4].error.message, 1, true)
    -- a user out of budget: 429, with when to come back
    lines = client(srv, KEYS.poor, { { op = "chat", body = { model = "helper",
      messages = { { role = "user", content = "hi" } } } } })
    assert.equal("RateLimitError", lines[1].error.class, T.encode(lines))
    assert.equal(429, lines[1].error.status)
    assert.matches("budget_exceeded", lines[1].error.message)
    assert.truthy(tonumber(lines[1].error.retry))
  end)
end)

describe("warden serve's OpenAI facade, streaming", function()
  local srv, pol, audit, fake
  -- a word of output costs $0.001 and input is free; tom's day has $0.0105
  setup(function()
    fake = T.fakellm()
    local o = { models = { default = { provider = "openai", name = "gpt-test", api_key_env = T.NONE,
                                       base_url = fake.url("key=facade-stream,words=8,gap=30"),
                                       input_usd_per_1k = 0, output_usd_per_1k = 1 },
                           slow = { provider = "openai", name = "gpt-test",
                                    base_url = fake.url("key=facade-slow,words=20,gap=200"),
                                    input_usd_per_1k = 0, output_usd_per_1k = 1 } },
                tiers = { tight = { per_run_usd = 1, daily_usd = 0.0105 } },
                users = { reader = { role = "read", api_key_sha256 = T.sha256(KEYS.reader) },
                          tom = { role = "read", tier = "tight", api_key_sha256 = T.sha256("tom-key-5") } } }
    pol, audit = T.policy(o)
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s/helper"):format(agents))
    T.write(agents .. "/helper/agent.lua",
      'return warden.agent { name = "helper", model = "default", system_prompt = "You are the helper." }\n')
    T.write(agents .. "/slow.lua", 'return warden.agent { name = "slow", model = "slow" }\n')
    srv = T.serve({ policy = pol, agents = agents, llm = false })
  end)
  teardown(function() if srv then srv.stop() end end)

  local HI = { { role = "user", content = "count to eight" } }

  it("streams chat.completion.chunk events as the model produces them, then the usage", function()
    local lines = client(srv, KEYS.reader, { { op = "chat_stream", body = { model = "helper", messages = HI,
      stream_options = { include_usage = true } } } })
    local r = lines[1]
    assert.truthy(r.content, T.encode(lines))
    assert.equal("001 002 003 004 005 006 007 008 ", r.content)
    assert.equal(8, r.pieces) -- a chunk a word, as the provider sent them
    assert.is_true(r.spread_ms >= 120, "the words came together: " .. r.spread_ms .. " ms") -- 30 ms apart
    assert.equal("stop", r.finish_reason)
    assert.same({ 100, 8, 108 }, { r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens })
    assert.equal(r.run_id, r.warden.run_id)
    assert.near(0.008, r.warden.cost_usd, 1e-9)
  end)

  it("streams to LangChain's ChatOpenAI and the Agents SDK a piece at a time", function()
    local lines, out = frameworks(srv, KEYS.reader, {
      { op = "lc_stream", model = "helper", input = "count to eight" },
      { op = "agents_stream", model = "helper", input = "count to eight" },
    })
    assert.equal("001 002 003 004 005 006 007 008 ", lines[1] and lines[1].text, out)
    assert.equal(8, lines[1].pieces)
    assert.equal("001 002 003 004 005 006 007 008 ", lines[2] and lines[2].text, out)
    assert.equal(8, lines[2].pieces)
  end)

  it("streams the Responses API's events, ending with the whole response", function()
    local lines = client(srv, KEYS.reader, { { op = "responses_stream", body = { model = "helper",
      input = "count to eight" } } })
    local r = lines[1]
    assert.truthy(r.types, T.encode(lines))
    assert.equal("response.created", r.types[1])
    assert.equal("response.completed", r.types[#r.types])
    local deltas = 0
    for _, t in ipairs(r.types) do if t == "response.output_text.delta" then deltas = deltas + 1 end end
    assert.equal(8, deltas)
    assert.equal("001 002 003 004 005 006 007 008 ", r.text)
    assert.equal("completed", r.final.status)
    assert.equal("001 002 003 004 005 006 007 008 ", r.final.output[1].content[1].text)
    assert.equal(8, r.final.usage.output_tokens)
  end)

  it("cuts a stream at the user's budget: finish_reason length, the ledger holds what was delivered", function()
    local lines = client(srv, "tom-key-5", { { op = "chat_stream", body = { model = "helper",
      messages = HI, stream_options = { include_usage = true } } } })
    local r = lines[1]
    assert.truthy(r.content, T.encode(lines))
    -- 8 words cost $0.008: the first run fits, and the second is cut where the day runs out
    assert.equal("stop", r.finish_reason)
    lines = client(srv, "tom-key-5", { { op = "chat_stream", body = { model = "helper",
      messages = HI, stream_options = { include_usage = true } } } })
    r = lines[1]
    assert.equal("001 002 ", r.content, T.encode(lines))
    assert.equal("length", r.finish_reason)
    assert.equal(2, r.usage.completion_tokens)
    assert.equal("budget_exceeded", r.warden.status)
    local store = T.store_of(pol)
    local spent = T.wait_for(function()
      for _, row in ipairs(assert(core.ledger(store))) do
        if row.scope == "user:tom" and row.period:sub(1, 4) == "day:" and row.spent_usd > 0.0095 then
          return row.spent_usd
        end
      end
    end, "tom's spend in the ledger")
    assert.near(0.010, spent, 1e-12) -- 8 + 2 words, each delivered, each paid
    local cut = T.wait_for(function()
      for _, rec in ipairs(T.records(audit)) do
        if rec.run_id == r.run_id and rec.event == "run_finished" then return rec end
      end
    end, "the cut run's end")
    assert.equal("budget_exceeded", cut.reason)
    local out, rc = T.sh(("%s audit verify %s --policy %s"):format(T.bin, audit, pol))
    assert.equal(0, rc, out)
  end)

  it("ends the run of a client that closes its stream; what came is paid for", function()
    local out = T.sh(("%s -s -i -N -m 1 -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '%s' "
      .. "%s/v1/chat/completions"):format(T.curl, KEYS.reader,
      json.encode({ model = "slow", messages = HI, stream = true }), srv.url))
    local run_id = out:match("x%-warden%-run%-id: ([%x%-]+)")
    assert.truthy(run_id, out)
    local fin, call = table.unpack(T.wait_for(function()
      local f, c
      for _, rec in ipairs(T.records(audit)) do
        if rec.run_id == run_id and rec.event == "run_finished" then f = rec end
        if rec.run_id == run_id and rec.event == "llm_call" then c = rec end
      end
      return f and { f, c }
    end, "the run's end"))
    assert.equal("killed", fin.reason)
    assert.matches("the client closed the stream", fin.error, 1, true)
    assert.is_true(call.output_tokens >= 1 and call.output_tokens < 20, T.encode(call))
    assert.near(call.output_tokens * 0.001, fin.cost_usd, 1e-9)
  end)

  it("refuses a stream flag that is not a boolean", function()
    local code, body = srv.http("POST", "/v1/chat/completions", KEYS.reader,
      { model = "helper", messages = HI, stream = "yes" })
    assert.equal(400, code)
    assert.matches("stream must be true or false", body.error.message, 1, true)
    code, body = srv.http("POST", "/v1/chat/completions", KEYS.reader,
      { model = "helper", messages = HI, stream = true, stream_options = { include_usage = "yes" } })
    assert.equal(400, code)
    assert.matches("stream_options must be {\"include_usage\": true or false}", body.error.message, 1, true)
  end)
end)
