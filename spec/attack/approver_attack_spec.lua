-- Attack: someone decides an approval who is not the approver. At the command line a
-- decision needs proof: the approver's API key (--key-file or WARDEN_API_KEY) or the
-- login running the command mapped with users.NAME.os_user. A bare --by, or a $USER
-- set to an approver's name, is refused (exit 2) unless the policy trusts the command
-- line (approvals.trust_cli_identity, for development). Records say how it was proved.
local T = require("warden.testing")

local KEY = "em-secret-key-7"

-- the shipped default policy, with approval_tool needing a decision (high risk)
local function shipped(extra)
  local o = { users = { reader = { role = "read", tier = "free" } },
              tools = { approval_tool = { permission = "read", risk = "high", requires_approval = true } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o, "policies/default.yaml")
end

local function waiting(pol)
  local _, out = T.start_lab(pol, '[["tool","approval_tool",{"n":1}]]')
  return T.pending(pol), out
end

local function decide(pol, args, env)
  return T.sh(("%s%s approvals %s --policy %s"):format(env or "", T.bin, args, pol))
end

local function whoami() return (T.sh("id -un")):match("%S+") end

describe("attack: deciding an approval without being the approver", function()
  it("refuses a bare --by under the shipped policy, exit 2, saying how to prove it; the key works", function()
    local pol, audit = shipped({ users = { reader = { role = "read", tier = "free" },
      engineering_manager = { role = "read", api_key_sha256 = T.sha256(KEY) } } })
    local req, out = waiting(pol)
    local msg, rc = decide(pol, "approve " .. req.id .. " --by engineering_manager")
    assert.equal(2, rc, msg)
    assert.matches("prove who decides: give the approver's API key", msg)
    assert.matches("trust_cli_identity", msg)
    msg, rc = decide(pol, "approve " .. req.id, "USER=engineering_manager LOGNAME=engineering_manager ")
    assert.equal(2, rc, msg) -- the environment names nobody
    msg, rc = decide(pol, "approve " .. req.id, "WARDEN_API_KEY=not-the-key ")
    assert.equal(2, rc, msg)
    assert.matches("no user's", msg)
    msg, rc = decide(pol, "approve " .. req.id .. " --by director", "WARDEN_API_KEY=" .. KEY .. " ")
    assert.equal(2, rc, msg)
    assert.matches("%-%-by director is not who the API key proves: engineering_manager", msg)
    assert.equal("pending", T.pending(pol).status)
    local kf = T.write(T.tmpfile(".key"), KEY .. "\n")
    msg, rc = decide(pol, "approve " .. req.id .. " --key-file " .. kf)
    assert.equal(0, rc, msg)
    assert.equal("completed", T.result_of(out).status)
    local granted = T.events(audit, "approval_granted")[1]
    assert.equal("engineering_manager", granted.decided_by)
    assert.equal("api_key", granted.decided_via)
  end)

  it("accepts the login running the command when the policy maps it to the approver", function()
    local pol, audit = shipped({ users = { reader = { role = "read", tier = "free" },
      director = { role = "read", os_user = whoami() } } })
    local req, out = waiting(pol)
    local msg, rc = decide(pol, "reject " .. req.id .. " --reason 'not now'")
    assert.equal(0, rc, msg)
    T.result_of(out)
    local rejected = T.events(audit, "approval_rejected")[1]
    assert.equal("director", rejected.decided_by)
    assert.equal("os_user", rejected.decided_via)
  end)

  it("believes a bare --by only when the policy says so, and records that it did", function()
    local pol, audit = shipped({ approvals = { trust_cli_identity = true } })
    local req, out = waiting(pol)
    local msg, rc = decide(pol, "approve " .. req.id .. " --by director")
    assert.equal(0, rc, msg)
    T.result_of(out)
    assert.equal("cli_flag", T.events(audit, "approval_granted")[1].decided_via)
  end)
end)
