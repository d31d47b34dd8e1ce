-- A run given the conversation before its query (wd_run_opts.history, as an OpenAI client
-- of warden serve sends it): ctx:history() gives it, and the ReAct loop puts it between
-- the agent's own prompt, which stays first, and the query.
local T = require("warden.testing")
local json = require("cjson")

local HISTORY = {
  { role = "system", content = "the client's own instructions" },
  { role = "user", content = "what is 2 + 2?" },
  { role = "assistant", content = "4" },
}

describe("a run given a conversation", function()
  it("hands it to the agent as ctx:history(), a fresh copy each time", function()
    local agent = T.agent("hist" .. T.key(""), { ["agent.lua"] = [[
return warden.agent { name = "hist", run = function(q, ctx)
  local h = ctx:history()
  if h[1] then h[1].content = "changed by the agent" end
  return { query = q, history = ctx:history() }
end }
]] })
    local res = T.run { agent = agent, query = "and 3 + 3?", history = json.encode(HISTORY) }
    assert.equal("completed", res.status, T.encode(res))
    local out = json.decode(res.result)
    assert.equal("and 3 + 3?", out.query)
    assert.same(HISTORY, out.history)
    -- none given: an empty list
    res = T.run { agent = agent, query = "x" }
    assert.equal("completed", res.status, T.encode(res))
    assert.same({}, json.decode(res.result).history)
  end)

  it("is put by the ReAct loop after the agent's prompt and before the query", function()
    local seen
    local ctx = {
      history = function() return { HISTORY[1], HISTORY[2], HISTORY[3] } end,
      llm = function(_, call) seen = call.messages; return { content = "6" } end,
      _json = function() return "{}" end,
    }
    local react = dofile("lua/warden/react.lua")
    assert.equal("6", react.run({ system_prompt = "the agent's prompt" }, "and 3 + 3?", ctx))
    assert.same({ role = "system", content = "the agent's prompt" }, seen[1])
    assert.same(HISTORY, { seen[2], seen[3], seen[4] })
    assert.same({ role = "user", content = "and 3 + 3?" }, seen[5])
    assert.equal(5, #seen)
  end)

  it("ends a run whose conversation is not one, naming what is wrong", function()
    local agent = "spec/fixtures/lab"
    for _, bad in ipairs({
      { '{"role": "user"}', "an array of at most 1000 messages" },
      { '[{"role": "tool", "content": "x"}]', "history%[0%]: {role: system, user or assistant" },
      { '[{"role": "user", "content": 5}]', "history%[0%]" },
      { json.encode((function() local t = {} for i = 1, 1001 do t[i] = HISTORY[2] end return t end)()),
        "at most 1000" },
      { "[", "history: " },
    }) do
      local res = T.run { agent = agent, query = "[]", history = bad[1] }
      assert.equal("failed", res.status, bad[1])
      assert.matches(bad[2], res.errors[1])
    end
  end)
end)
