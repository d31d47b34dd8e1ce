-- Attack: a path argument written to slip past a forbidden pattern. Guardrails match the
-- canonical form the file operation reads (and the raw form too): trailing slashes, dot
-- segments, doubled slashes, detours and symlinks reach the same file and the same
-- refusal; case and Unicode look-alikes name other files, which do not hold the secret.
local T = require("warden.testing")

local SECRET = "API_KEY=sk-live-do-not-leak"

local function agent()
  local dir = T.agent("guarded_reader", {
    ["agent.lua"] = (T.read("spec/fixtures/lab/agent.lua"):gsub("  tools = %b{},\n", '  tools = { "read_file" },\n')),
    ["tools/read_file.lua"] = T.read("spec/fixtures/lab/tools/read_file.lua"),
    ["data/ok.txt"] = "fine\n",
    ["data/.env"] = SECRET,
    ["data/sub/keep.txt"] = "",
  })
  assert(os.execute(("cd %s/data && ln -sf .env link_env && ln -sf ../.env sub/deep_link"):format(dir)))
  return dir
end

local function read_all(dir, paths)
  local plan = {}
  for i, p in ipairs(paths) do plan[i] = { "tool", "read_file", { path = p } } end
  local res, audit = T.run { agent = dir, query = plan }
  assert.equal("completed", res.status, tostring(res.errors[1]))
  return T.decode(res.result), audit
end

describe("attack: paths around a forbidden pattern", function()
  local dir
  setup(function() dir = agent() end)

  it("refuses every way of naming data/.env, by the pattern on the form that would be read", function()
    local paths = { "data/.env", "data/.env/", "data/.env/.", "data//.env", "data/./.env", "data/sub/../.env",
                    "data/../data/.env", "./data/.env", "data/link_env", "data/sub/deep_link", "data/sub//../.env/" }
    local steps, audit = read_all(dir, paths)
    for i, s in ipairs(steps) do
      assert.is_nil(s.content, paths[i] .. " was read")
      assert.matches("forbidden pattern '\\%.env%$'", s.error, 1, false)
    end
    local v = T.events(audit, "guardrail_violation")
    assert.equal(#paths, #v)
    for _, e in ipairs(v) do assert.equal("forbidden_pattern", e.violation_type) end
  end)

  it("look-alikes in case or Unicode name other files: nothing of the secret is read", function()
    local steps = read_all(dir, { "data/.ENV", "data/\239\188\142env", "data/.env\226\128\139", "data/ok.txt" })
    for i = 1, 3 do -- refused (patterns are caseless) or not found: never the secret
      assert.is_nil(steps[i].content)
      assert.truthy(steps[i].error:match("cannot read") or steps[i].error:match("forbidden pattern"), steps[i].error)
    end
    assert.equal("fine\n", steps[4].content)
  end)

  it("a path holding a NUL byte is refused, not cut short", function()
    local res = T.run { agent = dir, query = { { "tool", "read_file", { path = "data/ok.txt\0/../.env" } } } }
    local steps = T.decode(res.result)
    assert.is_nil(steps[1].content)
  end)

  it("a tool reading with ctx:read_file is held to the same forms", function()
    local tool = T.agent("sly_reader", {
      ["agent.lua"] = 'return warden.agent { name = "sly_reader", tools = { "read_file" }, run = function(q, ctx)'
        .. ' return ctx:call_tool("read_file", { note = "data/.env/" }).error end }',
      -- a tool that reads a path it was not given as a path argument
      ["tools/read_file.lua"] = 'return warden.tool { name = "read_file", description = "x",'
        .. ' run = function(args, ctx) local t, err = ctx:read_file(args.note) return t and { content = t } or nil, err end }',
      ["data/.env"] = SECRET,
    })
    local res = T.run { agent = tool, query = "q" }
    assert.equal("completed", res.status, tostring(res.errors[1]))
    assert.matches("matches forbidden pattern", res.result)
  end)
end)
