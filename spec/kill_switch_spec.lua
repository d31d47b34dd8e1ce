-- The kill switch (docs/safety.md; README.md, Command line, issue 5): `warden kill AGENT|--all`
-- refuses new runs and ends running ones within a second in every process sharing the
-- store; `warden revive` undoes it; an agent whose last kill_switch.consecutive_errors
-- runs failed is disabled automatically. Every step is audited as kill_switch.
local T = require("warden.testing")

-- seconds of the day of an audit timestamp (2026-11-21T10:00:00.123Z)
local function seconds(ts)
  local h, m, s = ts:match("T(%d+):(%d+):([%d.]+)Z$")
  return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s)
end

local function cli(pol, args)
  return T.sh(("%s %s --policy %s"):format(T.bin, args, pol))
end



local function wait_for(audit, event)
  for _ = 1, 500 do
    if #T.events(audit, event) > 0 then return end
    os.execute("sleep 0.01")
  end
  error("no " .. event .. " in " .. audit)
end

local function run(pol, plan)
  local out, rc = T.sh(("(%s run spec/fixtures/lab '%s' --user reader"
    .. " --llm mock:spec/fixtures/no_model.yaml --json --policy %s 2>/dev/null)")
    :format(T.bin, plan, pol))
  return T.decode(out:gsub("rc=%d+%s*$", "")), rc
end

describe("kill switch", function()
  it("ends a running run of the agent within a second, from another process, and refuses new ones", function()
    local pol, audit = T.policy()
    local _, out = T.start_lab(pol, '[["sleep", 8000]]')
    wait_for(audit, "run_started")
    local msg, rc = cli(pol, "kill lab --reason 'incident 42' --by ops")
    assert.equal(0, rc, msg)
    local res = T.result_of(out)
    assert.equal("killed", res.status)
    assert.is_false(res.success)
    assert.matches("incident 42", res.errors[1])
    assert.is_true(res.execution_time_ms < 8000)
    -- from the switch's record (written by the kill command) to the run's end: under a second
    local killed, finished
    for _, e in ipairs(T.records(audit)) do
      if e.event == "kill_switch" and e.action == "kill" then killed = seconds(e.timestamp) end
      if e.event == "run_finished" and e.reason == "killed" and not finished then finished = seconds(e.timestamp) end
    end
    assert.is_true(finished - killed < 1.0, ("the run ended %.3f s after the kill"):format(finished - killed))
    -- new runs are refused before they start
    local res2, rc2 = run(pol, '[["tool","echo",{}]]')
    assert.equal(1, rc2)
    assert.equal("killed", res2.status)
    assert.equal("This agent has been disabled by an operator.", res2.result)
    assert.equal(0, #res2.tool_calls)
    -- the list says who and why
    local list = T.decode((cli(pol, "kill --json")))
    assert.equal(1, #list)
    assert.same({ "lab", "ops", "incident 42", false }, { list[1].agent, list[1].by, list[1].reason, list[1].automatic })
    -- audited: the switch, the cancelled run, the refused one
    local actions = {}
    for _, e in ipairs(T.events(audit, "kill_switch")) do actions[#actions + 1] = e.action end
    table.sort(actions)
    assert.same({ "cancel_run", "kill", "refuse_run" }, actions)
    -- revive: runs again
    msg, rc = cli(pol, "revive lab --by ops")
    assert.equal(0, rc, msg)
    local res3 = run(pol, '[["tool","echo",{}]]')
    assert.equal("completed", res3.status)
  end)

  it("ends a run whose script renamed its agent: the directory's name is killed too", function()
    local pol, audit = T.policy()
    local dir = T.agent("renamer", { ["agent.lua"] =
      'return warden.agent { name = "innocent", run = function(q, ctx) ctx:sleep(8000) return "done" end }' })
    local out = T.tmpfile(".json")
    os.execute(("%s run %s go --user reader --policy %s --llm mock:spec/fixtures/no_model.yaml --json >%s 2>/dev/null &")
      :format(T.bin, dir, pol, out))
    wait_for(audit, "run_started")
    local msg, rc = cli(pol, "kill renamer --reason renamed --by ops")
    assert.equal(0, rc, msg)
    local res = T.result_of(out)
    assert.equal("killed", res.status)
    assert.is_true(res.execution_time_ms < 8000)
  end)

  it("--all stops every agent until revive --all; another agent's kill leaves this one alone", function()
    local pol = T.policy()
    assert.equal(0, select(2, cli(pol, "kill research_assistant")))
    assert.equal("completed", run(pol, '[["tool","echo",{}]]').status)
    assert.equal(0, select(2, cli(pol, "kill --all --reason drill")))
    local res = run(pol, '[["tool","echo",{}]]')
    assert.equal("killed", res.status)
    assert.matches("all agents: drill", res.errors[1])
    assert.equal(0, select(2, cli(pol, "revive --all")))
    assert.equal("completed", run(pol, '[["tool","echo",{}]]').status)
    assert.matches("no agent is killed", (cli(pol, "kill")))
  end)

  it("disables a failing agent by its directory's name, whatever name its script declares", function()
    local pol = T.policy({ kill_switch = { consecutive_errors = 2 } })
    local dir = T.agent("flaky_dir", { ["agent.lua"] =
      'return warden.agent { name = "someone_else", run = function() error("boom", 0) end }' })
    local function go()
      local out = T.sh(("%s run %s go --user reader --policy %s"
        .. " --llm mock:spec/fixtures/no_model.yaml --json"):format(T.bin, dir, pol))
      return T.decode(out:match("{.*}"))
    end
    assert.equal("failed", go().status)
    assert.equal("failed", go().status)
    local res = go()
    assert.equal("killed", res.status)
    assert.matches("agent 'flaky_dir' is stopped by the kill switch", res.errors[1])
  end)

  it("disables an agent whose last consecutive_errors runs failed, until revived", function()
    local pol, audit = T.policy({ kill_switch = { consecutive_errors = 3 } })
    local fail, ok = '[["error","boom"]]', '[["tool","echo",{}]]'
    -- a success between failures resets the count
    for _, plan in ipairs({ fail, fail, ok, fail, fail }) do run(pol, plan) end
    assert.equal("completed", run(pol, ok).status)
    assert.equal(0, #T.events(audit, "kill_switch"))
    for _ = 1, 3 do assert.equal("failed", run(pol, fail).status) end
    local res = run(pol, ok)
    assert.equal("killed", res.status)
    assert.matches("last 3 runs failed", res.errors[1])
    local k = T.events(audit, "kill_switch")
    assert.equal("kill", k[1].action)
    assert.is_true(k[1].automatic)
    local list = T.decode((cli(pol, "kill --json")))
    assert.is_true(list[1].automatic)
    assert.equal(0, select(2, cli(pol, "revive lab")))
    assert.equal("completed", run(pol, ok).status)
    -- revived with a clean count: one more failure does not disable it again
    run(pol, fail)
    assert.equal("completed", run(pol, ok).status)
  end)
end)
