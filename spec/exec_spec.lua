-- ctx:exec (docs/lua-api.md, issue 5): commands run under bubblewrap, tested the way
-- an attacker would try them. No network (not even the host's loopback), nothing of the
-- host but /usr and the tool's resources, writes only to writable_resources, rlimits
-- against fork and memory bombs, a wall timeout, an output cap, no inherited secrets.
local T = require("warden.testing")

-- an agent of its own (the lab agent and its exec tool) with data/ and a writable out/
local function sandbox_agent()
  local dir = T.agent("execlab", {
    ["agent.lua"] = (T.read("spec/fixtures/lab/agent.lua"):gsub("  tools = %b{},\n", '  tools = { "exec", "exec_read" },\n')),
    ["tools/exec.lua"] = T.read("spec/fixtures/lab/tools/exec.lua"),
    ["tools/exec_read.lua"] = T.read("spec/fixtures/lab/tools/exec_read.lua"),
    ["data/in.txt"] = "from data\n",
    ["out/.keep"] = "",
  })
  -- commands run as nobody when the specs run as root: the resources must be theirs to
  -- reach (the spec's temporary directory is private to its user) and out/ to write
  assert(os.execute(("chmod 755 '%s' '%s' && chmod 777 '%s/out'"):format(dir:match("^(.*)/[^/]+$"), dir, dir)))
  return dir
end

local DIR = sandbox_agent()
local POLICY = T.policy({ defaults = { exec = { output_kb = 16, procs = 32, memory_mb = 128 } } })

-- runs the exec tool with these calls; the steps' results and the audit log
local function exec(calls)
  local plan = {}
  for i, c in ipairs(calls) do plan[i] = { "tool", c.tool or "exec", c } ; c.tool = nil end
  local res, audit = T.run { agent = DIR, query = plan, policy = POLICY }
  assert.equal("completed", res.status, res.errors[1])
  return T.decode(res.result), audit
end

local function sh(script, extra)
  local c = { argv = { "sh", "-c", script } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

describe("ctx:exec", function()
  it("runs a command with stdin and gives back exit code, stdout and stderr; audited", function()
    local r, audit = exec({ sh("cat; cat data/in.txt; echo oops >&2; exit 3", { stdin = "piped\n" }) })
    assert.equal(3, r[1].exit_code)
    assert.equal("piped\nfrom data\n", r[1].stdout)
    assert.equal("oops\n", r[1].stderr)
    assert.is_false(r[1].timed_out)
    local ev = T.events(audit, "exec")
    assert.equal(1, #ev)
    assert.equal(3, ev[1].exit_code)
    assert.same({ "sh", "-c", "cat; cat data/in.txt; echo oops >&2; exit 3" }, ev[1].tool_args.argv)
    assert.is_false(ev[1].success)
  end)

  it("cannot reach a loopback port the test opened (the same command outside reaches it)", function()
    local srv = T.fakellm()
    local probe = ("echo > /dev/tcp/127.0.0.1/%s && echo CONNECTED"):format(srv.port)
    local outside = T.sh("bash -c '" .. probe .. "'")
    assert.matches("CONNECTED", outside) -- the port is open to the host
    local r = exec({ { argv = { "bash", "-c", probe } } })
    assert.is_not.equal(0, r[1].exit_code)
    assert.is_nil(r[1].stdout:find("CONNECTED", 1, true))
    -- and no interface but its own loopback
    local ifs = exec({ sh("cat /proc/net/dev") })[1].stdout
    assert.is_nil(ifs:find("eth", 1, true))
  end)

  it("cannot write outside its writable resources, and sees nothing of the host but /usr", function()
    local build = T.build:sub(1, 1) == "/" and T.build or os.getenv("PWD") .. "/" .. T.build
    local marker = build .. "/exec-marker.txt" -- the host's, not under /tmp
    os.remove(marker)
    local r = exec({ sh(table.concat({
      "echo x > out/ok.txt && echo WROTE-OUT",
      "echo x > data/new.txt && echo WROTE-DATA",
      "echo x > here.txt && echo WROTE-CWD",
      "echo x > /etc/evil && echo WROTE-ETC",
      "echo x > /usr/evil && echo WROTE-USR",
      "echo x > " .. marker .. " && echo WROTE-HOST",
      "echo x > /tmp/private && echo WROTE-TMP",
      "ls /etc/passwd /root " .. T.build .. " 2>/dev/null || echo HIDDEN",
      "echo FDS $(ls /proc/self/fd | tr '\\n' ' ')",
    }, "; ")) })
    local out = r[1].stdout
    assert.matches("WROTE%-OUT", out)
    assert.equal("x\n", T.read(DIR .. "/out/ok.txt")) -- the host sees the allowed write
    for _, bad in ipairs({ "WROTE-DATA", "WROTE-ETC", "WROTE-USR", "WROTE-HOST" }) do
      assert.is_nil(out:find(bad, 1, true), bad)
    end
    assert.is_nil(T.read(DIR .. "/data/new.txt"))
    -- the working directory is the sandbox's own (here under its private /tmp): never the host's
    assert.is_nil(T.read(DIR .. "/here.txt"))
    assert.is_nil(T.read(marker))
    assert.matches("WROTE%-TMP", out) -- /tmp is private: writable inside ...
    assert.is_nil(T.read("/tmp/private")) -- ... and gone with the sandbox
    assert.matches("HIDDEN", out)
    -- no descriptor of the engine (audit log, state store, sockets) leaks in: 0-2 and ls's own
    assert.matches("FDS 0 1 2 3\n", out)
  end)

  it("survives a command that exits without reading its stdin", function()
    local r = exec({ { argv = { "true" }, stdin = ("x"):rep(1000000) }, sh("echo still here") })
    assert.equal(0, r[1].exit_code)
    assert.equal("still here\n", r[2].stdout)
  end)

  it("does not hand the command the engine's environment (API keys)", function()
    local plan = T.encode({ { "tool", "exec", { argv = { "sh", "-c", "env" } } } })
    local out = T.sh(("OPENAI_API_KEY=sk-secret-123 %s run %s '%s' --user reader --policy %s"
      .. " --llm mock:spec/fixtures/no_model.yaml --json")
      :format(T.bin, DIR, plan, POLICY))
    assert.matches('"status": "completed"', out)
    assert.is_nil(out:find("sk-secret-123", 1, true))
    assert.matches("PATH=/usr/local/bin:/usr/bin:/bin", out)
  end)

  it("contains a fork bomb: the call returns, and no process of it is left", function()
    local r = exec({ { argv = { "bash", "-c", ":(){ :|:& };: ; sleep 1; echo survived" }, timeout_ms = 4000 } })
    assert.is_true(r[1].duration_ms < 4000 + 500)
    assert.matches("fork", r[1].stderr) -- forks were refused, not granted
    os.execute("sleep 0.2")
    -- (without ASan's preload: ps hangs under it)
    local left = T.sh("env -u LD_PRELOAD ps -eo user=,comm= | grep -c '^nobody .*bash' || true")
    assert.equal("0", left:match("%d+"))
  end)

  it("contains a memory bomb: it fails at the address-space limit", function()
    local r = exec({ { argv = { "mawk", "BEGIN { s = \"x\"; while (1) s = s s }" }, timeout_ms = 4000 } })
    assert.is_not.equal(0, r[1].exit_code or r[1].signal)
    assert.is_false(r[1].timed_out)
    assert.matches("memory", r[1].stderr)
  end)

  it("kills a command at its wall timeout, and caps its output", function()
    local r = exec({ sh("sleep 30", { timeout_ms = 300 }), sh("yes warden | head -c 1000000") })
    assert.is_true(r[1].timed_out)
    assert.is_true(r[1].duration_ms < 2000)
    assert.is_true(r[2].truncated)
    assert.equal(16 * 1024, #r[2].stdout)
  end)

  it("refuses forbidden patterns in the joined argv and tools not of category execute", function()
    local r, audit = exec({ { argv = { "rm", "-rf", "/" } }, { tool = "exec_read" } })
    assert.matches("forbidden pattern", r[1].refused)
    assert.matches("not of category execute", r[2].refused)
    local v = T.events(audit, "guardrail_violation")
    assert.equal(2, #v)
    assert.same({ "forbidden_pattern", "critical" }, { v[1].violation_type, v[1].severity })
    assert.same({ "exec_not_allowed", "high" }, { v[2].violation_type, v[2].severity })
    assert.equal(0, #T.events(audit, "exec"))
  end)
end)
