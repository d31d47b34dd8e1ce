-- An agent author's first steps (docs/testing.md): `warden init DIR` makes an agent
-- whose spec passes under `warden test DIR` and which runs as generated, from any
-- directory outside warden's checkout.
local T = require("warden.testing")

local ROOT = os.getenv("PWD")
local BIN = ROOT .. "/" .. T.bin

-- a fresh empty directory outside the repo, and a command run in it
local function space()
  local dir = T.tmpdir() .. "/space" .. T.key("")
  os.execute("mkdir -p " .. dir)
  return dir, function(cmd) return T.sh(("cd %s && %s"):format(dir, cmd)) end
end

describe("warden init", function()
  it("makes an agent whose spec passes and which runs as generated", function()
    local dir, sh = space()
    local out, rc = sh(BIN .. " init hello")
    assert.equal(0, rc, out)
    for _, f in ipairs({ "agent.lua", "tools/greet.lua", "prompts/system.txt", "policy.yaml", "scenarios/hello.yaml",
      "scenarios/greet.yaml", "spec/hello_spec.lua" }) do
      assert.is_truthy(T.read(dir .. "/hello/" .. f), f)
    end
    assert.is_nil(T.read(dir .. "/hello/agent.lua"):find("{{name}}", 1, true))
    out, rc = sh(BIN .. " test hello")
    assert.equal(0, rc, out)
    assert.matches("5 successes / 0 failures / 0 errors", out)
    -- docs/testing.md shows this very spec
    local doc = T.read(ROOT .. "/docs/testing.md")
    local shown = doc:match("```lua\n(%-%- hello's specs.-)```")
    assert.equal(T.read(dir .. "/hello/spec/hello_spec.lua"), shown)
    -- the policy and the user from the environment, as an operator's shell would give them
    local pol, audit = T.policy()
    out, rc = sh(("WARDEN_POLICY=%s WARDEN_USER=reader %s run hello hi --llm mock:hello/scenarios/hello.yaml")
      :format(pol, BIN))
    assert.equal(0, rc, out)
    assert.matches("Hello! I am hello", out)
    assert.equal("hello", T.events(audit, "run_started")[1].agent)
    -- and `warden check` finds nothing wrong in what it made
    out, rc = sh(("%s check hello --policy %s"):format(BIN, pol))
    assert.equal(0, rc, out)
  end)

  it("refuses a directory that exists and a name that cannot name an agent", function()
    local dir, sh = space()
    os.execute("mkdir -p " .. dir .. "/taken")
    local out, rc = sh(BIN .. " init taken")
    assert.equal(2, rc)
    assert.matches("taken exists already", out)
    for _, bad in ipairs({ "'9lives'", "'has space'", "'semi;colon'", "''" }) do
      out, rc = sh(BIN .. " init " .. bad)
      assert.equal(2, rc, bad .. ": " .. out)
    end
    assert.equal(2, select(2, sh(BIN .. " init")))
  end)
end)

describe("warden test", function()
  it("fails when a spec fails, and names it", function()
    local dir, sh = space()
    sh(BIN .. " init broken")
    T.write(dir .. "/broken/spec/wrong_spec.lua", [[
      local T = require("warden.testing")
      describe("wrong", function()
        it("expects what the agent does not say", function()
          local res = T.run { agent = T.agent_dir(), query = "hi", scenario = T.script():say("something else") }
          assert.equal("Hello", res.result)
        end)
      end)
    ]])
    local out, rc = sh(BIN .. " test broken")
    assert.are_not.equal(0, rc)
    assert.matches("wrong expects what the agent does not say", out)
    assert.matches("5 successes / 1 failure", out)
  end)

  it("runs from any directory, finding warden's modules from its own binary", function()
    local dir, sh = space()
    sh(BIN .. " init anywhere")
    local out, rc = T.sh(("cd / && env -u WARDEN_HOME -u WARDEN_BIN %s test %s/anywhere"):format(BIN, dir))
    assert.equal(0, rc, out)
    local home = sh(BIN .. " help --home")
    assert.equal(ROOT .. "\n", home)
    -- WARDEN_HOME elsewhere: the error says what is missing and how to fix it
    out, rc = sh("WARDEN_HOME=/nonexistent " .. BIN .. " test anywhere")
    assert.equal(2, rc)
    assert.matches("warden's Lua modules not found %(home /nonexistent%); set WARDEN_HOME", out)
  end)
end)
