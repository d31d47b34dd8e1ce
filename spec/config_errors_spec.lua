-- Configuration errors (README.md, Command line; docs/install.md): an unknown agent, a
-- missing or invalid mock scenario, an unreadable or invalid policy, nobody to run as.
-- Each exits 2 with one clear line on stderr and writes no run record: only a run that
-- started and did not succeed exits 1.
local T = require("warden.testing")

-- the command's stderr lines, stdout and exit code
local function try(cmd)
  local errf = T.tmpfile(".err")
  local out, rc = T.sh("(" .. cmd .. " 2>" .. errf .. ")")
  local lines = {}
  for l in (T.read(errf) or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  return lines, out, rc
end

-- a policy whose log nothing has written yet
local function fresh()
  local pol, audit = T.policy()
  return pol, audit
end

local function no_record(audit)
  assert.is_nil(T.read(audit), "a run record was written: " .. tostring(T.read(audit)))
end

local SCEN = "mock:spec/fixtures/no_model.yaml"

describe("configuration errors exit 2 and write no run record", function()
  it("an agent directory that does not exist", function()
    local pol, audit = fresh()
    local err, out, rc = try(("%s run no/such/agent hi --user reader --policy %s --llm %s"):format(T.bin, pol, SCEN))
    assert.equal(2, rc, out)
    assert.equal(1, #err)
    assert.matches("^warden: agent no/such/agent: No such file or directory", err[1])
    no_record(audit)
  end)

  it("a directory without agent.lua", function()
    local pol, audit = fresh()
    local dir = T.tmpdir() .. "/empty_agent"
    os.execute("mkdir -p " .. dir)
    local err, out, rc = try(("%s run %s hi --user reader --policy %s --llm %s"):format(T.bin, dir, pol, SCEN))
    assert.equal(2, rc, out)
    assert.equal(1, #err)
    assert.matches("agent.lua: No such file or directory", err[1], 1, true)
    no_record(audit)
  end)

  it("a mock scenario that does not exist", function()
    local pol, audit = fresh()
    local err, out, rc = try(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm mock:/no/such.yaml")
      :format(T.bin, pol))
    assert.equal(2, rc, out)
    assert.equal(1, #err)
    assert.matches("^warden: %-%-llm mock:/no/such%.yaml: .*No such file or directory", err[1])
    no_record(audit)
  end)

  it("a mock scenario that is not a scenario", function()
    local pol, audit = fresh()
    for _, text in ipairs({ "{ unclosed: [", "just a string", "- 42\n- [1, 2]\n" }) do
      local bad = T.write(T.tmpfile(".yaml"), text)
      local err, out, rc = try(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm mock:%s")
        :format(T.bin, pol, bad))
      assert.equal(2, rc, text .. ": " .. out)
      assert.equal(1, #err, text)
      assert.matches("^warden: %-%-llm mock:" .. bad:gsub("%p", "%%%0"), err[1])
    end
    no_record(audit)
  end)

  it("an --llm that is neither mock:FILE nor a URL", function()
    local pol, audit = fresh()
    local err, _, rc = try(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm ftp://x"):format(T.bin, pol))
    assert.equal(2, rc)
    assert.same({ "warden: --llm 'ftp://x' is neither mock:FILE nor an http(s) URL" }, err)
    no_record(audit)
  end)

  it("a policy that cannot be read, or is not valid", function()
    local err, _, rc = try(("%s run spec/fixtures/lab '[]' --user reader --policy /no/such.yaml --llm %s")
      :format(T.bin, SCEN))
    assert.equal(2, rc)
    assert.same({ "/no/such.yaml:1:1: cannot read policy: No such file or directory" }, err)
    local bad = T.write(T.tmpfile(".yaml"), "version: 1\naudit: {path: " .. T.tmpfile(".jsonl") .. "}\nusers: 7\n")
    local err2, _, rc2 = try(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm %s"):format(T.bin, bad, SCEN))
    assert.equal(2, rc2)
    assert.matches("^" .. bad:gsub("%p", "%%%0") .. ":3:%d+: ", err2[1])
  end)

  it("no policy anywhere: the error names every place tried", function()
    local dir = T.tmpdir() .. "/nopolicy"
    os.execute("mkdir -p " .. dir)
    local err, _, rc = try(("cd %s && env -u WARDEN_POLICY %s/%s run x hi --user reader"):format(dir, os.getenv("PWD"), T.bin))
    assert.equal(2, rc)
    assert.equal(1, #err)
    if not T.read("/etc/warden/policy.yaml") then
      assert.equal("warden: no policy found; tried --policy (not given), WARDEN_POLICY (not set), "
        .. "./policies/default.yaml (No such file or directory), /etc/warden/policy.yaml (No such file or directory)",
        err[1])
    end
  end)

  it("nobody to run as: no --user, no WARDEN_USER, and the login maps to no user", function()
    local pol, audit = fresh()
    local err, _, rc = try(("env -u WARDEN_USER %s run spec/fixtures/lab '[]' --policy %s --llm %s"):format(T.bin, pol, SCEN))
    assert.equal(2, rc)
    assert.equal(1, #err)
    assert.matches("^warden: who runs%? give %-%-user ID or WARDEN_USER, or map your login", err[1])
    no_record(audit)
  end)

  it("WARDEN_USER, or a login mapped with os_user, names who runs", function()
    local login = (T.sh("id -un")):match("%S+")
    local pol = T.policy({ users = { mapped = { role = "read", os_user = login } } })
    local _, out, rc = try(("env -u WARDEN_USER %s run spec/fixtures/lab '[]' --policy %s --llm %s --json")
      :format(T.bin, pol, SCEN))
    assert.equal(0, rc, out)
    local pol2, audit2 = T.policy()
    _, out, rc = try(("WARDEN_USER=reader %s run spec/fixtures/lab '[]' --policy %s --llm %s --json")
      :format(T.bin, pol2, SCEN))
    assert.equal(0, rc, out)
    assert.equal("reader", T.events(audit2, "run_started")[1].user_id)
  end)

  it("WARDEN_POLICY is the policy when --policy is not given", function()
    local pol, audit = T.policy()
    local _, out, rc = try(("WARDEN_POLICY=%s %s run spec/fixtures/lab '[]' --user reader --llm %s"):format(pol, T.bin, SCEN))
    assert.equal(0, rc, out)
    assert.equal(1, #T.events(audit, "run_started"))
  end)

  it("an unknown user is a run refused, not a configuration error: exit 1, audited", function()
    local pol, audit = fresh()
    local _, out, rc = try(("%s run spec/fixtures/lab '[]' --user nobody_here --policy %s --llm %s"):format(T.bin, pol, SCEN))
    assert.equal(1, rc, out)
    assert.equal(1, #T.events(audit, "authorization_denied"))
  end)

  it("warden serve: a missing agents directory, a bad certificate, a lone --tls-key", function()
    local pol = fresh()
    local err, _, rc = try(("%s serve --policy %s --agents /no/such --listen 127.0.0.1:0"):format(T.bin, pol))
    assert.equal(2, rc)
    assert.same({ "warden: --agents /no/such: not a directory" }, err)
    local junk = T.write(T.tmpfile(".pem"), "not a certificate\n")
    err, _, rc = try(("%s serve --policy %s --agents agents --listen 127.0.0.1:0 --tls-cert %s --tls-key %s")
      :format(T.bin, pol, junk, junk))
    assert.equal(2, rc)
    assert.equal(1, #err)
    assert.matches("^warden: %-%-tls%-cert " .. junk:gsub("%p", "%%%0") .. ": ", err[1])
    err, _, rc = try(("%s serve --policy %s --tls-key %s"):format(T.bin, pol, junk))
    assert.equal(2, rc)
    assert.equal("warden: serve: --tls-cert and --tls-key go together", err[1])
  end)
end)
