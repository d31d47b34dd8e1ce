-- Notifications (docs/safety.md, Monitoring and alerts): webhooks are told of approval
-- requests and the other events they list, signed (HMAC-SHA256 of timestamp.body), from
-- the engine's loop, retried with backoff, kept in the state store until delivered or
-- given up (`warden notify list`), and every attempt is audited.
local T = require("warden.testing")
local core = require("warden.core")

local SECRET = "s3cret-for-the-hook"
local PLAN = '[["tool","approval_tool",{"note":"x"}]]'

local function policy(hooks, notify)
  local n = { webhooks = hooks, retry_base_ms = 100, retry_max_ms = 400 }
  for k, v in pairs(notify or {}) do n[k] = v end
  return T.policy({ notify = n,
    approvals = { routes = { high = { "lead", "director" }, critical = { "director", "vp" } } } })
end

-- waits up to s seconds for f() to be true
local function within(s, f)
  for _ = 1, s * 50 do
    local v = f()
    if v then return v end
    os.execute("sleep 0.02")
  end
  return f()
end

local function ms_of(ts) -- RFC 3339 with ms, UTC
  local y, mo, d, h, mi, s, ms = ts:match("(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z")
  local days = os.time({ year = y, month = mo, day = d, hour = 0 }) // 86400
  return ((days * 24 + h) * 60 + mi) * 60000 + s * 1000 + tonumber(ms)
end

describe("webhooks", function()
  it("get a signed approval request within a second, again after answering 500, while the run waits",
    function()
      local fake = T.fakellm()
      local key = T.sh("date +%s%N"):gsub("%s+$", "")
      local pol, audit = policy({ { url = fake.hook_url("key=" .. key .. ",fail=1,status=500"),
        events = { "approval_requested" }, secret_env = "HOOK_SECRET", timeout_ms = 2000 } })
      local _, out = T.start_lab(pol, PLAN, "HOOK_SECRET=" .. SECRET)
      local req = T.pending(pol)
      local got = within(5, function() local h = fake.hooks(key); return #h >= 2 and h end)
      assert.truthy(got, "the webhook was not called twice")
      -- the first came within a second of the request, was answered 500, and was tried again
      local asked = T.events(audit, "approval_requested")[1]
      assert.is_true(got[1].ms - ms_of(asked.timestamp) < 1000, got[1].ms - ms_of(asked.timestamp))
      assert.equal(500, got[1].status)
      assert.equal(200, got[2].status)
      assert.equal(got[1].headers["x-warden-delivery"], got[2].headers["x-warden-delivery"])
      -- signed: HMAC-SHA256 of "timestamp.body" under the secret, with a fresh timestamp
      for _, h in ipairs(got) do
        local ts = h.headers["x-warden-timestamp"]
        assert.equal("sha256=" .. core.hmac_sha256(SECRET, ts .. "." .. h.body), h.headers["x-warden-signature"])
        assert.is_true(math.abs(tonumber(ts) * 1000 - h.ms) < 5000)
        assert.equal("approval_requested", h.headers["x-warden-event"])
      end
      local body = T.decode(got[2].body)
      assert.equal("approval_requested", body.event)
      assert.equal(req.id, body.data.approval_id)
      assert.equal("approval_tool", body.data.tool_name)
      -- the run was waiting for its approver all along: decided now, it completes
      local msg, rc = T.approvals(pol, "approve " .. req.id .. " --by lead")
      assert.equal(0, rc, msg)
      assert.equal("completed", T.result_of(out).status)
      -- each attempt audited
      local recs = T.events(audit, "notification")
      assert.equal(2, #recs)
      assert.is_false(recs[1].success)
      assert.equal(500, recs[1].status)
      assert.is_true(recs[1].next_attempt_ms >= 100)
      assert.is_true(recs[2].success)
      assert.equal(2, recs[2].attempt)
      -- delivered, it left the store: nothing pending, no dead letter
      local list = T.decode((T.sh(("%s notify list --all --json --policy %s"):format(T.bin, pol))))
      assert.same({}, list)
    end)

  it("wait as long as the receiver's Retry-After says", function()
    local fake = T.fakellm()
    local key = "ra" .. os.time()
    local pol, audit = policy({ { url = fake.hook_url("key=" .. key .. ",fail=1,status=503,retry_after=1"),
      events = { "unauthorized" } } }, { retry_max_ms = 5000 })
    local plan = '[["tool","admin_tool",{}],["tool","admin_tool",{}],["tool","admin_tool",{}],["sleep",1600]]'
    T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = plan })
    local got = fake.hooks(key)
    assert.equal(2, #got)
    assert.is_true(got[2].ms - got[1].ms >= 950, got[2].ms - got[1].ms) -- not retry_base_ms (100)
  end)

  it("are told when an approval request enters the last tenth of its time", function()
    local fake = T.fakellm()
    local key = "expiring" .. os.time()
    local pol, audit = T.policy({ notify = { webhooks = { { url = fake.hook_url("key=" .. key),
      events = { "approval_expiring" } } } },
      approvals = { expiry = { high = "3s" }, routes = { high = { "lead" } } } })
    local _, out = T.start_lab(pol, PLAN)
    local req = T.pending(pol)
    local got = within(5, function() local h = fake.hooks(key); return #h >= 1 and h end)
    assert.truthy(got, "no approval_expiring")
    local body = T.decode(got[1].body)
    assert.equal("approval_expiring", body.event)
    assert.equal(req.id, body.data.approval_id)
    assert.is_true(body.data.expires_in_ms <= 300 + 250, body.data.expires_in_ms)
    assert.matches("expired", T.result_of(out).result)
    -- the log keeps the webhook's origin, not its path (a path may hold the receiver's secret)
    local n = T.events(audit, "notification")[1]
    assert.equal("http://127.0.0.1:" .. fake.port .. "/...", n.url)
  end)

  it("never hold a run: a webhook that hangs is left to its timeout", function()
    local fake = T.fakellm()
    local pol, audit = policy({ { url = fake.hook_url("key=hang" .. os.time() .. ",mode=hang"),
      events = { "*" }, timeout_ms = 3000 } })
    -- three refusals of the same user: "unauthorized" is told
    local plan = '[["tool","admin_tool",{}],["tool","admin_tool",{}],["tool","admin_tool",{}]]'
    local t0 = core.clock()
    local res = T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = plan })
    assert.equal("completed", res.status)
    assert.is_true(res.execution_time_ms < 1000, res.execution_time_ms)
    assert.is_true(core.clock() - t0 < 2900) -- the engine gave the delivery at most 2 s at its end
    local n = T.events(audit, "notification")
    assert.equal(0, #n) -- none answered within the run: still pending in the store
    local list = T.decode((T.sh(("%s notify list --all --json --policy %s"):format(T.bin, pol))))
    assert.equal(1, #list)
    assert.equal("unauthorized", list[1].event)
    assert.equal("pending", list[1].status)
  end)

  it("keep what cannot be delivered as a dead letter after max_attempts, listed by warden notify list",
    function()
      local fake = T.fakellm()
      local key = "dead" .. os.time()
      local pol, audit = policy({ { url = fake.hook_url("key=" .. key .. ",mode=status,status=503"),
        events = { "unauthorized" }, timeout_ms = 1000 } }, { max_attempts = 3 })
      local plan = '[["tool","admin_tool",{}],["tool","admin_tool",{}],["tool","admin_tool",{}],["sleep",1500]]'
      T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = plan })
      assert.equal(3, #fake.hooks(key))
      local recs = T.events(audit, "notification")
      assert.equal(3, #recs)
      assert.is_true(recs[3].given_up)
      local out, rc = T.sh(("%s notify list --policy %s"):format(T.bin, pol))
      assert.equal(0, rc, out)
      assert.matches("unauthorized%s+dead%s+3 attempts", out)
      assert.matches("the webhook answered HTTP 503", out)
    end)

  it("refuse to send unsigned when the secret is missing, and say why", function()
    local fake = T.fakellm()
    local key = "nosecret" .. os.time()
    local pol, audit = policy({ { url = fake.hook_url("key=" .. key), events = { "unauthorized" },
      secret_env = "WARDEN_NO_SUCH_SECRET_VAR" } }, { max_attempts = 1 })
    local plan = '[["tool","admin_tool",{}],["tool","admin_tool",{}],["tool","admin_tool",{}],["sleep",300]]'
    T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = plan })
    assert.equal(0, #fake.hooks(key))
    local rec = T.events(audit, "notification")[1]
    assert.matches("secret_env WARDEN_NO_SUCH_SECRET_VAR is not set", rec.error)
  end)

  it("are told of a kill from the command line by the next engine", function()
    local fake = T.fakellm()
    local key = "kill" .. os.time()
    local pol, audit = policy({ { url = fake.hook_url("key=" .. key), events = { "kill_switch" } } })
    local out, rc = T.sh(("%s kill lab --reason 'runaway' --policy %s"):format(T.bin, pol))
    assert.equal(0, rc, out)
    -- a run refused by the switch: its engine delivers what the command queued
    T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = "[]" })
    local got = within(3, function() local h = fake.hooks(key); return #h >= 1 and h end)
    assert.truthy(got)
    local body = T.decode(got[1].body)
    assert.equal("kill_switch", body.event)
    assert.matches("lab killed by .*: runaway", body.summary)
  end)

  it("are told of an open breaker, a refusing budget and a detector's halt", function()
    local fake = T.fakellm()
    local key = "many" .. os.time()
    local pol, audit = policy({ { url = fake.hook_url("key=" .. key), events = { "*" } } },
      nil)
    local pol2 = T.policy({ notify = { webhooks = { { url = fake.hook_url("key=" .. key), events = { "*" } } } },
      detectors = { loop = { identical_calls = 3, verdict = "halt", enforce = true } } }, nil)
    local raise5 = '[["tool","raise",{}],["tool","raise",{}],["tool","raise",{}],["tool","raise",{}],["tool","raise",{}]]'
    T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, query = raise5 })
    T.run({ agent = "spec/fixtures/lab", policy = pol, audit = audit, user = "cheap",
      query = '[["tool","costly",{}],["tool","costly",{}],["tool","costly",{}]]' })
    local res = T.run({ agent = "spec/fixtures/lab", policy = pol2, query =
      '[["tool","echo",{"x":1}],["tool","echo",{"x":1}],["tool","echo",{"x":1}]]' })
    assert.equal("halted", res.status)
    local seen = {}
    within(3, function()
      for _, h in ipairs(fake.hooks(key)) do seen[T.decode(h.body).event] = T.decode(h.body) end
      return seen.breaker_opened and seen.budget_exceeded and seen.detector_halt
    end)
    assert.truthy(seen.breaker_opened, "no breaker_opened")
    assert.equal("tool:raise", seen.breaker_opened.data.breaker)
    assert.truthy(seen.budget_exceeded, "no budget_exceeded")
    assert.equal("cheap", seen.budget_exceeded.data.user_id)
    assert.truthy(seen.detector_halt, "no detector_halt")
    assert.equal("loop", seen.detector_halt.data.detector)
  end)

  it("are checked when the policy loads", function()
    local ok, errs = core.policy_check(T.policy({ notify = { webhooks = {
      { url = "ftp://x", events = { "approval_requested" } },
      { url = "http://127.0.0.1:9/h", events = { "approval_requestd" } },
      { url = "http://127.0.0.1:9/h" } } } }))
    assert.is_false(ok)
    local text = table.concat(errs, "\n")
    assert.matches("notify.webhooks%[0%].url must be an http:// or https:// address", text)
    assert.matches("notify.webhooks%[1%].events: unknown 'approval_requestd'", text)
    assert.matches("notify.webhooks%[2%].events must list", text)
  end)
end)

describe("alert rules", function()
  it("are accepted by promtool", function()
    local out, rc = T.sh("promtool check rules contrib/prometheus/warden-alerts.yml")
    assert.equal(0, rc, out)
    assert.matches("SUCCESS: %d+ rules found", out)
  end)
end)
