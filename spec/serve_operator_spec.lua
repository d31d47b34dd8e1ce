-- warden serve among the tools operators use (docs/serve.md): a key that may read
-- /metrics and nothing else (for Prometheus), Retry-After on every 429 and 503, and an
-- event stream a browser's EventSource.onmessage receives whole.
local T = require("warden.testing")
local json = require("cjson")

local KEYS = { prom = "prom-scrape-key", admin = "op-admin-key", reader = "op-reader-key" }

local function policy(extra)
  local o = { users = {
    prom = { role = "read", scope = "metrics", api_key_sha256 = T.sha256(KEYS.prom) },
    admin = { api_key_sha256 = T.sha256(KEYS.admin) },
    reader = { api_key_sha256 = T.sha256(KEYS.reader) },
  } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o)
end

local function agents()
  local dir = T.tmpfile("-agents")
  os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(dir, os.getenv("PWD"), dir))
  return dir
end

-- a stream parsed as the WHATWG EventSource does: each dispatched event's type
-- ("message" unless an `event:` field named it) and data
local function event_source(text)
  local out, data, typ = {}, {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line == "" then
      if #data > 0 then out[#out + 1] = { type = typ or "message", data = table.concat(data, "\n") } end
      data, typ = {}, nil
    else
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "data" then data[#data + 1] = value elseif field == "event" then typ = value end
    end
  end
  return out
end

describe("warden serve for operators", function()
  local pol, audit, srv
  setup(function()
    pol, audit = policy()
    srv = T.serve({ policy = pol, agents = agents() })
  end)
  teardown(function() if srv then srv.stop() end end)

  it("gives a key of scope metrics /metrics and nothing else", function()
    local code, body = srv.http("GET", "/metrics", KEYS.prom)
    assert.equal(200, code)
    assert.matches("warden_", body)
    for _, call in ipairs({ { "GET", "/v1/runs" }, { "POST", "/v1/runs" }, { "GET", "/v1/dashboard" },
      { "GET", "/v1/approvals" }, { "POST", "/v1/kill" }, { "GET", "/v1/nothing" } }) do
      local c, b = srv.http(call[1], call[2], KEYS.prom, call[1] == "POST" and { agent = "lab", input = "[]" } or nil)
      assert.equal(403, c, call[2])
      assert.equal("this key may read /metrics only (its user has scope: metrics)", b.error)
    end
    -- the refusals are audited, under the user
    local denied = 0
    for _, r in ipairs(T.records(audit)) do
      if r.event == "authorization_denied" and r.user_id == "prom" then denied = denied + 1 end
    end
    assert.is_true(denied >= 1)
    -- the top role still reads it; another user does not
    assert.equal(200, (srv.http("GET", "/metrics", KEYS.admin)))
    assert.equal(403, (srv.http("GET", "/metrics", KEYS.reader)))
  end)

  it("refuses a scope it does not know", function()
    local bad = T.policy({ users = { prom = { role = "read", scope = "everything" } } })
    local out, rc = T.sh(T.bin .. " policy check " .. bad)
    assert.equal(2, rc)
    assert.matches("users%.prom%.scope must be all %(the default%) or metrics", out)
  end)

  it("sends events that EventSource.onmessage receives, each naming its record's event", function()
    local _, body = srv.http("POST", "/v1/runs", KEYS.reader,
      { agent = "lab", input = json.encode({ { "tool", "echo", { text = "hi" } } }), wait = true })
    local _, text = srv.http("GET", "/v1/runs/" .. body.run_id .. "/events", KEYS.reader)
    local evs = event_source(text)
    assert.is_true(#evs >= 3, text)
    local names = {}
    for _, e in ipairs(evs) do
      assert.equal("message", e.type) -- what onmessage gets
      local rec = json.decode(e.data)
      names[#names + 1] = rec.event
      assert.equal(body.run_id, rec.run_id)
    end
    assert.equal("run_started", names[1])
    assert.equal("run_finished", names[#names - 1])
    assert.equal("end", names[#names])
  end)

  it("says Retry-After on a 429", function()
    local p2 = policy({ serve = { max_runs_per_user = 1, max_queued_per_user = 1 } })
    local s2 = T.serve({ policy = p2, agents = agents() })
    local sleep = json.encode({ { "sleep", 3000 } })
    local codes, last = {}, nil
    for i = 1, 3 do
      local c, _, h = s2.http("POST", "/v1/runs", KEYS.reader, { agent = "lab", input = sleep })
      codes[i], last = c, h
    end
    s2.stop("KILL")
    assert.same({ 202, 202, 429 }, codes)
    assert.matches("Retry%-After: [1-9]%d*\r\n", last)
  end)
end)

describe("warden serve stopping", function()
  it("answers 503 with Retry-After on a connection still open while it drains", function()
    local pol = policy({ defaults = { timeouts = { run_ms = 60000 } } })
    local srv = T.serve({ policy = pol, agents = agents(), grace = "3s" })
    -- a run that holds the server in its grace period
    local bf = T.write(T.tmpfile(".json"), json.encode({ agent = "lab", input = json.encode({ { "sleep", 20000 } }) }))
    T.sh(("%s -s -m 5 -H 'Authorization: Bearer %s' --data-binary @%s %s/v1/runs"):format(T.curl, KEYS.reader, bf,
      srv.url))
    T.wait_for(function() return select(2, srv.http("GET", "/healthz")).runs_active == 1 end, "the run")
    local out = T.tmpfile(".http")
    local script = T.write(T.tmpfile(".sh"), ([[
      exec 3<>/dev/tcp/127.0.0.1/%s
      req='GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
      printf "$req" >&3; sleep 0.3
      kill -TERM %s; sleep 0.3
      printf "$req" >&3
      timeout 2 cat <&3 > %s
    ]]):format(srv.port, srv.pid, out))
    T.sh("bash " .. script)
    local text = T.read(out) or ""
    assert.matches("HTTP/1%.1 200", text)
    local second = text:match("HTTP/1%.1 503.*$")
    assert.is_truthy(second, text)
    assert.matches("Retry%-After: 3\r\n", second)
    assert.matches("the server is stopping", second)
    srv.stop(false)
  end)
end)
