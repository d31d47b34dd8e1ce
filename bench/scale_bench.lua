-- The scale-out benchmark (make bench; docs/performance.md, docs/scale-out.md): the state
-- store on Redis against SQLite, side by side in one run, the backends alternating.
--   1. budget reservations that each reach the store (build/bench/bench_store): per
--      second and p99, in one process and in three at once against one budget
--   2. runs per second of three `warden serve` processes sharing one Redis against one
--      on SQLite (2 workers), the ReAct workload of serve_load.lua (3 LLM calls of a
--      fake model at 50 ms, 2 tool calls), driven over HTTP by build/wdload
-- On one machine of 2 cores the three processes share the cores the one had: the point
-- is the overhead ratio, not scaling.
-- usage: lua5.4 bench/scale_bench.lua [RESERVATIONS] [SECONDS]   (default 5000 5)
package.path = "lua/?.lua;" .. package.path
package.cpath = (os.getenv("WARDEN_BUILD") or "build") .. "/lua/?.so;" .. package.cpath
local T = require("warden.testing")
local json = require("cjson")

local N, SECONDS = tonumber(arg[1]) or 5000, tonumber(arg[2]) or 5
local build = T.build
local redis = T.redis()
local url = ("redis://127.0.0.1:%d/0"):format(redis.port)


-- procs bench_store processes at once on one store: reservations/s summed, the worst p99
local function reserve(store, procs)
  local outs = {}
  for i = 1, procs do
    outs[i] = T.tmpfile(".json")
  end
  local cmds = {}
  for i = 1, procs do cmds[i] = ("%s/bench/bench_store '%s' %d > %s"):format(build, store, N, outs[i]) end
  os.execute("(" .. table.concat(cmds, " & ") .. " & wait)")
  local per_s, p99 = 0, 0
  for i = 1, procs do
    local r = json.decode(T.read(outs[i]))
    assert(r.failed == 0, "reservations failed on " .. store)
    per_s = per_s + r.per_s
    p99 = math.max(p99, r.p99_us)
  end
  return per_s, p99
end

print(("state store: %d budget reservations per process, each a trip to the store (bench_store)"):format(N))
local res = {}
for round = 1, 2 do
  for _, procs in ipairs({ 1, 3 }) do
    for _, backend in ipairs({ "sqlite", "redis" }) do
      local store = backend == "sqlite" and T.tmpfile(".db")
        or ("%s?prefix=bench%d_%d:"):format(url, round, procs)
      local per_s, p99 = reserve(store, procs)
      local k = backend .. procs
      res[k] = res[k] or { per_s = {}, p99 = {} }
      table.insert(res[k].per_s, per_s)
      table.insert(res[k].p99, p99)
    end
  end
end
local function best(k) return math.max(table.unpack(res[k].per_s)), math.min(table.unpack(res[k].p99)) end
for _, procs in ipairs({ 1, 3 }) do
  local sq, sq99 = best("sqlite" .. procs)
  local rd, rd99 = best("redis" .. procs)
  print(("  %d process%s: SQLite %6.0f/s p99 %4d us | Redis %6.0f/s p99 %4d us | Redis/SQLite %.2fx")
    :format(procs, procs == 1 and "  " or "es", sq, sq99, rd, rd99, rd / sq))
end

-- 2. runs per second
local KEY = "bench-key"
local ARGS = "args=%7B%22query%22:%22x%22%7D"
local fake = T.fakellm()
local function policy(store)
  local p = T.load_yaml("bench/bench.yaml")
  p.users.bench.api_key_sha256 = T.sha256(KEY)
  p.models.default.base_url = fake.url(("delay=50,calls=2,tool=noop,%s"):format(ARGS))
  p.audit.path = T.tmpfile(".jsonl")
  p.store = store
  return T.write(T.tmpfile(".yaml"), json.encode(p))
end

-- clients spread over the servers, all at once for SECONDS: runs/s summed
local function drive(servers, clients)
  local body = json.encode({ agent = "react_noop", input = "benchmark", wait = true })
  local cmds, outs = {}, {}
  for i, srv in ipairs(servers) do
    outs[i] = T.tmpfile(".json")
    cmds[i] = ("%s/wdload --url %s/v1/runs --key %s --clients %d --duration-ms %d --expect '\"status\":\"completed\"'"
      .. " --body '%s' > %s"):format(build, srv.url, KEY, clients // #servers, SECONDS * 1000, body, outs[i])
  end
  os.execute("(" .. table.concat(cmds, " & ") .. " & wait)")
  local rps, p99 = 0, 0
  for i = 1, #servers do
    local r = json.decode(T.read(outs[i]))
    rps = rps + r.ok / r.seconds
    p99 = math.max(p99, r.p99_ms)
  end
  return rps, p99
end

local function start(kind)
  local servers = {}
  if kind == "sqlite" then
    servers[1] = T.serve({ policy = policy({ path = T.tmpfile(".db") }), agents = "bench/agents", llm = false,
                           workers = 2 })
  else
    local store = { backend = "redis", url = url, prefix = ("runs%d:"):format(math.random(1e9)) }
    for i = 1, 3 do
      servers[i] = T.serve({ policy = policy(store), agents = "bench/agents", llm = false, workers = 1,
                             env = { WARDEN_HOST = "bench" .. i } })
    end
  end
  drive(servers, 30) -- warm: scripts compiled, connections made
  return servers
end

local CLIENTS = 150
print(("served runs: %d clients for %d s, ReAct runs (3 LLM calls of 50 ms, 2 tool calls)"):format(CLIENTS, SECONDS))
local runs = { sqlite = {}, redis = {} }
for _ = 1, 2 do
  for _, kind in ipairs({ "sqlite", "redis" }) do
    local servers = start(kind)
    local rps, p99 = drive(servers, CLIENTS)
    for _, s in ipairs(servers) do s.stop() end
    table.insert(runs[kind], { rps = rps, p99 = p99 })
  end
end
local function top(kind)
  local b = runs[kind][1]
  for _, r in ipairs(runs[kind]) do if r.rps > b.rps then b = r end end
  return b
end
local sq, rd = top("sqlite"), top("redis")
print(("  one serve on SQLite (2 workers): %6.0f runs/s, p99 %4.0f ms"):format(sq.rps, sq.p99))
print(("  three serves on Redis (1 worker each): %6.0f runs/s, p99 %4.0f ms; Redis/SQLite %.2fx"):format(rd.rps, rd.p99,
  rd.rps / sq.rps))
redis.stop()
