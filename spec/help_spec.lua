-- Help (README.md, Command line): `warden help`, `warden COMMAND --help` for every
-- command, and the man pages warden(1) and warden-policy(5), which are made from the
-- same sources (engine/cli/help.c, docs/policy.md) and must say the same thing.
local T = require("warden.testing")

local function commands()
  local out, rc = T.sh(T.bin .. " help --commands")
  assert.equal(0, rc)
  local list = {}
  for l in out:gmatch("[^\n]+") do list[#list + 1] = l end
  return list
end

-- troff text back to what it says: escapes undone
local function untroff(s)
  return (s:gsub("\\&", ""):gsub("\\%-", "-"):gsub("\\e", "\\"):gsub("\\f[BIR]", ""))
end

-- warden(1)'s block for each command (the text between .nf and .fi after its .SS)
local function man_blocks()
  local page = T.sh(T.bin .. " help --man")
  local blocks = {}
  for name, body in page:gmatch("%.SS ([^\n]+)\n%.nf\n(.-\n)%.fi\n") do blocks[untroff(name)] = untroff(body) end
  return blocks, page
end

describe("help on every command", function()
  it("lists every command, and `warden COMMAND --help` gives its usage, options and an example", function()
    local list = commands()
    assert.is_true(#list >= 20, #list .. " commands")
    local out, rc = T.sh(T.bin .. " help")
    assert.equal(0, rc)
    for _, c in ipairs(list) do
      assert.is_truthy(out:find("  " .. c, 1, true), c .. " is not in warden help")
      local h, hrc = T.sh(T.bin .. " " .. c .. " --help")
      assert.equal(0, hrc, c .. ": " .. h)
      assert.matches("^usage: warden " .. c:gsub("%p", "%%%0"), h)
      assert.matches("\nexample:\n  warden ", h)
      for line in h:gmatch("[^\n]+") do
        assert.is_true(#line <= 79, c .. ": a line over 79 columns: " .. line)
      end
      local h2 = T.sh(T.bin .. " help " .. c)
      assert.equal(h, h2, "warden help " .. c)
    end
  end)

  it("-h after arguments is help too, and `warden --version` prints the version", function()
    local h = T.sh(T.bin .. " run agents/x some query -h")
    assert.matches("^usage: warden run AGENT", h)
    local v, rc = T.sh(T.bin .. " --version")
    assert.equal(0, rc)
    assert.matches("^warden %d+%.%d+%.%d+\n$", v)
  end)

  it("a group of commands lists its own, and an unknown command says where to look", function()
    local h, rc = T.sh(T.bin .. " audit --help")
    assert.equal(0, rc)
    for _, sub in ipairs({ "verify", "query", "trace", "erase" }) do
      assert.matches("usage: warden audit " .. sub, h)
    end
    local out, rc2 = T.sh(T.bin .. " frobnicate")
    assert.equal(2, rc2)
    assert.matches("unknown command 'frobnicate'", out)
    assert.matches("'warden help' lists the commands", out)
  end)

  it("warden(1) holds each command's --help word for word", function()
    local blocks, page = man_blocks()
    assert.matches("^%.TH WARDEN 1", page)
    for _, c in ipairs(commands()) do
      local h = T.sh(T.bin .. " " .. c .. " --help")
      assert.is_not_nil(blocks[c], c .. " has no section in warden(1)")
      assert.equal(h, blocks[c], c)
    end
  end)

  it("both man pages render without a warning", function()
    local one = T.write(T.tmpfile(".1"), (T.sh(T.bin .. " help --man")))
    local five = T.tmpfile(".5")
    local _, rc = T.sh(("lua5.4 tools/mdman.lua docs/policy.md warden-policy 5 'File Formats' 'the warden policy' > %s")
      :format(five))
    assert.equal(0, rc)
    for _, page in ipairs({ one, five }) do
      -- man is not ours to sanitize: make asan's preloaded libasan stays out of it
      local out, mrc = T.sh("env -u LD_PRELOAD MANWIDTH=80 man --warnings -l " .. page .. " 2>&1 >/dev/null")
      assert.equal(0, mrc)
      assert.equal("", out, page)
    end
  end)

  it("warden-policy(5) names every key docs/policy.md lists, with its default", function()
    local five = T.tmpfile(".5")
    T.sh(("lua5.4 tools/mdman.lua docs/policy.md warden-policy 5 'File Formats' 'the warden policy' > %s"):format(five))
    local page = untroff(T.read(five))
    local n = 0
    for line in T.read("docs/policy.md"):gmatch("[^\n]+") do
      local key, default = line:match("^| `([^`]+)` | ([^|]-) |")
      if key then
        n = n + 1
        assert.is_truthy(page:find("\n" .. key .. "\n", 1, true), key .. " is not in warden-policy(5)")
        assert.is_truthy(page:find("(" .. untroff(default:gsub("`", "")), 1, true), key .. "'s default " .. default)
      end
    end
    assert.is_true(n > 30, n .. " keys")
  end)

  it("bash completion offers the commands, a command's options, agents and approval ids", function()
    local function complete(line, env)
      local script = T.write(T.tmpfile(".sh"), ([[
        %s
        warden() { %s/%s "$@"; }
        source contrib/bash-completion/warden
        COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _warden; printf '%%s\n' "${COMPREPLY[@]}"
      ]]):format(env and ("export " .. env) or "", os.getenv("PWD"), T.bin, line))
      return (T.sh("bash " .. script))
    end
    assert.equal("serve\n", complete("warden se"))
    local opts = complete("warden serve --tls")
    assert.matches("%-%-tls%-cert", opts)
    assert.matches("%-%-tls%-key", opts)
    assert.matches("^verify\n", complete("warden audit ver"))
    assert.matches("agents/research_assistant", complete("warden run agents/re"))
    -- the ids of pending approval requests, from the policy the command would find
    local run = T.start { agent = "spec/fixtures/lab", query = '[["tool","approval_tool",{"note":"x"}]]',
      policy_overrides = { approvals = { routes = { high = { "lead" } } } }, llm = "mock:spec/fixtures/no_model.yaml" }
    local req = run.pending()
    local ids = complete("warden approvals approve ''", "WARDEN_POLICY=" .. run.policy)
    assert.equal(req.id .. "\n", ids)
    T.reject(run, req, "completion checked")
    run.result()
  end)
end)
