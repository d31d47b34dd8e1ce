-- Attacks on the state store on Redis (docs/scale-out.md): deployments that share one
-- server, names chosen to collide in keys, and a server whose keys someone changed by
-- hand. Every argument reaches Redis as a script's argument (never spliced into a
-- command or a script), each deployment's keys begin with its own prefix, and a key
-- that holds junk makes its check fail closed, never pass.
local T = require("warden.testing")

local redis
local function store(prefix, extra)
  local s = { backend = "redis", url = ("redis://127.0.0.1:%d/0"):format(redis.port), prefix = prefix }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

-- a daily budget that fits three calls of the lab's model (as budget_spec's)
local CALL = { content = "x", usage = { input_tokens = 10, output_tokens = 1000 } }
local function policy(prefix, users)
  local o = { tiers = { daily3 = { per_run_usd = 1, daily_usd = 0.1, monthly_usd = 10 } }, users = {},
              store = store(prefix) }
  for _, u in ipairs(users) do o.users[u] = { role = "read", tier = "daily3" } end
  return T.policy(o)
end

local function spend(pol, user)
  return T.run({ agent = "spec/fixtures/lab", query = { { "llm" } }, user = user, policy = pol,
                 scenario = { CALL } })
end

describe("attack: Redis shared by several deployments", function()
  setup(function() redis = T.redis() end)
  teardown(function() redis.stop() end)

  it("keeps each prefix's budgets and kill switch its own", function()
    local a, b = policy("tenant-a:", { "dave" }), policy("tenant-b:", { "dave" })
    for _ = 1, 3 do assert.equal("completed", spend(a, "dave").status) end
    assert.equal("budget_exceeded", spend(a, "dave").status)
    -- the same user in the other deployment has all of its budget
    assert.equal("completed", spend(b, "dave").status)
    local out, rc = T.sh(("%s kill lab --reason spec --by ops --policy %s 2>&1"):format(T.bin, b))
    assert.equal(0, rc, out)
    assert.equal("killed", spend(b, "dave").status)
    -- a's budget refuses, b's kill does not reach it; nothing of either outside its prefix
    assert.equal("budget_exceeded", spend(a, "dave").status)
    for _, k in ipairs(T.decode(redis.cli("--json", "KEYS", "*"))) do
      assert.truthy(k:match("^tenant%-a:") or k:match("^tenant%-b:"), k)
    end
  end)

  it("keeps apart names made to collide in keys: separators, newlines, a prefix inside a name", function()
    local names = { "eve\31day:2026-01-01", "eve", "eve\nx", "tenant-c:spend:user:eve", "ev e" }
    local pol = policy("tenant-c:", names)
    for _, n in ipairs(names) do assert.equal("completed", spend(pol, n).status, n) end
    local loc = T.store_of(pol)
    for _, n in ipairs(names) do
      local row = T.ledger_row(loc, "user:" .. n, "day:")
      assert.truthy(row, n)
      assert.near(0.0301, row.spent_usd, 1e-9, n)
    end
  end)

  it("fails closed on a spend row someone filled with junk: the call is refused, nothing crashes", function()
    local pol = policy("tenant-d:", { "mallory" })
    assert.equal("completed", spend(pol, "mallory").status)
    local key
    for _, k in ipairs(T.decode(redis.cli("--json", "KEYS", "tenant-d:spend:user:mallory*"))) do
      if k:find("day:", 1, true) then key = k end
    end
    assert.truthy(key)
    for _, junk in ipairs({ "lots", "1e999", "-inf", "-50000000", "nan" }) do
      for _, field in ipairs({ "reserved", "spent" }) do
        redis.cli("HSET", key, "reserved", "0", "spent", "30100000")
        redis.cli("HSET", key, field, junk)
        local res, audit = spend(pol, "mallory")
        assert.equal("store_unavailable", res.status, field .. " " .. junk .. ": " .. res.status)
        assert.equal(0, res.cost_usd)
        assert.equal(0, #T.events(audit, "llm_call"))
        assert.matches("not an amount", T.events(audit, "store_unavailable")[1].reason)
      end
    end
    -- a key of the wrong type refuses the same way
    redis.cli("DEL", key)
    redis.cli("SET", key, "not a hash")
    local res, audit = spend(pol, "mallory")
    assert.equal("store_unavailable", res.status)
    assert.matches("WRONGTYPE", T.events(audit, "store_unavailable")[1].reason)
  end)

  it("takes a script's arguments as data: Lua and commands in a detector's keys and values stay text", function()
    local pol = T.policy({ store = store("tenant-e:"), detectors = { store_keys = { enforce = true } } })
    local _, _, audit = T.lab({ { "tool", "echo", { x = 1 } } }, { policy = pol })
    local v
    for _, r in ipairs(T.events(audit, "detector_verdict")) do
      if r.detector == "store_keys" then v = r.details end
    end
    assert.truthy(v, "no verdict of store_keys")
    assert.equal(v.total, v.same)
    assert.equal("plain", v.plain)
    assert.equal("PONG", redis.cli("PING")) -- and the server is as it was
    assert.equal("", redis.cli("GET", "x"))
  end)

  it("never lets a forged lease or a stale liveness key count another host's money twice", function()
    local pol = policy("tenant-f:", { "trudy" })
    assert.equal("completed", spend(pol, "trudy").status)
    -- someone adds a lease for an owner that never lived: the next sweep gives it back
    local key
    for _, k in ipairs(T.decode(redis.cli("--json", "KEYS", "tenant-f:spend:user:trudy*"))) do
      if k:find("day:", 1, true) then key = k end
    end
    redis.cli("HSET", "tenant-f:lease:ghost/1/x", "1", "50000000 " .. key)
    redis.cli("HINCRBY", key, "reserved", "50000000")
    redis.cli("SADD", "tenant-f:owners", "ghost/1/x")
    assert.equal("completed", spend(pol, "trudy").status) -- the sweep before a refusal
    local row = T.ledger_row(T.store_of(pol), "user:trudy", "day:")
    assert.equal(0, row.reserved_usd)
    assert.near(2 * 0.0301, row.spent_usd, 1e-9)
  end)
end)

describe("attack: a Redis that hangs and comes back, again and again", function()
  it("counts every call's spend once: no answer lost in a hang makes spend phantom or vanish", function()
    local r = T.redis()
    finally(function()
      os.execute("kill -CONT " .. r.pid .. " 2>/dev/null")
      r.stop()
    end)
    local s = { backend = "redis", url = ("redis://127.0.0.1:%d/0"):format(r.port), prefix = "flap:",
                timeout_ms = 60, lease = "1s" }
    local pol, audit = T.policy({ tiers = { big = { per_run_usd = 5, daily_usd = 100, monthly_usd = 1000 } },
                                  users = { fran = { role = "read", tier = "big" } }, store = s,
                                  audit = { personal_fields = T.EMPTY } }) -- no per-user key to fetch
    local plan = {}
    for i = 1, 4 do plan[i] = { "llm" } end
    local scen = {}
    for i = 1, 4 do scen[i] = { content = "x", usage = { input_tokens = 10, output_tokens = 1000 }, delay_ms = 60 } end
    local runs = {}
    for i = 1, 24 do runs[i] = { agent = "spec/fixtures/lab", query = plan, user = "fran" } end
    -- Redis stops answering for longer than store.timeout_ms, then answers again, while the
    -- runs go: what was asked before a hang is done when Redis wakes, after warden gave it up
    -- rounds of 24 runs go for as long as the hangs do, so some spend between them and
    -- some meet them on any machine (a sanitizer build starts slower)
    local over = T.tmpfile(".over")
    os.execute(("(sleep 0.05; for i in $(seq 1 25); do kill -STOP %s; sleep 0.09; kill -CONT %s; sleep 0.05; "
      .. "done; touch %s) >/dev/null 2>&1 &"):format(r.pid, r.pid, over))
    local statuses, n, hung = {}, 0, 0
    repeat
      for _, res in ipairs(T.run_many({ policy = pol, audit = audit, llm = "mock:" .. T.scenario(scen) }, runs)) do
        statuses[res.status] = (statuses[res.status] or 0) + 1
        n = n + 1
        -- met a hang: ended store_unavailable, or a call refused so (an agent may go on)
        if res.status == "store_unavailable" or (res.errors[1] or ""):find("state store unavailable", 1, true) then
          hung = hung + 1
        end
      end
    until T.read(over) or n >= 24 * 8
    T.wait_for(function() return T.read(over) end, "the hangs to be over", 1000)
    -- an engine that stopped in a hang could not give its leases back: they come back one
    -- store.lease after its last word, at the next sweep (opening the store sweeps)
    os.execute("sleep 1.3")
    local paid = 0
    for _, rec in ipairs(T.records(audit)) do
      if rec.event == "llm_call" and rec.cost_usd then paid = paid + rec.cost_usd end
    end
    local row = T.ledger_row(T.store_of(pol), "user:fran", "day:")
    print(("\n    %d runs under a flapping Redis (%d met a hang): %s; the log says $%.4f was spent, the ledger $%.4f")
      :format(n, hung, require("cjson").encode(statuses), paid, row and row.spent_usd or 0))
    assert.is_true(paid > 0)
    assert.is_true(hung > 0, "no run met a hang: " .. require("cjson").encode(statuses))
    assert.near(paid, row.spent_usd, 1e-9)
    assert.near(0, row.reserved_usd, 1e-9) -- the engines are gone: nothing held
    local out, rc = T.sh(T.bin .. " audit verify " .. audit)
    assert.equal(0, rc, out)
  end)
end)
