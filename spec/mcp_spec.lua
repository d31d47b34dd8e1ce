-- MCP servers' tools under warden's policy (docs/mcp.md): the official
-- server-filesystem (installed by make deps in tools/npm) started by the engine over
-- stdio; its tools are files__TOOL, declared by a pattern rule, checked by the pipeline
-- before the server sees a call.
local T = require("warden.testing")

local ROOT = os.getenv("PWD")
local FS = ROOT .. "/tools/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"

-- a directory the server may serve, with one file in it
local function space()
  local dir = T.tmpdir() .. "/fsroot" .. T.key("")
  os.execute("mkdir -p " .. dir)
  T.write(dir .. "/notes.txt", "the notes say hello\n")
  return dir
end

local function policy(dir, extra)
  local o = {
    mcp = { servers = { files = { command = { "node", FS, dir }, timeout_ms = "20s" } } },
    tools = {
      ["files__*"] = { permission = "read", risk = "low", timeout_ms = "10s" },
      ["files__write*"] = { permission = "admin", risk = "high", category = "write" },
    },
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o)
end

local AGENT = [[
return warden.agent { name = "fs", model = "default",
  tools = { "files__read_text_file", "files__write_file", "files__list_directory" } }
]]

describe("MCP servers as tool sources", function()
  it("reads a file through server-filesystem under the policy", function()
    assert.is_truthy(T.read(FS), FS .. " is missing: run make deps")
    local dir = space()
    local pol = policy(dir)
    local res, audit = T.run { agent = T.agent("fs", { ["agent.lua"] = AGENT }), policy = pol, user = "reader",
      query = "what do the notes say?",
      scenario = T.script():call("files__read_text_file", { path = dir .. "/notes.txt" }):say("They say hello.") }
    assert.equal("completed", res.status, T.encode(res))
    local call = res.tool_calls[1]
    assert.equal("files__read_text_file", call.name)
    assert.is_true(call.success, call.result)
    assert.matches("the notes say hello", call.result)
    local rec = T.events(audit, "tool_call")[1]
    assert.equal("files__read_text_file", rec.tool_name)
    assert.is_true(rec.success)
  end)

  it("under policies/default.yaml plus an mcp section: reads inside, a write outside is refused", function()
    local dir = space()
    local outside = T.tmpdir() .. "/beside" .. T.key("")
    os.execute("mkdir -p " .. outside)
    local pol = T.policy({
      mcp = { servers = { files = { command = { "node", FS, dir, outside }, timeout_ms = "20s" } } },
      tools = { ["files__*"] = { permission = "read", risk = "low", category = "read", allowed_resources = { dir },
                  path_arguments = { "path" } },
                ["files__write*"] = { permission = "read", risk = "low", category = "write",
                  allowed_resources = { dir }, path_arguments = { "path" } } } }, "policies/default.yaml")
    local res, audit = T.run { agent = T.agent("fsd", { ["agent.lua"] = AGENT }), policy = pol, user = "bob",
      query = "read, then write beside", scenario = T.script()
        :call("files__read_text_file", { path = dir .. "/notes.txt" })
        :call("files__write_file", { path = outside .. "/planted.txt", content = "pwned" }):say("done") }
    assert.equal("completed", res.status, T.encode(res))
    assert.is_true(res.tool_calls[1].success, res.tool_calls[1].result)
    assert.matches("the notes say hello", res.tool_calls[1].result)
    assert.is_false(res.tool_calls[2].success)
    assert.matches("outside the allowed resources", res.tool_calls[2].result, 1, true)
    assert.is_nil(T.read(outside .. "/planted.txt")) -- the file system unchanged
    local refused
    for _, r in ipairs(T.records(audit)) do
      if r.tool_name == "files__write_file" and r.success == false then refused = r end
    end
    assert.truthy(refused, "the refusal audited")
    assert.equal("bob", refused.user_id)
  end)

  it("refuses a write the user's role does not allow, before the server sees it", function()
    local dir = space()
    local pol = policy(dir)
    local res, audit = T.run { agent = T.agent("fs2", { ["agent.lua"] = AGENT }), policy = pol, user = "reader",
      query = "write it", scenario = T.script():call("files__write_file",
        { path = dir .. "/evil.txt", content = "pwned" }):say("done") }
    assert.is_false(res.tool_calls[1].success)
    assert.matches("requires the 'admin' role", res.tool_calls[1].result)
    assert.is_nil(T.read(dir .. "/evil.txt")) -- the file system shows nothing written
    assert.equal(1, #T.events(audit, "authorization_denied"))
  end)

  it("checks arguments against the server's own schema before calling it", function()
    local dir = space()
    local pol = policy(dir)
    local res = T.run { agent = T.agent("fs3", { ["agent.lua"] = AGENT }), policy = pol, user = "reader",
      query = "read", scenario = T.script():call("files__read_text_file", { nopath = 1 }):say("no") }
    assert.is_false(res.tool_calls[1].success)
    assert.matches("path", res.tool_calls[1].result)
  end)

  it("checks arguments against the policy's schema too: the policy narrows the server's", function()
    local dir = space()
    T.write(dir .. "/notes.md", "markdown\n")
    local pol = policy(dir, { tools = { ["files__*"] = { permission = "read", risk = "low",
      schema = { properties = { path = { type = "string", pattern = "\\.txt$", maxLength = 4096 } } } } } })
    local function read(path)
      local res = T.run { agent = T.agent("fsn" .. T.key(""), { ["agent.lua"] = AGENT }), policy = pol,
        user = "reader", query = "read", scenario = T.script():call("files__read_text_file", { path = path }):say("ok") }
      return res.tool_calls[1]
    end
    assert.is_true(read(dir .. "/notes.txt").success)
    local md = read(dir .. "/notes.md")
    assert.is_false(md.success)
    assert.matches("invalid arguments for tool 'files__read_text_file' (the policy's schema): /path:", md.result, 1,
      true)
    assert.is_false(read(dir .. "/" .. ("x"):rep(5000) .. ".txt").success)
  end)

  it("turns the server's isError into a failed call with its text", function()
    local dir = space()
    local pol = policy(dir)
    local res = T.run { agent = T.agent("fs4", { ["agent.lua"] = AGENT }), policy = pol, user = "reader",
      query = "read", scenario = T.script():call("files__read_text_file", { path = "/etc/passwd" }):say("no") }
    assert.is_false(res.tool_calls[1].success)
    assert.matches("[Aa]ccess denied", res.tool_calls[1].result) -- the server's own refusal, outside its root
  end)

  it("confines path arguments to allowed_resources before the server sees them", function()
    local dir = space()
    local outside = T.tmpdir() .. "/outside" .. T.key("")
    os.execute("mkdir -p " .. outside)
    T.write(outside .. "/secret.txt", "not yours\n")
    local rules = { permission = "read", risk = "low", allowed_resources = { dir },
      path_arguments = { "path", "paths", "source", "destination" } }
    -- the server itself may serve both directories: only warden's rule stands between
    local pol = T.policy({
      mcp = { servers = { files = { command = { "node", FS, dir, outside }, timeout_ms = "20s" } } },
      tools = { ["files__*"] = rules,
        ["files__write*"] = { permission = "read", risk = "low", category = "write", allowed_resources = { dir },
          path_arguments = { "path" } } } })
    local agent = T.agent("fs6", { ["agent.lua"] = [[
return warden.agent { name = "fs", model = "default",
  tools = { "files__read_text_file", "files__read_multiple_files", "files__write_file", "files__move_file" } }
]] })
    local function call(tool, args)
      local res = T.run { agent = agent, policy = pol, user = "reader", query = "go",
        scenario = T.script():call(tool, args):say("done") }
      return res.tool_calls[1]
    end
    assert.is_true(call("files__read_text_file", { path = dir .. "/notes.txt" }).success)
    for _, bad in ipairs({
      { "files__read_text_file", { path = outside .. "/secret.txt" } },
      { "files__read_text_file", { path = dir .. "/../" .. outside:match("[^/]+$") .. "/secret.txt" } },
      { "files__read_multiple_files", { paths = { dir .. "/notes.txt", outside .. "/secret.txt" } } },
      { "files__write_file", { path = outside .. "/planted.txt", content = "x" } },
      { "files__move_file", { source = outside .. "/secret.txt", destination = dir .. "/stolen.txt" } },
    }) do
      local c = call(bad[1], bad[2])
      assert.is_false(c.success, bad[1])
      assert.matches("outside the allowed resources", c.result, 1, true)
    end
    assert.is_nil(T.read(outside .. "/planted.txt"))
    assert.is_nil(T.read(dir .. "/stolen.txt"))
    assert.equal("not yours\n", T.read(outside .. "/secret.txt"))
  end)

  it("waits for a person before a write that needs approval, then runs it", function()
    local dir = space()
    local pol = policy(dir, { tools = {
      ["files__*"] = { permission = "read", risk = "low" },
      ["files__write_file"] = { permission = "read", risk = "high", category = "write", requires_approval = true },
    }, approvals = { routes = { high = { "lead" } } } })
    local run = T.start { agent = T.agent("fs7", { ["agent.lua"] = AGENT }), policy = pol, user = "reader",
      query = "write", scenario = T.script():call("files__write_file",
        { path = dir .. "/approved.txt", content = "after a yes" }):say("written") }
    local req = run.pending()
    assert.equal("files__write_file", req.tool)
    assert.is_nil(T.read(dir .. "/approved.txt")) -- nothing before the decision
    T.approve(run, req)
    local res = run.result()
    assert.equal("completed", res.status)
    assert.is_true(res.tool_calls[1].success, res.tool_calls[1].result)
    assert.equal("after a yes", T.read(dir .. "/approved.txt"))
  end)

  it("says why a tool of a server that did not start cannot be loaded", function()
    local pol = T.policy({ mcp = { servers = { broken = { command = { "/no/such/server" }, timeout_ms = "2s" } } },
      tools = { ["broken__*"] = { permission = "read" } } })
    local agent = T.agent("fs5", { ["agent.lua"] =
      'return warden.agent { name = "b", model = "default", tools = { "broken__x" } }' })
    local res = T.run { agent = agent, policy = pol, user = "reader", query = "hi",
      scenario = T.script():say("hi") }
    assert.equal("failed", res.status)
    assert.matches("broken__x.*mcp server broken exited with status 127: .*cannot run /no/such/server", res.errors[1])
  end)
end)

-- a server that crashes, hangs, lies or refuses (spec/fixtures/mcp/flaky.js)
describe("MCP servers that misbehave", function()
  local FLAKY = ROOT .. "/spec/fixtures/mcp/flaky.js"
  local SCRIPT = [[
return warden.agent { name = "flaky",
  tools = { "flaky__echo", "flaky__boom", "flaky__hang", "flaky__garbage", "flaky__fail", "flaky__big",
    "flaky__t9", "flaky__deep", "flaky__ask" },
  run = function(q, ctx)
    local out = {}
    for step in q:gmatch("%S+") do
      if step:match("^sleep") then
        ctx:sleep(tonumber(step:sub(6)))
      else
        local r = ctx:call_tool("flaky__" .. step, { text = step })
        out[#out + 1] = step .. ": " .. (type(r) == "table" and (r.error or r.text) or tostring(r))
      end
    end
    return table.concat(out, "\n")
  end }
]]
  local function run(query, extra)
    local o = { mcp = { servers = { flaky = { command = { "node", FLAKY }, timeout_ms = "20s" } } },
      tools = { ["flaky__*"] = { permission = "read", risk = "low", timeout_ms = 700 } },
      defaults = { breaker = { failure_threshold = 2, open_ms = 60000 }, retry = { max_retries = 0 } } }
    for k, v in pairs(extra or {}) do o[k] = v end
    local res, audit = T.run { agent = T.agent("flaky" .. T.key(""), { ["agent.lua"] = SCRIPT }),
      policy_overrides = o, user = "reader", query = query }
    return res, audit
  end

  it("restarts a server that crashed; the call that crashed it fails and the run goes on", function()
    local res, audit = run("boom sleep900 echo")
    assert.equal("completed", res.status, T.encode(res))
    assert.matches("boom: .*mcp server flaky exited with status 1: flaky: boom, as asked", res.result)
    assert.matches("echo: echo echo", res.result) -- the restarted server answered
    -- its stderr is kept beside the audit log
    local log = T.read(audit:match("^(.*)/[^/]*$") .. "/mcp-flaky.stderr.log")
    assert.matches("flaky: boom, as asked", log)
  end)

  it("opens the server's breaker after it failed twice, and its tools fail at once", function()
    local res, audit = run("boom sleep900 boom sleep900 echo")
    assert.equal("completed", res.status)
    assert.matches("echo: .*circuit open for mcp:flaky", res.result)
    local opened = T.events(audit, "breaker_opened")
    local names = {}
    for _, o in ipairs(opened) do names[o.breaker] = true end
    assert.is_true(names["mcp:flaky"])
  end)

  it("times out a call that never comes back, tells the server, and ends the run with a result", function()
    local res = run("hang echo")
    assert.equal("completed", res.status)
    assert.matches("hang: tool 'flaky__hang' timed out after 700 ms", res.result)
    assert.matches("echo: echo echo", res.result) -- the server still answers the next
  end)

  it("drops an answer nested 5,000 deep unread (the JSON reader stops at 2,048), and goes on", function()
    local res = run("deep echo")
    assert.equal("completed", res.status, T.encode(res))
    -- a line that cannot be read is no answer: the call ends at its deadline
    assert.matches("deep: tool 'flaky__deep' timed out after 700 ms", res.result)
    assert.matches("echo: echo echo", res.result)
  end)

  it("answers what a server asks of it: ping, and no to anything else", function()
    local res = run("ask")
    assert.matches("ask: sampling: error %-32601, ping: ok", res.result)
  end)

  it("finds tools on every page of a list given three at a time", function()
    local res = run("t9 echo")
    assert.equal("completed", res.status, T.encode(res))
    assert.matches("t9: echo t9", res.result) -- the last tool of the last page (the eighth)
  end)

  it("refuses a result larger than a tool may give, and goes on", function()
    local res = run("big echo")
    assert.equal("completed", res.status)
    assert.matches("big: tool 'flaky__big' returned more than 1048576 bytes", res.result)
    assert.matches("echo: echo echo", res.result)
  end)

  it("ignores lines that are not JSON-RPC, and reads isError as the tool's refusal", function()
    local res = run("garbage fail")
    assert.matches("garbage: echo garbage", res.result)
    assert.matches("fail: no, said the tool", res.result)
  end)
end)

-- a stdio server inside bubblewrap: what its sandbox binds, and nothing else of the host
describe("MCP servers inside a sandbox", function()
  local FLAKY = ROOT .. "/spec/fixtures/mcp/flaky.js"
  local listener, port
  setup(function()
    local f = T.tmpfile(".port")
    local h = io.popen(("env -u LD_PRELOAD node -e \"const s = require('net').createServer((c) => c.end('hi'));"
      .. " s.listen(0, '127.0.0.1', () => console.log(s.address().port))\" >%s 2>&1 & echo $!"):format(f))
    listener = h:read("l")
    h:close()
    port = T.wait_for(function() return (T.read(f) or ""):match("^(%d+)") end, "a listener on the host's loopback")
  end)
  teardown(function() if listener then os.execute("kill " .. listener .. " 2>/dev/null") end end)

  -- runs the steps {tool, text} against the server named `server` of the policy
  local function run(servers, server, steps)
    local script = ([[
return warden.agent { name = "jail", tools = { "SRV__peek", "SRV__plant", "SRV__dial", "SRV__procs", "SRV__echo" },
  run = function(q, ctx)
    local out = {}
    for tool, text in q:gmatch("(%S+)=(%S+)") do
      local r = ctx:call_tool("SRV__" .. tool, { text = text })
      out[#out + 1] = type(r) == "table" and (r.error or r.text) or tostring(r)
    end
    return out
  end }
]]):gsub("SRV", server)
    local q = {}
    for _, st in ipairs(steps) do q[#q + 1] = st[1] .. "=" .. st[2] end
    local res = T.run { agent = T.agent("jail" .. T.key(""), { ["agent.lua"] = script }),
      policy_overrides = { mcp = { servers = servers },
        tools = { [server .. "__*"] = { permission = "read", risk = "low", timeout_ms = 5000 } } },
      user = "reader", query = table.concat(q, " ") }
    assert.equal("completed", res.status, T.encode(res))
    return T.decode(res.result)
  end

  it("sees only what its sandbox binds: no other file, no write outside, no host network", function()
    local secret = T.tmpdir() .. "/secret" .. T.key("")
    os.execute("mkdir -p " .. secret)
    T.write(secret .. "/key.txt", "host secret\n")
    local work = T.tmpdir() .. "/work" .. T.key("")
    os.execute("mkdir -p " .. work)
    T.write(work .. "/in.txt", "inside\n")
    local steps = { { "peek", secret .. "/key.txt" }, { "peek", work .. "/in.txt" }, { "plant", work .. "/new.txt" },
      { "plant", secret .. "/planted.txt" }, { "dial", port }, { "peek", "/etc/passwd" }, { "procs", "x" } }
    -- the same server without a sandbox reaches all of it: the host is there to reach
    local free = run({ loose = { command = { "node", FLAKY } } }, "loose", steps)
    assert.equal("host secret\n", free[1])
    assert.equal("connected", free[5])
    os.remove(secret .. "/planted.txt")
    os.remove(work .. "/new.txt")
    local jailed = run({ jailed = { command = { "node", FLAKY },
      sandbox = { allowed_resources = { FLAKY }, writable_resources = { work } } } }, "jailed", steps)
    assert.equal("error ENOENT", jailed[1]) -- not in its world at all
    assert.equal("inside\n", jailed[2])
    assert.equal("written", jailed[3])
    assert.equal("planted\n", T.read(work .. "/new.txt"))
    assert.matches("^error E", jailed[4])
    assert.is_nil(T.read(secret .. "/planted.txt"))
    assert.matches("^error E", jailed[5]) -- its own loopback, not the host's
    assert.equal("error ENOENT", jailed[6])
    assert.is_true(tonumber(jailed[7]) <= 3, jailed[7]) -- bwrap and node: no other process of the host
    -- a symlink planted in its writable directory, pointing at the host's secret: followed
    -- inside the sandbox, where that path does not exist
    os.execute(("ln -sf %s/key.txt %s/link.txt"):format(secret, work))
    local via = run({ jailed = { command = { "node", FLAKY },
      sandbox = { allowed_resources = { FLAKY }, writable_resources = { work } } } }, "jailed",
      { { "peek", work .. "/link.txt" }, { "plant", work .. "/link.txt" } })
    assert.equal("error ENOENT", via[1])
    assert.equal("host secret\n", T.read(secret .. "/key.txt")) -- the write through it did not reach it
  end)

  it("reads only what allowed_resources binds, and says when bubblewrap cannot start it", function()
    local work = T.tmpdir() .. "/ro" .. T.key("")
    os.execute("mkdir -p " .. work)
    T.write(work .. "/in.txt", "read only\n")
    local out = run({ ro = { command = { "node", FLAKY }, sandbox = { allowed_resources = { FLAKY, work } } } }, "ro",
      { { "peek", work .. "/in.txt" }, { "plant", work .. "/x.txt" } })
    assert.equal("read only\n", out[1])
    assert.matches("^error E", out[2])
    assert.is_nil(T.read(work .. "/x.txt"))
    -- a sandbox that does not hold the server's own script: it cannot start, and says so
    local audit = T.tmpfile(".jsonl")
    local res = T.run { agent = T.agent("blind" .. T.key(""), { ["agent.lua"] =
      'return warden.agent { name = "blind", tools = { "blind__echo" } }' }), audit = audit,
      policy_overrides = { mcp = { servers = { blind = { command = { "node", FLAKY }, sandbox = true } } },
        tools = { ["blind__*"] = { permission = "read", risk = "low" } } }, user = "reader", query = "hi" }
    assert.equal("failed", res.status)
    assert.matches("tool 'blind__echo': mcp server blind exited with status 1", res.errors[1], 1, true)
    local log = T.read(audit:match("^(.*)/[^/]*$") .. "/mcp-blind.stderr.log")
    assert.matches("Cannot find module '" .. FLAKY .. "'", log, 1, true)
  end)
end)

-- a server over Streamable HTTP: the official server-everything in its HTTP mode
describe("MCP servers over Streamable HTTP", function()
  local EVERYTHING = ROOT .. "/tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  local pid, port

  setup(function()
    math.randomseed(os.time() + tonumber((T.sh("echo $$")):match("%d+")))
    for _ = 1, 10 do
      port = math.random(20000, 30000)
      local log = T.tmpfile(".log")
      local h = io.popen(("PORT=%d node %s streamableHttp >%s 2>&1 & echo $!"):format(port, EVERYTHING, log))
      pid = h:read("l")
      h:close()
      local up = T.wait_for(function()
        local text = T.read(log) or ""
        return (text:find("listening on port", 1, true) and "up") or (text:find("in use", 1, true) and "taken")
      end, "server-everything over HTTP", 1000)
      if up == "up" then return end
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
    error("no free port for server-everything")
  end)
  teardown(function() if pid then os.execute("kill " .. pid .. " 2>/dev/null") end end)

  it("lists its tools and calls one through the pipeline, in a session", function()
    local agent = T.agent("every" .. T.key(""), { ["agent.lua"] = [[
return warden.agent { name = "every", tools = { "every__echo", "every__get-sum" }, run = function(q, ctx)
  local a = ctx:call_tool("every__echo", { message = q })
  local b = ctx:call_tool("every__get-sum", { a = 2, b = 3 })
  return (a.text or a.error) .. " | " .. (b.text or b.error)
end }
]] })
    local res = T.run { agent = agent, user = "reader", query = "over http",
      policy_overrides = {
        mcp = { servers = { every = { url = ("http://127.0.0.1:%d/mcp"):format(port), timeout_ms = "15s",
          headers = { ["X-Warden-Spec"] = "yes" } } } },
        tools = { ["every__*"] = { permission = "read", risk = "low" } } } }
    assert.equal("completed", res.status, T.encode(res))
    assert.matches("over http", res.result)
    assert.matches("5", res.result)
  end)

  it("refuses a tool the policy does not cover, and says when the server cannot be reached", function()
    local agent = T.agent("every2" .. T.key(""), { ["agent.lua"] = [[
return warden.agent { name = "every2", tools = { "every__echo" }, run = function(q, ctx)
  local a = ctx:call_tool("every__echo", { message = q })
  return a.error or a.text
end }
]] })
    local res = T.run { agent = agent, user = "reader", query = "x",
      policy_overrides = { mcp = { servers = { every = { url = ("http://127.0.0.1:%d/mcp"):format(port) } } } } }
    assert.equal("tool 'every__echo' is not declared in the policy: blocked", res.result)
    local dead = T.run { agent = agent, user = "reader", query = "x", policy_overrides = {
      mcp = { servers = { every = { url = "http://127.0.0.1:1/mcp", timeout_ms = "2s" } } },
      tools = { ["every__*"] = { permission = "read" } } } }
    assert.equal("failed", dead.status)
    assert.matches("every__echo.*mcp server every", dead.errors[1])
  end)
end)

-- what server-everything's tools give back, over stdio
describe("MCP results", function()
  local EVERYTHING = ROOT .. "/tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  local SCRIPT = [[
local json = require("cjson")
return warden.agent { name = "results",
  tools = { "every__get-tiny-image", "every__get-structured-content", "every__trigger-long-running-operation" },
  run = function(q, ctx)
    local plan = json.decode(q)
    local r = ctx:call_tool(plan[1], plan[2])
    return json.encode(r)
  end }
]]
  local function call(tool, args, timeout)
    local res = T.run { agent = T.agent("results" .. T.key(""), { ["agent.lua"] = SCRIPT }), user = "reader",
      query = T.encode({ tool, args }), policy_overrides = {
        mcp = { servers = { every = { command = { "node", EVERYTHING, "stdio" }, timeout_ms = "20s" } } },
        tools = { ["every__*"] = { permission = "read", risk = "low", timeout_ms = timeout or 10000 } } } }
    assert.equal("completed", res.status, T.encode(res))
    return T.decode(res.result)
  end

  it("gives image blocks and structured content as tables", function()
    local img = call("every__get-tiny-image", {})
    local kinds = {}
    for _, c in ipairs(img.content) do kinds[c.type] = c end
    assert.is_truthy(kinds.image, T.encode(img))
    assert.equal("image/png", kinds.image.mimeType)
    assert.is_true(#kinds.image.data > 20)
    local st = call("every__get-structured-content", { location = "New York" })
    assert.is_number(st.structuredContent.temperature)
  end)

  it("waits for a long operation within the tool's time, and cuts one that takes longer", function()
    local done = call("every__trigger-long-running-operation", { duration = 1, steps = 2 })
    assert.matches("[Cc]ompleted", done.text)
    local cut = call("every__trigger-long-running-operation", { duration = 5, steps = 5 }, 800)
    assert.equal("tool 'every__trigger-long-running-operation' timed out after 800 ms", cut.error)
  end)
end)

describe("agents that list MCP tools", function()
  it("pass warden check, which leaves their tools to the server's list", function()
    local pol = T.policy({ mcp = { servers = { files = { command = { "node", FS, "/tmp" } } } },
      tools = { ["files__*"] = { permission = "read" } } })
    local dir = T.agent("checked" .. T.key(""), { ["agent.lua"] = AGENT })
    local out, rc = T.sh(("%s check %s --policy %s"):format(T.bin, dir, pol))
    assert.equal(0, rc, out)
    -- a tool of no server is still a script that must exist
    local dir2 = T.agent("checked2" .. T.key(""), { ["agent.lua"] =
      'return warden.agent { name = "c2", model = "default", tools = { "files_read" } }' })
    local pol2 = T.policy({ tools = { files_read = { permission = "read" } } })
    out, rc = T.sh(("%s check %s --policy %s"):format(T.bin, dir2, pol2))
    assert.equal(2, rc)
    assert.matches("'files_read': no script", out)
  end)
end)
