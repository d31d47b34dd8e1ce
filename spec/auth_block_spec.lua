-- Blocking abuse (docs/serve.md): warden serve counts failed authentications by address
-- and by key in the state store; one more than serve.auth_failures.max within its window
-- blocks the address (or the key) for block_for: 429 with Retry-After whatever key it
-- sends, the block audited (auth_blocked) and notified.
local T = require("warden.testing")

local GOOD = "reader-key-1"
local ADMIN = "admin-key-9"

local function server(auth, hooks)
  local fake = T.fakellm()
  local key = "block" .. T.sh("date +%s%N"):gsub("%s+$", "")
  local pol, audit = T.policy({
    users = { reader = { role = "read", tier = "free", api_key_sha256 = T.sha256(GOOD) },
              admin = { role = "admin", tier = "premium", api_key_sha256 = T.sha256(ADMIN) } },
    serve = { auth_failures = auth },
    notify = hooks ~= false and { webhooks = { { url = fake.hook_url("key=" .. key), events = { "auth_blocked" } } } }
      or nil,
  })
  local dir = T.tmpfile("-agents")
  os.execute(("mkdir -p %s && ln -s %s/spec/fixtures/lab %s/lab"):format(dir, os.getenv("PWD"), dir))
  return T.serve({ policy = pol, agents = dir }), audit, fake, key
end

describe("blocking failed authentications", function()
  it("answers 429 to an address after 20 failed keys, audits the block and notifies", function()
    local srv, audit, fake, key = server({ max = 20, window = "60s", block_for = "60s" })
    local ok, err = pcall(function()
      assert.equal(200, (srv.http("GET", "/v1/runs", GOOD)))
      for i = 1, 20 do
        local code = srv.http("GET", "/v1/runs", "wrong-key-" .. i)
        assert.equal(401, code, "attempt " .. i)
      end
      local code, body, hdr = srv.http("GET", "/v1/runs", "wrong-key-21")
      assert.equal(429, code)
      assert.matches("too many failed authentications from this address", body.error)
      local ra = tonumber(hdr:match("[Rr]etry%-[Aa]fter: (%d+)"))
      assert.is_true(ra > 50 and ra <= 60, tostring(ra))
      -- the address stays blocked, whatever key it sends: a good one too
      code = srv.http("GET", "/v1/runs", GOOD)
      assert.equal(429, code)
      local blocks = T.wait_for(function()
        local b = T.events(audit, "auth_blocked")
        return #b > 0 and b
      end, "the block's record")
      assert.equal(1, #blocks)
      assert.equal("addr:127.0.0.1", blocks[1].blocked)
      assert.equal(21, blocks[1].failures)
      assert.equal("127.0.0.1", blocks[1].remote_addr)
      local got = T.wait_for(function() local h = fake.hooks(key); return #h > 0 and h end, "the notification", 300)
      local body2 = T.decode(got[1].body)
      assert.equal("auth_blocked", body2.event)
      assert.equal("addr:127.0.0.1", body2.data.blocked)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("forgets failures past the window and lifts a block after block_for", function()
    local srv = server({ max = 3, window = "1s", block_for = "2s" }, false)
    local ok, err = pcall(function()
      for _ = 1, 3 do assert.equal(401, (srv.http("GET", "/v1/runs", "bad"))) end
      os.execute("sleep 1.1") -- the window moved on: three more are allowed
      for _ = 1, 3 do assert.equal(401, (srv.http("GET", "/v1/runs", "bad"))) end
      assert.equal(429, (srv.http("GET", "/v1/runs", "bad")))
      assert.equal(429, (srv.http("GET", "/v1/runs", GOOD)))
      os.execute("sleep 2.1")
      assert.equal(200, (srv.http("GET", "/v1/runs", GOOD)))
      local code, text = srv.http("GET", "/metrics", ADMIN)
      assert.equal(200, code)
      assert.matches("\nwarden_auth_blocks_total 1\n", text)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("attack: a missing or malformed Authorization header counts as a failure", function()
    local srv = server({ max = 2, window = "60s", block_for = "60s" }, false)
    local ok, err = pcall(function()
      assert.equal(401, (srv.http("GET", "/v1/runs", nil)))
      assert.equal(401, (srv.http("GET", "/v1/runs", nil, nil, "-H 'Authorization: Basic Zm9vOmJhcg=='")))
      assert.equal(429, (srv.http("GET", "/v1/runs", nil)))
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("is checked when the policy loads", function()
    local ok, errs = require("warden.core").policy_check(T.policy({ serve = { auth_failures = {
      max = 0, window = "forever", blocks = 1 } } }))
    assert.is_false(ok)
    local text = table.concat(errs, "\n")
    assert.matches("serve.auth_failures", text)
  end)
end)
