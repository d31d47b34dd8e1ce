-- Sessions (docs/lua-api.md, Sessions): runs given the same session id share their
-- conversation through the state store, owned by the user who began it, capped by the
-- policy (oldest turns first) and expiring after sessions.ttl.
local T = require("warden.testing")

-- an agent that answers with the conversation it was given, then the query
local function echo_agent()
  local dir = T.tmpfile("-agent")
  os.execute("mkdir -p " .. dir)
  T.write(dir .. "/agent.lua", [[
return warden.agent { name = "echo", run = function(q, ctx)
  local parts = {}
  for _, m in ipairs(ctx:history()) do parts[#parts + 1] = m.role .. ":" .. m.content end
  parts[#parts + 1] = "now:" .. q
  return table.concat(parts, "|")
end }
]])
  return dir
end

describe("sessions", function()
  local agent, policy
  before_each(function()
    agent = echo_agent()
    policy = T.policy({ users = { reader = { role = "read" }, other = { role = "read" } },
                        sessions = { max_messages = 4, ttl = "1m" } })
  end)
  after_each(function() T.clock(nil) end)

  local function run(query, session, user, audit)
    return T.run { agent = agent, query = query, session = session, user = user or "reader", policy = policy,
                   audit = audit }
  end

  it("gives a second run in a session the first run's turns", function()
    assert.equal("now:a", run("a", "s1").result)
    assert.equal("user:a|assistant:now:a|now:b", run("b", "s1").result)
  end)

  it("keeps runs without a session apart", function()
    run("a", nil)
    assert.equal("now:b", run("b", nil).result)
  end)

  it("refuses another user's session, and says so in the log", function()
    run("a", "s2")
    local res, audit = run("b", "s2", "other")
    assert.equal("unauthorized", res.status)
    assert.matches("session s2 belongs to another user", res.errors[#res.errors], 1, true)
    local denied = T.events(audit, "authorization_denied")
    assert.equal(1, #denied)
    -- the owner's conversation is untouched by the refusal
    assert.equal("user:a|assistant:now:a|now:c", run("c", "s2").result)
  end)

  it("drops the oldest turns past sessions.max_messages", function()
    run("a", "s3")
    run("b", "s3")
    -- four messages kept: the turn of "a" is gone once the turn of "c" is added
    run("c", "s3")
    local b = "user:a|assistant:now:a|now:b"
    local c = "user:a|assistant:now:a|user:b|assistant:" .. b .. "|now:c"
    assert.equal("user:b|assistant:" .. b .. "|user:c|assistant:" .. c .. "|now:d", run("d", "s3").result)
  end)

  it("drops the oldest turns past sessions.max_tokens", function()
    policy = T.policy({ users = { reader = { role = "read" } }, sessions = { max_tokens = 100 } })
    run(("x"):rep(200), "s4") -- a turn of some 140 tokens: kept, as the newest always is
    assert.equal("user:" .. ("x"):rep(200) .. "|assistant:now:" .. ("x"):rep(200) .. "|now:y", run("y", "s4").result)
    -- the next turn pushes the big one out
    assert.equal("user:y|assistant:user:" .. ("x"):rep(200) .. "|assistant:now:" .. ("x"):rep(200) .. "|now:y|now:z",
                 run("z", "s4").result)
  end)

  it("forgets a session sessions.ttl after its last turn, and then anyone may begin it anew", function()
    T.clock(1000000000)
    run("a", "s5")
    T.advance(59000)
    assert.equal("user:a|assistant:now:a|now:b", run("b", "s5").result)
    T.advance(61000)
    local res = run("c", "s5", "other")
    assert.equal("completed", res.status)
    assert.equal("now:c", res.result)
  end)

  it("lets an agent's summarize hook shorten a session past the caps instead of dropping turns", function()
    local dir = T.tmpfile("-agent")
    os.execute("mkdir -p " .. dir)
    T.write(dir .. "/agent.lua", [[
return warden.agent { name = "echo",
  summarize = function(turns, ctx)
    return { { role = "system", content = "summary of " .. #turns .. " messages for " .. ctx.user_id } }
  end,
  run = function(q, ctx)
    local parts = {}
    for _, m in ipairs(ctx:history()) do parts[#parts + 1] = m.role .. ":" .. m.content:sub(1, 40) end
    parts[#parts + 1] = "now:" .. q
    return table.concat(parts, "|")
  end }
]])
    agent = dir
    for _, q in ipairs({ "a", "b", "c" }) do run(q, "s6") end
    -- six messages kept (the hook will shorten them), past max_messages 4: shortened now
    assert.equal("system:summary of 6 messages for reader|now:d", run("d", "s6").result)
    -- and kept so: the summary and the new turn
    assert.equal("system:summary of 6 messages for reader|user:d|assistant:system:summary of 6 messages for " ..
                 "reader||now:e", run("e", "s6").result)
  end)

  it("fails the run whose summarize hook returns no turns", function()
    local dir = T.tmpfile("-agent")
    os.execute("mkdir -p " .. dir)
    T.write(dir .. "/agent.lua", [[
return warden.agent { name = "echo", summarize = function() return { { role = "wizard", content = 1 } } end,
  run = function(q) return q end }
]])
    agent = dir
    for _, q in ipairs({ "a", "b", "c" }) do run(q, "s7") end
    local res = run("d", "s7")
    assert.equal("failed", res.status)
    assert.matches("summarize must return the turns to keep: [1] must be {role", res.errors[#res.errors], 1, true)
  end)

  it("refuses a sessions section it does not know", function()
    local path = T.write(T.tmpfile(".yaml"), "version: 1\nsessions:\n  max_mesages: 3\n")
    local out, rc = T.sh(("%s policy check %s"):format(T.bin, path))
    assert.equal(2, rc)
    assert.matches("unknown key 'max_mesages' in sessions; did you mean 'max_messages'?", out, 1, true)
  end)
end)
