-- Structured output (docs/lua-api.md, ctx:llm response_format; output_schema): an answer
-- held to a JSON Schema by warden's own validator, one corrective ask
-- (defaults.structured_retries), then the validator's error.
local T = require("warden.testing")

local HI = { { role = "user", content = "how many?" } }
local SCHEMA = { type = "object", properties = { n = { type = "integer" } }, required = { "n" } }
local FORMAT = { type = "json_schema", schema = SCHEMA, name = "count" }

local function answers(...)
  local out = {}
  for i, text in ipairs({ ... }) do out[i] = { content = text, usage = { input_tokens = 10, output_tokens = 5 } } end
  return out
end

local function ask(scenario, format, extra)
  return T.lab({ { "llm", { messages = HI, response_format = format or FORMAT } } },
    { scenario = scenario, policy_overrides = extra })
end

describe("ctx:llm with a response_format", function()
  it("gives the answer parsed as output when it fits", function()
    local res, steps, audit = ask(answers('{"n": 4}'))
    assert.equal("completed", res.status)
    assert.same({ n = 4 }, steps[1].output)
    assert.equal('{"n": 4}', steps[1].content)
    assert.equal(1, #T.events(audit, "llm_call"))
  end)

  it("asks once more, showing the model its answer and the validator's error, and takes the fix", function()
    local res, steps, audit = ask(answers('{"n": "four"}', '{"n": 4}'))
    assert.equal("completed", res.status)
    assert.same({ n = 4 }, steps[1].output)
    local calls = T.events(audit, "llm_call")
    assert.equal(2, #calls)
    assert.equal("schema", calls[1].reason)
    assert.matches("/n: ", calls[1].error, 1, true)
    assert.equal(3, calls[2].message_count) -- the question, the bad answer, the correction
    assert.equal(10, res.usage.output_tokens) -- both answers were paid for
  end)

  it("fails with the validator's JSON-pointer error after its corrective ask", function()
    local res, steps, audit = ask(answers('{"n": "four"}', '{"m": 4}', '{"n": 4}'))
    assert.equal("completed", res.status)
    assert.is_nil(steps[1].output)
    assert.matches("structured output: the answer does not fit its JSON Schema: /n: ", steps[1].llm_error, 1, true)
    assert.equal(2, #T.events(audit, "llm_call"))
  end)

  it("asks as many times as defaults.structured_retries says", function()
    local _, steps, audit = ask(answers("no", "still no", '{"n": 1}'), nil,
      { defaults = { structured_retries = 0 } })
    assert.matches("the answer is not JSON", steps[1].llm_error, 1, true)
    assert.equal(1, #T.events(audit, "llm_call"))
    local _, steps2 = ask(answers("no", "still no", '{"n": 1}'), nil, { defaults = { structured_retries = 2 } })
    assert.same({ n = 1 }, steps2[1].output)
  end)

  it("takes JSON out of a fenced block, and OpenAI's own json_schema shape", function()
    local _, steps = ask(answers('```json\n{"n": 2}\n```'),
      { type = "json_schema", json_schema = { name = "count", schema = SCHEMA, strict = false } })
    assert.same({ n = 2 }, steps[1].output)
    assert.equal('{"n": 2}', steps[1].content)
    local _, s2 = ask(answers('[1]', '{"any": true}'), { type = "json_object" })
    assert.same({ any = true }, s2[1].output)
  end)

  it("refuses a response_format it cannot hold an answer to, naming what is wrong", function()
    local res = ask(answers("x"), { type = "json_schema", schema = { type = "object", bogus = 1 } })
    assert.equal("failed", res.status)
    assert.matches("ctx:llm: response_format.schema: ", res.errors[#res.errors], 1, true)
    assert.matches("bogus", res.errors[#res.errors], 1, true)
    res = ask(answers("x"), { type = "xml" })
    assert.matches("type must be \"json_schema\"", res.errors[#res.errors], 1, true)
  end)

  it("sends the schema to an OpenAI provider, and holds its answer to it too", function()
    local srv = T.fakellm()
    local key = T.key("rf")
    local res, steps = T.lab({ { "llm", { messages = HI, response_format = FORMAT } } }, { llm = false,
      policy_overrides = { models = { default = { provider = "openai", name = "m", base_url = srv.url("key=" .. key),
                                                  api_key_env = T.NONE } } } })
    assert.equal("completed", res.status)
    -- fakellm answers "done", which is no JSON: asked once more, then the error
    assert.matches("the answer is not JSON", steps[1].llm_error, 1, true)
    assert.same({ "count", "count" }, srv.formats(key))
  end)
end)

describe("an agent's output_schema", function()
  local function agent(schema_lua)
    local dir = T.tmpfile("-agent")
  os.execute("mkdir -p " .. dir)
    T.write(dir .. "/agent.lua", ("return warden.agent { name = \"typed\", output_schema = %s }\n"):format(schema_lua))
    return dir
  end
  local TYPED = '{ type = "object", properties = { n = { type = "integer" } }, required = { "n" } }'

  it("returns validated JSON, and the result gains output", function()
    local res, audit = T.run { agent = agent(TYPED), query = "how many?",
                               scenario = answers('{"n": "four"}', '{"n": 4}') }
    assert.equal("completed", res.status)
    assert.equal('{"n": 4}', res.result)
    assert.same({ n = 4 }, res.output)
    assert.equal(2, #T.events(audit, "llm_call"))
  end)

  it("fails with the validator's error after one corrective ask", function()
    local res, audit = T.run { agent = agent(TYPED), query = "how many?",
                               scenario = answers('{"n": "four"}', '{"n": "4"}', '{"n": 4}') }
    assert.equal("failed", res.status)
    assert.matches("/n: ", res.errors[#res.errors], 1, true)
    assert.is_nil(res.output)
    assert.equal(2, #T.events(audit, "llm_call"))
  end)

  it("holds a script's own final answer to it", function()
    local dir = T.tmpfile("-agent")
  os.execute("mkdir -p " .. dir)
    T.write(dir .. "/agent.lua", "return warden.agent { name = \"own\", output_schema = " .. TYPED ..
      ", run = function(q, ctx) return q end }\n")
    local ok = T.run { agent = dir, query = '{"n": 7}' }
    assert.equal("completed", ok.status, T.encode(ok.errors))
    assert.same({ n = 7 }, ok.output)
    local bad = T.run { agent = dir, query = '{"n": 7.5}' }
    assert.equal("failed", bad.status)
    assert.matches("output_schema: the final answer does not fit: /n: ", bad.errors[#bad.errors], 1, true)
  end)

  it("is refused at load when it is no schema warden can check", function()
    local res = T.run { agent = agent('{ type = "object", oneOf = {} }'), query = "q",
                        scenario = answers("{}") }
    assert.equal("failed", res.status)
    assert.matches("output_schema: ", res.errors[#res.errors], 1, true)
    assert.matches("oneOf", res.errors[#res.errors], 1, true)
  end)

  it("comes from the caller when the agent declares none", function()
    local res = T.run { agent = "spec/fixtures/lab", query = { { "llm", { messages = HI } } },
                        output_schema = '{"type": "array"}', scenario = answers("x") }
    -- the lab agent answers with its steps, a JSON array: it fits
    assert.equal("completed", res.status)
    assert.equal("table", type(res.output))
    local bad = T.run { agent = "spec/fixtures/lab", query = { { "llm", { messages = HI } } },
                        output_schema = '{"type": "object"}', scenario = answers("x") }
    assert.equal("failed", bad.status)
  end)
end)
