-- Attack: root runs `warden run` with a policy whose audit log or store lies in a
-- directory another user owns (the packaged service's /var/log/warden, say). warden gives
-- the files it creates there to that directory's owner, so the service can open them
-- (docs/install.md); the directory's owner must not turn that into a chown of a file of
-- root's by planting a symlink or a hard link where the log will be.
local T = require("warden.testing")

local ROOT = (T.sh("id -u")):match("%d+") == "0"

-- a directory owned by nobody, and a file of root's outside it
local function setup_dirs()
  local base = T.tmpdir() .. "/own" .. T.key("")
  local dir, secret = base .. "/nobodys", base .. "/roots-secret"
  os.execute(("mkdir -p %s && chown nobody %s && chmod 755 %s %s"):format(dir, dir, base, dir))
  T.write(secret, "")
  os.execute("chmod 600 " .. secret)
  return dir, secret
end

local function owner(path) return (T.sh("stat -c %U " .. path)):match("%S+") end

local function run(audit, store)
  local pol = T.policy({ audit = { path = audit }, store = { path = store } })
  return T.sh(("%s run spec/fixtures/lab '[]' --user reader --policy %s --llm mock:spec/fixtures/no_model.yaml")
    :format(T.bin, pol))
end

describe("attack: files root creates in another user's directory", function()
  if not ROOT then
    it("needs root (skipped)", function() print("\n    skipped: not root") end)
    return
  end

  it("are given to the directory's owner when warden made them", function()
    local dir = setup_dirs()
    local out, rc = run(dir .. "/audit.jsonl", dir .. "/warden.db")
    assert.equal(0, rc, out)
    assert.equal("nobody", owner(dir .. "/audit.jsonl"))
    assert.equal("nobody", owner(dir .. "/warden.db"))
    assert.equal("600", (T.sh("stat -c %a " .. dir .. "/audit.jsonl")):match("%d+")) -- still its owner's alone
  end)

  it("never through a symlink the owner planted", function()
    local dir, secret = setup_dirs()
    os.execute(("ln -s %s %s/audit.jsonl"):format(secret, dir))
    run(dir .. "/audit.jsonl", dir .. "/warden.db")
    assert.equal("root", owner(secret))
  end)

  it("never through a hard link the owner planted", function()
    local dir, secret = setup_dirs()
    -- as root (protected_hardlinks stops nobody): the link is what a careless admin might leave
    os.execute(("ln %s %s/audit.jsonl"):format(secret, dir))
    run(dir .. "/audit.jsonl", dir .. "/warden.db")
    assert.equal("root", owner(secret))
  end)
end)
