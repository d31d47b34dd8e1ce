-- The served load test (make bench): warden serve with 2 workers in front of the fake
-- model (build/fakellm, 50 ms per answer), the ReAct workload of docs/performance.md
-- (3 LLM calls, 2 tool calls per run), driven over HTTP by build/wdload.
--   1. throughput: CLIENTS keep-alive clients POST /v1/runs with wait for SECONDS;
--      requests/s, and what warden adds: per run, the answer's time minus the model's
--      150 ms; per LLM call, the llm_call record's latency minus the model's 50 ms
--   2. memory: RSS of the server idle, then with 1,000 and 10,000 runs in flight at once
--      (the model slowed to 4 s an answer so the runs stay in flight while measured)
-- usage: lua5.4 bench/serve_load.lua [CLIENTS[,CLIENTS...]] [SECONDS]   (default 200,1000 10)
package.path = "lua/?.lua;" .. package.path
package.cpath = (os.getenv("WARDEN_BUILD") or "build") .. "/lua/?.so;" .. package.cpath
local T = require("warden.testing")
local json = require("cjson")

local CLIENTS, SECONDS = {}, tonumber(arg[2]) or 10
for n in (arg[1] or "200,1000"):gmatch("%d+") do CLIENTS[#CLIENTS + 1] = tonumber(n) end
local KEY = "bench-key"
local ARGS = "args=%7B%22query%22:%22x%22%7D"

local fake = T.fakellm()
local function policy(delay_ms)
  local p = T.load_yaml("bench/bench.yaml")
  p.users.bench.api_key_sha256 = T.sha256(KEY)
  p.models.default.base_url = fake.url(("delay=%d,calls=2,tool=noop,%s"):format(delay_ms, ARGS))
  p.audit.path = T.tmpfile(".jsonl")
  p.store.path = T.tmpfile(".db")
  local path = T.write(T.tmpfile(".yaml"), json.encode(p))
  return path, p.audit.path
end

local function rss_kb(pid)
  local s = T.read("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local function pct(v, p) return v[math.max(1, math.ceil(#v * p))] end

local function load(srv, body, clients, opts)
  local out = T.sh(("%s/wdload --url %s/v1/runs --key %s --clients %d %s --body '%s'")
    :format(T.build, srv.url, KEY, clients, opts, json.encode(body)))
  return json.decode(out)
end

local agents = "bench/agents"
print(("served load: warden serve --workers 2, ReAct runs of 3 LLM calls (fake model, 50 ms) and 2 tool calls"))

-- 1. throughput and overhead, for each number of clients (a new server each time)
local pol, audit, srv
for _, clients in ipairs(CLIENTS) do
  pol, audit = policy(50)
  srv = T.serve({ policy = pol, agents = agents, llm = false, workers = 2 })
  local body = { agent = "react_noop", input = "benchmark", wait = true }
  load(srv, body, 20, "--requests 200") -- warm: scripts compiled, connections made
  local r = load(srv, body, clients, ("--duration-ms %d --expect '\"status\":\"completed\"'"):format(SECONDS * 1000))
  srv.stop()
  local lat = {}
  for line in io.lines(audit) do
    if line:find('"event":"llm_call"', 1, true) then
      lat[#lat + 1] = (tonumber(line:match('"latency_ms":(%d+)')) or 0) - 50
    end
  end
  table.sort(lat)
  print(("  %d clients, %d s: %d runs, %.0f runs/s (%d failed or not completed, %d transport errors)")
    :format(clients, SECONDS, r.requests, r.rps, r.requests - r.ok, r.errors))
  print(("    per run (answer time - 150 ms of model): p50 %.2f ms, p99 %.2f ms (answer p50 %.2f, p99 %.2f)")
    :format(r.p50_ms - 150, r.p99_ms - 150, r.p50_ms, r.p99_ms))
  print(("    per LLM call (llm_call latency_ms - 50 ms, 1 ms resolution, %d calls): p50 %d ms, p99 %d ms")
    :format(#lat, pct(lat, 0.5) or -1, pct(lat, 0.99) or -1))
end

-- 2. memory with runs in flight
pol = policy(4000)
srv = T.serve({ policy = pol, agents = agents, llm = false, workers = 2 })
load(srv, { agent = "react_noop", input = "warm", wait = false }, 10, "--requests 50")
T.wait_for(function() return select(2, srv.http("GET", "/healthz")).runs_active == 0 end, "warm runs", 3000)
print(("  RSS idle after warm-up: %.1f MB"):format(rss_kb(srv.pid) / 1024))
local before = rss_kb(srv.pid)
for _, n in ipairs({ 1000, 10000 }) do
  local res = load(srv, { agent = "react_noop", input = "held", wait = false }, 50, "--requests " .. n)
  assert(res.status["202"] == n, "not every run was accepted: " .. json.encode(res))
  local active = T.wait_for(function()
    local _, h = srv.http("GET", "/healthz")
    return h.runs_active >= n and h.runs_active
  end, "runs in flight", 3000)
  os.execute("sleep 1") -- every run past its first call, waiting on the model
  local rss = rss_kb(srv.pid)
  print(("  RSS with %d runs in flight: %.1f MB (%.1f KB a run over idle); submitted at %.0f/s")
    :format(active, rss / 1024, (rss - before) / active, res.rps))
  T.wait_for(function() return select(2, srv.http("GET", "/healthz")).runs_active == 0 end, "the runs to end", 6000)
end
srv.stop()
