-- Real providers over HTTP (libcurl, the engine's loop) against the fault-injecting
-- server in spec/support/fakellm.c.
local T = require("warden.testing")

local srv = T.fakellm()

-- a policy whose default model is served by the fake server with the given options
local function remote(opts, provider, extra)
  local o = { models = { default = { provider = provider or "openai", name = "gpt-test", base_url = srv.url(opts),
                                     input_usd_per_1k = 0.01, output_usd_per_1k = 0.03 } },
              defaults = { retry = { max_retries = 3, base_ms = 10, max_ms = 40, jitter_ms = 0 } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  o.models.default.api_key_env = T.NONE -- a local server needs no key
  return o
end

local function react(opts, provider)
  return T.run { agent = "agents/research_assistant", query = "What do the notes say about AI safety?",
                 user = "reader", llm = false, policy = "policies/default.yaml",
                 policy_overrides = remote(opts, provider, { users = { reader = { role = "read", tier = "free" } } }) }
end

describe("OpenAI provider", function()
  it("runs a ReAct agent: tool_calls out, tool results back, the answer, tokens and cost", function()
    local key = T.key("oa")
    local res, audit = react("key=" .. key .. ",calls=1,tool=search_documents,args=%7B%22query%22:%22AI%20safety%22%7D")
    assert.equal("completed", res.status)
    assert.equal("done", res.result)
    assert.equal(2, res.steps_taken)
    assert.equal("search_documents", res.tool_calls[1].name)
    assert.is_true(res.tool_calls[1].success)
    assert.equal(2, srv.requests(key))
    -- every call offers the agent's tools, as ctx:tool_specs() lists them
    assert.same({ "search_documents,summarize,delete_document", "search_documents,summarize,delete_document" },
                srv.tools(key))
    local calls = T.events(audit, "llm_call")
    assert.equal(2, #calls)
    assert.equal(100, calls[1].input_tokens)
    assert.equal(20, calls[1].output_tokens)
    assert.near(0.001 + 0.0006, calls[1].cost_usd, 1e-9) -- 100/1000*0.01 + 20/1000*0.03
    assert.equal(0, calls[1].retry_count)
    assert.equal("gpt-test", calls[1].model)
  end)

  it("hands invalid tool-call arguments to validation, and the run goes on", function()
    local key = T.key("badargs")
    local res, _, audit = T.lab({ { "llm" }, { "tool", "echo", "{\"query\": " } },
      { llm = false, policy_overrides = remote("key=" .. key .. ",mode=badargs,tool=echo") })
    assert.equal("completed", res.status)
    local steps = T.decode(res.result)
    assert.equal("{\"query\": ", steps[1].tool_calls[1].arguments) -- junk stays text
    assert.equal(1, #T.events(audit, "validation_failed"))
  end)

  it("reports malformed JSON without retrying it", function()
    local key = T.key("malformed")
    local res, steps, audit = T.lab({ { "llm" } }, { llm = false, policy_overrides = remote("key=" .. key .. ",mode=malformed") })
    assert.equal("completed", res.status)
    assert.matches("not valid JSON", steps[1].llm_error)
    assert.equal(1, srv.requests(key))
    assert.equal(0, T.events(audit, "llm_call")[1].retry_count)
  end)

  it("retries a truncated body as a network error", function()
    local key = T.key("trunc")
    local _, steps, audit = T.lab({ { "llm" } }, { llm = false, policy_overrides = remote("key=" .. key .. ",mode=truncated") })
    assert.matches("network error", steps[1].llm_error)
    assert.equal(4, srv.requests(key))
    local calls = T.events(audit, "llm_call")
    assert.equal(3, calls[#calls].retry_count)
  end)

  it("cuts off an oversized chunked body", function()
    local key = T.key("big")
    local _, steps = T.lab({ { "llm" } }, { llm = false, policy_overrides = remote("key=" .. key .. ",mode=big") })
    assert.matches("larger than 8388608 bytes", steps[1].llm_error)
    assert.equal(1, srv.requests(key)) -- a body too large is not transient
  end)

  it("retries a connection reset", function()
    local key = T.key("reset")
    local _, steps = T.lab({ { "llm" } }, { llm = false, policy_overrides = remote("key=" .. key .. ",mode=reset") })
    assert.matches("network error", steps[1].llm_error)
    assert.equal(4, srv.requests(key))
  end)

  it("retries a refused connection", function()
    local o = remote("x=1")
    o.models.default.base_url = "http://127.0.0.1:9/v1" -- discard port: nothing listens
    local _, steps, audit = T.lab({ { "llm" } }, { llm = false, policy_overrides = o })
    assert.matches("network error", steps[1].llm_error)
    assert.equal(4, #T.events(audit, "llm_call")) -- three retries audited, then the failure
  end)
end)

describe("Anthropic provider", function()
  it("speaks the Messages API with tool_use blocks", function()
    local key = T.key("an")
    local res, audit = react("key=" .. key .. ",calls=1,tool=search_documents,args=%7B%22query%22:%22AI%20safety%22%7D",
      "anthropic")
    assert.equal("completed", res.status)
    assert.equal("done", res.result)
    assert.equal("search_documents", res.tool_calls[1].name)
    local calls = T.events(audit, "llm_call")
    assert.equal(100, calls[2].input_tokens)
    assert.equal(2, srv.requests(key))
    assert.same({ "search_documents,summarize,delete_document", "search_documents,summarize,delete_document" },
                srv.tools(key))
  end)
end)

describe("API key", function()
  local function cli(env, opts)
    local o = remote(opts)
    o.models.default.api_key_env = "WD_SPEC_KEY" -- after remote() removed it
    local policy, audit = T.policy(o)
    local out = T.tmpfile(".out")
    local rc = os.execute(("%s %s run spec/fixtures/lab '[[\"llm\"]]' --user reader --policy %s --json >%s 2>&1")
      :format(env, T.bin, policy, out))
    return rc, T.read(out), T.read(audit) or ""
  end

  it("is sent from the environment variable the policy names", function()
    local key = T.key("auth")
    local rc, out = cli("WD_SPEC_KEY=sk-live-0123456789abcdef", "key=" .. key .. ",expect_key=sk-live-0123456789abcdef")
    assert.is_true(rc)
    assert.truthy(out:find('\\"content\\":\\"done\\"'))
  end)

  it("never reaches a log, an error message or a result, even when the server quotes it", function()
    local secret = "sk-live-fedcba9876543210"
    local rc, out, log = cli("WD_SPEC_KEY=" .. secret, "key=" .. T.key("leak") .. ",expect_key=other")
    assert.is_true(rc) -- the lab completes and reports the error it got
    assert.matches("HTTP 401", out)
    assert.matches("Incorrect API key provided", out)
    assert.is_nil(out:find(secret, 1, true))
    assert.is_nil(log:find(secret, 1, true))
    assert.matches("HTTP 401", log)
  end)

  it("names the missing variable, not a value, and sends nothing", function()
    local key = T.key("nokey")
    local _, out = cli("env -u WD_SPEC_KEY", "key=" .. key)
    assert.matches("WD_SPEC_KEY", out)
    assert.matches("is not set", out)
    assert.equal(0, srv.requests(key))
  end)
end)

describe("--llm URL", function()
  it("refuses a value that is neither mock:FILE nor a URL, naming it", function()
    local res = T.run { agent = "spec/fixtures/lab", query = { { "llm" } }, llm = "ftp://x" }
    assert.matches("%-%-llm 'ftp://x' is neither mock:FILE nor an http%(s%) URL", T.decode(res.result)[1].llm_error)
  end)

  it("points every model at one OpenAI-compatible server, mock models included", function()
    local key = T.key("cliurl")
    local policy = T.policy()
    local out = T.tmpfile(".out")
    local ok = os.execute(("%s run spec/fixtures/lab '[[\"llm\"]]' --user reader --policy %s --llm %s --json >%s 2>&1")
      :format(T.bin, policy, srv.url("key=" .. key), out))
    assert.is_true(ok)
    assert.truthy(T.read(out):find('\\"content\\":\\"done\\"'))
    assert.equal(1, srv.requests(key))
  end)
end)
