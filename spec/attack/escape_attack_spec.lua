-- Attack: a tool that escapes its agent. The model (or the agent's own script) asks for a
-- tool the policy declares but the agent does not list; the engine refuses it before any
-- other check, audits it, and returns the refusal to the agent. Names the model invents
-- never become metric labels.
local T = require("warden.testing")

local SEARCHER = [[
return warden.agent { name = "searcher", tools = { "search_documents" }, max_iterations = 3 }
]]

local CHOOSER = [[
return warden.workflow { name = "chooser", choose = { "search_documents" } }
]]

local function agent_dir(name, text)
  local dir = T.agent(name, { ["agent.lua"] = text })
  -- the shared tools beside the agents, as in agents/
  os.execute(("mkdir -p %s/../tools && cp agents/tools/*.lua agents/research_assistant/tools/* %s/../tools/")
    :format(dir, dir))
  return dir
end

local function default_policy(extra)
  -- (approvals expire at once: without the allow-list the call would wait for a person)
  local o = { users = { wanda = { role = "admin", tier = "premium" } },
              approvals = { expiry = { low = "1s", normal = "1s", high = "1s", critical = "1s" } },
              detectors = { loop = { identical_calls = 0, alternating = false, no_progress_window = 0 } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o, "policies/default.yaml")
end

describe("attack: a tool outside the agent's list", function()
  it("an agent listing only search_documents cannot run run_command, though the policy declares it and the model asks",
    function()
      local pol = default_policy()
      local res, audit = T.run { agent = agent_dir("searcher", SEARCHER), query = "clean up", user = "wanda",
        policy = pol, scenario = {
          { tool_calls = { { name = "run_command", arguments = { argv = { "rm", "-rf", "/tmp/x" } } } } },
          { content = "done" } } }
      assert.equal("completed", res.status, tostring(res.errors[1]))
      assert.equal(1, #res.tool_calls)
      assert.is_false(res.tool_calls[1].success)
      assert.equal("tool 'run_command' is not one of agent searcher's tools", res.tool_calls[1].result)
      local denied = T.events(audit, "authorization_denied")
      assert.equal(1, #denied)
      assert.equal("run_command", denied[1].tool_name)
      assert.is_true(denied[1].tool_undeclared)
      assert.equal(0, #T.events(audit, "approval_requested")) -- refused before any other check
      assert.equal(0, #T.events(audit, "tool_call"))
    end)

  it("a workflow's model choice outside its list is refused the same way", function()
    local res, audit = T.run { agent = agent_dir("chooser", CHOOSER), query = "x", user = "wanda",
      policy = default_policy(), scenario = { { tool_calls = { { name = "run_command", arguments = { argv = { "id" } } } } } } }
    assert.equal("failed", res.status)
    assert.matches("is not one of agent chooser's tools", res.errors[1])
    assert.equal(1, #T.events(audit, "authorization_denied"))
  end)

  it("an agent's script cannot widen its own list by calling ctx:_configure again", function()
    local res = T.run { agent = "spec/fixtures/eval", query = [[local ctx = ...
      local ok, err = pcall(ctx._configure, ctx, { tools = { "echo" } })
      return tostring(ok) .. ":" .. tostring(err):match("configured already") .. ":" .. ctx:call_tool("echo", {}).error]] }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("false:configured already:tool 'echo' is not one of agent eval's tools", res.result)
  end)

  it("a tool name holding NUL or invalid UTF-8 is refused and logged escaped, the log intact", function()
    local res, audit = T.run { agent = "spec/fixtures/eval", query = [[local ctx = ...
      return ctx:call_tool("echo\0run_command", {}).error .. "|" .. ctx:call_tool("\255\254", {}).error]] }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.equal("tool 'echo\\x00run_command' is not one of agent eval's tools|"
      .. "tool '\\xff\\xfe' is not one of agent eval's tools", res.result)
    local denied = T.events(audit, "authorization_denied")
    assert.equal("echo\\x00run_command", denied[1].tool_name)
    assert.equal("\\xff\\xfe", denied[2].tool_name)
    local out, rc = T.sh(T.bin .. " audit verify " .. audit)
    assert.equal(0, rc, out)
  end)
end)

describe("attack: invented tool names and metrics", function()
  it("labels names the policy does not declare (undeclared), however many the model invents", function()
    local key, admin = "inv-key-1", "admin-inv-key"
    local pol = T.policy({ users = { reader = { api_key_sha256 = T.sha256(key) },
                                     admin = { api_key_sha256 = T.sha256(admin) } } })
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, os.getenv("PWD"), agents))
    local srv = T.serve({ policy = pol, agents = agents, workers = 1 })
    local ok, err = pcall(function()
      local plan = {}
      for i = 1, 20 do plan[i] = { "tool", "invented_" .. i, {} } end
      plan[#plan + 1] = { "tool", "format_disk", {} }
      local code = srv.http("POST", "/v1/runs", key, { agent = "lab", input = T.encode(plan), wait = true })
      assert.equal(200, code)
      local c, text = srv.http("GET", "/metrics", admin)
      assert.equal(200, c)
      assert.falsy(text:find("invented_", 1, true))
      assert.falsy(text:find("format_disk", 1, true))
      assert.truthy(text:find('warden_tool_calls_total{tool="(undeclared)",outcome="authorization_denied"} 21', 1, true),
        text:match("warden_tool_calls_total[^\n]*"))
    end)
    srv.stop()
    assert(ok, err)
  end)
end)
