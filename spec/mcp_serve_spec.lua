-- warden as an MCP server (docs/mcp.md): `warden serve`'s /mcp, driven by the official
-- @modelcontextprotocol/sdk client (spec/fixtures/mcp/client.mjs, installed by make deps
-- in tools/npm) and, for what that client never sends, by curl.
local T = require("warden.testing")
local json = require("cjson")

local ROOT = os.getenv("PWD")
local FS = ROOT .. "/tools/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
local CLIENT = ROOT .. "/spec/fixtures/mcp/client.mjs"
local KEYS = { reader = "reader-key-1", writer = "writer-key-2", admin = "admin-key-3" }

-- the served policy: the test users with keys, server-filesystem over a directory of
-- its own, its reads for readers inside `root` and its writes for admins only
local function setup_server(extra, workers)
  local root = T.tmpdir() .. "/served" .. T.key("")
  os.execute("mkdir -p " .. root)
  T.write(root .. "/notes.txt", "the notes say hello\n")
  local o = {
    users = {},
    mcp = { servers = { files = { command = { "node", FS, root }, timeout_ms = "20s" } } },
    tools = {
      ["files__*"] = { permission = "read", risk = "low", allowed_resources = { root }, path_arguments = { "path" },
        schema = { properties = { path = { maxLength = 4096 } } } },
      ["files__write*"] = { permission = "admin", risk = "high", category = "write", allowed_resources = { root },
        path_arguments = { "path" } },
    },
    approvals = { routes = { high = { "lead" } } },
  }
  for user, key in pairs(KEYS) do o.users[user] = { api_key_sha256 = T.sha256(key) } end
  for k, v in pairs(extra or {}) do o[k] = v end
  local pol, audit = T.policy(o)
  local agents = T.tmpfile("-agents")
  os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab && ln -s %s/spec/fixtures/tools %s/tools"):format(
    agents, ROOT, agents, ROOT, agents))
  local srv = T.serve({ policy = pol, agents = agents, workers = workers })
  srv.root, srv.policy, srv.audit = root, pol, audit
  return srv
end

local function decode_lines(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local ok, v = pcall(json.decode, line)
    if ok then out[#out + 1] = v end
  end
  return out
end

-- the SDK client's results, one table per line, after it ran ops with key
local function client(srv, key, ops)
  local out = T.sh(("env -u LD_PRELOAD node %s %s/mcp '%s' '%s'"):format(CLIENT, srv.url, key or "",
    json.encode(ops)))
  return decode_lines(out)
end

-- the same in the background: lines() reads what it printed so far
local function client_bg(srv, key, ops)
  local f = T.tmpfile(".out")
  os.execute(("env -u LD_PRELOAD node %s %s/mcp '%s' '%s' >%s 2>&1 &"):format(CLIENT, srv.url, key or "",
    json.encode(ops), f))
  return { lines = function() return decode_lines(T.read(f)) end, file = f }
end

local function find(lines, op, name)
  for _, l in ipairs(lines) do
    if l.op == op and (not name or l.name == name) then return l end
  end
end

local function names(list)
  local s = {}
  for _, t in ipairs(list.tools) do s[t.name] = t end
  return s
end

local function text_of(result) return result.content and result.content[1] and result.content[1].text end

describe("warden as an MCP server: the official SDK client", function()
  local srv
  setup(function() srv = setup_server() end)
  teardown(function() if srv then srv.stop() end end)

  it("sees only what its key may use: a reader's list is not an admin's", function()
    local reader = names(find(client(srv, KEYS.reader, { { op = "list" } }), "list"))
    local admin = names(find(client(srv, KEYS.admin, { { op = "list" } }), "list"))
    -- script tools by their rule's role; the server's tools by the pattern rules
    assert.truthy(reader.echo)
    assert.truthy(reader.files__read_text_file)
    assert.is_nil(reader.write_tool)
    assert.is_nil(reader.files__write_file)
    assert.is_nil(reader.admin_tool)
    assert.truthy(admin.write_tool)
    assert.truthy(admin.files__write_file)
    assert.truthy(admin.admin_tool)
    -- their schemas: the script's parameters, the server's inputSchema
    -- a server tool's: its own, and the policy's narrowing beside it
    local both = admin.files__read_text_file.inputSchema.allOf
    assert.same({ "path" }, both[1].required)
    assert.equal(4096, both[2].properties.path.maxLength)
    assert.equal("object", reader.echo.inputSchema.type)
    -- a tool the policy does not declare is listed for no one (undeclared_tool has no rule)
    for n in pairs(admin) do assert.truthy(n:match("^files__") or n:match("^agent__") or n ~= "") end
    -- agents, as tools taking {input}
    assert.truthy(reader.agent__lab)
    assert.same({ "input" }, reader.agent__lab.inputSchema.required)
  end)

  it("calls a tool through the pipeline, audited as a run of the user", function()
    local lines = client(srv, KEYS.reader, { { op = "call", name = "echo", arguments = { text = "over mcp" } } })
    local call = find(lines, "call", "echo")
    assert.truthy(call and call.result, T.encode(lines))
    assert.is_nil(call.result.isError)
    assert.same({ echo = { text = "over mcp" } }, call.result.structuredContent)
    local run_id = call.result._meta["warden/run_id"]
    local started = T.wait_for(function()
      for _, r in ipairs(T.records(srv.audit)) do
        if r.event == "run_started" and r.run_id == run_id then return r end
      end
    end, "the run's records in the log")
    assert.equal("reader", started.user_id)
    assert.equal("mcp", started.agent)
    assert.equal("tool call", started.reason)
    local rec = T.wait_for(function()
      for _, r in ipairs(T.records(srv.audit)) do
        if r.event == "tool_call" and r.run_id == run_id then return r end
      end
    end, "the tool_call record")
    assert.equal("echo", rec.tool_name)
    assert.is_true(rec.success)
  end)

  it("is refused a tool its role may not call, with the reason, audited", function()
    local lines = client(srv, KEYS.reader, {
      { op = "call", name = "write_tool", arguments = {} },
      { op = "call", name = "files__write_file", arguments = { path = srv.root .. "/planted.txt", content = "x" } },
      { op = "call", name = "undeclared_thing", arguments = {} },
    })
    local w = find(lines, "call", "write_tool")
    assert.is_true(w.result.isError)
    assert.matches("requires the 'write' role; user 'reader' has 'read'", text_of(w.result), 1, true)
    local f = find(lines, "call", "files__write_file")
    assert.is_true(f.result.isError)
    assert.matches("requires the 'admin' role", text_of(f.result), 1, true)
    assert.is_nil(T.read(srv.root .. "/planted.txt")) -- the server never saw it
    local u = find(lines, "call", "undeclared_thing")
    assert.is_true(u.result.isError)
    assert.matches("not declared in the policy", text_of(u.result), 1, true)
    T.wait_for(function()
      local n = 0
      for _, r in ipairs(T.records(srv.audit)) do
        if r.event == "authorization_denied" and r.user_id == "reader" and (r.tool_name == "write_tool"
          or r.tool_name == "files__write_file") then n = n + 1 end
      end
      return n >= 2
    end, "both refusals audited")
  end)

  it("reads through server-filesystem inside allowed_resources; a write outside is refused", function()
    local lines = client(srv, KEYS.admin, {
      { op = "call", name = "files__read_text_file", arguments = { path = srv.root .. "/notes.txt" } },
      { op = "call", name = "files__read_text_file", arguments = { path = srv.root .. "/../../etc/passwd" } },
    })
    local ok = lines[2]
    assert.equal("files__read_text_file", ok.name)
    assert.is_nil(ok.result.isError, T.encode(ok))
    -- the server's own content blocks, passed on
    assert.equal("text", ok.result.content[1].type)
    assert.matches("the notes say hello", ok.result.content[1].text, 1, true)
    local bad = lines[3]
    assert.is_true(bad.result.isError)
    assert.matches("outside the allowed resources", text_of(bad.result), 1, true)
  end)

  it("waits on an approval with progress, and completes after warden approvals approve", function()
    local c = client_bg(srv, KEYS.reader, {
      { op = "call", name = "approval_tool", arguments = {}, progress = true, timeout = 60000 } })
    local prog = T.wait_for(function() return find(c.lines(), "progress") end, "a progress notification", 1500)
    local id = prog.message:match("approval ([%x%-]+),")
    assert.truthy(id, prog.message)
    assert.matches("warden approvals approve " .. id, prog.message, 1, true)
    assert.is_nil(find(c.lines(), "call")) -- still waiting
    local keyf = T.write(T.tmpfile(".key"), "key-lead\n")
    local msg, rc = T.sh(("%s approvals approve %s --key-file %s --policy %s"):format(T.bin, id, keyf, srv.policy))
    assert.equal(0, rc, msg)
    local call = T.wait_for(function() return find(c.lines(), "call") end, "the call's result", 1500)
    assert.is_nil(call.result.isError, T.encode(call))
    assert.same({ done = "approval_tool" }, call.result.structuredContent)
    local all, at = c.lines(), nil
    for i, l in ipairs(all) do if l.op == "call" then at = i end end
    local last = all[at - 1] -- the decision told before the result
    assert.equal("progress", last.op)
    assert.matches("^approval [%x%-]+: granted$", last.message)
  end)

  it("runs an agent as agent__NAME, and refuses arguments it does not take", function()
    local lines = client(srv, KEYS.reader, {
      { op = "call", name = "agent__lab", arguments = { input = '[["tool","echo",{"text":"via agent"}]]' } },
      { op = "call", name = "agent__lab", arguments = { input = "x", extra = 1 } },
      { op = "call", name = "agent__nobody", arguments = { input = "x" } },
    })
    local ok = lines[2]
    assert.is_nil(ok.result.isError, T.encode(ok))
    assert.same({ { echo = { text = "via agent" } } }, json.decode(text_of(ok.result)))
    assert.is_true(lines[3].result.isError)
    assert.matches("takes {\"input\": string} only", text_of(lines[3].result), 1, true)
    assert.matches("no agent 'nobody'", lines[4].error, 1, true)
  end)

  it("is refused without a key, and with a key that is no user's", function()
    local none = client(srv, nil, { { op = "list" } })[1]
    assert.is_false(none.ok)
    assert.equal(401, none.code)
    local wrong = client(srv, "not-a-key", { { op = "list" } })[1]
    assert.is_false(wrong.ok)
    assert.equal(401, wrong.code)
  end)
end)

-- JSON-RPC over curl: what the SDK client never sends
local function rpc(srv, key, body, headers)
  local extra = "-H 'Accept: application/json, text/event-stream'"
  for k, v in pairs(headers or {}) do extra = extra .. (" -H '%s: %s'"):format(k, v) end
  return srv.http("POST", "/mcp", key, type(body) == "table" and json.encode(body) or body, extra)
end

local function open_session(srv, key, version)
  local code, body, hdr = rpc(srv, key, { jsonrpc = "2.0", id = 1, method = "initialize",
    params = { protocolVersion = version or "2025-06-18", capabilities = {}, clientInfo = { name = "curl", version = "1" } } })
  assert.equal(200, code, T.encode(body))
  return hdr:match("[Mm]cp%-[Ss]ession%-[Ii]d: (%x+)"), body
end

-- an SSE body's JSON-RPC messages
local function sse_messages(text)
  local out = {}
  for data in tostring(text):gmatch("data: ([^\n]*)") do out[#out + 1] = json.decode(data) end
  return out
end

describe("warden as an MCP server: clients that break the protocol", function()
  local srv
  setup(function() srv = setup_server() end)
  teardown(function() if srv then srv.stop() end end)

  it("negotiates the version and binds the session to the key that opened it", function()
    local sid, body = open_session(srv, KEYS.reader, "2025-03-26")
    assert.equal(64, #sid)
    assert.equal("2025-03-26", body.result.protocolVersion)
    assert.equal("warden", body.result.serverInfo.name)
    local _, other = open_session(srv, KEYS.reader, "1999-01-01")
    assert.equal("2025-11-25", other.result.protocolVersion) -- an unknown version: our newest
    local list = { jsonrpc = "2.0", id = 2, method = "tools/list" }
    local code, res = rpc(srv, KEYS.reader, list, { ["Mcp-Session-Id"] = sid })
    assert.equal(200, code)
    assert.truthy(#res.result.tools > 0)
    -- no session, a made-up one, another user's: refused, and nothing told apart
    code, res = rpc(srv, KEYS.reader, list)
    assert.equal(400, code)
    assert.matches("no Mcp%-Session%-Id", res.error.message)
    code, res = rpc(srv, KEYS.reader, list, { ["Mcp-Session-Id"] = string.rep("ab", 32) })
    assert.equal(404, code)
    assert.equal(-32001, res.error.code)
    code = rpc(srv, KEYS.writer, list, { ["Mcp-Session-Id"] = sid })
    assert.equal(404, code)
    code = rpc(srv, KEYS.reader, list, { ["Mcp-Session-Id"] = sid, ["MCP-Protocol-Version"] = "2099-01-01" })
    assert.equal(400, code)
    -- the client ends it; then it is gone (and another user cannot end it)
    code = srv.http("DELETE", "/mcp", KEYS.writer, nil, "-H 'Mcp-Session-Id: " .. sid .. "'")
    assert.equal(404, code)
    code = srv.http("DELETE", "/mcp", KEYS.reader, nil, "-H 'Mcp-Session-Id: " .. sid .. "'")
    assert.equal(200, code)
    code = rpc(srv, KEYS.reader, list, { ["Mcp-Session-Id"] = sid })
    assert.equal(404, code)
    -- no stream of the server's own
    local hdr
    code, _, hdr = srv.http("GET", "/mcp", KEYS.reader)
    assert.equal(405, code)
    assert.matches("Allow: POST, DELETE", hdr, 1, true)
  end)

  it("answers malformed messages with JSON-RPC errors, and nothing else breaks", function()
    local sid = open_session(srv, KEYS.reader)
    local h = { ["Mcp-Session-Id"] = sid }
    local cases = {
      { '{"jsonrpc": "2.0", "id": 1, "method": ', 400, -32700 },
      { '[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', 400, -32600 },
      { '{"jsonrpc": "1.0", "id": 1, "method": "ping"}', 400, -32600 },
      { '{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}', 400, -32600 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}', 400, -32600 },
      { '{"jsonrpc": "2.0", "id": 1, "method": 7}', 400, -32600 },
      { '"just a string"', 400, -32600 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "ping", "id": 2}', 400, -32700 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"}', 200, -32601 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "x"}}', 200, -32602 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "../../etc/passwd"}}', 200, -32602 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": "x"}}', 200,
        -32602 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}', 200, -32602 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", '
        .. '"_meta": {"progressToken": {"x": 1}}}}', 200, -32602 },
      { '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}', 200, -32602 },
      { "[" .. ("["):rep(5000) .. ("]"):rep(5000) .. "]", 400, -32700 },
    }
    for _, c in ipairs(cases) do
      local code, res = rpc(srv, KEYS.reader, c[1], h)
      assert.equal(c[2], code, c[1]:sub(1, 80))
      assert.equal(c[3], type(res) == "table" and res.error and res.error.code, c[1]:sub(1, 80) .. " " .. T.encode(res))
    end
    -- notifications and answers to requests we never made: accepted, nothing done
    local code = rpc(srv, KEYS.reader, { jsonrpc = "2.0", method = "notifications/initialized" }, h)
    assert.equal(202, code)
    code = rpc(srv, KEYS.reader, { jsonrpc = "2.0", id = 99, result = {} }, h)
    assert.equal(202, code)
    -- a browser page of another site (DNS rebinding) is refused; the server's own is not
    code = rpc(srv, KEYS.reader, { jsonrpc = "2.0", id = 3, method = "ping" },
      { ["Mcp-Session-Id"] = sid, Origin = "http://evil.example" })
    assert.equal(403, code)
    code = rpc(srv, KEYS.reader, { jsonrpc = "2.0", id = 3, method = "ping" },
      { ["Mcp-Session-Id"] = sid, Origin = "http://127.0.0.1:" .. srv.port })
    assert.equal(200, code)
    -- the server still serves
    local _, res = rpc(srv, KEYS.reader, { jsonrpc = "2.0", id = 4, method = "tools/call",
      params = { name = "echo", arguments = { text = "still here" } } }, h)
    local msgs = sse_messages(res)
    assert.equal(4, msgs[#msgs].id)
    assert.same({ echo = { text = "still here" } }, msgs[#msgs].result.structuredContent)
  end)

  it("answers a client that takes no stream with one JSON reply", function()
    local sid = open_session(srv, KEYS.reader)
    local code, res = srv.http("POST", "/mcp", KEYS.reader, json.encode({ jsonrpc = "2.0", id = "a", method = "tools/call",
      params = { name = "echo", arguments = { text = "plain" } } }),
      "-H 'Accept: application/json' -H 'Mcp-Session-Id: " .. sid .. "'")
    assert.equal(200, code)
    assert.equal("a", res.id)
    assert.same({ echo = { text = "plain" } }, res.result.structuredContent)
  end)

  it("ends the run of a call the client cancels, and sends no answer to it", function()
    local sid = open_session(srv, KEYS.reader)
    local out = T.tmpfile(".sse")
    local body = T.write(T.tmpfile(".json"), json.encode({ jsonrpc = "2.0", id = 77, method = "tools/call",
      params = { name = "agent__lab", arguments = { input = '[["sleep", 20000]]' } } }))
    os.execute(("%s -s -N -m 30 -o %s -H 'Authorization: Bearer %s' -H 'Accept: text/event-stream' "
      .. "-H 'Mcp-Session-Id: %s' -H 'Content-Type: application/json' --data-binary @%s %s/mcp &"):format(
      T.curl, out, KEYS.reader, sid, body, srv.url))
    local run = T.wait_for(function()
      local _, runs = srv.http("GET", "/v1/runs?live=1", KEYS.reader)
      for _, r in ipairs(runs) do if r.agent == "lab" then return r end end
    end, "the call's run")
    local code = rpc(srv, KEYS.reader, { jsonrpc = "2.0", method = "notifications/cancelled",
      params = { requestId = 77, reason = "the user gave up" } }, { ["Mcp-Session-Id"] = sid })
    assert.equal(202, code)
    local fin = T.wait_for(function()
      for _, r in ipairs(T.records(srv.audit)) do
        if r.event == "run_finished" and r.run_id == run.run_id then return r end
      end
    end, "the run's end")
    assert.equal("killed", fin.reason)
    assert.matches("the MCP client cancelled the call: the user gave up", T.encode(fin), 1, true)
    T.wait_for(function() return T.read(out) ~= nil end, "curl's output")
    os.execute("sleep 0.3")
    for _, m in ipairs(sse_messages(T.read(out))) do assert.is_nil(m.id) end -- no answer to a cancelled call
  end)

  it("lists no tools while the kill switch stops them, and no agent it stops", function()
    local code = srv.http("POST", "/v1/kill", KEYS.admin, { agent = "mcp", reason = "spec" })
    assert.equal(200, code)
    local list = names(find(client(srv, KEYS.admin, { { op = "list" } }), "list"))
    assert.is_nil(list.echo)
    assert.is_nil(list.files__read_text_file)
    assert.truthy(list.agent__lab)
    local lines = client(srv, KEYS.admin, { { op = "call", name = "echo", arguments = { text = "x" } } })
    local call = find(lines, "call", "echo")
    assert.is_true(call.result.isError)
    assert.matches("kill switch", text_of(call.result))
    srv.http("POST", "/v1/kill", KEYS.admin, { agent = "lab" })
    list = names(find(client(srv, KEYS.admin, { { op = "list" } }), "list"))
    assert.is_nil(list.agent__lab)
    srv.http("POST", "/v1/revive", KEYS.admin, { agent = "mcp" })
    srv.http("POST", "/v1/revive", KEYS.admin, { agent = "lab" })
    list = names(find(client(srv, KEYS.admin, { { op = "list" } }), "list"))
    assert.truthy(list.echo)
    assert.truthy(list.agent__lab)
  end)
end)

describe("warden as an MCP server: an approval nobody gives", function()
  local srv
  setup(function()
    srv = setup_server({ approvals = { routes = { high = { "lead" } },
      expiry = { low = "2s", normal = "2s", high = "2s", critical = "2s" } } })
  end)
  teardown(function() if srv then srv.stop() end end)

  it("tells the client it expired, and the call is refused", function()
    local lines = client(srv, KEYS.reader, {
      { op = "call", name = "approval_tool", arguments = {}, progress = true, timeout = 30000 } })
    local told = {}
    for _, l in ipairs(lines) do if l.op == "progress" then told[#told + 1] = l.message end end
    assert.matches("waiting for a person to approve approval_tool", told[1], 1, true)
    assert.matches("^approval [%x%-]+: expired$", told[#told])
    local call = find(lines, "call", "approval_tool")
    assert.is_true(call.result.isError, T.encode(call))
    assert.matches("expired", text_of(call.result))
    assert.equal("completed", call.result._meta["warden/status"])
  end)
end)

describe("warden as an MCP server: governed servers whose tools change or take long", function()
  local FLAKY = ROOT .. "/spec/fixtures/mcp/flaky.js"
  local EVERYTHING = ROOT .. "/tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  local GROW = ROOT .. "/spec/fixtures/mcp/httpgrow.mjs"
  local srv, remotes = nil, {}
  -- a server over Streamable HTTP (the SDK's own server side) on a free loopback port
  local function start_remote(version)
    local f = T.tmpfile(".port")
    local h = io.popen(("env -u LD_PRELOAD node %s %s >%s 2>&1 & echo $!"):format(GROW, version or "", f))
    remotes[#remotes + 1] = h:read("l")
    h:close()
    return T.wait_for(function() return (T.read(f) or ""):match("^(%d+)") end, "httpgrow's port")
  end
  setup(function()
    local port, old = start_remote(), start_remote("2025-03-26")
    -- one worker: each worker starts its own process of a stdio server
    srv = setup_server({ mcp = { servers = {
        flaky = { command = { "node", FLAKY }, timeout_ms = "20s" },
        every = { command = { "node", EVERYTHING, "stdio" }, timeout_ms = "20s" },
        grow = { url = ("http://127.0.0.1:%s/mcp"):format(port), timeout_ms = "20s" },
        old = { url = ("http://127.0.0.1:%s/mcp"):format(old), timeout_ms = "20s" } } },
      tools = { ["flaky__*"] = { permission = "read", risk = "low", timeout_ms = 20000 },
        ["every__*"] = { permission = "read", risk = "low", timeout_ms = 10000 },
        ["grow__*"] = { permission = "read", risk = "low", timeout_ms = 5000 },
        ["old__*"] = { permission = "read", risk = "low", timeout_ms = 5000 } } }, 1)
  end)
  teardown(function() for _, pid in ipairs(remotes) do os.execute("kill " .. pid .. " 2>/dev/null") end end)

  it("speaks to a server over HTTP in the version it agreed to, in every request's header", function()
    local lines = client(srv, KEYS.reader, { { op = "call", name = "old__echo", arguments = { text = "then" } } })
    local call = find(lines, "call", "old__echo")
    assert.is_nil(call.result.isError, T.encode(call))
    assert.equal("echo then", text_of(call.result))
  end)

  it("follows the list_changed a server over HTTP sends on its own stream", function()
    local before = names(find(client(srv, KEYS.reader, { { op = "list" } }), "list"))
    assert.truthy(before.grow__echo)
    assert.is_nil(before.grow__late)
    local lines = client(srv, KEYS.reader, { { op = "call", name = "grow__grow", arguments = {} } })
    assert.equal("grown", text_of(find(lines, "call", "grow__grow").result))
    T.wait_for(function()
      return names(find(client(srv, KEYS.reader, { { op = "list" } }), "list")).grow__late
    end, "the new tool listed", 50)
    lines = client(srv, KEYS.reader, { { op = "call", name = "grow__late", arguments = { text = "hi" } } })
    assert.equal("late hi", text_of(find(lines, "call", "grow__late").result))
  end)

  it("passes a long operation's progress on to the client, then its result", function()
    local lines = client(srv, KEYS.reader, { { op = "call", name = "every__trigger-long-running-operation",
      arguments = { duration = 1, steps = 4 }, progress = true } })
    local told = {}
    for _, l in ipairs(lines) do if l.op == "progress" then told[#told + 1] = l end end
    assert.equal(4, #told, T.encode(lines))
    for i, p in ipairs(told) do
      assert.equal(("every__trigger-long-running-operation: %d of 4"):format(i), p.message)
      assert.equal(i, p.progress) -- warden's own count: it only grows
    end
    local call = find(lines, "call", "every__trigger-long-running-operation")
    assert.is_nil(call.result.isError, T.encode(call))
    assert.matches("[Cc]ompleted", text_of(call.result))
    -- a client that asked for none gets none
    lines = client(srv, KEYS.reader, { { op = "call", name = "every__trigger-long-running-operation",
      arguments = { duration = 0.2, steps = 2 } } })
    assert.is_nil(find(lines, "progress"))
    assert.truthy(find(lines, "call"))
  end)
  teardown(function() if srv then srv.stop() end end)

  it("passes on at most ten progress notifications a second, messages cut, others' tokens dropped", function()
    local lines = client(srv, KEYS.reader, { { op = "call", name = "flaky__chatty", arguments = {}, progress = true } })
    local told = {}
    for _, l in ipairs(lines) do if l.op == "progress" then told[#told + 1] = l end end
    assert.is_true(#told >= 1 and #told <= 20, #told .. " told")
    assert.matches("^flaky__chatty: 5000 of 5000: m+$", told[#told].message) -- the last always goes on
    for _, p in ipairs(told) do assert.is_true(#p.message < 400, #p.message) end
    assert.equal("chatted", text_of(find(lines, "call", "flaky__chatty").result))
  end)

  it("follows its list_changed: a tool it adds is listed and called", function()
    local before = names(find(client(srv, KEYS.reader, { { op = "list" } }), "list"))
    assert.truthy(before.flaky__t9) -- every page of its list
    assert.is_nil(before.flaky__late)
    local lines = client(srv, KEYS.reader, { { op = "call", name = "flaky__grow", arguments = {} } })
    assert.equal("grown", text_of(find(lines, "call", "flaky__grow").result))
    local after = T.wait_for(function()
      local l = names(find(client(srv, KEYS.reader, { { op = "list" } }), "list"))
      return l.flaky__late and l
    end, "the new tool listed", 100)
    assert.truthy(after.flaky__t9)
    lines = client(srv, KEYS.reader, { { op = "call", name = "flaky__late", arguments = { text = "hi" } } })
    local late = find(lines, "call", "flaky__late")
    assert.is_nil(late.result.isError, T.encode(late))
    assert.equal("echo hi", text_of(late.result))
  end)
end)
