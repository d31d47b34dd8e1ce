-- Attack: the audit log's disk fills up. warden fails closed: a run whose run_started
-- cannot be written does not act and ends failed (exit 1); a run whose last records
-- cannot be written says so in its result, and exits non-zero. Each case runs
-- `warden run` in its own mount namespace over a small tmpfs.
local T = require("warden.testing")

-- an agent that calls echo, then logs n records of 1 KB (its query: n)
local CHATTY = [[
return warden.agent { name = "chatty", tools = { "echo" }, run = function(query, ctx)
  ctx:call_tool("echo", { text = "first" })
  for _ = 1, tonumber(query) do ctx:log({ note = ("x"):rep(1000) }) end
  return "done"
end }
]]

-- runs `warden run` of the lab agent with plan (or of agent) over a tmpfs of size KiB
-- holding the log, after filling it to leave `room` bytes; the result object and the
-- exit code
local function run_on_small_disk(plan, size_kb, room, agent)
  local dir = T.tmpfile("-disk")
  os.execute("mkdir -p " .. dir)
  local pol = T.policy({ audit = { path = dir .. "/audit.jsonl", fsync = "none" } })
  local out = T.tmpfile(".json")
  local script = T.write(T.tmpfile(".sh"), ([[
set -e
mount -t tmpfs -o size=%dk tmpfs %s
head -c $(( %d * 1024 - %d )) /dev/zero > %s/filler 2>/dev/null || true
set +e
%s run %s '%s' --user reader --policy %s --llm mock:spec/fixtures/no_model.yaml --json > %s
echo "rc=$?"
]]):format(size_kb, dir, size_kb, room, dir, T.bin, agent or "spec/fixtures/lab", plan, pol, out))
  local text = T.sh("unshare -rm sh " .. script)
  local rc = tonumber(text:match("rc=(%d+)"))
  local s = T.read(out)
  return s and s:match("}%s*$") and T.decode(s), rc, text
end

describe("attack: the audit log's disk is full", function()
  it("a run that calls nothing ends failed, exit 1, with a clear error", function()
    local res, rc, text = run_on_small_disk("[]", 64, 0)
    assert.equal(1, rc, text)
    assert.is_table(res, text)
    assert.equal("failed", res.status)
    assert.is_false(res.success)
    assert.matches("audit log unavailable", res.errors[#res.errors])
    assert.matches("No space left on device", res.errors[#res.errors])
  end)

  it("a run does not act when its run_started cannot be written: no tool runs", function()
    local res, rc = run_on_small_disk('[["tool","echo",{"text":"x"}],["llm"]]', 64, 0)
    assert.equal(1, rc)
    assert.equal("failed", res.status)
    assert.equal(0, #res.tool_calls) -- refused before it was even recorded as a call
    assert.matches("audit log unavailable", res.errors[1])
  end)

  it("a run whose last records do not fit says so, exit non-zero", function()
    -- room for run_started and the tool call, not for 40 records of 1 KiB
    local agent = T.agent("chatty", { ["agent.lua"] = CHATTY,
      ["tools/echo.lua"] = T.read("spec/fixtures/lab/tools/echo.lua") })
    local res, rc = run_on_small_disk("40", 64, 12000, agent)
    assert.equal(1, rc)
    assert.equal("failed", res.status)
    assert.is_true(res.tool_calls[1] and res.tool_calls[1].success, T.encode(res.errors)) -- it acted while its log was whole
    assert.matches("the run's records were not written", res.errors[#res.errors])
  end)
end)
