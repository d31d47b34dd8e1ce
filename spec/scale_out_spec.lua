-- Scale-out (docs/scale-out.md): three `warden serve` processes, each in a working
-- directory of its own with its own log, share one real redis-server as their state
-- store. Budgets are exact across them, a breaker opened through one refuses on the
-- others, an approval opened on one is decided on another, a kill through one stops the
-- runs of all, a host killed with its leases gives them back, and Redis going away
-- refuses what it guards without letting anything through unaudited.
local T = require("warden.testing")
local json = require("cjson")

-- the budget case, in a row (3 under the sanitizers, whose pass checks memory, not odds)
local REPS = (os.getenv("WARDEN_BUILD") or ""):match("asan") and 3 or 20
local KEYS = { admin = "admin-key-1", director = "director-key-2", ops = "ops-key-3" }
for i = 1, 22 do KEYS["dave" .. i] = "dave-key-" .. i end -- dave21, dave22: the other cases

-- each call costs $0.0301 (10 input and 1,000 output tokens) and may cost ~$0.0302:
-- a daily budget of $0.16 fits five
local CALL = { content = "x", usage = { input_tokens = 10, output_tokens = 1000 }, delay_ms = 300 }
local DAILY, ESTIMATE = 0.16, 0.0302

local function now() return tonumber((T.sh("date +%s%N"))) / 1e9 end

-- a record's timestamp in seconds since the epoch
local function when(rec)
  local y, mo, d, h, mi, sec = rec.timestamp:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  return os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = 0, isdst = false }) + tonumber(sec)
    - os.time({ year = 1970, month = 1, day = 1, hour = 0 })
end

local function agents()
  local dir = T.tmpfile("-agents")
  os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(dir, os.getenv("PWD"), dir))
  return dir
end

-- three hosts on one Redis: {redis, hosts = {srv, srv, srv}, store (the policy's section)}
local function cluster(opts)
  opts = opts or {}
  local redis = opts.redis or T.redis({ aof = opts.aof })
  local store = { backend = "redis", url = ("redis://127.0.0.1:%d/0"):format(redis.port),
                  prefix = ("so%d:"):format(math.random(1e9)), lease = opts.lease or "15s",
                  timeout_ms = opts.timeout_ms or 200 }
  local users = {}
  for user, key in pairs(KEYS) do
    users[user] = { api_key_sha256 = T.sha256(key), role = user:match("^dave") and "read" or "admin",
                    tier = user:match("^dave") and "five" or nil }
  end
  local c = { redis = redis, store = store, hosts = {}, locator = T.locator(store) }
  local dir = agents()
  local scen = "mock:" .. T.scenario({ CALL })
  for i = 1, 3 do
    local home = T.tmpfile("-host" .. i)
    os.execute("mkdir -p " .. home)
    local pol, audit = T.policy({
      users = users, store = store, audit = { path = home .. "/audit.jsonl" },
      tiers = { five = { per_run_usd = 1, daily_usd = DAILY, monthly_usd = 100, requests_per_hour = 100000 } },
      defaults = { breaker = { failure_threshold = 2, open_ms = 60000, half_open_probes = 1 } },
      approvals = { routes = { high = { "director" } } },
    })
    local srv = T.serve({ policy = pol, agents = dir, cwd = home, workers = opts.workers or 2, llm = opts.llm or scen,
                          env = { WARDEN_HOST = "host" .. i } })
    srv.audit, srv.home, srv.policy = audit, home, pol
    c.hosts[i] = srv
  end
  function c.stop()
    for _, h in ipairs(c.hosts) do if not h.dead then h.stop() end end
    if not opts.redis then redis.stop() end
  end
  return c
end

local function submit(host, user, plan)
  local code, body = host.http("POST", "/v1/runs", KEYS[user], { agent = "lab", input = json.encode(plan) })
  assert.equal(202, code, json.encode(body))
  return body.run_id
end

-- the run's record on its host once it ended
local function ended(host, user, id, tries)
  return T.wait_for(function()
    local code, b = host.http("GET", "/v1/runs/" .. id, KEYS[user])
    return code == 200 and b.status ~= "running" and b.status ~= "queued" and b
  end, "run " .. id .. " to end", tries)
end

local function spent_in_logs(c, user)
  local total = 0
  for _, h in ipairs(c.hosts) do
    for _, r in ipairs(T.records(h.audit)) do
      if r.event == "llm_call" and r.user_id == user and r.cost_usd then total = total + r.cost_usd end
    end
  end
  return total
end

-- what the hosts publish on the notices' channel, as a redis-cli subscribed to it hears
local function listen(c)
  local out = T.tmpfile(".sub")
  os.execute(("env -u LD_PRELOAD redis-cli -p %d --csv SUBSCRIBE '%sevents' > %s 2>&1 &"):format(c.redis.port,
    c.store.prefix, out))
  T.wait_for(function() return (T.read(out) or ""):find("subscribe", 1, true) end, "redis-cli to subscribe")
  return function() return T.read(out) or "" end
end

describe("scale-out: three hosts on one Redis", function()
  local c, heard
  setup(function()
    c = cluster()
    heard = listen(c)
  end)
  teardown(function() if c then c.stop() end end)

  it("has every engine of every host subscribed to the notices of the others", function()
    -- three hosts of two workers: six engines, each on its own loop
    local n = c.redis.cli("PUBSUB", "NUMSUB", c.store.prefix .. "events"):match("(%d+)%s*$")
    assert.equal(7, tonumber(n)) -- and the spec's own redis-cli
  end)

  it("holds a user's daily budget across the three: 30 parallel runs, 20 times in a row", function()
    local worst = 0
    for rep = 1, REPS do
      local user = "dave" .. rep
      local ids = {}
      for i = 1, 30 do
        local h = c.hosts[i % 3 + 1]
        ids[i] = { h, submit(h, user, { { "llm" } }) }
      end
      local done, refused = 0, 0
      for _, x in ipairs(ids) do
        local run = ended(x[1], user, x[2])
        if run.status == "completed" then done = done + 1 end
        if run.status == "budget_exceeded" then refused = refused + 1 end
      end
      local row = T.ledger_row(c.locator, "user:" .. user, "day:")
      assert.is_true(row.spent_usd <= DAILY + ESTIMATE + 1e-9, ("rep %d: spent %.6f"):format(rep, row.spent_usd))
      assert.equal(5, done, "rep " .. rep)
      assert.equal(25, refused, "rep " .. rep)
      -- the ledger is what the three logs say was spent, to the nano-dollar
      T.wait_for(function()
        return math.abs(T.ledger_row(c.locator, "user:" .. user, "day:").spent_usd - spent_in_logs(c, user)) < 1e-9
      end, "the ledger to equal the logs")
      assert.near(5 * 0.0301, spent_in_logs(c, user), 1e-9)
      worst = math.max(worst, row.spent_usd)
    end
    print(("\n    %d repetitions of 30 runs over 3 hosts: 5 completed and 25 refused each time; most spent $%.4f"
      .. " of a $%.2f budget"):format(REPS, worst, DAILY))
  end)

  it("refuses on the other hosts a breaker opened through one", function()
    local a, b = c.hosts[1], c.hosts[2]
    -- tool:flaky fails twice through host A: its breaker opens in the store
    local run = ended(a, "dave21", submit(a, "dave21", { { "tool", "flaky", { fail = true } },
                                                         { "tool", "flaky", { fail = true } } }))
    assert.equal("completed", run.status)
    local t0 = now()
    run = ended(b, "dave21", submit(b, "dave21", { { "tool", "flaky", {} } }))
    assert.matches("^circuit open for tool:flaky", run.result.tool_calls[1].result)
    assert.is_true(now() - t0 < 1, "host B took " .. (now() - t0) .. " s")
    local opened = T.events(a.audit, "breaker_opened")
    assert.equal(1, #opened)
    assert.truthy(heard():find('"breaker tool:flaky"', 1, true), heard())
    assert.equal(0, #T.events(b.audit, "breaker_opened")) -- B refused on A's word
  end)

  it("resumes on host A a run whose approval host C decided", function()
    local a, cc = c.hosts[1], c.hosts[3]
    local id = submit(a, "dave22", { { "tool", "approval_tool", { note = "x" } } })
    local req = T.wait_for(function()
      local code, l = cc.http("GET", "/v1/approvals", KEYS.director)
      return code == 200 and l[1]
    end, "the request to reach host C")
    assert.equal("approval_tool", req.tool)
    local asked = now()
    local code = cc.http("POST", "/v1/approvals/" .. req.id .. "/approve", KEYS.director, {})
    assert.equal(200, code)
    local t0 = now()
    local run = ended(a, "dave22", id, 200)
    local waited = now() - t0
    assert.equal("completed", run.status)
    assert.is_true(waited < 0.5, "host A went on after " .. waited .. " s")
    print(("\n    approval decided on host C: the run on host A ended %.0f ms later (curl's polling included)")
      :format(waited * 1000))
    local granted = T.events(a.audit, "approval_granted")
    assert.equal(1, #granted)
    assert.truthy(heard():find('"approval ' .. req.id .. '"', 1, true), heard())
    -- host A saw it (its approval_granted record) this long after host C was asked
    local saw = when(granted[1]) - asked
    assert.is_true(saw < 0.2, "host A saw the decision " .. saw .. " s after it was asked of host C")
    print(("\n    host A saw the decision %.0f ms after host C was asked (its poll is every 100 ms; the notice"
      .. " came first)"):format(saw * 1000))
    assert.same({ "director" }, granted[1].approved_by)
  end)

  it("keeps one chain per host, each file verifying, and merges them into one view that verifies", function()
    local files = {}
    for i, h in ipairs(c.hosts) do
      ended(h, "dave21", submit(h, "dave21", { { "tool", "echo", { text = "x" } }, { "llm" } }))
      files[i] = h.audit
      local recs = T.records(h.audit)
      assert.is_true(#recs >= 5)
      for _, r in ipairs(recs) do assert.equal("host" .. i, r.host) end
    end
    local all = table.concat(files, " ")
    local out, rc = T.sh(("%s audit verify %s 2>&1"):format(T.bin, all))
    assert.equal(0, rc, out)
    local _, n = out:gsub("intact", "")
    assert.equal(3, n, out)
    -- one report over the three logs: what was spent on all of them
    out, rc = T.sh(("%s report cost %s --json --policy %s 2>&1"):format(T.bin, all, c.hosts[1].policy))
    assert.equal(0, rc, out)
    local total = 0
    for _, f in ipairs(files) do
      for _, r in ipairs(T.records(f)) do
        if (r.event == "llm_call" or r.event == "tool_call") and r.cost_usd then total = total + r.cost_usd end
      end
    end
    assert.near(total, T.decode(out).totals.cost_usd, 1e-6)
    out, rc = T.sh(("%s report compliance %s --json --policy %s 2>&1"):format(T.bin, all, c.hosts[1].policy))
    assert.equal(0, rc, out)
    assert.is_true(T.decode(out).chain.intact)
    -- the merged view: every line of the three, in time order, each host's chain intact
    local merged = T.tmpfile(".jsonl")
    out, rc = T.sh(("%s audit merge %s --out %s 2>&1"):format(T.bin, all, merged))
    assert.equal(0, rc, out)
    -- each host's lines in its file's order (its chain's); between hosts, by time (a host's
    -- own records may be a few milliseconds out of time order: its workers write in turns)
    local order, count = {}, 0
    for i, f in ipairs(files) do
      order["host" .. i] = {}
      for l in io.lines(f) do table.insert(order["host" .. i], l); count = count + 1 end
    end
    local at, seen, last = { host1 = 0, host2 = 0, host3 = 0 }, 0, 0
    for l in io.lines(merged) do
      local r = T.decode(l)
      at[r.host] = at[r.host] + 1
      assert.equal(order[r.host][at[r.host]], l, "host " .. r.host .. "'s line " .. at[r.host])
      local y, mo, d, h, mi, sec = r.timestamp:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
      local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = 0 }) + tonumber(sec)
      assert.is_true(t > last - 1, "a second out of time order at " .. r.timestamp)
      last, seen = math.max(last, t), seen + 1
    end
    assert.equal(count, seen)
    out, rc = T.sh(("%s audit verify --merged %s 2>&1"):format(T.bin, merged))
    assert.equal(0, rc, out)
    assert.matches("of 3 hosts", out)
    -- read as one host's chain, the view is broken; and a record taken out of it is caught
    assert.equal(1, select(2, T.sh(("%s audit verify %s 2>&1"):format(T.bin, merged))))
    local cut = T.tmpfile(".jsonl")
    local f = assert(io.open(cut, "w"))
    for l in io.lines(merged) do -- host2's second record taken out
      local r = T.decode(l)
      if not (r.host == "host2" and r.seq == 2) then f:write(l, "\n") end
    end
    f:close()
    out, rc = T.sh(("%s audit verify --merged %s 2>&1"):format(T.bin, cut))
    assert.equal(1, rc, out)
    assert.matches("chain broken", out)
    -- logs that share a host, or a broken one, are not merged
    out, rc = T.sh(("%s audit merge %s %s 2>&1"):format(T.bin, files[1], files[1]))
    assert.equal(1, rc, out)
    assert.matches("both are host host1's", out)
  end)

  it("stops the agent's runs on every host within a second of a kill through host B", function()
    local ids = {}
    for i, h in ipairs({ c.hosts[1], c.hosts[3] }) do ids[i] = { h, submit(h, "dave22", { { "sleep", 30000 } }) } end
    os.execute("sleep 0.3")
    local asked = now()
    local code = c.hosts[2].http("POST", "/v1/kill", KEYS.admin, { agent = "lab", reason = "spec" })
    assert.equal(200, code)
    local t0 = now()
    for _, x in ipairs(ids) do
      local run = ended(x[1], "dave22", x[2], 150)
      assert.equal("killed", run.status)
    end
    local took = now() - t0
    assert.is_true(took < 1, "the runs ended " .. took .. " s after the kill")
    assert.truthy(heard():find('"kill lab"', 1, true), heard())
    local worst = 0
    for _, h in ipairs({ c.hosts[1], c.hosts[3] }) do
      for _, r in ipairs(T.events(h.audit, "kill_switch")) do
        if r.action == "cancel_run" then worst = math.max(worst, when(r) - asked) end
      end
    end
    assert.is_true(worst > 0 and worst < 1, "cancelled " .. worst .. " s after the kill")
    print(("\n    the runs on hosts A and C were cancelled (their records) %.0f ms after host B was asked"
      .. " (the poll is every 200 ms; the notice came first)"):format(worst * 1000))
    print(("\n    kill through host B: the runs on hosts A and C ended within %.0f ms"):format(took * 1000))
    assert.equal(200, (c.hosts[2].http("POST", "/v1/revive", KEYS.admin, { agent = "lab" })))
  end)
end)

describe("scale-out: faults", function()
  it("gives back the leases of a host killed with -9 once its lease expires, with no phantom spend", function()
    local c = cluster({ lease = "1s", llm = "mock:" .. T.scenario({ CALL, { content = "y", delay_ms = 30000,
                                                                          usage = CALL.usage } }) })
    finally(function() c.stop() end) -- the servers go, however the case ends
    local a = c.hosts[1]
    submit(a, "dave1", { { "llm" }, { "llm" } })
    local row = T.wait_for(function()
      local r = T.ledger_row(c.locator, "user:dave1", "day:")
      return r and r.spent_usd > 0 and r.reserved_usd > 0 and r
    end, "the first call spent and the second reserved")
    local spent = row.spent_usd
    os.execute("kill -9 " .. a.pid)
    a.dead = true
    local t0 = now()
    T.wait_for(function()
      local r = T.ledger_row(c.locator, "user:dave1", "day:")
      return r.reserved_usd == 0
    end, "the reservation to come back", 400)
    local took = now() - t0
    assert.is_true(took < 2.5, "came back after " .. took .. " s")
    print(("\n    kill -9 of a host holding a lease (store.lease 1s): its reservation came back %.0f ms later")
      :format(took * 1000))
    assert.near(spent, T.ledger_row(c.locator, "user:dave1", "day:").spent_usd, 1e-12)
    -- the others still spend against it, exactly
    local b = c.hosts[2]
    assert.equal("completed", ended(b, "dave2", submit(b, "dave2", { { "llm" } })).status)
  end)

  it("never overspends when Redis crashes mid-load (kill -9, AOF): every run ends with a result, logs verify",
    function()
    local c = cluster({ aof = true })
    finally(function() c.stop() end) -- the servers go, however the case ends
    local ids = {}
    for i = 1, 30 do
      local h = c.hosts[i % 3 + 1]
      ids[i] = { h, submit(h, "dave3", { { "llm" } }) }
      if i == 10 then c.redis.restart("KILL") end
    end
    local statuses = {}
    for _, x in ipairs(ids) do
      local run = ended(x[1], "dave3", x[2])
      statuses[run.status] = (statuses[run.status] or 0) + 1
      assert.truthy(run.result, "a run without a result")
    end
    local row = T.ledger_row(c.locator, "user:dave3", "day:")
    assert.is_true(row.spent_usd <= DAILY + ESTIMATE + 1e-9, "spent " .. row.spent_usd)
    assert.is_true((statuses.completed or 0) <= 5, json.encode(statuses))
    -- what Redis acknowledged it had written to its AOF survived the crash: the ledger is
    -- what the logs say was spent (the spend of an outage written once Redis is back)
    T.wait_for(function()
      return math.abs(T.ledger_row(c.locator, "user:dave3", "day:").spent_usd - spent_in_logs(c, "dave3")) < 1e-9
    end, "the ledger to equal the logs")
    c.stop() -- the logs whole (each ends with its server_stopped record), then verified
    for _, h in ipairs(c.hosts) do
      local out, rc = T.sh(("%s audit verify %s 2>&1"):format(T.bin, h.audit))
      assert.equal(0, rc, out)
    end
  end)

  it("keeps a run waiting for a person across a restart of Redis, and resumes it on the decision", function()
    local c = cluster({ aof = true })
    finally(function() c.stop() end) -- the servers go, however the case ends
    local a, cc = c.hosts[1], c.hosts[3]
    local id = submit(a, "dave7", { { "tool", "approval_tool", { note = "x" } } })
    local req = T.wait_for(function()
      local code, l = cc.http("GET", "/v1/approvals", KEYS.director)
      return code == 200 and l[1]
    end, "the request to reach host C")
    c.redis.stop() -- away for a second: the polls fail meanwhile, and the wait goes on
    os.execute("sleep 1")
    c.redis.restart()
    local code = T.wait_for(function()
      local k = cc.http("POST", "/v1/approvals/" .. req.id .. "/approve", KEYS.director, {})
      return k == 200 and k
    end, "host C to decide once Redis is back")
    assert.equal(200, code)
    local run = ended(a, "dave7", id, 300)
    assert.equal("completed", run.status, json.encode(run.result))
    assert.equal(0, #T.events(a.audit, "approval_expired"))
    assert.equal(1, #T.events(a.audit, "approval_granted"))
    assert.is_true(run.result.tool_calls[1].success, json.encode(run.result.tool_calls))
  end)

  it("does not hold a host's loop while Redis hangs: one slow answer per worker, then refusals at once", function()
    local c = cluster()
    finally(function() c.stop() end) -- the servers go, however the case ends
    local a = c.hosts[1]
    assert.equal("completed", ended(a, "dave6", submit(a, "dave6", { { "llm" } })).status)
    -- Redis takes connections but answers no command for 3 s (store.timeout_ms is 200)
    c.redis.cli("CLIENT", "PAUSE", "3000", "ALL")
    local slow, t0 = 0, now()
    for _ = 1, 10 do
      local run = ended(a, "dave6", submit(a, "dave6", { { "llm" } }))
      assert.equal("store_unavailable", run.status)
      if run.result.execution_time_ms > 150 then slow = slow + 1 end
    end
    -- each of the two workers waits once for its connection's timeout; after that it
    -- refuses at once (test_redis.c measures the loop itself)
    assert.is_true(slow <= 2, slow .. " runs waited for the hung server")
    assert.is_true(now() - t0 < 2.5, "10 refusals took " .. (now() - t0) .. " s")
    T.wait_for(function()
      return ended(a, "dave6", submit(a, "dave6", { { "llm" } })).status == "completed"
    end, "the host to serve again once Redis answers", 500)
  end)

  it("refuses calls as store_unavailable while Redis is stopped, each audited, and serves again after", function()
    local c = cluster()
    finally(function() c.stop() end) -- the servers go, however the case ends
    local a = c.hosts[1]
    assert.equal("completed", ended(a, "dave4", submit(a, "dave4", { { "llm" } })).status)
    c.redis.stop()
    local run = ended(a, "dave5", submit(a, "dave5", { { "llm" } }))
    assert.equal("store_unavailable", run.status)
    assert.equal("A service this agent depends on is unavailable. Please try again shortly.", run.result.result)
    local down = T.events(a.audit, "store_unavailable")
    assert.is_true(#down >= 1)
    assert.equal("redis", down[1].store)
    assert.matches("unreachable", down[1].reason)
    -- a run that continues a session cannot read it: the same, not a refusal of the user
    local code0, body0 = a.http("POST", "/v1/runs", KEYS.dave5,
      { agent = "lab", input = json.encode({ { "llm" } }), session_id = "s-down" })
    assert.equal(202, code0, json.encode(body0))
    assert.equal("store_unavailable", ended(a, "dave5", body0.run_id).status)
    local ops = {}
    for _, r in ipairs(T.events(a.audit, "store_unavailable")) do ops[r.operation] = true end
    assert.truthy(ops.session, json.encode(ops))
    assert.equal(0, #T.events(a.audit, "authorization_denied"))
    -- an OpenAI client is told 503: the service it depends on is away, try again
    local code, body = a.http("POST", "/v1/chat/completions", KEYS.dave5,
      { model = "lab", messages = { { role = "user", content = '[["llm"]]' } } })
    assert.equal(503, code, json.encode(body))
    assert.matches("store_unavailable", json.encode(body))
    -- nothing reached the model for it
    for _, r in ipairs(T.events(a.audit, "llm_call")) do assert.not_equal("dave5", r.user_id) end
    -- Redis back: the host serves again without a restart of its own
    c.redis.restart()
    T.wait_for(function()
      return ended(a, "dave5", submit(a, "dave5", { { "llm" } })).status == "completed"
    end, "the host to serve again", 500)
  end)
end)

describe("scale-out: a worker's loop never waits for Redis", function()
  it("finishes a run in flight on time while the runs beside it wait for a hung Redis", function()
    -- one worker: every run below shares its loop. Redis hangs (SIGSTOP) for 2.5 s with
    -- store.timeout_ms 2000; three runs reach their model call's reservation (a lease to
    -- grow: the store is asked) while it hangs. Were that a waiting call, each would hold
    -- the loop for 2 s and the run already in its model call (300 ms) would end after them.
    local c = cluster({ timeout_ms = 2000, workers = 1 })
    finally(function()
      os.execute("kill -CONT " .. c.redis.pid .. " 2>/dev/null")
      c.stop()
    end)
    local a = c.hosts[1]
    assert.equal("completed", ended(a, "dave21", submit(a, "dave21", { { "llm" } })).status)
    local x = submit(a, "dave21", { { "llm" } })
    local ys = {}
    for i = 1, 3 do ys[i] = submit(a, "dave22", { { "sleep", 150 }, { "llm" } }) end
    os.execute("sleep 0.08; kill -STOP " .. c.redis.pid)
    -- the front end too: three clients' keys wait for the blocks' read, and a health check
    -- beside them is answered at once (a waiting read would hold its loop 2 s for each)
    for _ = 1, 3 do
      os.execute(("%s -s -o /dev/null -m 10 -H 'Authorization: Bearer %s' %s/v1/runs/%s &")
        :format(T.curl, KEYS.dave21, a.url, x))
    end
    os.execute("sleep 0.1")
    local health = tonumber((T.sh(("%s -s -o /dev/null -m 10 -w '%%{time_total}' %s/healthz"):format(T.curl, a.url))))
    os.execute("sleep 2.3; kill -CONT " .. c.redis.pid)
    print(("\n    the front end answered /healthz in %.0f ms beside three requests waiting for Redis")
      :format(health * 1000))
    assert.is_true(health < 0.5, health .. " s")
    local run = ended(a, "dave21", x)
    local started, finished
    for _, r in ipairs(T.records(a.audit)) do
      if r.run_id == x and r.event == "run_started" then started = when(r) end
      if r.run_id == x and r.event == "run_finished" then finished = when(r) end
    end
    assert.equal("completed", run.status)
    local ms = (finished - started) * 1000
    print(("\n    a run in its model call ended %.0f ms after it started, while three runs beside it "
      .. "waited for a hung Redis"):format(ms))
    assert.is_true(ms < 1200, ("%.0f ms"):format(ms))
    -- the runs that waited end with a result: their reservation failed past timeout_ms,
    -- or the store came back in time
    for _, y in ipairs(ys) do
      local st = ended(a, "dave22", y).status
      assert.is_true(st == "completed" or st == "store_unavailable", st)
    end
  end)
end)
