-- Attack: one API key flooding warden serve (docs/serve.md, Admission). A user's runs in
-- flight and waiting are bounded on their own: past them that user gets 429 with
-- Retry-After while another user's run still starts. A run left waiting when the server
-- stops ends with a result that says so; a policy whose serve.memory_mb cannot hold one
-- run is refused.
local T = require("warden.testing")
local core = require("warden.core")

local A, B = "flood-key-a", "flood-key-b"

local SLOW = [[
return warden.agent { name = "slow", run = function(q, ctx) ctx:sleep(tonumber(q) or 10) return "slept " .. q end }
]]

local function server(serve, grace)
  local tier = { per_run_usd = 100, daily_usd = 1000, monthly_usd = 10000, requests_per_hour = 100000 }
  local pol = T.policy({
    users = { reader = { role = "read", tier = "free", api_key_sha256 = T.sha256(A) },
              writer = { role = "write", tier = "free", api_key_sha256 = T.sha256(B) } },
    tiers = { free = tier }, serve = serve })
  local dir = T.tmpfile("-agents")
  os.execute("mkdir -p " .. dir .. "/slow")
  T.write(dir .. "/slow/agent.lua", SLOW)
  return T.serve({ policy = pol, agents = dir, workers = 2, grace = grace })
end

describe("attack: one user's flood", function()
  it("is refused past its own queue with 429 and Retry-After; another user's run still starts", function()
    local srv = server({ max_runs_per_user = 1, max_queued_per_user = 1, queue_wait_ms = 30000 })
    local ok, err = pcall(function()
      local c1, r1 = srv.http("POST", "/v1/runs", A, { agent = "slow", input = "1500" })
      local c2, r2 = srv.http("POST", "/v1/runs", A, { agent = "slow", input = "10" })
      local c3, r3, h3 = srv.http("POST", "/v1/runs", A, { agent = "slow", input = "10" })
      assert.same({ 202, 202, 429 }, { c1, c2, c3 })
      assert.equal("running", select(2, srv.http("GET", "/v1/runs/" .. r1.run_id, A)).status)
      assert.equal("queued", select(2, srv.http("GET", "/v1/runs/" .. r2.run_id, A)).status)
      assert.matches("too many runs: 1 running and 1 waiting for this user %(serve.max_queued_per_user 1%)", r3.error)
      assert.matches("Retry%-After: %d+", h3)
      -- the other user is not held up by the flood
      local cb, rb = srv.http("POST", "/v1/runs", B, { agent = "slow", input = "10", wait = true })
      assert.equal(200, cb)
      assert.equal("completed", rb.status)
      -- and the queued run starts once the first ends
      local run = T.wait_for(function()
        local _, v = srv.http("GET", "/v1/runs/" .. r2.run_id, A)
        return v.finished_at and v
      end, "the queued run", 1000)
      assert.equal("completed", run.status)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("leaves no run waiting when the server stops: each ends rate_limited, the client gets its result", function()
    local srv = server({ max_runs = 1, queue_wait_ms = 60000 }, "300ms")
    local out = T.tmpfile(".json")
    srv.http("POST", "/v1/runs", A, { agent = "slow", input = "5000" })
    os.execute(("%s -s -m 30 -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "
      .. "-d '{\"agent\":\"slow\",\"input\":\"10\",\"wait\":true}' %s/v1/runs >%s &"):format(T.curl, B, srv.url, out))
    T.wait_for(function()
      local _, h = srv.http("GET", "/healthz")
      return h.runs_queued == 1
    end, "the run to queue")
    local rc_ = srv.stop()
    assert.equal(0, rc_, T.read(srv.err))
    local res = T.decode(T.wait_for(function() local s = T.read(out) return s and s:match("}%s*$") and s end,
      "the waiting client's answer"))
    assert.equal("rate_limited", res.status)
    assert.matches("the server is stopping: the run had not started", res.errors[1])
  end)
end)

describe("attack: a policy whose serve.memory_mb cannot hold one run", function()
  it("is refused with the two numbers", function()
    local ok, errs = core.policy_check(T.policy({ defaults = { sandbox = { memory_mb = 512 } },
                                                   serve = { memory_mb = 256 } }))
    assert.is_false(ok)
    assert.matches("serve.memory_mb %(256%) is less than one run's defaults.sandbox.memory_mb %(512%)",
      table.concat(errs, "\n"))
  end)
end)
