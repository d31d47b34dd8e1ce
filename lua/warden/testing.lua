-- warden.testing: helpers for busted specs. Runs agents through the real engine
-- (require "warden.core"), writes mock scenarios and policies to temporary files,
-- and reads audit logs back.
local core = require("warden.core")
local json = require("cjson")

local M = { core = core }

-- the build directory under test (make asan points it at build-asan)
M.build = os.getenv("WARDEN_BUILD") or "build"
-- the warden binary: `warden test` names itself in WARDEN_BIN
M.bin = os.getenv("WARDEN_BIN") or (M.build .. "/warden")

-- warden's home (the directory holding lua/warden/): WARDEN_HOME, else where this module is
M.home = os.getenv("WARDEN_HOME")
if not M.home then
  local me = package.searchpath("warden.testing", package.path)
  M.home = me and me:match("^(.*)/lua/warden/testing%.lua$") or "."
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local tmpdir
local counter = 0

local cleanup -- luacheck: ignore (kept alive so its __gc removes the directory at exit)

function M.tmpdir()
  if not tmpdir then
    local h = assert(io.popen("mktemp -d /tmp/warden-spec.XXXXXX"))
    tmpdir = h:read("l")
    h:close()
    local dir = tmpdir
    cleanup = setmetatable({}, { __gc = function() os.execute("rm -rf '" .. dir .. "'") end })
  end
  return tmpdir
end

-- a fresh file name in the spec's temporary directory
function M.tmpfile(suffix)
  counter = counter + 1
  return ("%s/f%d%s"):format(M.tmpdir(), counter, suffix or "")
end

function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

function M.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- YAML is a superset of JSON, so tables are written as JSON
function M.scenario(entries)
  return M.write(M.tmpfile(".yaml"), json.encode(entries))
end

-- deep-merges overrides into the policy file (defaults to policies/test.yaml);
-- M.NONE as a value removes the key
M.NONE = setmetatable({}, { __name = "warden.testing.NONE" })
-- M.EMPTY as a value: an empty list (cjson writes an empty table as {})
M.EMPTY = setmetatable({}, { __name = "warden.testing.EMPTY" })
local EMPTY_MARK = "\0warden-empty-list\0"
local function merge(a, b)
  for k, v in pairs(b) do
    if v == M.NONE then
      a[k] = nil
    elseif v == M.EMPTY then
      a[k] = EMPTY_MARK
    elseif type(v) == "table" and type(a[k]) == "table" and #v == 0 and next(v) ~= nil then
      merge(a[k], v)
    else
      a[k] = v
    end
  end
  return a
end

function M.load_yaml(path)
  local lyaml = require("lyaml")
  local text, err = M.read(path)
  if not text then
    local _, why = io.open(path, "r")
    error(("warden.testing: cannot read %s: %s"):format(path, why or err or "?"), 2)
  end
  local ok, v = pcall(lyaml.load, text)
  if not ok then error(("warden.testing: %s is not YAML: %s"):format(path, v), 2) end
  return v
end

-- the base policy of M.policy: ./policies/test.yaml in warden's checkout, else the one
-- installed in warden's home
function M.base_policy()
  if exists("policies/test.yaml") then return "policies/test.yaml" end
  local p = M.home .. "/policies/test.yaml"
  if exists(p) then return p end
  error("warden.testing: no base policy: neither ./policies/test.yaml nor " .. p
    .. " exists; give T.run a policy = FILE, or set WARDEN_HOME to warden's share directory", 3)
end

-- the agent directory of the spec calling this: the parent of its spec/ folder (or the
-- folder holding agent.lua above it)
function M.agent_dir()
  local src = debug.getinfo(2, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or "."
  local dir = file:match("^(.*)/[^/]*$") or "."
  for _ = 1, 4 do
    if exists(dir .. "/agent.lua") then return dir end
    dir = dir:match("^(.*)/[^/]*$") or (dir .. "/..")
  end
  error("warden.testing: agent_dir: no agent.lua above " .. file, 2)
end

-- a mock model's scenario, one call at a time:
--   T.script():call("greet", { name = "Ada" }):say("Hello, Ada!")
-- :call adds a turn asking for a tool (several :call in a row ask for them at once when
-- :together() came first), :say a turn answering; :usage(input, output) sets the token
-- counts of the last turn. T.run takes it as scenario = the script.
local Script = {}
Script.__index = Script
function M.script() return setmetatable({ turns = {} }, Script) end
function Script:call(name, args)
  local last = self.turns[#self.turns]
  local call = { name = name, arguments = args or {} }
  if self.batch and last and last.tool_calls then
    last.tool_calls[#last.tool_calls + 1] = call
  else
    self.turns[#self.turns + 1] = { tool_calls = { call } }
  end
  return self
end
function Script:together() self.batch = true; return self end
function Script:say(text) self.turns[#self.turns + 1] = { content = text }; self.batch = false; return self end
function Script:usage(input, output)
  assert(#self.turns > 0, "warden.testing: usage() before any turn")
  self.turns[#self.turns].usage = { input_tokens = input, output_tokens = output }
  return self
end
function Script:build() return self.turns end

function M.policy(overrides, base)
  local p = M.load_yaml(base or M.base_policy())
  if overrides then merge(p, overrides) end
  p.audit = p.audit or {}
  if not (overrides and overrides.audit and overrides.audit.path) then
    p.audit.path = M.tmpfile(".jsonl") -- every policy gets a log of its own
  end
  if not (overrides and overrides.store) then
    p.store = M.fresh_store() -- and a state store of its own
  end
  M.stores[p.audit.path] = M.locator(p.store) -- where the log's sealed fields are opened
  local text = json.encode(p):gsub('"\\u0000warden%-empty%-list\\u0000"', "[]")
  local path = M.write(M.tmpfile(".yaml"), text)
  return path, p.audit.path
end

-- llm = false: the policy's models over HTTP; nil: a mock that answers "done"
local function llm_opt(llm)
  if llm == false then return nil end
  return llm or ("mock:" .. M.scenario({ { content = "done" } }))
end

-- opts: agent, query (string or table, encoded as JSON), user, scenario (table) or llm,
-- policy (path) or policy_overrides (table), audit (path)
function M.run(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if type(o.query) == "table" then o.query = json.encode(o.query) end
  if getmetatable(o.scenario) == Script then o.scenario = o.scenario:build() end
  if o.scenario then o.llm = "mock:" .. M.scenario(o.scenario); o.scenario = nil end
  o.llm = llm_opt(o.llm)
  if not o.policy or o.policy_overrides then
    o.policy = M.policy(o.policy_overrides, o.policy)
  end
  o.policy_overrides = nil
  o.audit = o.audit or M.tmpfile(".jsonl")
  o.user = o.user or "reader"
  M.stores[o.audit] = M.store_of(o.policy)
  local res, audit = core.run(o)
  return res, audit
end

-- several runs in one engine (one loop): opts.runs is a list of run options
function M.run_many(engine_opts, runs)
  local e = {}
  for k, v in pairs(engine_opts) do e[k] = v end
  e.policy = e.policy or M.policy()
  e.audit = e.audit or M.tmpfile(".jsonl")
  M.stores[e.audit] = M.store_of(e.policy)
  e.llm = llm_opt(e.llm)
  for _, r in ipairs(runs) do
    if type(r.query) == "table" then r.query = json.encode(r.query) end
    r.user = r.user or "reader"
  end
  return core.run_many(e, runs)
end

-- a throwaway agent directory: files is {["agent.lua"] = "...", ["tools/x.lua"] = "..."}
function M.agent(name, files)
  local dir = M.tmpdir() .. "/" .. name
  for rel, text in pairs(files) do
    local sub = (dir .. "/" .. rel):match("^(.*)/[^/]*$")
    assert(os.execute("mkdir -p '" .. sub .. "'"))
    M.write(dir .. "/" .. rel, text)
  end
  return dir
end

-- the state store of each log a policy made here: M.records opens sealed fields with it
M.stores = {}

-- The store section of a new policy: a SQLite file of its own or, with
-- WARDEN_TEST_STORE=redis (make test-redis), keys of their own (a prefix) on one
-- redis-server this spec process starts: every spec then runs against Redis.
local shared_redis, prefixes = nil, 0
function M.redis_mode() return os.getenv("WARDEN_TEST_STORE") == "redis" end
-- redis_opts: more keys of a Redis store section (lease = "1s")
function M.fresh_store(redis_opts)
  if not M.redis_mode() then return { path = M.tmpfile(".db") } end
  shared_redis = shared_redis or M.redis()
  prefixes = prefixes + 1
  local st = { backend = "redis", url = ("redis://127.0.0.1:%d/0"):format(shared_redis.port),
               prefix = ("t%d_%d_%d:"):format(prefixes, os.time(), math.random(1e6)) }
  for k, v in pairs(redis_opts or {}) do st[k] = v end
  return st
end

-- the string a store section opens as (the policy builds the same): a file's path, or
-- a Redis locator
function M.locator(store)
  if type(store) ~= "table" then return "var/warden.db" end
  if store.backend ~= "redis" then return store.path or "var/warden.db" end
  local lease = store.lease or "15s"
  local n, unit = tostring(lease):match("^(%d+)(m?s?)$")
  local ms = tonumber(n) * (unit == "ms" and 1 or 1000)
  local loc = ("%s?prefix=%s&timeout_ms=%d&lease_ms=%d"):format(store.url or "redis://127.0.0.1:6379/0",
    store.prefix or "warden:", store.timeout_ms or 250, ms)
  if store.password_env then loc = loc .. "&password_env=" .. store.password_env end
  return loc
end

-- the state store a policy file names (its default when it names none)
function M.store_of(policy_path)
  local ok, p = pcall(M.load_yaml, policy_path)
  return ok and type(p) == "table" and M.locator(p.store) or "var/warden.db"
end

-- the records of a log, sealed fields opened (opts.sealed: as written)
function M.records(path, opts)
  local out, lines = {}, {}
  local f = io.open(path, "r")
  if not f then return out end
  local text = f:read("a")
  f:close()
  -- whole lines only: a writer may be half way through its last one as we read
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local store = M.stores[path] or M.stores[path:gsub("%.%d+$", "")] -- a rotated file: its log's
  if store and not (opts and opts.sealed) then
    local sealed, at = {}, {}
    for i, line in ipairs(lines) do
      if line:find('"sealed":[', 1, true) then sealed[#sealed + 1] = line; at[#at + 1] = i end
    end
    if #sealed > 0 then
      local opened = assert(core.unseal(sealed, store))
      for k, i in ipairs(at) do lines[i] = opened[k] end
    end
  end
  for _, line in ipairs(lines) do out[#out + 1] = json.decode(line) end
  return out
end

function M.events(path, name)
  local out = {}
  for _, r in ipairs(M.records(path)) do
    if r.event == name then out[#out + 1] = r end
  end
  return out
end

-- the fault-injecting server (spec/support/fakellm.c) on a free loopback port, for the
-- life of the spec process. srv.url(opts) is a base_url whose path picks the faults
-- ("key=a,fail=2"); srv.requests(key) counts what reached it, srv.tools(key) lists the
-- tools each of those requests offered the model, srv.max_tokens(key) what each asked.
local server
function M.fakellm()
  if server then return server end
  local stat = assert(io.open("/proc/self/stat")):read("l")
  local mypid = stat:match("^(%d+)")
  local pf, log = M.tmpfile(".port"), M.tmpfile(".log")
  local h = assert(io.popen(("%s/fakellm --port-file %s --log %s --watch-pid %s >/dev/null 2>&1 & echo $!")
    :format(M.build, pf, log, mypid)))
  local pid = h:read("l")
  h:close()
  local port
  for _ = 1, 500 do
    port = M.read(pf)
    if port then break end
    os.execute("sleep 0.01")
  end
  assert(port, "fakellm did not start")
  port = port:match("%d+")
  server = { port = port, pid = pid, log = log }
  -- a webhook receiver's URL: opts as url's ("key=h1,fail=1,status=500")
  function server.hook_url(opts)
    return ("http://127.0.0.1:%s/%s/hook"):format(port, opts)
  end
  -- the requests the receiver kept for key, in order (see spec/support/fakellm.c)
  function server.hooks(key)
    local out = {}
    for line in (M.read(log .. ".hooks") or ""):gmatch("[^\n]+") do
      local rec = json.decode(line)
      if rec.key == key then out[#out + 1] = rec end
    end
    return out
  end
  function server.url(opts)
    return ("http://127.0.0.1:%s/%s/v1"):format(port, opts or "x=1")
  end
  function server.requests(key)
    local n = 0
    local text = M.read(log) or ""
    for line in text:gmatch("[^\n]+") do
      if line:match("^(%S+)") == key then n = n + 1 end
    end
    return n
  end
  -- a field of each request with this key, in order
  local function field(key, pattern)
    local out = {}
    for line in (M.read(log) or ""):gmatch("[^\n]+") do
      if line:match("^(%S+)") == key then out[#out + 1] = line:match(pattern) end
    end
    return out
  end
  -- the tools each request offered the model: { "a,b", "-", ... }
  function server.tools(key) return field(key, " tools=(%S+)") end
  -- the response_format schema name each request sent ("-": none)
  function server.formats(key) return field(key, " rf=(%S+)") end
  -- the max_tokens each request asked for (-1: none)
  function server.max_tokens(key)
    local out = field(key, " max_tokens=(%-?%d+)")
    for i, v in ipairs(out) do out[i] = tonumber(v) end
    return out
  end
  return server
end

-- A redis-server of the spec's own (Debian's, installed by make deps) on a free loopback
-- port, in a directory of its own, without persistence unless opts.aof: { port, dir,
-- cli(args...) -> its reply as text, stop() }. It is stopped by stop(), and by a watcher
-- when the spec process ends without calling it.
function M.redis(opts)
  opts = opts or {}
  local stat = assert(io.open("/proc/self/stat")):read("l")
  local mypid = stat:match("^(%d+)")
  for _ = 1, 20 do
    local port = math.random(20000, 60000)
    local dir = M.tmpfile("-redis")
    os.execute("mkdir -p " .. dir)
    local args = ("--port %d --bind 127.0.0.1 --dir %s --save '' --appendonly %s --daemonize no --logfile %s/log")
      :format(port, dir, opts.aof and "yes --appendfsync everysec" or "no", dir)
    local function launch()
      local h = assert(io.popen(("env -u LD_PRELOAD redis-server %s >/dev/null 2>&1 & p=$!; echo $p; "
        .. "(while kill -0 %s 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done; kill $p 2>/dev/null) "
        .. ">/dev/null 2>&1 &"):format(args, mypid)))
      local p = h:read("l")
      h:close()
      return p
    end
    local pid = launch()
    local srv = { port = port, dir = dir, pid = pid }
    function srv.cli(...)
      local words = {}
      for i, w in ipairs({ ... }) do words[i] = "'" .. tostring(w):gsub("'", "'\\''") .. "'" end
      local out = M.sh(("env -u LD_PRELOAD redis-cli -p %d %s"):format(port, table.concat(words, " ")))
      return (out:gsub("%s+$", ""))
    end
    -- gone once it no longer answers (its process may linger as a zombie nobody reaps)
    -- sig: "KILL" for a crash (no chance to write anything more)
    function srv.stop(sig)
      os.execute("kill " .. (sig and ("-" .. sig .. " ") or "") .. pid .. " 2>/dev/null")
      for _ = 1, 500 do
        if srv.cli("ping") ~= "PONG" then return end
        os.execute("sleep 0.01")
      end
    end
    -- stopped (SIGTERM, or sig: "KILL" a crash) and started again on the same port and
    -- directory, on what its AOF kept
    function srv.restart(sig)
      srv.stop(sig)
      pid = launch()
      srv.pid = pid
      for _ = 1, 500 do
        if srv.cli("ping") == "PONG" then return end
        os.execute("sleep 0.01")
      end
      error("redis-server did not start again")
    end
    for _ = 1, 300 do
      if srv.cli("ping") == "PONG" then return srv end
      -- it ended (the port was taken): no process, or a zombie (ps without the sanitizers,
      -- which hang it when a spec runs under asan)
      if M.sh("env -u LD_PRELOAD ps -o stat= -p " .. pid):match("^%s*[ZX]?%s*$") then break end
      os.execute("sleep 0.01")
    end
    srv.stop()
  end
  error("redis-server did not start (is it installed? make deps installs it)")
end

-- the ledger row of scope ("user:dave", "global") whose period begins with prefix ("day:",
-- "month:"): the latest, or nil
function M.ledger_row(store, scope, prefix)
  local found
  for _, row in ipairs(assert(core.ledger(store))) do
    if row.scope == scope and row.period:sub(1, #prefix) == prefix then found = row end
  end
  return found
end

-- a fresh key for the fake server's counters
local keys = 0
function M.key(prefix)
  keys = keys + 1
  return ("%s%d_%d"):format(prefix or "k", keys, os.time())
end

-- a shell command's output (stdout and stderr) and exit code
function M.sh(cmd)
  local h = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = h:read("a")
  h:close()
  return out:gsub("rc=%d+%s*$", ""), tonumber(out:match("rc=(%d+)%s*$"))
end

function M.decode(s) return json.decode(s) end
function M.encode(v) return json.encode(v) end

-- starts `warden run` of the lab agent in the background with plan (JSON text): its pid
-- and the file its result object will be in (stderr beside it, in FILE.err)
function M.start_lab(policy, plan, env)
  local out = M.tmpfile(".json")
  local h = io.popen(("%s%s run spec/fixtures/lab '%s' --user reader --policy %s"
    .. " --llm mock:spec/fixtures/no_model.yaml --json >%s 2>%s.err"
    .. " & echo $!"):format(env and (env .. " ") or "", M.bin, plan, policy, out, out))
  local pid = h:read("l")
  h:close()
  return pid, out
end

-- the result object a background run wrote, once it has (waits up to 10 s)
function M.result_of(out)
  for _ = 1, 1000 do
    local s = M.read(out)
    if s and s:match("}%s*$") then return json.decode(s) end
    os.execute("sleep 0.01")
  end
  error("the run gave no result: " .. tostring(M.read(out .. ".err")))
end

-- `warden approvals ARGS` against a policy (now_ms: the clock it sees); output, exit code.
-- A decision "--by NAME" is proved with NAME's key, "key-NAME" (the test policy's
-- approvers hold their hashes)
function M.approvals(pol, args, now_ms)
  local env = now_ms and ("WARDEN_NOW=%d "):format(now_ms) or ""
  local by = args:match("%-%-by (%S+)")
  if by then env = env .. "WARDEN_API_KEY=key-" .. by .. " " end
  return M.sh(("%s%s approvals %s --policy %s"):format(env, M.bin, args, pol))
end

-- the first pending approval request, once a run has asked (waits up to 5 s)
function M.pending(pol)
  for _ = 1, 250 do
    local l = json.decode((M.approvals(pol, "list --json")))
    if l[1] then return l[1] end
    os.execute("sleep 0.02")
  end
  error("no approval request appeared")
end

-- the fake clock of runs in this process (T.run): T.clock(ms) sets the wall clock to ms
-- since the epoch (nil: the real one again), T.advance(ms) moves it ahead; each returns
-- the clock. A run started with T.start sees T.clock's time through WARDEN_NOW.
function M.clock(ms) return core.clock(ms) end
function M.advance(ms) return core.advance_clock(ms) end

-- a run in the background, through the warden binary, for what must happen while it
-- runs (an approval, a kill). opts as T.run's. Returns a handle: h.policy, h.audit (its
-- log), h:result() (waits for the result object, up to 10 s), h:pending() (the first
-- approval request it made, waiting for it)
function M.start(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if type(o.query) == "table" then o.query = json.encode(o.query) end
  if getmetatable(o.scenario) == Script then o.scenario = o.scenario:build() end
  if o.scenario then o.llm = "mock:" .. M.scenario(o.scenario) end
  local policy, audit = o.policy, nil -- luacheck: ignore 311
  if not policy or o.policy_overrides then
    policy, audit = M.policy(o.policy_overrides, o.policy)
  else
    audit = (M.load_yaml(policy).audit or {}).path
  end
  local out = M.tmpfile(".json")
  local env = o.now and ("WARDEN_NOW=%d "):format(o.now) or ""
  local h = assert(io.popen(("%s%s run '%s' '%s' --user '%s' --policy %s --llm '%s' --json >%s 2>%s.err & echo $!")
    :format(env, M.bin, o.agent, ((o.query or ""):gsub("'", "'\\''")), o.user or "reader", policy, llm_opt(o.llm),
      out, out)))
  local pid = h:read("l")
  h:close()
  local run = { pid = pid, policy = policy, audit = audit, out = out }
  function run.result() return M.result_of(out) end
  function run.pending() return M.pending(policy) end
  return run
end

-- a person's decision on the pending approval request req (from h:pending(), T.pending,
-- or an id) of the run h (or a policy path): by defaults to the request's first approver
local function decide(h, req, approve, by, reason)
  local policy = type(h) == "table" and h.policy or h
  if type(req) ~= "table" then
    for _, r in ipairs(json.decode((M.approvals(policy, "list --json")))) do
      if r.id == req then req = r end
    end
    if type(req) ~= "table" then error("warden.testing: no pending approval request " .. tostring(req), 3) end
  end
  by = by or (req.approvers and req.approvers[1]) or "spec"
  local ok, msg = core.decide(M.store_of(policy), req.id, approve, by, reason)
  if not ok then error("warden.testing: " .. msg, 3) end
  return msg
end
function M.approve(h, req, by) return decide(h, req, true, by) end
function M.reject(h, req, reason, by) return decide(h, req, false, by, reason or "rejected in a spec") end

-- a certificate authority and a certificate it signed for localhost and 127.0.0.1, made
-- with openssl in the spec's directory: {ca, cert, key} (PEM file paths)
function M.tls_files()
  local d = M.tmpdir() .. "/tls" .. counter
  counter = counter + 1
  local out, rc = M.sh("(" .. table.concat({
    "mkdir -p " .. d, "cd " .. d,
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem"
      .. " -days 2 -subj /CN=warden-spec-ca",
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out req.csr"
      .. " -subj /CN=localhost",
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext",
    "openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext",
  }, " && ") .. ")")
  assert(rc == 0, "openssl: " .. out)
  return { ca = d .. "/ca.pem", cert = d .. "/cert.pem", key = d .. "/key.pem", dir = d }
end

-- curl, outside make asan's preloaded sanitizer (curl hangs under it): it is not ours
M.curl = "env -u LD_PRELOAD curl"

-- f's first truthy value, tried every 10 ms (tries times, default 500); an error naming what
function M.wait_for(f, what, tries)
  for _ = 1, tries or 500 do
    local v = f()
    if v then return v end
    os.execute("sleep 0.01")
  end
  error("gave up waiting for " .. what)
end

-- SHA-256 of a text, in hex (what a policy's api_key_sha256 holds)
function M.sha256(text)
  local f = M.write(M.tmpfile(".key"), text)
  return (M.sh("sha256sum " .. f)):match("^(%x+)")
end

-- `warden serve` in the background: opts.policy (path), opts.agents (dir), opts.llm (false:
-- the policy's models),
-- opts.workers, opts.grace, opts.tls ({cert, key, ca}: HTTPS, curl trusting ca).
-- Returns srv with url, pid, err (its stderr file) and
-- srv.http(method, path, key, body) -> status, decoded body (or raw text), headers;
-- srv.stop(signal) -> the exit code (waits for it)
function M.serve(opts)
  local errf, rcf, pidf = M.tmpfile(".err"), M.tmpfile(".rc"), M.tmpfile(".pid")
  local llm = opts.llm == false and "" or (" --llm " .. (opts.llm or ("mock:" .. M.scenario({ { content = "done" } }))))
  local tls = opts.tls and (" --tls-cert %s --tls-key %s"):format(opts.tls.cert, opts.tls.key) or ""
  local bin = (opts.cwd and M.bin:sub(1, 1) ~= "/") and (os.getenv("PWD") .. "/" .. M.bin) or M.bin
  local cmd = ("%s serve --listen 127.0.0.1:0 --policy %s --agents %s --workers %d%s%s%s"):format(
    bin, opts.policy, opts.agents, opts.workers or 2, llm, opts.grace and (" --grace " .. opts.grace) or "", tls)
  -- opts.cwd: the process's working directory (a host of its own); opts.env: {NAME = value}
  local cd = opts.cwd and ("cd " .. opts.cwd .. " && ") or ""
  for k, v in pairs(opts.env or {}) do cd = cd .. ("%s=%s "):format(k, v) end
  os.execute(("sh -c '%s%s 2>%s & echo $! >%s; wait $!; echo $? >%s' >/dev/null 2>&1 &"):format(cd, cmd, errf, pidf,
    rcf))
  local port
  for _ = 1, 1000 do
    port = (M.read(errf) or ""):match("serving https?://127%.0%.0%.1:(%d+)/")
    if port or M.read(rcf) then break end
    os.execute("sleep 0.01")
  end
  assert(port, "warden serve did not start: " .. tostring(M.read(errf)))
  local url = (opts.tls and "https://localhost:" or "http://127.0.0.1:") .. port
  local srv = { url = url, port = port, err = errf, pid = M.read(pidf):match("%d+") }
  function srv.http(method, path, key, body, extra)
    local out, hdr = M.tmpfile(".body"), M.tmpfile(".hdr")
    local args = { M.curl .. " -s -m 30 -o " .. out .. " -D " .. hdr .. " -w '%{http_code}' -X " .. method }
    if key then args[#args + 1] = "-H 'Authorization: Bearer " .. key .. "'" end
    if opts.tls then args[#args + 1] = "--cacert " .. opts.tls.ca end
    if body then
      local bf = M.write(M.tmpfile(".json"), type(body) == "table" and json.encode(body) or body)
      args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. bf
    end
    args[#args + 1] = extra or ""
    args[#args + 1] = "'" .. srv.url .. path .. "'"
    local code = tonumber((M.sh(table.concat(args, " "))))
    local text = M.read(out) or ""
    local ok, v = pcall(json.decode, text)
    return code, ok and v or text, M.read(hdr) or ""
  end
  -- sig false: no signal, wait for the exit of one sent already
  function srv.stop(sig)
    if sig ~= false then os.execute("kill -" .. (sig or "TERM") .. " " .. srv.pid .. " 2>/dev/null") end
    for _ = 1, 3000 do
      local rc = M.read(rcf)
      if rc and rc:match("%d") then return tonumber(rc:match("%d+")) end
      os.execute("sleep 0.01")
    end
    error("warden serve did not stop")
  end
  return srv
end

-- the lab agent runs a plan given as its query and returns what each step gave back
function M.lab(plan, opts)
  local o = { agent = "spec/fixtures/lab", query = plan }
  for k, v in pairs(opts or {}) do o[k] = v end
  local res, audit = M.run(o)
  local steps
  if res.status == "completed" then steps = json.decode(res.result) end
  return res, steps, audit
end

return M
