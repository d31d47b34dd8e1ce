-- make install (docs/install.md): the installed binary finds its files from its own
-- prefix, nothing of the build's paths compiled in; WARDEN_HOME moves them.
local T = require("warden.testing")

local ROOT = os.getenv("PWD")

describe("make install", function()
  local stage = T.tmpdir() .. "/stage"
  local prefix = stage .. "/opt/wd"
  setup(function()
    local out, rc = T.sh(("make -s --no-print-directory install BUILD=%s PREFIX=/opt/wd DESTDIR=%s"):format(T.build, stage))
    assert(rc == 0, "make install: " .. out)
  end)

  it("puts the binary, the Lua modules, the dashboard, the policies, man pages and completion under PREFIX", function()
    for _, f in ipairs({ "bin/warden", "lib/warden/lua/warden/core.so", "share/warden/lua/warden/runner.lua",
      "share/warden/web/dashboard.html", "share/warden/policies/default.yaml", "share/warden/policies/test.yaml",
      "share/warden/templates/agent/agent.lua", "share/man/man1/warden.1", "share/man/man5/warden-policy.5",
      "share/bash-completion/completions/warden", "share/doc/warden/install.md" }) do
      assert.is_truthy(T.read(prefix .. "/" .. f), f)
    end
    -- no path of the build in what the program reads (its debugging notes aside)
    local data = T.tmpfile(".rodata")
    assert.equal(0, select(2, T.sh(("objcopy -O binary --only-section=.rodata --only-section=.data %s/bin/warden %s")
      :format(prefix, data))))
    assert.is_nil(T.read(data):find(ROOT, 1, true))
    assert.is_truthy(T.read(data):find("/etc/warden/policy.yaml", 1, true)) -- the check can see a path
  end)

  it("runs from the prefix: help, init, test and run in a directory of its own", function()
    local bin = prefix .. "/bin/warden"
    local work = T.tmpdir() .. "/installed-work"
    os.execute("mkdir -p " .. work)
    local out = T.sh(("cd %s && env -u WARDEN_HOME -u WARDEN_BIN -u WARDEN_LUA_DIR %s help --home"):format(work, bin))
    assert.equal(prefix .. "/share/warden\n", out)
    local sh = function(cmd) return T.sh(("cd %s && env -u WARDEN_HOME -u WARDEN_BIN -u WARDEN_LUA_DIR %s"):format(work, cmd)) end
    local rc
    out, rc = sh(bin .. " init hi")
    assert.equal(0, rc, out)
    out, rc = sh(bin .. " test hi")
    assert.equal(0, rc, out)
    local pol, audit = T.policy()
    out, rc = sh(("WARDEN_POLICY=%s WARDEN_USER=reader %s run hi hello --llm mock:hi/scenarios/hello.yaml"):format(pol, bin))
    assert.equal(0, rc, out)
    assert.equal(1, #T.events(audit, "run_finished"))
  end)

  it("finds its files where WARDEN_HOME says once they move", function()
    local moved = T.tmpdir() .. "/moved-home"
    os.execute(("cp -R %s/share/warden %s"):format(prefix, moved))
    local bin = T.tmpdir() .. "/lonely-bin"
    os.execute(("mkdir -p %s && cp %s/bin/warden %s/"):format(bin, prefix, bin))
    local out, rc = T.sh(("env -u WARDEN_HOME %s/warden help --home"):format(bin))
    assert.equal(1, rc, out) -- nothing above it
    out, rc = T.sh(("WARDEN_HOME=%s %s/warden help --home"):format(moved, bin))
    assert.equal(0, rc, out)
    assert.equal(moved .. "\n", out)
    local pol, audit = T.policy()
    out, rc = T.sh(("WARDEN_HOME=%s %s/warden run spec/fixtures/lab '[]' --user reader --policy %s --llm %s")
      :format(moved, bin, pol, "mock:spec/fixtures/no_model.yaml"))
    assert.equal(0, rc, out)
    assert.equal(1, #T.events(audit, "run_finished"))
  end)
end)
