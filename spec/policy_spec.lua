-- Policy loading (docs/policy.md): every key validated, errors with file:line:col
-- and what to write instead, aliases and oversized documents refused.
local T = require("warden.testing")
local core = T.core

local function check(text)
  local path = T.write(T.tmpfile(".yaml"), text)
  local ok, errs = core.policy_check(path)
  return ok, errs or {}, path
end

local function has(errs, pattern)
  for _, e in ipairs(errs) do
    if e:match(pattern) then return true end
  end
  return false, table.concat(errs, "\n")
end

describe("policy check", function()
  it("accepts the shipped policies", function()
    for _, p in ipairs { "policies/default.yaml", "policies/test.yaml", "policies/demo.yaml" } do
      local ok, errs = core.policy_check(p)
      assert.is_true(ok, p .. ": " .. table.concat(errs or {}, "\n"))
    end
  end)

  it("names file, line and column of an unknown key and suggests the right one", function()
    local ok, errs, path = check("version: 1\ndefaults:\n  max_iteratons: 5\n")
    assert.is_false(ok)
    assert.equal(1, #errs)
    assert.equal(path .. ":3:3: unknown key 'max_iteratons' in defaults; did you mean 'max_iterations'?", errs[1])
  end)

  it("lists the expected keys when nothing is close", function()
    local _, errs = check("tools:\n  t: {permission: read, colour: red}\n")
    assert.is_true(has(errs, "unknown key 'colour' in tools.t; expected one of: permission, risk"))
  end)

  it("reports every error at once", function()
    local _, errs = check([[
version: 2
defaults: {max_iterations: 0, timeouts: {run_ms: soon}}
users:
  bob: {role: superuser, tier: gold}
tools:
  x: {permission: root, risk: extreme, timeout_ms: -5}
audit: {fsync: sometimes}
]])
    assert.is_true(has(errs, ":1:10: version must be 1"))
    assert.is_true(has(errs, "defaults.max_iterations is 0; write a number from 1 to 1000"))
    assert.is_true(has(errs, "defaults.timeouts.run_ms must be a duration"))
    assert.is_true(has(errs, "users.bob.role 'superuser' is not in roles"))
    assert.is_true(has(errs, "users.bob.tier 'gold' is not defined under tiers"))
    assert.is_true(has(errs, "tools.x.permission 'root' is not in roles"))
    assert.is_true(has(errs, "tools.x.risk 'extreme'"))
    assert.is_true(has(errs, "tools.x.timeout_ms must be a duration"))
    assert.is_true(has(errs, "audit.fsync must be always, batch or none"))
    assert.is_true(#errs >= 9)
  end)

  it("checks the store: a backend it knows, each backend's own keys, a Redis URL without a password", function()
    local ok, errs = check([[
store: {backend: redis, url: "redis://127.0.0.1:6379/0", prefix: "prod:", password_env: REDIS_PW,
        timeout_ms: 100, lease: 5s}
]])
    assert.is_true(ok, table.concat(errs, "\n"))
    local function refused(text)
      local good, e = check(text)
      assert.is_false(good)
      return e
    end
    errs = refused("store: {backend: postgres}\n")
    assert.is_true(has(errs, "store.backend must be sqlite or redis, not 'postgres'"))
    errs = refused("store: {path: x.db, url: \"redis://h:1/0\"}\n")
    assert.is_true(has(errs, "store.url is for backend: redis"))
    errs = refused("store: {backend: redis, path: x.db}\n")
    assert.is_true(has(errs, "store.path is for backend: sqlite; a Redis store takes url"))
    for _, url in ipairs({ "redis://:secret@h:6379/0", "http://h:6379", "redis:///0", "redis://h:1/0?prefix=x",
                           "redis://h:1/0&lease_ms=1" }) do
      errs = refused(("store: {backend: redis, url: \"%s\"}\n"):format(url))
      assert.is_true(has(errs, "store.url must be redis://HOST:PORT/DB or redis%+unix:///PATH"), url)
    end
    errs = refused("store: {backend: redis, prefix: \"a b&c\", password_env: \"X=Y\", timeout_ms: 0}\n")
    assert.is_true(has(errs, "store.prefix: 1 to 64 letters"))
    assert.is_true(has(errs, "store.password_env: an environment variable's name"))
    assert.is_true(has(errs, "store.timeout_ms"))
  end)

  it("accepts durations as milliseconds or strings", function()
    local ok, errs = check("defaults: {timeouts: {run_ms: 2m, tool_ms: 1500, llm_read_ms: 30s}}\n" ..
      "approvals: {expiry: {critical: 15m, low: 1d}}\n")
    assert.is_true(ok, table.concat(errs, "\n"))
  end)

  it("refuses YAML aliases (billion laughs, cycles)", function()
    local _, errs = check("a: &a [1, 2]\nb: *a\n")
    assert.is_true(has(errs, ":2:4: aliases %(%*a%) are not allowed"))
    local _, errs2 = check([[
lol1: &l1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
lol2: &l2 [*l1,*l1,*l1,*l1,*l1,*l1,*l1,*l1,*l1]
lol3: [*l2,*l2,*l2,*l2,*l2,*l2,*l2,*l2,*l2]
]])
    assert.is_true(has(errs2, "aliases"))
  end)

  it("caps nesting depth", function()
    local _, errs = check(("["):rep(100) .. ("]"):rep(100) .. "\n")
    assert.is_true(has(errs, "nesting deeper than 32 levels"))
  end)

  it("caps file size", function()
    local _, errs = check("# " .. ("x"):rep(1100000) .. "\n")
    assert.is_true(has(errs, "larger than 1 MiB"))
  end)

  it("reports YAML syntax errors with their position", function()
    local _, errs, path = check("users:\n  bob: {role: read\n")
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":%d+:%d+: ", errs[1])
  end)

  it("refuses a duplicate key", function()
    local _, errs = check("users:\n  bob: {role: read}\n  bob: {role: admin}\n")
    assert.is_true(has(errs, "key 'bob' appears twice"))
  end)

  it("caps user and tool names at 128 bytes: budgets and rate limits are kept under them", function()
    local long = ("u"):rep(129)
    local ok, errs = check(("users:\n  %s: {role: read}\ntools:\n  %s: {permission: read}\n"):format(long, long))
    assert.is_false(ok)
    assert.is_true(has(errs, ":2:3: users%.u+%.%.%.: a name is at most 128 bytes %(this one has 129%)"))
    assert.is_true(has(errs, ":4:3: tools%.u+%.%.%.: a name is at most 128 bytes"))
    assert.is_true(check(("users:\n  %s: {role: read}\n"):format(long:sub(2))))
  end)

  it("compiles forbidden patterns and reports bad ones", function()
    local _, errs = check("tools:\n  t: {permission: read, forbidden_patterns: ['(unclosed']}\n")
    assert.is_true(has(errs, "forbidden_patterns%[0%]: invalid pattern"))
  end)

  it("checks redact patterns by name", function()
    local _, errs = check("audit: {redact_patterns: [credit_card, phone]}\n")
    assert.is_true(has(errs, "unknown 'phone'"))
    local ok = check("audit: {redact_patterns: [email, 're:\\bACME-\\d+']}\n")
    assert.is_true(ok)
  end)

  it("merges a directory of files in name order, later files winning", function()
    local dir = T.agent("pdir", { -- a directory of files, as for an agent
      ["10-base.yaml"] = "users:\n  bob: {role: read}\ntools:\n  t: {permission: read}\n",
      ["20-more.yaml"] = "users:\n  eve: {role: admin}\ndefaults: {max_iterations: 3}\n" })
    local ok, errs = core.policy_check(dir)
    assert.is_true(ok, table.concat(errs or {}, "\n"))
    T.write(dir .. "/30-bad.yaml", "users:\n  zed: {role: nobody}\n")
    local ok2, errs2 = core.policy_check(dir)
    assert.is_false(ok2)
    assert.is_true(has(errs2, "30%-bad%.yaml:2:"))
  end)

  it("is what `warden policy check` runs: exit 2 and messages on stderr", function()
    local _, _, path = check("defaults: {max_iterations: many}\n")
    local h = io.popen(T.bin .. " policy check " .. path .. " 2>&1; echo rc=$?")
    local out = h:read("a")
    h:close()
    assert.matches(":1:28: defaults.max_iterations must be a whole number", out)
    assert.matches("rc=2", out)
  end)

  it("prints the errors as JSON with --json", function()
    local _, _, path = check("defaults: {max_iterations: many}\nusers: {a: {role: x}}\n")
    local h = io.popen(T.bin .. " policy check " .. path .. " --json; echo rc=$?")
    local out = h:read("a")
    h:close()
    local j = T.decode(out:match("^(.-)\nrc="))
    assert.is_false(j.ok)
    assert.equal(2, #j.errors)
    assert.matches("rc=2", out)
  end)

  it("never lets an invalid policy start a run", function()
    local _, _, path = check("users: [not, a, map]\n")
    local res, err = core.run { agent = "spec/fixtures/lab", query = "[]", user = "reader", policy = path }
    assert.is_nil(res)
    assert.matches("users must be a mapping", err)
  end)
end)

describe("tool rules by pattern", function()
  it("authorize the tools they match with their own keys, and nothing else", function()
    -- echo and write_tool lose their own rules; patterns take their place
    local o = { tools = { echo = T.NONE, write_tool = T.NONE,
      ["ech*"] = { permission = "read", risk = "low" },
      ["*_tool"] = { permission = "admin", risk = "high" } } }
    local res, steps = T.lab('[["tool","echo",{"text":"hi"}],["tool","write_tool",{}]]', { policy_overrides = o })
    assert.equal("completed", res.status)
    assert.is_nil(steps[1].error)
    assert.matches("requires the 'admin' role", steps[2].error) -- the pattern's permission, not write's
    -- a tool no rule matches is undeclared, as before
    local o2 = { tools = { echo = T.NONE, ["eck*"] = { permission = "read" } } }
    local _, steps2, audit2 = T.lab('[["tool","echo",{"text":"hi"}]]', { policy_overrides = o2 })
    assert.equal("tool 'echo' is not declared in the policy: blocked", steps2[1].error)
    assert.equal(1, #T.events(audit2, "authorization_denied"))
  end)

  it("must name some characters besides '*'", function()
    local pol = T.policy({ tools = { ["*"] = { permission = "read" } } })
    local out, rc = T.sh(T.bin .. " policy check " .. pol)
    assert.equal(2, rc)
    assert.matches("a pattern must name some characters besides", out)
  end)

  it("checks an MCP server's sandbox: true, or its binds and network, and only for a command", function()
    local ok, errs = check([[
version: 1
mcp:
  servers:
    a: {command: [node, s.js], sandbox: true}
    b: {command: [node, s.js], sandbox: {allowed_resources: [/opt/s], writable_resources: [/srv], network: true}}
    c: {command: [node, s.js], sandbox: {allowed_resources: /opt, nets: true}}
    d: {url: "http://127.0.0.1:1/mcp", sandbox: true}
    e: {command: [node, s.js], sandbox: maybe}
]])
    assert.is_false(ok)
    assert.is_true(has(errs, "'nets' in mcp%.servers%.c%.sandbox; expected one of: allowed_resources"))
    assert.is_true(has(errs, "mcp%.servers%.c%.sandbox%.allowed_resources"))
    assert.is_true(has(errs, "mcp%.servers%.d: a server is a command %(stdio%) or a url"))
    assert.is_true(has(errs, "mcp%.servers%.e%.sandbox"))
    assert.is_false(has(errs, "servers%.[ab]"))
  end)

  it("compiles a rule's schema, and names a keyword it does not know", function()
    local ok, errs = check([[
version: 1
roles: [read]
tools:
  a: {permission: read, schema: {properties: {path: {pattern: "^/srv/"}}}}
  b: {permission: read, schema: {properties: {path: {minLenght: 3}}}}
  c: {permission: read, schema: [1, 2]}
]])
    assert.is_false(ok)
    assert.is_true(has(errs, "tools%.b%.schema: .*minLenght"))
    assert.is_true(has(errs, "tools%.c%.schema must be a JSON Schema object"))
    assert.is_false(has(errs, "tools%.a"))
  end)
end)
