-- Attack: memory a client's key grows in warden serve (docs/serve.md, Limits; docs/safety.md,
-- Bounds). The table of runs keeps a result up to serve.result_kb (the audit log has the
-- whole one) and serve.kept_mb in all; runs start only when their sandbox memory fits in
-- serve.memory_mb beside the others, wait in a bounded queue otherwise, and past it get
-- 429 with Retry-After. A burst of large answers does not leave the server at its peak.
local T = require("warden.testing")

local KEY = "mem-key-1"

local function rss_mb(pid)
  local s = T.read("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s+(%d+)")) / 1024
end

local function server(agent_lua, overrides, llm)
  -- nothing sealed: the log's 12 MB answers are read back as they are (sealing has its own spec)
  local o = { audit = { personal_fields = T.EMPTY },
              users = { reader = { role = "read", tier = "free", api_key_sha256 = T.sha256(KEY) } },
              tiers = { free = { per_run_usd = 100, daily_usd = 1000, monthly_usd = 10000, requests_per_hour = 100000 } } }
  for k, v in pairs(overrides or {}) do o[k] = v end
  local pol, audit = T.policy(o)
  local dir = T.tmpfile("-agents")
  os.execute("mkdir -p " .. dir .. "/big")
  T.write(dir .. "/big/agent.lua", agent_lua)
  return T.serve({ policy = pol, agents = dir, workers = 2, llm = llm }), audit
end

-- waits until every run listed has ended; their descriptions
local function finished(srv, ids, tries)
  local out = {}
  for i, id in ipairs(ids) do
    out[i] = T.wait_for(function()
      local _, run = srv.http("GET", "/v1/runs/" .. id, KEY)
      return type(run) == "table" and run.finished_at and run
    end, "run " .. id, tries or 6000)
  end
  return out
end

describe("attack: sixty runs answering 12 MB each", function()
  it("leaves the server within 100 MB of idle once they finished, results cut and whole in the log", function()
    -- the model's answer, made 12 MB by the agent (the mock and HTTP answers stop at 8 MB)
    local srv, audit = server([[
return warden.agent { name = "big",
  run = function(q, ctx)
    local r = ctx:llm({ messages = { { role = "user", content = q } } })
    return r.content .. ("z"):rep(12 * 1024 * 1024 - #r.content)
  end }
]], nil, "mock:" .. T.scenario({ { content = "zzzz" } }))
    local ok, err = pcall(function()
      -- warm: the first runs load what every run needs
      for _ = 1, 3 do srv.http("POST", "/v1/runs", KEY, { agent = "big", input = "warm", wait = true }) end
      os.execute("sleep 1")
      local idle = rss_mb(srv.pid)
      local ids = {}
      for i = 1, 60 do
        local code, res = srv.http("POST", "/v1/runs", KEY, { agent = "big", input = "go " .. i })
        assert.equal(202, code)
        ids[i] = res.run_id
      end
      local runs = finished(srv, ids)
      os.execute("sleep 1.5")
      local after = rss_mb(srv.pid)
      print(("\n    RSS: idle %.0f MB, after 60 runs of 12 MB %.0f MB"):format(idle, after))
      assert.is_true(after - idle < 100, ("idle %.0f MB, after %.0f MB"):format(idle, after))
      for _, run in ipairs(runs) do
        assert.equal("completed", run.status)
        assert.is_true(#run.result.result <= 64 * 1024 / 4, #run.result.result)
        assert.equal(12 * 1024 * 1024 + 2, run.result.truncated.result)
        assert.matches("the audit log's run_finished record has the whole result", run.result.result_note)
      end
      -- its event stream keeps every record, the 12 MB one as a stub that says where it is
      local _, stream = srv.http("GET", "/v1/runs/" .. ids[1] .. "/events", KEY)
      assert.matches('data: {[^\n]*"event":"run_started"', stream)
      assert.matches('data: {"event":"run_finished".-larger than serve.events_kb', stream)
      local fin = T.events(audit, "run_finished")
      assert.equal(63, #fin)
      assert.equal(12 * 1024 * 1024, #fin[#fin].final_answer)
    end)
    srv.stop()
    assert(ok, err)
  end)
end)

describe("attack: two hundred runs each using its 32 MB", function()
  it("runs them within serve.memory_mb: the rest wait, or end rate_limited, or get 429 with Retry-After", function()
    local srv, audit = server([[
return warden.agent { name = "big",
  run = function(q, ctx)
    local t = {}
    for i = 1, 24 do t[i] = ("m"):rep(1024 * 1024 - 64) .. i end
    ctx:sleep(20)
    return "held " .. #t .. " MB"
  end }
]], { defaults = { sandbox = { memory_mb = 32 } },
      serve = { memory_mb = 640, max_queued = 60, max_queued_per_user = 200, queue_wait_ms = 1500 } })
    local ok, err = pcall(function()
      local ids, refused, peak = {}, 0, 0
      local out = T.tmpfile(".codes")
      -- 200 requests at once, as a client would send them: more than serve.max_queued wait
      -- within any 1.5 s a machine takes to take them in, so some are refused
      local sh = {}
      for i = 1, 200 do
        sh[#sh + 1] = ("(%s -s -m 60 -D %s.h%d -o %s.b%d -w '%%{http_code}\\n' -H 'Authorization: Bearer %s'"
          .. " -H 'Content-Type: application/json' -d '{\"agent\":\"big\",\"input\":\"x\"}' %s/v1/runs >>%s) &")
          :format(T.curl, out, i, out, i, KEY, srv.url, out)
      end
      sh[#sh + 1] = "wait"
      local f = T.write(T.tmpfile(".sh"), table.concat(sh, "\n"))
      os.execute("sh " .. f)
      -- each run reserves 32 MB and its detectors' 32: ten at a time in 640 MB
      local _, h = srv.http("GET", "/healthz")
      assert.is_true(h.runs_running <= 10 and h.sandbox_memory_mb <= 640, T.encode(h))
      for i = 1, 200 do
        local body = T.read(out .. ".b" .. i)
        local v = T.decode(body)
        if v.run_id then
          ids[#ids + 1] = v.run_id
        else
          refused = refused + 1
          assert.matches("too many runs: %d+ running and %d+ waiting in all %(serve.max_queued 60%)", v.error)
          assert.matches("Retry%-After: %d+", T.read(out .. ".h" .. i))
        end
        peak = math.max(peak, rss_mb(srv.pid))
      end
      assert.is_true(refused >= 1, "some were refused")
      local runs = finished(srv, ids)
      local done, waited = 0, 0
      for _, run in ipairs(runs) do
        if run.status == "completed" then
          done = done + 1
          assert.equal("held 24 MB", run.result.result)
        else
          assert.equal("rate_limited", run.status)
          assert.matches("the server is busy: the run waited 1500 ms for room", run.result.errors[1])
          waited = waited + 1
        end
      end
      print(("\n    200 runs of 32 MB in 640 MB: %d completed, %d waited too long, %d got 429; peak RSS %.0f MB")
        :format(done, waited, refused, peak))
      assert.is_true(done >= 10)
      local code, health = srv.http("GET", "/healthz")
      assert.equal(200, code)
      assert.equal("ok", health.status)
      -- each 429 is audited, up to 50 a second a worker (DENY_AUDIT_PER_S: a flood cannot
      -- flood the log; the next record counts the rest in unaudited_before)
      assert.is_true(#T.events(audit, "rate_limited") >= math.min(refused, 50), #T.events(audit, "rate_limited"))
    end)
    srv.stop()
    assert(ok, err)
  end)
end)
