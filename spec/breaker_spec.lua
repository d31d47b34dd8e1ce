-- Circuit breakers: one per model endpoint and one per tool, kept in the state store
-- so every warden process sees them.
local T = require("warden.testing")

local srv = T.fakellm()

local BREAKER = { failure_threshold = 3, open_ms = 300, half_open_probes = 1 }

-- one policy (one store, one breaker) for a whole test
local function remote_policy(opts, extra)
  local o = { models = { default = { provider = "openai", name = "gpt-test", base_url = srv.url(opts) } },
              defaults = { breaker = BREAKER, retry = { max_retries = 0 }, timeouts = { llm_read_ms = 300 } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return T.policy(o)
end

local function llm_run(policy)
  return T.lab({ { "llm" } }, { llm = false, policy = policy })
end

local function sleep(ms) os.execute(("sleep %.3f"):format(ms / 1000)) end

-- a breaker opened by three failures and left until open_ms has passed: half-open now
local function half_open(opts)
  local policy = remote_policy(opts)
  for _ = 1, 3 do llm_run(policy) end
  sleep(BREAKER.open_ms + 50)
  return policy
end

describe("model breaker", function()
  it("opens after failure_threshold consecutive failures and then refuses without a request", function()
    local key = T.key("open")
    local policy = remote_policy("key=" .. key .. ",mode=status,status=500")
    local audits = {}
    for i = 1, 3 do
      local _, steps, audit = llm_run(policy)
      assert.matches("HTTP 500", steps[1].llm_error)
      audits[i] = audit
    end
    assert.equal(3, srv.requests(key))
    assert.equal(0, #T.events(audits[2], "breaker_opened"))
    local opened = T.events(audits[3], "breaker_opened")
    assert.equal(1, #opened)
    assert.equal("open", opened[1].circuit_breaker_state)
    assert.matches("3 consecutive failures", opened[1].reason)
    assert.equal("llm:" .. srv.url("key=" .. key .. ",mode=status,status=500"), opened[1].breaker)

    local t0 = os.clock()
    local res, steps, audit = llm_run(policy)
    assert.equal("completed", res.status)
    assert.matches("^circuit open for llm:http://127.0.0.1:%d+/.*, retry in 1 s$", steps[1].llm_error)
    assert.equal(3, srv.requests(key)) -- nothing was sent
    assert.is_true(os.clock() - t0 < 0.2)
    local call = T.events(audit, "llm_call")[1]
    assert.equal("open", call.circuit_breaker_state)
    assert.equal("circuit_open", call.reason)
  end)

  it("counts only consecutive failures: a success in between starts over", function()
    local key = T.key("consec")
    local policy = remote_policy("key=" .. key .. ",fail=2,status=503")
    llm_run(policy)
    llm_run(policy)
    local _, steps = llm_run(policy) -- third request succeeds
    assert.equal("done", steps[1].content)
    local _, steps2, audit = llm_run(policy)
    assert.equal("done", steps2[1].content)
    assert.equal(0, #T.events(audit, "breaker_opened"))
  end)

  it("after open_ms admits one probe; its success closes the breaker", function()
    local key = T.key("probe")
    local policy = half_open("key=" .. key .. ",fail=3,status=503")
    local _, steps, audit = llm_run(policy)
    assert.equal("done", steps[1].content)
    local half = T.events(audit, "breaker_half_open")
    local closed = T.events(audit, "breaker_closed")
    assert.equal(1, #half)
    assert.equal(1, #closed)
    assert.matches("probe succeeded", closed[1].reason)
    assert.equal(4, srv.requests(key))
  end)

  it("admits exactly one probe even with many runs racing", function()
    local key = T.key("race")
    local policy = half_open("key=" .. key .. ",fail=3,status=503,delay=150")
    local runs = {}
    for i = 1, 8 do runs[i] = { agent = "spec/fixtures/lab", query = { { "llm" } } } end
    local results = T.run_many({ policy = policy, llm = false }, runs)
    local ok, refused = 0, 0
    for _, r in ipairs(results) do
      local steps = T.decode(r.result)
      if steps[1].content == "done" then ok = ok + 1 end
      if steps[1].llm_error and steps[1].llm_error:match("^circuit half%-open") then refused = refused + 1 end
    end
    assert.equal(1, ok)
    assert.equal(7, refused)
    assert.equal(4, srv.requests(key))
  end)

  it("re-opens when the probe fails, and a probe that hangs fails at its timeout", function()
    local key = T.key("hangprobe")
    local policy = half_open("key=" .. key .. ",fail=3,status=503,mode=hang")
    local _, steps, audit = llm_run(policy)
    assert.matches("read timed out after 300 ms", steps[1].llm_error)
    local opened = T.events(audit, "breaker_opened")
    assert.equal(1, #opened)
    assert.matches("probe failed", opened[1].reason)
    local _, steps2 = llm_run(policy)
    assert.matches("^circuit open", steps2[1].llm_error)
  end)

  it("does not count a 4xx (our request was wrong, the service is up)", function()
    local key = T.key("fourxx")
    local policy = remote_policy("key=" .. key .. ",mode=status,status=400")
    for _ = 1, 4 do llm_run(policy) end
    assert.equal(4, srv.requests(key))
  end)

  it("retries inside one call count as one outcome", function()
    local key = T.key("oneoutcome")
    local policy = remote_policy("key=" .. key .. ",mode=status,status=503",
      { defaults = { breaker = BREAKER, retry = { max_retries = 3, base_ms = 1, max_ms = 1, jitter_ms = 0 } } })
    local _, _, audit = llm_run(policy)
    assert.equal(4, srv.requests(key))
    assert.equal(0, #T.events(audit, "breaker_opened"))
  end)
end)

describe("tool breaker", function()
  it("opens per tool, refuses at once without running the handler, and closes on a probe's success", function()
    local policy = T.policy({ defaults = { breaker = BREAKER } })
    local fail = { { "tool", "flaky", { fail = true } } }
    for _ = 1, 3 do
      local _, steps = T.lab(fail, { policy = policy })
      assert.matches("flaky is down", steps[1].error)
    end
    local _, steps, audit = T.lab({ { "tool", "flaky", {} }, { "tool", "echo", { x = 1 } } }, { policy = policy })
    assert.matches("^circuit open for tool:flaky, retry in 1 s$", steps[1].error)
    assert.equal(1, steps[2].echo.x) -- other tools are not affected
    local call = T.events(audit, "tool_call")[1]
    assert.equal("circuit_open", call.reason)
    sleep(BREAKER.open_ms + 50)
    local _, steps2, audit2 = T.lab({ { "tool", "flaky", {} } }, { policy = policy })
    assert.is_true(steps2[1].ok)
    assert.equal(1, #T.events(audit2, "breaker_half_open"))
    assert.equal(1, #T.events(audit2, "breaker_closed"))
  end)

  it("counts a timeout as a failure, and nil, message as an answer", function()
    local policy = T.policy({ defaults = { breaker = { failure_threshold = 2, open_ms = 60000, half_open_probes = 1 } },
                              tools = { sleeper = { timeout_ms = 50 } } })
    T.lab({ { "tool", "nil_err", {} }, { "tool", "nil_err", {} }, { "tool", "nil_err", {} } }, { policy = policy })
    local _, steps = T.lab({ { "tool", "nil_err", {} } }, { policy = policy })
    assert.is_nil(steps[1].error and steps[1].error:match("circuit"))
    local _, _, audit = T.lab({ { "tool", "sleeper", { ms = 200 } }, { "tool", "sleeper", { ms = 200 } } },
      { policy = policy })
    assert.equal(1, #T.events(audit, "breaker_opened"))
  end)
end)

describe("breakers across processes", function()
  local function sh(cmd)
    local out = T.tmpfile(".out")
    local ok = os.execute(cmd .. " >" .. out .. " 2>&1")
    return ok, T.read(out)
  end

  it("are shared through the store, listed by `warden breakers` and reset by an admin", function()
    local key = T.key("xproc")
    local policy = remote_policy("key=" .. key .. ",mode=status,status=500",
      { defaults = { breaker = { failure_threshold = 1, open_ms = 60000, half_open_probes = 1 },
                     retry = { max_retries = 0 } } })
    local run = ("%s run spec/fixtures/lab '[[\"llm\"]]' --user reader --policy %s --json"):format(T.bin, policy)
    local _, out1 = sh(run)
    assert.matches("HTTP 500", out1)
    local _, out2 = sh(run) -- another process
    assert.matches("circuit open for llm:", out2)
    assert.equal(1, srv.requests(key))

    local ok, list = sh(("%s breakers --policy %s --json"):format(T.bin, policy))
    assert.is_true(ok)
    local rows = T.decode(list)
    assert.equal(1, #rows)
    assert.equal("open", rows[1].state)
    assert.equal(1, rows[1].failures)
    assert.is_true(rows[1].retry_in_ms > 50000)

    local name = rows[1].name
    local denied, why = sh(("%s breakers reset '%s' --user reader --policy %s"):format(T.bin, name, policy))
    assert.is_falsy(denied)
    assert.matches("needs %-%-user with the 'admin' role", why)
    local reset, said = sh(("%s breakers reset '%s' --user admin --policy %s"):format(T.bin, name, policy))
    assert.is_true(reset)
    assert.matches("closed %(was open%)", said)
    local _, list2 = sh(("%s breakers --policy %s --json"):format(T.bin, policy))
    assert.equal("closed", T.decode(list2)[1].state)
    local _, out3 = sh(run)
    assert.matches("HTTP 500", out3) -- a request again
    assert.equal(2, srv.requests(key))
  end)
end)

describe("breaker records", function()
  -- the events of a log, in order, from the first of the given names on
  local function order(audit, names)
    local want, out = {}, {}
    for _, n in ipairs(names) do want[n] = true end
    for _, e in ipairs(T.records(audit)) do
      if want[e.event] then out[#out + 1] = e.event .. ":" .. tostring(e.circuit_breaker_state) end
    end
    return out
  end

  it("audit an endpoint's opening before the llm_call that opened it, which reads open", function()
    local policy = remote_policy("key=" .. T.key("order") .. ",mode=status,status=500")
    local audit
    for _ = 1, 3 do _, _, audit = llm_run(policy) end
    assert.same({ "breaker_opened:open", "llm_call:open" }, order(audit, { "breaker_opened", "llm_call" }))
  end)

  it("audit a tool's opening after the tool_call that opened it, which reads open", function()
    local policy = T.policy({ defaults = { breaker = BREAKER } })
    local audit
    for _ = 1, 3 do _, _, audit = T.lab({ { "tool", "flaky", { fail = true } } }, { policy = policy }) end
    assert.same({ "tool_call:open", "breaker_opened:open" }, order(audit, { "breaker_opened", "tool_call" }))
  end)
end)
