-- Attack: money spent under limits a reload has lowered (docs/safety.md, Bounds; docs/serve.md,
-- Live reload). Engines reserve against leases on the store's ledger, taken under the
-- limits of their time; a reload that lowers a budget gives back, on every worker and
-- before `policy_reloaded` is written, the room the leases hold beyond what calls in flight
-- reserved. After the record, a run may finish at most the one call it had already
-- cleared; everything else is checked against the new limit.
local T = require("warden.testing")

local KEY = "money-key-1"

local SPENDER = [[
return warden.agent { name = "spender", tools = { "costly" },
  run = function(q, ctx)
    local paid = 0
    for _ = 1, tonumber(q) or 3000 do
      local r = ctx:call_tool("costly", {})
      if r.error then return "stopped after " .. paid .. ": " .. r.error end
      paid = paid + 1
      ctx:sleep(2)
    end
    return "paid " .. paid
  end }
]]

local COSTLY = [[
return warden.tool { name = "costly", description = "costs a tenth of a cent",
  run = function() return { done = true } end }
]]

local function policy_table(daily)
  return {
    users = { reader = { role = "read", tier = "free", api_key_sha256 = T.sha256(KEY) } },
    tiers = { free = { per_run_usd = 100, daily_usd = daily, monthly_usd = 10000, requests_per_hour = 100000 } },
    tools = { costly = { permission = "read", risk = "low", cost_usd = 0.001 } },
  }
end

describe("attack: a reload lowering daily_usd while ten runs spend", function()
  it("lets at most one call per run be paid after the policy_reloaded record", function()
    local pol, audit = T.policy(policy_table(1000))
    local dir = T.tmpfile("-agents")
    os.execute("mkdir -p " .. dir .. "/spender/tools")
    T.write(dir .. "/spender/agent.lua", SPENDER)
    T.write(dir .. "/spender/tools/costly.lua", COSTLY)
    local srv = T.serve({ policy = pol, agents = dir, workers = 2 })
    local ok, err = pcall(function()
      local ids = {}
      for i = 1, 10 do
        local code, res = srv.http("POST", "/v1/runs", KEY, { agent = "spender", input = "go" })
        assert.equal(202, code)
        ids[i] = res.run_id
      end
      -- spending is under way: a few hundred paid calls
      T.wait_for(function() return #T.events(audit, "tool_call") >= 300 end, "the runs spending")
      -- the same policy with daily_usd below what is spent already: the rest is refused
      local text = T.read(pol)
      local p = T.decode(text)
      p.tiers.free.daily_usd = 0.2
      T.write(pol, T.encode(p))
      T.wait_for(function() return #T.events(audit, "policy_reloaded") >= 1 end, "the reload")
      for _, id in ipairs(ids) do
        T.wait_for(function()
          local _, run = srv.http("GET", "/v1/runs/" .. id, KEY)
          return run.finished_at
        end, "run " .. id .. " to end")
      end
      local after, seen, per_run = 0, false, {}
      for _, r in ipairs(T.records(audit)) do
        if r.event == "policy_reloaded" then seen = true
        elseif seen and r.event == "tool_call" and r.success and (r.cost_usd or 0) > 0 then
          after = after + 1
          per_run[r.run_id] = (per_run[r.run_id] or 0) + 1
        end
      end
      assert.is_true(seen)
      for id, n in pairs(per_run) do assert.is_true(n <= 1, id .. " paid " .. n .. " calls after the reload") end
      assert.is_true(after <= 10, after .. " paid calls after the reload")
      -- each run was refused by the lowered budget
      for _, id in ipairs(ids) do
        local _, run = srv.http("GET", "/v1/runs/" .. id, KEY)
        assert.matches("stopped after %d+: budget: user reader's daily budget of %$0%.20", run.result.result)
      end
      -- and raising it again works without a restart
      p.tiers.free.daily_usd = 1000
      T.write(pol, T.encode(p))
      T.wait_for(function() return #T.events(audit, "policy_reloaded") >= 2 end, "the second reload")
      local code, res = srv.http("POST", "/v1/runs", KEY, { agent = "spender", input = "3", wait = true })
      assert.equal(200, code)
      assert.equal("paid 3", res.result)
    end)
    srv.stop()
    assert(ok, err)
  end)
end)
