-- Attack: hostile policies. Whatever a policy file holds, or whatever sits where a
-- policy is expected, `warden policy check` answers with file:line:column and exit 2,
-- never crashes or waits; `warden serve` refuses it on reload and keeps serving.
local T = require("warden.testing")

local function check(path)
  return T.sh(("timeout 5 %s policy check %s"):format(T.bin, path))
end

local function refused(path, pattern)
  local out, rc = check(path)
  assert.equal(2, rc, out)
  assert.truthy(out:find(pattern, 1, true), out)
  return out
end

local GOOD = T.read("policies/test.yaml")

describe("attack: hostile policies", function()
  it("refuses a mapping or a list as a key, wherever it stands, with its line and column", function()
    local cases = {
      { "version: 1\nusers:\n  {a: 1}: {role: read}\n", ":3:3: a key must be a plain name, not a mapping" },
      { "version: 1\ntools:\n  ? [a, b]\n  : {permission: read}\n", ":3:5: a key must be a plain name, not a list" },
      { "version: 1\ndetectors: {{loop: 1}: {enforce: true}}\n", ":2:13: a key must be a plain name, not a mapping" },
      { "{x: 1}: 2\nversion: 1\n", ":1:1: a key must be a plain name, not a mapping" },
      { GOOD .. "approvals:\n  routes: {[high]: [boss]}\n", "a key must be a plain name, not a list" },
    }
    for _, c in ipairs(cases) do
      refused(T.write(T.tmpfile(".yaml"), c[1]), c[2])
    end
  end)

  it("refuses an empty file, one holding only a BOM, or only comments", function()
    for _, text in ipairs({ "", "\239\187\191", "# nothing\n", "---\n", "{}\n" }) do
      refused(T.write(T.tmpfile(".yaml"), text), ":1:1: the policy is empty")
    end
  end)

  it("never waits on a FIFO, a device or a socket, as the policy or inside a policy directory", function()
    local fifo = T.tmpfile(".yaml")
    assert(os.execute("mkfifo " .. fifo))
    refused(fifo, fifo .. ":1:1: cannot read policy: not a regular file")
    refused("/dev/zero", "not a regular file")
    local link = T.tmpfile(".yaml")
    assert(os.execute("ln -s /dev/zero " .. link))
    refused(link, "not a regular file")
    local dir = T.tmpfile("-policy")
    assert(os.execute("mkdir " .. dir))
    T.write(dir .. "/a.yaml", GOOD)
    assert(os.execute("mkfifo " .. dir .. "/b.yaml"))
    refused(dir, dir .. "/b.yaml:1:1: cannot read: not a regular file")
  end)

  it("refuses an empty file inside a policy directory", function()
    local dir = T.tmpfile("-policy")
    assert(os.execute("mkdir " .. dir))
    T.write(dir .. "/a.yaml", GOOD)
    T.write(dir .. "/b.yaml", "# to do\n")
    refused(dir, "b.yaml:1:1: the file is empty")
  end)

  it("still refuses aliases, deep nesting, huge files and NUL bytes (defences that held)", function()
    refused(T.write(T.tmpfile(".yaml"), "version: 1\na: &x [1]\nb: *x\n"), "aliases (*x) are not allowed")
    refused(T.write(T.tmpfile(".yaml"), "version: 1\nx: " .. ("["):rep(40) .. ("]"):rep(40) .. "\n"),
      "nesting deeper than 32 levels")
    refused(T.write(T.tmpfile(".yaml"), "version: 1\n# " .. ("x"):rep(1100000) .. "\n"), "larger than")
    refused(T.write(T.tmpfile(".yaml"), GOOD .. 'models: {default: {provider: mock, name: "a\\0b"}}\n'),
      "a NUL byte inside a value")
  end)
end)

describe("attack: hostile policies written while warden serve runs", function()
  it("refuses each on reload, keeps serving the last good policy, and stops on SIGTERM", function()
    local key = "pol-key-1"
    local dir = T.tmpfile("-policy")
    assert(os.execute("mkdir " .. dir))
    local pol, audit = T.policy({ users = { reader = { api_key_sha256 = T.sha256(key) } } })
    os.execute(("cp %s %s/a.yaml"):format(pol, dir))
    local agents = T.tmpfile("-agents")
    os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(agents, os.getenv("PWD"), agents))
    local srv = T.serve({ policy = dir, agents = agents, workers = 1 })
    local function works()
      local code, res = srv.http("POST", "/v1/runs", key,
        { agent = "lab", input = '[["tool","echo",{"text":"x"}]]', wait = true })
      return code == 200 and res.status == "completed"
    end
    local ok, err = pcall(function()
      assert.is_true(works())
      local rejected = 0
      local function expect_rejection(what)
        rejected = rejected + 1
        local r = T.wait_for(function() return T.events(audit, "policy_rejected")[rejected] end, what)
        assert.is_true(works())
        return r
      end
      T.write(dir .. "/b.yaml", "users:\n  {a: 1}: {role: read}\n")
      assert.matches("a key must be a plain name", expect_rejection("the mapping key").reason)
      os.remove(dir .. "/b.yaml")
      assert(os.execute("mkfifo " .. dir .. "/c.yaml"))
      os.execute("kill -HUP " .. srv.pid)
      T.wait_for(function()
        for _, r in ipairs(T.events(audit, "policy_rejected")) do
          if r.reason:match("not a regular file") then return true end
        end
      end, "the FIFO's rejection")
      assert.is_true(works())
      os.remove(dir .. "/c.yaml")
    end)
    assert.equal(0, srv.stop())
    assert(ok, err)
  end)
end)
