-- Attack: the wall clock stepped under warden (docs/safety.md, Bounds). Durations kept in
-- the state store (a breaker's open period, a rate window) run on the store's clock: the
-- wall clock at the boot's anchor advanced by CLOCK_BOOTTIME, which every process reads
-- alike. A second process whose wall clock is an hour behind or ahead (faketime, an
-- LD_PRELOAD that moves CLOCK_REALTIME the way `date -s` would) must wait exactly as
-- long as the first.
local T = require("warden.testing")
local core = require("warden.core")

local srv = T.fakellm()
local OPEN_MS = 2000

local function sleep(ms) os.execute(("sleep %.3f"):format(ms / 1000)) end

-- faketime brings its own LD_PRELOAD; under `make asan` the sanitizer's must not come
-- before it (the preloaded pair deadlocks), and the sanitized binary must accept not
-- coming first
local FAKETIME = 'env -u LD_PRELOAD ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" faketime'


-- a policy whose model fails twice (the breaker opens at the second) and then answers
local function failing_policy(key)
  return T.policy({
    models = { default = { provider = "openai", name = "gpt-test",
                           base_url = srv.url("key=" .. key .. ",fail=2,status=503") } },
    defaults = { breaker = { failure_threshold = 2, open_ms = OPEN_MS, half_open_probes = 1 },
                 retry = { max_retries = 0 }, timeouts = { llm_read_ms = 500 } },
  })
end

-- `warden run` of the lab agent in a process whose wall clock is moved by shift
-- (faketime's "-1h", "+1h"); its first step's answer
local function stepped_run(shift, policy, plan)
  local out = T.sh(("%s -f '%s' %s run spec/fixtures/lab '%s' --user reader --policy %s --json"):format(
    FAKETIME, shift, T.bin, plan or '[["llm"]]', policy))
  local res = T.decode(out:match("{.*}"))
  return res, res.status == "completed" and T.decode(res.result)[1] or nil
end

describe("a stepped wall clock", function()
  it("is seen by the stepped process: faketime moves CLOCK_REALTIME", function()
    local out = T.sh(FAKETIME .. " -f '-1h' date +%s")
    assert.is_true(os.time() - tonumber(out) > 3500, out)
  end)

  it("does not stretch an open breaker: an hour behind, the probe goes 2 s after it opened", function()
    local key = T.key("clockback")
    local policy = failing_policy(key)
    T.lab({ { "llm" } }, { llm = false, policy = policy })
    local _, steps = T.lab({ { "llm" } }, { llm = false, policy = policy })
    assert.matches("HTTP 503", steps[1].llm_error)
    local opened = os.time()
    -- an hour behind: still open, and it says so for the rest of the 2 s, not 3602 s
    local _, step = stepped_run("-1h", policy)
    assert.matches("^circuit open for .*, retry in [12] s$", step.llm_error)
    assert.equal(2, srv.requests(key))
    sleep(OPEN_MS + 300)
    local _, probe = stepped_run("-1h", policy)
    assert.equal("done", probe.content, T.encode(probe))
    assert.equal(3, srv.requests(key))
    assert.is_true(os.time() - opened < 10)
  end)

  it("does not shorten one either: an hour ahead, the breaker is still open", function()
    local key = T.key("clockfwd")
    local policy = failing_policy(key)
    T.lab({ { "llm" } }, { llm = false, policy = policy })
    T.lab({ { "llm" } }, { llm = false, policy = policy })
    local _, step = stepped_run("+1h", policy)
    assert.matches("^circuit open for .*, retry in [12] s$", step.llm_error)
    assert.equal(2, srv.requests(key))
  end)

  it("keeps a rate window an hour long: ten minutes behind, retry_after_ms is within the hour", function()
    local policy = T.policy({ tiers = { free = { requests_per_hour = 2 } } })
    local one = { agent = "spec/fixtures/lab", query = { { "log", {} } } }
    T.run_many({ policy = policy }, { one, one })
    local res = stepped_run("-10m", policy, '[["log", {}]]')
    assert.equal("rate_limited", res.status)
    assert.is_true(res.retry_after_ms <= 3600 * 1000 and res.retry_after_ms > 3500 * 1000, res.retry_after_ms)
  end)

  it("keeps the tests' own clock: core.advance_clock still moves the store's clock", function()
    core.clock(os.time() * 1000)
    local policy = T.policy({ tiers = { free = { requests_per_hour = 1 } } })
    local one = { agent = "spec/fixtures/lab", query = { { "log", {} } } }
    assert.equal("completed", T.run_many({ policy = policy }, { one })[1].status)
    assert.equal("rate_limited", T.run_many({ policy = policy }, { one })[1].status)
    core.advance_clock(3600 * 1000 + 1000)
    assert.equal("completed", T.run_many({ policy = policy }, { one })[1].status)
    core.clock(nil)
  end)
end)
